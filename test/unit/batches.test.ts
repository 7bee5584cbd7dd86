import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { encodeExamples, makeBatches, type EncodedExample } from '../../src/core/data/batches';
import type { Example } from '../../src/core/data/readers';
import { WordPieceTokenizer } from '../../src/core/data/tokenizer';
import { Rng } from '../../src/core/random';

const VOCAB_FILE = join(__dirname, '..', '..', 'examples', 'vocab', 'bert-base-uncased-vocab.txt');

/** An encoded row of `length` ids whose values are `base + position`, so rows are easy to tell apart. */
function row(length: number, label: number, base = 1000): EncodedExample {
  return {
    inputIds: Array.from({ length }, (_, i) => base + i),
    tokenTypeIds: Array.from({ length }, (_, i) => (i >= length - 1 ? 1 : 0)),
    label,
  };
}

describe('encodeExamples', () => {
  test('encodes text, pair and label with the tokenizer', () => {
    const tokenizer = WordPieceTokenizer.fromVocabFile(VOCAB_FILE);
    const examples: Example[] = [
      { text: 'Hello, world!', label: 1, line: 1 },
      { text: 'hello', pair: 'world', label: 0.5, line: 2 },
    ];
    assert.deepEqual(encodeExamples(examples, tokenizer, 16), [
      { inputIds: [101, 7592, 1010, 2088, 999, 102], tokenTypeIds: [0, 0, 0, 0, 0, 0], label: 1 },
      { inputIds: [101, 7592, 102, 2088, 102], tokenTypeIds: [0, 0, 0, 1, 1], label: 0.5 },
    ]);
    assert.equal(encodeExamples(examples, tokenizer, 4)[0].inputIds.length, 4);
  });
});

describe('makeBatches', () => {
  test('pads each batch to its own longest row with a matching attention mask', () => {
    const encoded = [row(3, 0, 100), row(5, 1, 200), row(2, 1, 300)];
    const [first, second] = makeBatches(encoded, 2);

    assert.equal(first.batchSize, 2);
    assert.equal(first.seqLength, 5);
    assert.deepEqual([...first.inputIds], [100, 101, 102, 0, 0, 200, 201, 202, 203, 204]);
    assert.deepEqual([...first.tokenTypeIds], [0, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual([...first.attentionMask], [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
    assert.deepEqual([...first.labels], [0, 1]);

    // the last batch is smaller and padded only to its own length
    assert.equal(second.batchSize, 1);
    assert.equal(second.seqLength, 2);
    assert.deepEqual([...second.inputIds], [300, 301]);
    assert.deepEqual([...second.attentionMask], [1, 1]);
  });

  test('uses typed arrays of size batchSize * seqLength', () => {
    const [batch] = makeBatches([row(4, 2), row(1, 0)], 8);
    assert.ok(batch.inputIds instanceof Int32Array);
    assert.ok(batch.tokenTypeIds instanceof Int32Array);
    assert.ok(batch.attentionMask instanceof Float32Array);
    assert.ok(batch.labels instanceof Float32Array);
    assert.equal(batch.inputIds.length, batch.batchSize * batch.seqLength);
    assert.equal(batch.attentionMask.length, 8);
  });

  test('keeps regression targets as floats', () => {
    const [batch] = makeBatches([row(2, 3.25), row(2, -0.5)], 2);
    assert.deepEqual([...batch.labels], [3.25, -0.5]);
  });

  test('rounds the sequence length up to padToMultipleOf', () => {
    const [batch] = makeBatches([row(5, 0), row(3, 1)], 2, undefined, { padToMultipleOf: 8 });
    assert.equal(batch.seqLength, 8);
    assert.deepEqual([...batch.attentionMask.subarray(0, 8)], [1, 1, 1, 1, 1, 0, 0, 0]);
    assert.equal(makeBatches([row(8, 0)], 1, undefined, { padToMultipleOf: 8 })[0].seqLength, 8);
  });

  test('keeps input order without an rng and shuffles deterministically with one', () => {
    const encoded = Array.from({ length: 10 }, (_, i) => row(1, i, i));
    const firstIds = (batches: ReturnType<typeof makeBatches>) => batches.flatMap((b) => [...b.inputIds]);

    assert.deepEqual(firstIds(makeBatches(encoded, 3)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const shuffled = firstIds(makeBatches(encoded, 3, new Rng(42)));
    assert.notDeepEqual(shuffled, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(
      [...shuffled].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.deepEqual(firstIds(makeBatches(encoded, 3, new Rng(42))), shuffled);
    // labels travel with their rows
    for (const batch of makeBatches(encoded, 4, new Rng(1))) {
      for (let r = 0; r < batch.batchSize; r++) assert.equal(batch.labels[r], batch.inputIds[r * batch.seqLength]);
    }
    // the caller's array is left in order
    assert.deepEqual(
      encoded.map((e) => e.label),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });

  test('returns no batches for no examples and rejects bad sizes', () => {
    assert.deepEqual(makeBatches([], 4), []);
    assert.throws(() => makeBatches([row(1, 0)], 0), RangeError);
    assert.throws(() => makeBatches([row(1, 0)], 1.5), RangeError);
    assert.throws(() => makeBatches([row(1, 0)], 1, undefined, { padToMultipleOf: 0 }), RangeError);
  });
});
