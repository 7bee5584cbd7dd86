import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Document } from '../../src/core/data/corpus';
import { WordPieceTokenizer } from '../../src/core/data/tokenizer';
import { countPieces, SPECIALS, trimVocabulary } from '../../src/core/data/vocab-trim';

const bert = WordPieceTokenizer.fromVocabFile(join(__dirname, '..', '..', 'examples', 'vocab', 'bert-base-uncased-vocab.txt'));

const documents = (...texts: string[]): Document[] => texts.map((text, i) => ({ text, file: 'corpus.txt', line: i + 1 }));
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
    const characters = trimVocabulary(bert, counts, 1000).tokens.filter((t) => t.startsWith('[') || /^(##)?.$/u.test(t)).length;
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
