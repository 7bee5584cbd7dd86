/**
 * Reads labelled text examples from JSONL, CSV (RFC 4180) or TSV (GLUE style) files.
 *
 * Every problem is reported as a DataError carrying the file and the 1-based line, so a user with
 * a 50,000-line file can jump straight to the bad row instead of bisecting it.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { extname } from 'node:path';
import type { DataConfig, DataFormat, TaskConfig } from '../config/types';
import { DataError } from '../errors';
import type { Rng } from '../random';
import { systemFolderOf } from '../config/output-location';

export interface Example {
  text: string;
  pair?: string;
  /** Class id for classification, target value for regression. */
  label: number;
  /** 1-based line where the example starts in its file, for error messages and predictions. */
  line: number;
}

export interface ReadResult {
  examples: Example[];
  /** Class names in id order; empty for regression. */
  labelNames: string[];
}

/** One data row before interpretation: field name -> raw value, plus where it starts. */
export interface RawRecord {
  line: number;
  fields: Record<string, unknown>;
}

/**
 * Reads `file` as the config describes. `labelNames` (from the config, or from the training file
 * when reading validation/test files) fixes the label ids; without it they are collected from the file.
 */
/** `labelNames` are task.labels (numbers match the data's labels as their decimal text) or the training file's names. */
export function readExamples(
  file: string,
  data: DataConfig,
  task: TaskConfig,
  labelNames?: readonly (string | number)[],
): ReadResult {
  const records = parseRecords(file, readContent(file, data.encoding ?? 'utf-8'), formatOf(file, data.format), data);
  if (records.length === 0) throw new DataError(file, undefined, 'the file contains no examples');
  if (task.type === 'regression') {
    const examples = records.map((record) => ({
      ...readTextFields(file, record, data),
      label: regressionLabel(file, record, data.labelField),
      line: record.line,
    }));
    return { examples, labelNames: [] };
  }
  return readClassification(file, records, data, labelNames?.map(String));
}

function readClassification(file: string, records: RawRecord[], data: DataConfig, labelNames?: string[]): ReadResult {
  // Fields are checked in line order first so the earliest problem is reported, before label ids exist.
  const rows = records.map((record) => ({
    ...readTextFields(file, record, data),
    rawLabel: classLabel(file, record, data.labelField),
    line: record.line,
  }));
  if (!labelNames) refuseMixedLabelTypes(file, records, data.labelField);
  const names = labelNames ?? collectLabelNames(rows.map((row) => row.rawLabel));
  const resolve = labelResolver(names);
  const examples = rows.map(({ rawLabel, ...example }) => {
    const label = resolve(rawLabel);
    if (label === undefined) {
      throw new DataError(
        file,
        example.line,
        `unknown label ${JSON.stringify(rawLabel)}; known labels: ${names.join(', ')}`,
      );
    }
    return { ...example, label };
  });
  return { examples, labelNames: [...names] };
}

/**
 * Holds out `fraction` of the examples (at least one when the fraction is positive, never all)
 * chosen by `rng`, so the same seed always gives the same split. Both parts keep file order.
 */
export function splitForValidation<T>(examples: T[], fraction: number, rng: Rng): { train: T[]; validation: T[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`validation fraction must be in [0, 1), got ${fraction}`);
  const wanted = fraction > 0 ? Math.max(1, Math.round(examples.length * fraction)) : 0;
  const validationSize = Math.min(wanted, Math.max(0, examples.length - 1));
  const shuffled = rng.shuffle(examples.map((_, index) => index));
  const isValidation = new Set(shuffled.slice(0, validationSize));
  return {
    train: examples.filter((_, index) => !isValidation.has(index)),
    validation: examples.filter((_, index) => isValidation.has(index)),
  };
}

// ---------------------------------------------------------------------------------------------
// File level

function formatOf(file: string, configured: DataFormat | undefined): DataFormat {
  if (configured) return configured;
  const extension = extname(file).toLowerCase();
  if (extension === '.jsonl' || extension === '.json') return 'jsonl';
  if (extension === '.csv') return 'csv';
  if (extension === '.tsv') return 'tsv';
  throw new DataError(
    file,
    undefined,
    `cannot tell the data format from the extension "${extension}"; set data.format to "jsonl", "csv" or "tsv"`,
  );
}

