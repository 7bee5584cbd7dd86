import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Document } from '../../src/core/data/corpus';
import { WordPieceTokenizer } from '../../src/core/data/tokenizer';
import { countPieces, SPECIALS, trimVocabulary } from '../../src/core/data/vocab-trim';
import { runCli } from './helpers/run-cli';

const bert = WordPieceTokenizer.fromVocabFile(
  join(__dirname, '..', '..', 'examples', 'vocab', 'bert-base-uncased-vocab.txt'),
);

const documents = (...texts: string[]): Document[] =>
  texts.map((text, i) => ({ text, file: 'corpus.txt', line: i + 1 }));
const CORPUS = documents(
  'The film was wonderful, the acting superb and the story unforgettable.',
  'The plot was dull; the film dragged and the ending was predictable.',
  'Strawberries and blueberries: the film about berries was wonderful!',
);

describe('trimVocabulary', () => {
  const counts = countPieces(CORPUS, bert);

  test('counts the pieces the source tokenizer produces', () => {
    assert.equal(counts.get('the'), 7);
    assert.equal(counts.get('film'), 3);
    assert.equal(counts.get('##berries'), 2); // straw ##berries, blue ##berries
  });

  test('keeps the specials first, then every character in both forms, then pieces by frequency', () => {
    const trimmed = trimVocabulary(bert, counts, 200);
    assert.deepEqual(trimmed.tokens.slice(0, SPECIALS.length), [...SPECIALS]);
    for (const token of ['t', '##t', 'w', '##w', ',', '!']) assert.ok(trimmed.tokens.includes(token), token);
    const pieces = trimmed.tokens.filter((t) => t.length > 1 && !t.startsWith('[') && !/^##.$/.test(t));
    assert.equal(pieces[0], 'the'); // the most frequent piece leads
    assert.ok(trimmed.tokens.length <= 200);
    assert.equal(new Set(trimmed.tokens).size, trimmed.tokens.length);
  });

  test('still tokenizes every word of the corpus without [UNK], in shorter pieces where long ones were cut', () => {
    const characters = trimVocabulary(bert, counts, 1000).tokens.filter(
      (t) => t.startsWith('[') || /^(##)?.$/u.test(t),
    ).length;
    const trimmed = trimVocabulary(bert, counts, characters + 3); // room for just three pieces
    const small = WordPieceTokenizer.fromVocab(trimmed.tokens);
    for (const doc of CORPUS) {
      const pieces = small.tokenize(doc.text);
      assert.ok(!pieces.includes('[UNK]'), doc.text);
      assert.equal(pieces.join('').replace(/##/g, ''), bert.tokenize(doc.text).join('').replace(/##/g, ''));
    }
    assert.deepEqual(small.tokenize('the'), ['the']); // the most frequent piece is kept whole
    assert.deepEqual(small.tokenize('dull'), ['d', '##u', '##l', '##l']); // a rare word falls back to characters
    assert.ok(trimmed.coverage < 1 && trimmed.coverage > 0.3, String(trimmed.coverage));
  });

  test('a size too small for the characters is a clear error', () => {
    assert.throws(() => trimVocabulary(bert, counts, 10), /cannot hold the \d+ special and single-character tokens/);
  });
});

describe('peft-lab vocab', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peft-vocab-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const source = join(__dirname, '..', '..', 'examples', 'vocab', 'bert-base-uncased-vocab.txt');

  test('writes a vocabulary the tokenizer and pretraining load, and says what it covers', async () => {
    const corpus = join(dir, 'corpus.txt');
    writeFileSync(corpus, `${CORPUS.map((d) => d.text).join('\n')}\n`);
    const out = join(dir, 'vocab.txt');
    const result = await runCli(['vocab', out, '--from', source, '--corpus', corpus, '--size', '60'], dir);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /wrote 60 tokens to .*vocab\.txt: they cover \d+\.\d% of the corpus's \d+ pieces/);
    const small = WordPieceTokenizer.fromVocabFile(out);
    assert.equal(small.vocabSize, 60);
    const all = await runCli(
      ['vocab', join(dir, 'all.txt'), '--from', source, '--corpus', corpus, '--size', '5000'],
      dir,
    );
    assert.match(all.stdout, /wrote \d+ tokens \(the corpus uses fewer than 5000\)/);
    assert.deepEqual([small.padId, small.unkId, small.clsId, small.sepId, small.maskId], [0, 1, 2, 3, 4]);
    assert.ok(!small.tokenize(CORPUS[0]!.text).includes('[UNK]'));
  });

  test('a missing corpus file is an error naming it; a missing --size is a usage error', async () => {
    const missing = await runCli(
      ['vocab', join(dir, 'v.txt'), '--from', source, '--corpus', join(dir, 'nope.txt'), '--size', '100'],
      dir,
    );
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.txt.*the corpus file does not exist/);
    const usage = await runCli(['vocab', join(dir, 'v.txt'), '--from', source, '--corpus', join(dir, 'nope.txt')], dir);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--size must be a whole number/);
  });
});
