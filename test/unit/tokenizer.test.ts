import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { WordPieceTokenizer } from '../../src/core/data/tokenizer';
import { HfTokenizer, loadTokenizer } from '../../src/core/data/hf-tokenizer';
import { DataError } from '../../src/core/errors';

const VOCAB_FILE = join(__dirname, '..', '..', 'examples', 'vocab', 'bert-base-uncased-vocab.txt');
const bert = WordPieceTokenizer.fromVocabFile(VOCAB_FILE);

/** A tiny vocabulary for tests that need to know exactly which pieces exist. */
const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const TINY_VOCAB = [
  ...SPECIALS,
  'un',
  '##aff',
  '##able',
  'hello',
  'world',
  ',',
  '!',
  'a',
  'b',
  'c',
  'd',
  'e',
  'x',
  'y',
  'Hello',
];

const tempDir = mkdtempSync(join(tmpdir(), 'peft-tokenizer-'));
after(() => rmSync(tempDir, { recursive: true, force: true }));

function writeTemp(name: string, content: string): string {
  const path = join(tempDir, name);
  writeFileSync(path, content);
  return path;
}

function ids(tokenizer: WordPieceTokenizer, tokens: string[]): number[] {
  return tokens.map((token) => tokenizer.idOf(token) ?? -1);
}

describe('WordPieceTokenizer with the real bert-base-uncased vocabulary', () => {
  test('has the published size and special ids', () => {
    assert.equal(bert.vocabSize, 30522);
    assert.deepEqual([bert.padId, bert.unkId, bert.clsId, bert.sepId, bert.maskId], [0, 100, 101, 102, 103]);
    assert.equal(bert.tokens[7592], 'hello');
    assert.equal(bert.idOf('##berries'), 20968);
    assert.equal(bert.idOf('not-a-token'), undefined);
  });

  test('encodes a sentence to the ids Hugging Face produces', () => {
    const encoding = bert.encode('Hello, world! I like strawberries.', undefined, 128);
    assert.deepEqual(encoding.inputIds, [101, 7592, 1010, 2088, 999, 1045, 2066, 13137, 20968, 1012, 102]);
    assert.deepEqual(encoding.tokenTypeIds, new Array(11).fill(0));
  });

  test('splits words into greedy longest-match pieces', () => {
    assert.deepEqual(bert.tokenize('I like strawberries'), ['i', 'like', 'straw', '##berries']);
  });

  test('lower-cases and strips accents', () => {
    assert.deepEqual(bert.tokenize('Héllo NAÏVE Café'), ['hello', 'naive', 'cafe']);
    assert.deepEqual(bert.encode('Héllo', undefined, 8).inputIds, [101, 7592, 102]);
  });

  test('splits ASCII symbols as punctuation like Hugging Face does', () => {
    assert.deepEqual(bert.tokenize('$5^2 a+b'), ['$', '5', '^', '2', 'a', '+', 'b']);
    assert.deepEqual(bert.tokenize('“quoted”—dash'), ['“', 'quoted', '”', '—', 'dash']);
  });

  test('keeps never-split tokens intact, even inside words', () => {
    assert.deepEqual(bert.tokenize('the [MASK] sat'), ['the', '[MASK]', 'sat']);
    assert.deepEqual(bert.tokenize('hello[SEP]world [CLS]'), ['hello', '[SEP]', 'world', '[CLS]']);
    assert.deepEqual(bert.encode('a [MASK] b', undefined, 16).inputIds, [101, 1037, 103, 1038, 102]);
    // special tokens are case-sensitive: a lower-cased one is ordinary text
    assert.deepEqual(bert.tokenize('[mask]'), ['[', 'mask', ']']);
  });

  test('puts each Chinese character in its own word', () => {
    assert.deepEqual(bert.tokenize('我愛北京'), ['我', '愛', '北', '京']);
    assert.deepEqual(bert.tokenize('ab我cd'), ['ab', '我', 'cd']);
    assert.deepEqual(bert.encode('我愛', undefined, 8).inputIds, [101, 1855, 1853, 102]);
  });

  test('drops control characters and U+FFFD, treats odd whitespace as spaces', () => {
    assert.deepEqual(bert.tokenize('hel\u0000lo\uFFFD\u200B world\u00A0again\tand\r\nmore'), [
      'hello',
      'world',
      'again',
      'and',
      'more',
    ]);
    assert.deepEqual(bert.tokenize('   '), []);
  });

  test('maps unknown words and words over 100 characters to [UNK]', () => {
    assert.deepEqual(bert.tokenize('hello \u{1F600} world'), ['hello', '[UNK]', 'world']);
    assert.deepEqual(bert.tokenize('a'.repeat(101)), ['[UNK]']);
    assert.notDeepEqual(bert.tokenize('a'.repeat(100)), ['[UNK]']);
  });
});

