/**
 * Tokenizers read from tokenizer.json by @huggingface/tokenizers: WordPiece (BERT, DistilBERT,
 * ELECTRA), byte-level BPE (RoBERTa, ModernBERT) and Unigram (XLM-R), with pairs and the Rust
 * library's longest_first truncation.
 *
 * WordPiece is checked on real sentences against the hand-written tokenizer, whose ids match
 * Hugging Face's (tokenizer.test.ts), with bert-base-uncased's real vocabulary in the tokenizer.json
 * layout `BertTokenizerFast` saves. BPE and Unigram use small vocabularies whose right answer follows
 * from the merges and scores by hand (no Python `tokenizers` exists on this machine to ask).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { HfTokenizer, loadTokenizer, truncateLongestFirst } from '../../src/core/data/hf-tokenizer';
import { WordPieceTokenizer } from '../../src/core/data/tokenizer';

const ROOT = join(__dirname, '..', '..');
const tempDir = mkdtempSync(join(tmpdir(), 'peft-hf-tokenizer-'));
after(() => rmSync(tempDir, { recursive: true, force: true }));

function folderWith(tokenizerJson: unknown, config?: unknown): string {
  const folder = mkdtempSync(join(tempDir, 'model-'));
  writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  if (config) writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify(config));
  return folder;
}

const added = (content: string, id: number) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

describe('truncateLongestFirst follows the Rust library (tokenizers/src/utils/truncation.rs tests)', () => {
  const seq = (n: number) => Array.from({ length: n }, (_, i) => i);
  test('max_length 7 over empty, short (2), medium (4) and long (8) sequences', () => {
    const lengths = { empty: 0, short: 2, medium: 4, long: 8 };
    // [first, second, kept first, kept second], from truncate_encodings_longest_first
    const table: [keyof typeof lengths, keyof typeof lengths, number, number][] = [
      ['empty', 'empty', 0, 0],
      ['empty', 'short', 0, 2],
      ['empty', 'medium', 0, 4],
      ['empty', 'long', 0, 7],
      ['short', 'empty', 2, 0],
      ['short', 'short', 2, 2],
      ['short', 'medium', 2, 4],
      ['short', 'long', 2, 5],
      ['medium', 'empty', 4, 0],
      ['medium', 'short', 4, 2],
      ['medium', 'medium', 3, 4],
      ['medium', 'long', 3, 4],
      ['long', 'empty', 7, 0],
      ['long', 'short', 5, 2],
      ['long', 'medium', 4, 3],
      ['long', 'long', 3, 4],
    ];
    for (const [a, b, n1, n2] of table) {
      const [first, second] = truncateLongestFirst(seq(lengths[a]), seq(lengths[b]), 7);
      assert.deepEqual([first.length, second!.length], [n1, n2], `${a} + ${b}`);
    }
  });

  test('a single sequence loses its tail', () => {
    assert.deepEqual(truncateLongestFirst(seq(10), null, 4)[0], [0, 1, 2, 3]);
  });
});

describe('WordPiece tokenizer.json (bert-base-uncased vocabulary)', () => {
  const vocabTokens = readFileSync(join(ROOT, 'examples', 'vocab', 'bert-base-uncased-vocab.txt'), 'utf8')
    .split('\n')
    .slice(0, -1);
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  // The layout BertTokenizerFast.save_pretrained writes for bert-base-uncased.
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => added(t, vocabTokens.indexOf(t))),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: Object.fromEntries(
        ['[CLS]', '[SEP]'].map((t) => [t, { id: t, ids: [vocabTokens.indexOf(t)], tokens: [t] }]),
      ),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocabTokens.map((t, i) => [t, i])),
    },
  };
  const folder = folderWith(tokenizerJson, { do_lower_case: true, model_max_length: 512 });
  const tokenizer = loadTokenizer(folder);
  const handWritten = WordPieceTokenizer.fromVocabFile(join(ROOT, 'examples', 'vocab', 'bert-base-uncased-vocab.txt'));

  test('is read by @huggingface/tokenizers, with its size and [PAD]', () => {
    assert.ok(tokenizer instanceof HfTokenizer);
    assert.equal(tokenizer.kind, 'WordPiece');
    assert.equal(tokenizer.vocabSize, 30522);
    assert.equal(tokenizer.padId, 0);
  });

  test('gives the ids Hugging Face gives', () => {
    assert.deepEqual(
      tokenizer.encode('Hello, world! I like strawberries.', undefined, 128).inputIds,
      [101, 7592, 1010, 2088, 999, 1045, 2066, 13137, 20968, 1012, 102],
    );
  });

  test('matches the hand-written tokenizer on 500 real review sentences, single and paired', () => {
    const sentences = readFileSync(join(ROOT, 'examples', 'data', 'sentiment-train.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .slice(0, 500)
      .map((line) => (JSON.parse(line) as { text: string }).text);
    let differences = 0;
    for (let i = 0; i < sentences.length; i++) {
      const text = sentences[i]!;
      const expected = handWritten.encode(text, undefined, 512);
      const actual = tokenizer.encode(text, undefined, 512);
      if (JSON.stringify(actual) !== JSON.stringify(expected)) differences++;
      if (i % 2 === 1) {
        const pair = tokenizer.encode(sentences[i - 1]!, text, 512);
        const pairExpected = handWritten.encode(sentences[i - 1]!, text, 512);
        assert.deepEqual(pair, pairExpected, `pair ${i}`);
      }
    }
    assert.equal(differences, 0);
  });

  test('truncates a pair by the Rust rule: both halves of the budget when both are long', () => {
    const long = 'one two three four five six seven eight nine ten';
    const { inputIds, tokenTypeIds } = tokenizer.encode(long, long, 10); // budget 7: 3 + 4
    assert.equal(inputIds.length, 10);
    assert.deepEqual(tokenTypeIds, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    assert.deepEqual(inputIds.slice(0, 5), [101, 2028, 2048, 2093, 102]);
  });
});

describe('byte-level BPE tokenizer.json (the RoBERTa layout)', () => {
  // Merges build "Hello" and "Ġworld" step by step; every intermediate is in the vocabulary.
  const pieces = [
    '<s>',
    '<pad>',
    '</s>',
    '<unk>',
    'H',
    'e',
    'l',
    'o',
    'Ġ',
    'w',
    'r',
    'd',
    '!',
    'He',
    'll',
    'Hell',
    'Hello',
    'Ġw',
    'or',
    'Ġwor',
    'Ġworl',
    'Ġworld',
    'Ġ!',
  ];
  const id = (t: string) => pieces.indexOf(t);
  const tokenizerJson = {
    added_tokens: ['<s>', '<pad>', '</s>', '<unk>'].map((t) => added(t, id(t))),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['</s>', 2],
      cls: ['<s>', 0],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(pieces.map((t, i) => [t, i])),
      merges: ['H e', 'l l', 'He ll', 'Hell o', 'Ġ w', 'o r', 'Ġw or', 'Ġwor l', 'Ġworl d', 'Ġ !'],
    },
  };
  const tokenizer = loadTokenizer(folderWith(tokenizerJson, { pad_token: '<pad>' })) as HfTokenizer;

  test('merges bytes into the vocabulary pieces, spaces as Ġ', () => {
    assert.equal(tokenizer.kind, 'BPE');
    assert.deepEqual(tokenizer.tokenize('Hello world!'), ['Hello', 'Ġworld', '!']);
    assert.deepEqual(tokenizer.tokenize('Hello !'), ['Hello', 'Ġ!']);
    assert.equal(tokenizer.padId, 1);
  });

  test('puts <s> and </s> around a text and </s></s> between a pair, all of segment 0', () => {
    assert.deepEqual(tokenizer.encode('Hello world!', undefined, 64), {
      inputIds: [0, id('Hello'), id('Ġworld'), id('!'), 2],
      tokenTypeIds: [0, 0, 0, 0, 0],
    });
    const pair = tokenizer.encode('Hello', 'Hello world', 64);
    assert.deepEqual(pair.inputIds, [0, id('Hello'), 2, 2, id('Hello'), id('Ġworld'), 2]);
  });

  test('counts the four specials of a pair in the budget', () => {
    const pair = tokenizer.encode('Hello world! Hello world!', 'Hello world!', 8); // budget 4: 6 + 3 -> 2 + 2
    assert.deepEqual(pair.inputIds, [0, id('Hello'), id('Ġworld'), 2, 2, id('Hello'), id('Ġworld'), 2]);
  });
});

describe('Unigram tokenizer.json (the XLM-R layout)', () => {
  const vocab: [string, number][] = [
    ['<s>', 0],
    ['<pad>', 0],
    ['</s>', 0],
    ['<unk>', 0],
    ['▁hello', -1],
    ['▁world', -2],
    ['▁wor', -3],
    ['ld', -3],
    ['▁', -4],
    ['h', -5],
    ['e', -5],
    ['l', -5],
    ['o', -5],
    ['w', -5],
    ['r', -5],
    ['d', -5],
  ];
  const id = (t: string) => vocab.findIndex(([piece]) => piece === t);
  const template = (pair: boolean) => [
    { SpecialToken: { id: '<s>', type_id: 0 } },
    { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '</s>', type_id: 0 } },
    ...(pair
      ? [
          { SpecialToken: { id: '</s>', type_id: 0 } },
          { Sequence: { id: 'B', type_id: 0 } },
          { SpecialToken: { id: '</s>', type_id: 0 } },
        ]
      : []),
  ];
  const tokenizerJson = {
    added_tokens: ['<s>', '<pad>', '</s>', '<unk>'].map((t) => added(t, id(t))),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: template(false),
      pair: template(true),
      special_tokens: {
        '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] },
        '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] },
      },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 3, vocab, byte_fallback: false },
  };
  const tokenizer = loadTokenizer(folderWith(tokenizerJson)) as HfTokenizer;

  test('takes the most probable segmentation', () => {
    assert.equal(tokenizer.kind, 'Unigram');
    assert.deepEqual(tokenizer.tokenize('hello world'), ['▁hello', '▁world']);
    assert.deepEqual(tokenizer.tokenize('hellow'), ['▁hello', 'w']);
    assert.equal(tokenizer.padId, 1);
  });

  test('encodes single texts and pairs with XLM-R specials', () => {
    assert.deepEqual(tokenizer.encode('hello world', undefined, 16).inputIds, [0, id('▁hello'), id('▁world'), 2]);
    assert.deepEqual(tokenizer.encode('hello', 'world', 16).inputIds, [0, id('▁hello'), 2, 2, id('▁world'), 2]);
  });

  test('maps a character outside the vocabulary to <unk>', () => {
    assert.deepEqual(tokenizer.encode('hello z', undefined, 16).inputIds, [0, id('▁hello'), id('▁'), 3, 2]);
  });
});