function readContent(file: string, encoding: 'utf-8' | 'latin1'): string {
  if (!existsSync(file)) throw new DataError(file, undefined, 'the data file does not exist');
  // A link into /etc, /proc, ... is not training data, and its lines must not end up in an error message.
  const real = realpathSync(file);
  const system = systemFolderOf(real);
  if (system !== undefined)
    throw new DataError(
      file,
      undefined,
      `is a link to ${real}, a file of the system folder ${system}, not a data file`,
    );
  const bytes = readFileSync(file);
  if (encoding === 'utf-8' && !isUtf8(bytes)) throw invalidUtf8(file, bytes);
  // A UTF-8 byte order mark (Excel adds one) would otherwise become part of the first header name.
  const content = (encoding === 'latin1' ? bytes.toString('latin1') : bytes.toString('utf8')).replace(/^\uFEFF/, '');
  if (content.trim() === '') throw new DataError(file, undefined, 'the file is empty');
  return content;
}

/** Names the line and the byte offset of the first byte that is not UTF-8, and the setting for Latin-1 files. */
function invalidUtf8(file: string, bytes: Buffer): DataError {
  const offset = firstInvalidUtf8Byte(bytes);
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  const byte = bytes[offset]!.toString(16).toUpperCase().padStart(2, '0');
  return new DataError(
    file,
    line,
    `not valid UTF-8: byte 0x${byte} at byte offset ${offset} of the file; save it as UTF-8, or set data.encoding to "latin1" if it is Latin-1 (ISO-8859-1)`,
  );
}

/** The offset where UTF-8 decoding first fails (an unexpected or truncated sequence, an overlong or surrogate form). */
function firstInvalidUtf8Byte(bytes: Buffer): number {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i]!;
    const length =
      b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (length === 0 || i + length > bytes.length) return i;
    if (length > 1 && !isUtf8(bytes.subarray(i, i + length))) return i;
    i += length;
  }
  return bytes.length;
}

function parseRecords(file: string, content: string, format: DataFormat, data: DataConfig): RawRecord[] {
  switch (format) {
    case 'jsonl':
      return parseJsonLines(file, content);
    case 'csv':
      return recordsFromTable(file, parseCsvRows(file, content), data);
    case 'tsv':
      return recordsFromTable(file, parseTsvRows(content), data);
  }
}

// ---------------------------------------------------------------------------------------------
// JSONL

/** One JSON object per non-blank line; a malformed line is a DataError naming the file and line. */
export function parseJsonLines(file: string, content: string): RawRecord[] {
  const records: RawRecord[] = [];
  content.split('\n').forEach((rawLine, index) => {
    const text = rawLine.trim();
    if (text === '') return;
    records.push({ line: index + 1, fields: parseJsonObject(file, index + 1, text) });
  });
  return records;
}

function parseJsonObject(file: string, line: number, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8 quotes the start of the text ("root:x:0:0"... is not valid JSON): the position is enough
    const message = (err as Error).message
      .replace(/, "(?:[^"\\]|\\.)*"(?:\.\.\.)? is not valid JSON$/, '')
      .replace(/ in JSON at position/, ' at position');
    throw new DataError(file, line, `malformed JSON: ${message}`);
  }
  if (Array.isArray(value)) {
    throw new DataError(
      file,
      line,
      'expected one JSON object per line (JSONL), got an array; convert a JSON array to one object per line',
    );
  }
  if (value === null || typeof value !== 'object') {
    throw new DataError(file, line, `expected one JSON object per line, got ${describeType(value)}`);
  }
  return value as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// CSV and TSV

interface TableRow {
  line: number;
  cells: string[];
}

/** The first row is the header; every other row must have as many cells. */
function recordsFromTable(file: string, rows: TableRow[], data: DataConfig): RawRecord[] {
  const [header, ...body] = rows;
  if (!header) throw new DataError(file, undefined, 'the file is empty');
  requireColumns(file, header, data);
  return body.map((row) => {
    if (row.cells.length !== header.cells.length) {
      throw new DataError(
        file,
        row.line,
        `expected ${header.cells.length} columns like the header, found ${row.cells.length}`,
      );
    }
    const fields: Record<string, unknown> = {};
    header.cells.forEach((name, column) => (fields[name] = row.cells[column]));
    return { line: row.line, fields };
  });
}

