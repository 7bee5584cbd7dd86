/**
 * Pretraining text: corpus files read into documents, documents tokenized into sequences, and
 * BERT's masked-language-model corruption of a batch.
 *
 * Formats (see `pretrain` in the schema):
 *   text, documents 'lines'       every non-blank line is one document;
 *   text, documents 'paragraphs'  blocks of lines separated by blank lines, line breaks become spaces;
 *   jsonl                         one JSON object per line, the text in `textField`.
 * Every problem is a DataError naming the file and, where there is one, the 1-based line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CorpusFormat, PretrainSection } from '../config/types';
import { DataError } from '../errors';
import { Rng } from '../random';
import { splitBatch, type Batch, type EncodedExample } from './batches';
import { parseJsonLines, requiredText, splitForValidation } from './readers';
import type { WordPieceTokenizer } from './tokenizer';

export interface Document {
  text: string;
  file: string;
  /** 1-based line where the document starts. */
  line: number;
}

export type CorpusOptions = Pick<PretrainSection, 'format' | 'documents' | 'textField'>;

/** The documents of one corpus file, in file order. */
export function readCorpusFile(file: string, options: CorpusOptions): Document[] {
  const text = readUtf8(file);
  const format = corpusFormatOf(file, options.format);
  const documents =
    format === 'jsonl'
      ? parseJsonLines(file, text).map((record) => ({
          text: requiredText(file, record, options.textField, 'text'),
          file,
          line: record.line,
        }))
      : splitText(text, file, options.documents);
  if (documents.length === 0) throw new DataError(file, undefined, 'the corpus file has no text');
  return documents;
}

/** `.jsonl` and `.json` are JSON Lines; anything else (`.txt`, no extension...) is plain text. */
export function corpusFormatOf(file: string, configured: CorpusFormat | undefined): CorpusFormat {
  if (configured) return configured;
  const extension = path.extname(file).toLowerCase();
  return extension === '.jsonl' || extension === '.json' ? 'jsonl' : 'text';
}

function splitText(text: string, file: string, documents: CorpusOptions['documents']): Document[] {
  const out: Document[] = [];
  let paragraph: { lines: string[]; line: number } | undefined;
  const flush = (): void => {
    if (paragraph) out.push({ text: paragraph.lines.join(' '), file, line: paragraph.line });
    paragraph = undefined;
  };
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '') return flush();
    if (documents === 'lines') out.push({ text: line, file, line: index + 1 });
    else (paragraph ??= { lines: [], line: index + 1 }).lines.push(line);
  });
  flush();
  return out;
}

/** The file as text; a binary file or invalid UTF-8 is an error naming the first bad line. */
function readUtf8(file: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DataError(
      file,
      undefined,
      code === 'ENOENT' ? 'the corpus file does not exist' : `cannot read the corpus file: ${(err as Error).message}`,
    );
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0)
    throw new DataError(file, lineAt(bytes, nul), 'contains a NUL byte: this does not look like a text file');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(file, firstInvalidUtf8Line(bytes), 'is not valid UTF-8 text (convert the file to UTF-8)');
  }
  return text.replace(/^\uFEFF/, '');
}

function lineAt(bytes: Buffer, offset: number): number {
  let line = 1;
  for (let i = bytes.indexOf(10); i >= 0 && i < offset; i = bytes.indexOf(10, i + 1)) line++;
  return line;
}

