/**
 * Turns examples into model-ready batches: flat typed arrays in row-major [batchSize, seqLength]
 * order, which is what tf.tensor2d takes without copying element by element.
 *
 * Each batch is padded only to its own longest row (dynamic padding). Short sentences are the
 * norm, so this saves most of the attention cost of padding everything to `maxLength`.
 */
import type { Rng } from '../random';
import type { Example } from './readers';
import type { TextTokenizer } from './hf-tokenizer';

export interface EncodedExample {
  inputIds: number[];
  tokenTypeIds: number[];
  label: number;
}

export interface Batch {
  inputIds: Int32Array;
  tokenTypeIds: Int32Array;
  /** 1 for real tokens, 0 for padding. */
  attentionMask: Float32Array;
  /** Class id (classification) or target value (regression), one per row. */
  labels: Float32Array;
  batchSize: number;
  seqLength: number;
}

export interface BatchOptions {
  /** Round each batch's length up to a multiple of this (fewer distinct shapes means fewer kernel recompiles). */
  padToMultipleOf?: number;
}

/** BERT's [PAD] token id; the attention mask, not the id, is what keeps padding out of the model. */
const PAD_ID = 0;

export function encodeExamples(examples: Example[], tokenizer: TextTokenizer, maxLength: number): EncodedExample[] {
  return examples.map((example) => ({
    ...tokenizer.encode(example.text, example.pair, maxLength),
    label: example.label,
  }));
}

/**
 * Groups `encoded` into batches of `batchSize` (the last may be smaller), in a shuffled order when
 * `rng` is given and in input order otherwise. `encoded` itself is never reordered.
 */
export function makeBatches(
  encoded: EncodedExample[],
  batchSize: number,
  rng?: Rng,
  options: BatchOptions = {},
): Batch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const multiple = options.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple < 1)
    throw new RangeError(`padToMultipleOf must be a positive integer, got ${multiple}`);

  const order = encoded.map((_, index) => index);
  if (rng) rng.shuffle(order);
  const batches: Batch[] = [];
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize).map((index) => encoded[index]);
    batches.push(padBatch(rows, multiple));
  }
  return batches;
}

function padBatch(rows: EncodedExample[], multiple: number): Batch {
  const longest = Math.max(...rows.map((row) => row.inputIds.length));
  const seqLength = Math.ceil(longest / multiple) * multiple;
  const batch: Batch = {
    inputIds: new Int32Array(rows.length * seqLength).fill(PAD_ID),
    tokenTypeIds: new Int32Array(rows.length * seqLength), // padding gets segment 0
    attentionMask: new Float32Array(rows.length * seqLength),
    labels: Float32Array.from(rows, (row) => row.label),
    batchSize: rows.length,
    seqLength,
  };
  rows.forEach((row, r) => {
    const offset = r * seqLength;
    batch.inputIds.set(row.inputIds, offset);
    batch.tokenTypeIds.set(row.tokenTypeIds, offset);
    batch.attentionMask.fill(1, offset, offset + row.inputIds.length);
  });
  return batch;
}

/** The batch as consecutive row slices of at most `size` rows (views of its arrays, no copies). */
export function splitBatch(batch: Batch, size: number): Batch[] {
  if (size >= batch.batchSize) return [batch];
  const parts: Batch[] = [];
  for (let start = 0; start < batch.batchSize; start += size) {
    const rows = Math.min(size, batch.batchSize - start);
    const tokens = (array: Int32Array | Float32Array) =>
      array.subarray(start * batch.seqLength, (start + rows) * batch.seqLength);
    parts.push({
      inputIds: tokens(batch.inputIds) as Int32Array,
      tokenTypeIds: tokens(batch.tokenTypeIds) as Int32Array,
      attentionMask: tokens(batch.attentionMask) as Float32Array,
      labels: batch.labels.subarray(start, start + rows),
      batchSize: rows,
      seqLength: batch.seqLength,
    });
  }
  return parts;
}