/** A missing column is reported once, at the header, rather than on every row. */
function requireColumns(file: string, header: TableRow, data: DataConfig): void {
  const fields: Array<[string, string | undefined]> = [
    ['text', data.textField],
    ['text pair', data.textPairField],
    ['label', data.labelField],
  ];
  for (const [role, column] of fields) {
    if (column !== undefined && !header.cells.includes(column)) {
      throw new DataError(
        file,
        header.line,
        `missing ${role} field "${column}"; the header has columns: ${header.cells.join(', ')}`,
      );
    }
  }
}

/** GLUE-style TSV: one row per line, tab separated, quotes are ordinary characters. */
function parseTsvRows(content: string): TableRow[] {
  const rows: TableRow[] = [];
  content.split('\n').forEach((rawLine, index) => {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line.trim() !== '') rows.push({ line: index + 1, cells: line.split('\t') });
  });
  return rows;
}

/**
 * RFC 4180: fields separated by commas, optionally quoted; inside quotes `""` is a quote and
 * commas and line breaks are data. LF and CRLF both end a row. Blank lines are skipped.
 */
function parseCsvRows(file: string, content: string): TableRow[] {
  const scanner = new CsvScanner(file, content);
  const rows: TableRow[] = [];
  while (!scanner.atEnd()) {
    const row = scanner.readRow();
    const isBlank = row.cells.length === 1 && row.cells[0].trim() === '';
    if (!isBlank) rows.push(row);
  }
  return rows;
}

class CsvScanner {
  private pos = 0;
  private line = 1;

  constructor(
    private readonly file: string,
    private readonly text: string,
  ) {}

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  /** Reads cells up to and including the row's line break. */
  readRow(): TableRow {
    const startLine = this.line;
    const cells: string[] = [];
    for (;;) {
      cells.push(this.text[this.pos] === '"' ? this.readQuotedCell() : this.readPlainCell());
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.skipLineBreak();
      return { line: startLine, cells };
    }
  }

  /** An unquoted cell; a stray quote inside it is kept as a literal character. */
  private readPlainCell(): string {
    const start = this.pos;
    while (this.pos < this.text.length && !',\r\n'.includes(this.text[this.pos])) this.pos++;
    return this.text.slice(start, this.pos);
  }

  private readQuotedCell(): string {
    const openLine = this.line;
    this.pos++; // opening quote
    let value = '';
    for (;;) {
      const next = this.text.indexOf('"', this.pos);
      if (next < 0)
        throw new DataError(this.file, openLine, 'unclosed quote: a quoted field starts here and never ends');
      value += this.consume(next);
      this.pos++; // the quote itself
      if (this.text[this.pos] !== '"') break;
      value += '"'; // `""` is an escaped quote
      this.pos++;
    }
    if (this.pos < this.text.length && !',\r\n'.includes(this.text[this.pos])) {
      throw new DataError(
        this.file,
        this.line,
        `unexpected ${JSON.stringify(this.text[this.pos])} after a closing quote; quote the whole field and double inner quotes`,
      );
    }
    return value;
  }

  /** Returns text up to `end`, counting the line breaks it contains. */
  private consume(end: number): string {
    const chunk = this.text.slice(this.pos, end);
    for (const char of chunk) if (char === '\n') this.line++;
    this.pos = end;
    return chunk.replace(/\r\n/g, '\n');
  }