function firstInvalidUtf8Line(bytes: Buffer): number | undefined {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    const end = bytes.indexOf(10, start);
    const stop = end < 0 ? bytes.length : end;
    try {
      decoder.decode(bytes.subarray(start, stop));
    } catch {
      return line;
    }
    start = stop + 1;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Sequences

/**
 * Token ids of `[CLS] ... [SEP]` sequences of at most `maxLength` ids. Unpacked, each document gives
 * one sequence, or several consecutive ones when it is longer; packed, the documents are one
 * stream, each followed by [SEP], cut into sequences of exactly `maxLength` (the last may be shorter).
 */
export function tokenizeDocuments(
  documents: Document[],
  tokenizer: WordPieceTokenizer,
  maxLength: number,
  pack: boolean,
): EncodedExample[] {
  if (!Number.isInteger(maxLength) || maxLength < 3)
    throw new RangeError(`maxLength must be an integer >= 3, got ${maxLength}`);
  const sequences: EncodedExample[] = [];
  const emit = (ids: number[]): void => {
    sequences.push({ inputIds: ids, tokenTypeIds: zeros(ids.length), label: 0 });
  };
  let current = [tokenizer.clsId];
  for (const document of documents) {
    const ids = tokenizer.tokenize(document.text).map((piece) => tokenizer.idOf(piece) ?? tokenizer.unkId);
    if (ids.length === 0) continue; // only control characters or the like: nothing to learn from
    if (!pack) {
      for (let start = 0; start < ids.length; start += maxLength - 2)
        emit([tokenizer.clsId, ...ids.slice(start, start + maxLength - 2), tokenizer.sepId]);
      continue;
    }
    for (const id of [...ids, tokenizer.sepId]) {
      current.push(id);
      if (current.length === maxLength) {
        emit(current);
        current = [tokenizer.clsId];
      }
    }
  }
  if (pack && current.length > 1) emit(current);
  return sequences;
}

const zeroArrays = new Map<number, number[]>();
/** Segment ids are all 0; sequences of a length share one array (they are never written to). */
function zeros(length: number): number[] {
  let array = zeroArrays.get(length);
  if (!array) zeroArrays.set(length, (array = new Array<number>(length).fill(0)));
  return array;
}

/** The token sequences of a `pretrain` section: corpus and held-out documents, tokenized. */
export interface PretrainingData {
  train: EncodedExample[];
  validation: EncodedExample[];
  documents: { train: number; validation: number };
  /** Tokens of the training sequences, [CLS] and [SEP] included. */
  trainTokens: number;
}

/**
 * Reads every corpus file, holds out `validation` files or a `validationSplit` of the documents
 * (chosen by `seed`), and tokenizes both into sequences; the held-out ones are capped at
 * `maxValidationSequences`.
 */
export function loadPretrainingData(
  section: PretrainSection,
  tokenizer: WordPieceTokenizer,
  seed: number,
): PretrainingData {
  const read = (files: string[]): Document[] => files.flatMap((file) => readCorpusFile(file, section));
  let documents = read(section.corpus);
  if (section.maxDocuments !== undefined) documents = documents.slice(0, section.maxDocuments);
  let held: Document[];
  if (section.validation) {
    held = read(section.validation);
  } else {
    const split = splitForValidation(documents, section.validationSplit, new Rng(seed));
    documents = split.train;
    held = split.validation;
  }
  const train = tokenizeDocuments(documents, tokenizer, section.maxLength, section.pack);
  if (train.length === 0) throw new DataError(section.corpus[0]!, undefined, 'the corpus has no text to train on');
  const validation = tokenizeDocuments(held, tokenizer, section.maxLength, section.pack).slice(
    0,
    section.maxValidationSequences,
  );
  const trainTokens = train.reduce((n, sequence) => n + sequence.inputIds.length, 0);
  return { train, validation, documents: { train: documents.length, validation: held.length }, trainTokens };
}

// ---------------------------------------------------------------------------------------------
// Masking

export interface MaskingOptions {
  /** Chance that a maskable token is selected for prediction. */
  probability: number;
  /** Of the selected tokens, the share replaced by [MASK] and by a random token; the rest stay. */
  replaceWithMask: number;
  replaceWithRandom: number;
}

/** What masking needs to know about the vocabulary. */
export interface MaskVocabulary {
  maskId: number;
  /** Never selected: [CLS], [SEP], [PAD] and [MASK]. */
  protectedIds: ReadonlySet<number>;
  /** Random replacements: every token except the special and [unused] ones. */
  randomIds: Int32Array;
}

export function maskVocabulary(tokenizer: WordPieceTokenizer): MaskVocabulary {
  const specials = new Set([tokenizer.clsId, tokenizer.sepId, tokenizer.padId, tokenizer.maskId, tokenizer.unkId]);
  const random: number[] = [];
  tokenizer.tokens.forEach((token, id) => {
    if (!specials.has(id) && !/^\[unused\d+\]$/.test(token)) random.push(id);
  });
  if (random.length === 0)
    throw new RangeError('the vocabulary has no ordinary tokens to draw random replacements from');
  return {
    maskId: tokenizer.maskId,
    protectedIds: new Set([tokenizer.clsId, tokenizer.sepId, tokenizer.padId, tokenizer.maskId]),
    randomIds: Int32Array.from(random),
  };
}

/** A batch with some tokens corrupted, and what the model must predict there. */
export interface MaskedBatch {
  /** The corrupted batch (the input ids changed, everything else as it was). */
  batch: Batch;
  /** Flat indices (row * seqLength + column) of the selected tokens, ascending. */
  positions: Int32Array;
  /** The original ids at `positions`. */
  targets: Int32Array;
}

/**
 * BERT's corruption (Devlin et al. 2019, as Hugging Face's DataCollatorForLanguageModeling does it):
 * each real token except [CLS], [SEP], [PAD] and [MASK] is selected with `probability`; a selected
 * token becomes [MASK] with chance `replaceWithMask`, a random ordinary token with chance
 * `replaceWithRandom`, and stays otherwise. A batch with no selected token gets one, so every step
 * has something to learn from. Draws come only from `rng`, in a fixed order.
 */
export function maskBatch(batch: Batch, vocab: MaskVocabulary, options: MaskingOptions, rng: Rng): MaskedBatch {
  const inputIds = batch.inputIds.slice();
  const selected: number[] = [];
  const candidates: number[] = [];
  for (let i = 0; i < inputIds.length; i++) {
    if (batch.attentionMask[i] === 0 || vocab.protectedIds.has(inputIds[i]!)) continue;
    candidates.push(i);
    if (rng.next() < options.probability) selected.push(i);
  }
  if (selected.length === 0 && candidates.length > 0) selected.push(candidates[rng.int(candidates.length)]!);
  const targets = Int32Array.from(selected, (i) => inputIds[i]!);
  for (const i of selected) {
    const r = rng.next();
    if (r < options.replaceWithMask) inputIds[i] = vocab.maskId;
    else if (r < options.replaceWithMask + options.replaceWithRandom)
      inputIds[i] = vocab.randomIds[rng.int(vocab.randomIds.length)]!;
  }
  return { batch: { ...batch, inputIds }, positions: Int32Array.from(selected), targets };
}

/** The masked batch as row slices of at most `size` rows, each with its own positions (re-based) and targets. */
export function splitMaskedBatch(masked: MaskedBatch, size: number): MaskedBatch[] {
  const parts = splitBatch(masked.batch, size);
  if (parts.length === 1) return [masked];
  const width = masked.batch.seqLength;
  let row = 0;
  return parts.map((batch) => {
    const from = row * width;
    const to = (row + batch.batchSize) * width;
    row += batch.batchSize;
    const selected: number[] = [];
    masked.positions.forEach((position, i) => {
      if (position >= from && position < to) selected.push(i);
    });
    return {
      batch,
      positions: Int32Array.from(selected, (i) => masked.positions[i]! - from),
      targets: Int32Array.from(selected, (i) => masked.targets[i]!),
    };
  });
}