describe('WordPieceTokenizer pairs and truncation', () => {
  const tiny = WordPieceTokenizer.fromVocab(TINY_VOCAB);

  test('encodes a pair as [CLS] a [SEP] b [SEP] with segment ids', () => {
    const encoding = tiny.encode('hello world', 'a b', 32);
    assert.deepEqual(encoding.inputIds, ids(tiny, ['[CLS]', 'hello', 'world', '[SEP]', 'a', 'b', '[SEP]']));
    assert.deepEqual(encoding.tokenTypeIds, [0, 0, 0, 0, 1, 1, 1]);
  });

  test('truncates a single sequence from the end', () => {
    const encoding = tiny.encode('a b c d e', undefined, 4);
    assert.deepEqual(encoding.inputIds, ids(tiny, ['[CLS]', 'a', 'b', '[SEP]']));
  });

  test('truncates the longer sequence of a pair first, the pair on ties', () => {
    // 5 + 2 tokens, budget 4: the first loses three tokens until both have 2, then the tie cuts the pair
    const encoding = tiny.encode('a b c d e', 'x y', 7);
    assert.deepEqual(encoding.inputIds, ids(tiny, ['[CLS]', 'a', 'b', '[SEP]', 'x', 'y', '[SEP]']));
    assert.deepEqual(
      tiny.encode('a b c d e', 'x y', 6).inputIds,
      ids(tiny, ['[CLS]', 'a', 'b', '[SEP]', 'x', '[SEP]']),
    );
    assert.deepEqual(tiny.encode('a b', 'c d e x y', 7).tokenTypeIds, [0, 0, 0, 0, 1, 1, 1]);
  });

  test('never returns more than maxLength ids', () => {
    for (let maxLength = 3; maxLength < 12; maxLength++) {
      const { inputIds, tokenTypeIds } = tiny.encode('hello world a b c', 'd e x y', maxLength);
      assert.ok(inputIds.length <= maxLength);
      assert.equal(tokenTypeIds.length, inputIds.length);
    }
  });

  test('rejects a maxLength too small for the special tokens', () => {
    assert.throws(() => tiny.encode('a', 'b', 2), RangeError);
    assert.throws(() => tiny.encode('a', undefined, 1), RangeError);
  });

  test('splits into ## pieces and gives [UNK] for a word with no full cover', () => {
    assert.deepEqual(tiny.tokenize('unaffable'), ['un', '##aff', '##able']);
    assert.deepEqual(tiny.tokenize('unaffablez hello'), ['[UNK]', 'hello']);
    assert.equal(tiny.encode('zzz', undefined, 8).inputIds[1], tiny.unkId);
  });

  test('keeps case and accents when lower-casing is off', () => {
    const cased = WordPieceTokenizer.fromVocab(TINY_VOCAB, { lowercase: false });
    assert.deepEqual(cased.tokenize('Hello hello'), ['Hello', 'hello']);
    assert.deepEqual(cased.tokenize('Héllo'), ['[UNK]']);
    const casedNoAccents = WordPieceTokenizer.fromVocab(TINY_VOCAB, { lowercase: false, stripAccents: true });
    assert.deepEqual(casedNoAccents.tokenize('Héllo'), ['Hello']);
  });

  test('rejects a vocabulary without the BERT special tokens', () => {
    assert.throws(
      () => WordPieceTokenizer.fromVocab(['[PAD]', 'a']),
      /lacks the BERT special token\(s\) \[CLS\] \[SEP\] \[UNK\] \[MASK\]$/,
    );
  });
});