  private skipLineBreak(): void {
    if (this.text[this.pos] === '\r') this.pos++;
    if (this.text[this.pos] === '\n') {
      this.pos++;
      this.line++;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fields

/** The text, and the pair text only when the config names a pair field (so `pair` is absent, not undefined). */
function readTextFields(file: string, record: RawRecord, data: DataConfig): { text: string; pair?: string } {
  const text = requiredText(file, record, data.textField, 'text');
  if (data.textPairField === undefined) return { text };
  return { text, pair: requiredText(file, record, data.textPairField, 'text pair') };
}

/** Strings as they are, numbers in their usual string form; empty or whitespace-only text is an error. */
export function requiredText(file: string, record: RawRecord, field: string, role: string): string {
  const value = requiredField(file, record, field, role);
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new DataError(file, record.line, `${role} field "${field}" must be a string, got ${describeType(value)}`);
  }
  const text = String(value);
  if (text.trim() === '') throw new DataError(file, record.line, `${role} field "${field}" is empty`);
  return text;
}

/** `role` ("text", "label"...) tells the user which config setting names the missing field. */
function requiredField(file: string, record: RawRecord, field: string, role: string): unknown {
  const value = record.fields[field];
  if (value === null) throw new DataError(file, record.line, `${role} field "${field}" is null`);
  if (value === undefined) {
    const present = Object.keys(record.fields);
    throw new DataError(
      file,
      record.line,
      `missing ${role} field "${field}"; this line has ${present.length ? `fields: ${present.join(', ')}` : 'no fields'}`,
    );
  }
  return value;
}

function regressionLabel(file: string, record: RawRecord, field: string): number {
  const value = requiredField(file, record, field, 'label');
  const number =
    typeof value === 'number' ? value : typeof value === 'string' && isNumeric(value) ? Number(value) : NaN;
  if (!Number.isFinite(number)) {
    throw new DataError(
      file,
      record.line,
      `regression label "${field}" must be a finite number, got ${typeof value === 'number' ? String(value) : JSON.stringify(value)}`,
    );
  }
  return number;
}

/** A class label in its string form: numbers and numeric strings are both accepted. */
function classLabel(file: string, record: RawRecord, field: string): string {
  const value = requiredField(file, record, field, 'label');
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  throw new DataError(
    file,
    record.line,
    `label "${field}" must be a non-empty string or a number, got ${JSON.stringify(value)}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Label names

/**
 * Without task.labels the file decides the classes, and a file with both numbers (1) and words
 * ("positive") would silently get a third class: refused, naming the first line of each kind.
 */
function refuseMixedLabelTypes(file: string, records: RawRecord[], field: string): void {
  let firstNumber: RawRecord | undefined;
  let firstText: RawRecord | undefined;
  for (const record of records) {
    const value = record.fields[field];
    const numeric = typeof value === 'number' || (typeof value === 'string' && isNumeric(value));
    if (numeric) firstNumber ??= record;
    else firstText ??= record;
    if (firstNumber && firstText) {
      const show = (r: RawRecord) =>
        `line ${r.line} has ${typeof r.fields[field] === 'number' ? 'the number' : 'the label'} ${JSON.stringify(r.fields[field])}`;
      throw new DataError(
        file,
        record.line,
        `the labels mix numbers and names (${show(firstText.line < firstNumber.line ? firstText : firstNumber)}, ${show(firstText.line < firstNumber.line ? firstNumber : firstText)}); ` +
          'make them one kind, or list the classes in task.labels (numbers there match numeric labels, and 0, 1, ... name the classes by position when the names are words)',
      );
    }
  }
}

/** Numeric labels sort as numbers (so "10" follows "9"), anything else sorts as text. */
function collectLabelNames(labels: string[]): string[] {
  const distinct = [...new Set(labels)];
  return distinct.every(isNumeric) ? distinct.sort((a, b) => Number(a) - Number(b)) : distinct.sort();
}

/**
 * Maps a label to its id: by exact name first, then by numeric value ("1.0" is "1"). When no label
 * name is numeric, a whole-number label is read as an id (data labelled 0/1 with names
 * ["negative", "positive"]); with numeric names that would be ambiguous, so it is not done.
 */
function labelResolver(names: string[]): (label: string) => number | undefined {
  const byName = new Map(names.map((name, id) => [name, id]));
  const numericNames = names.filter(isNumeric);
  const byValue = new Map(numericNames.map((name) => [Number(name), names.indexOf(name)]));
  return (label) => {
    const exact = byName.get(label);
    if (exact !== undefined || !isNumeric(label)) return exact;
    const value = Number(label);
    if (numericNames.length > 0) return byValue.get(value);
    return Number.isInteger(value) && value >= 0 && value < names.length ? value : undefined;
  };
}

const DECIMAL_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Plain decimal notation only: `Number()` would also accept "0x1f", "" and "Infinity". */
function isNumeric(text: string): boolean {
  return DECIMAL_NUMBER.test(text.trim());
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