describe('WordPieceTokenizer loading', () => {
  test('reads tokenizer.json through @huggingface/tokenizers: vocab, normalizer settings and prefix', () => {
    const vocab = Object.fromEntries(TINY_VOCAB.map((token, id) => [token.replace(/^##/, '@@'), id]));
    const folder = mkdtempSync(join(tempDir, 'json-'));
    writeFileSync(
      join(folder, 'tokenizer.json'),
      JSON.stringify({
        added_tokens: SPECIALS.map((content, id) => ({
          id,
          content,
          special: true,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
        })),
        normalizer: {
          type: 'BertNormalizer',
          clean_text: true,
          lowercase: false,
          strip_accents: null,
          handle_chinese_chars: true,
        },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        model: {
          type: 'WordPiece',
          unk_token: '[UNK]',
          continuing_subword_prefix: '@@',
          max_input_chars_per_word: 100,
          vocab,
        },
      }),
    );
    const tokenizer = loadTokenizer(folder) as HfTokenizer;
    assert.ok(tokenizer instanceof HfTokenizer);
    assert.equal(tokenizer.vocabSize, TINY_VOCAB.length);
    assert.deepEqual(tokenizer.tokenize('Hello unaffable'), ['Hello', 'un', '@@aff', '@@able']);
  });

  test('a tokenizer.json without a usable model names the file', () => {
    const folder = mkdtempSync(join(tempDir, 'badjson-'));
    writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordLevel', vocab: {} } }));
    assert.throws(
      () => loadTokenizer(folder),
      (err: unknown) => {
        assert.ok(err instanceof DataError);
        assert.match(err.message, /tokenizer\.json: model\.type "WordLevel" is not supported/);
        return true;
      },
    );
  });

  test('fromFolder reads vocab.txt and applies do_lower_case from tokenizer_config.json', () => {
    const folder = mkdtempSync(join(tempDir, 'model-'));
    writeFileSync(join(folder, 'vocab.txt'), TINY_VOCAB.join('\n') + '\n');
    assert.deepEqual(WordPieceTokenizer.fromFolder(folder).tokenize('Hello'), ['hello']);
    assert.ok(
      loadTokenizer(folder) instanceof WordPieceTokenizer,
      'a folder with only vocab.txt keeps the WordPiece tokenizer',
    );
    writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }));
    assert.deepEqual(WordPieceTokenizer.fromFolder(folder).tokenize('Hello'), ['Hello']);
  });

  test('loadTokenizer names the folder when it has no tokenizer', () => {
    const folder = mkdtempSync(join(tempDir, 'empty-'));
    assert.throws(
      () => loadTokenizer(folder),
      (err: unknown) => {
        assert.ok(err instanceof DataError);
        assert.ok(err.message.includes(folder));
        assert.match(err.message, /neither tokenizer\.json nor vocab\.txt/);
        return true;
      },
    );
  });

  test('fromVocabFile reports a missing file and a vocabulary without specials', () => {
    assert.throws(() => WordPieceTokenizer.fromVocabFile(join(tempDir, 'nope.txt')), /nope\.txt: file does not exist/);
    const path = writeTemp('bad-vocab.txt', 'a\nb\n');
    assert.throws(
      () => WordPieceTokenizer.fromVocabFile(path),
      /bad-vocab\.txt: the vocabulary lacks the BERT special token\(s\) \[CLS\]/,
    );
  });

  test('vocab.txt ids follow line numbers, CRLF included', () => {
    const path = writeTemp('crlf-vocab.txt', TINY_VOCAB.join('\r\n') + '\r\n');
    const tokenizer = WordPieceTokenizer.fromVocabFile(path);
    assert.equal(tokenizer.vocabSize, TINY_VOCAB.length);
    assert.equal(tokenizer.idOf('hello'), TINY_VOCAB.indexOf('hello'));
  });
});
