/**
 * The safetensors format (https://github.com/huggingface/safetensors), by hand, as plain data, so
 * checkpoints can be read and written without TensorFlow.js and exchanged with PyTorch:
 *
 *   [u64 little-endian N][N bytes of UTF-8 JSON header, space-padded to a multiple of 8][tensor bytes]
 *
 * The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the first byte after the header) plus an optional "__metadata__" string map.
 * Tensor bytes are little-endian, row-major.
 */
import * as fs from 'node:fs';
import { CheckpointError } from '../errors';
import { writeFileAtomic } from './atomic';

export type Dtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** F16 and BF16 are kept as raw 16-bit patterns because JavaScript has no such float type; `toFloat32` decodes them. */
export type TensorData =
  Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

interface TensorOf<D extends Dtype, A extends TensorData> {
  dtype: D;
  shape: number[];
  data: A;
}

/** A tensor read from a file. Switching on `dtype` narrows `data` to its typed array. */
export type NamedTensor =
  | TensorOf<'F32', Float32Array>
  | TensorOf<'F64', Float64Array>
  | TensorOf<'F16' | 'BF16', Uint16Array>
  | TensorOf<'I64', BigInt64Array>
  | TensorOf<'I32', Int32Array>
  | TensorOf<'I16', Int16Array>
  | TensorOf<'I8', Int8Array>
  | TensorOf<'U8' | 'BOOL', Uint8Array>;

export interface SafetensorsContents {
  tensors: Map<string, NamedTensor>;
  metadata: Record<string, string>;
}

export type WritableDtype = 'F32' | 'I32' | 'I64';

export interface TensorToWrite {
  /** Defaults to the dtype of `data`'s array type. */
  dtype?: WritableDtype;
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

type ArrayMaker = (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorData;

interface DtypeInfo {
  bytes: number;
  /** Position in the reference library's dtype enum; its writer puts higher ranks first. */
  rank: number;
  make: ArrayMaker;
}

const DTYPES: Record<Dtype, DtypeInfo> = {
  BOOL: { bytes: 1, rank: 0, make: (b, o, n) => new Uint8Array(b, o, n) },
  U8: { bytes: 1, rank: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  I8: { bytes: 1, rank: 2, make: (b, o, n) => new Int8Array(b, o, n) },
  I16: { bytes: 2, rank: 5, make: (b, o, n) => new Int16Array(b, o, n) },
  F16: { bytes: 2, rank: 7, make: (b, o, n) => new Uint16Array(b, o, n) },
  BF16: { bytes: 2, rank: 8, make: (b, o, n) => new Uint16Array(b, o, n) },
  I32: { bytes: 4, rank: 9, make: (b, o, n) => new Int32Array(b, o, n) },
  F32: { bytes: 4, rank: 11, make: (b, o, n) => new Float32Array(b, o, n) },
  F64: { bytes: 8, rank: 12, make: (b, o, n) => new Float64Array(b, o, n) },
  I64: { bytes: 8, rank: 13, make: (b, o, n) => new BigInt64Array(b, o, n) },
};

const HEADER_LENGTH_BYTES = 8;
/** The reference library refuses larger headers; a bigger value means a corrupt or foreign file. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

// ---------------------------------------------------------------- reading

/**
 * Parses a whole safetensors file. Tensors may share memory with `bytes` (no copy) when `bytes`
 * covers its entire ArrayBuffer and the tensor is aligned; otherwise each tensor gets its own copy.
 */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsContents {
  const headerLength = readHeaderLength(bytes, file);
  const dataStart = HEADER_LENGTH_BYTES + headerLength;
  const header = parseHeader(bytes.subarray(HEADER_LENGTH_BYTES, dataStart), file);
  const metadata = readMetadata(header[METADATA_KEY], file);
  const entries = Object.entries(header)
    .filter(([name]) => name !== METADATA_KEY)
    .map(([name, raw]) => readEntry(name, raw, bytes.length - dataStart, file));
  checkNoOverlap(entries, file);
  const tensors = new Map<string, NamedTensor>();
  for (const entry of entries) {
    tensors.set(entry.name, extractTensor(bytes, dataStart, entry));
  }
  return { tensors, metadata };
}

/** Reads and parses a safetensors file; every failure is a CheckpointError naming the file. */
export function readSafetensors(file: string): SafetensorsContents {
  return parseSafetensors(readWholeFile(file), file);
}

function readHeaderLength(bytes: Uint8Array, file: string): number {
  if (bytes.length < HEADER_LENGTH_BYTES) {
    throw new CheckpointError(
      file,
      `not a safetensors file: only ${bytes.length} bytes, too short for the 8-byte header length`,
    );
  }
  const length = new DataView(bytes.buffer, bytes.byteOffset, HEADER_LENGTH_BYTES).getBigUint64(0, true);
  const available = bytes.length - HEADER_LENGTH_BYTES;
  if (length > BigInt(available)) {
    throw new CheckpointError(
      file,
      `header length ${length} goes beyond the end of the file (${available} bytes follow it); the file is truncated or not safetensors`,
    );
  }
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(
      file,
      `header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt`,
    );
  }
  return Number(length);
}

function parseHeader(headerBytes: Uint8Array, file: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new CheckpointError(file, 'header is not valid UTF-8; the file is corrupt or not safetensors');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(
      file,
      `header is not valid JSON (${(err as Error).message}); the file is corrupt or not safetensors`,
    );
  }
  if (!isPlainObject(header)) {
    throw new CheckpointError(
      file,
      'header must be a JSON object mapping tensor names to their dtype, shape and data_offsets',
    );
  }
  return header;
}

function readMetadata(raw: unknown, file: string): Record<string, string> {
  if (raw === undefined) return {};
  if (!isPlainObject(raw)) {
    throw new CheckpointError(file, `"${METADATA_KEY}" must be an object of strings`);
  }
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') {
      throw new CheckpointError(
        file,
        `"${METADATA_KEY}" entry "${key}" must be a string, got ${JSON.stringify(value)}`,
      );
    }
  }
  return raw as Record<string, string>;
}

function readEntry(name: string, raw: unknown, dataLength: number, file: string): TensorEntry {
  const fail = (detail: string) => new CheckpointError(file, `tensor "${name}": ${detail}`);
  if (!isPlainObject(raw)) throw fail('header entry must be an object with dtype, shape and data_offsets');
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPES, dtype)) {
    throw fail(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`);
  }
  if (!isListOfSizes(shape)) throw fail(`shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  if (!isListOfSizes(offsets) || offsets.length !== 2 || offsets[0] > offsets[1]) {
    throw fail(`data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets;
  if (end > dataLength) {
    throw fail(
      `data_offsets [${begin}, ${end}] go beyond the ${dataLength} data bytes in the file; the file is truncated`,
    );
  }
  const expectedBytes = elementCount(shape) * DTYPES[dtype as Dtype].bytes;
  if (end - begin !== expectedBytes) {
    const span = `data_offsets [${begin}, ${end}] span ${end - begin}`;
    throw fail(`shape [${shape.join(', ')}] of ${dtype} needs ${expectedBytes} bytes but ${span}`);
  }
  return { name, dtype: dtype as Dtype, shape, begin, end };
}

function checkNoOverlap(entries: TensorEntry[], file: string): void {
  const nonEmpty = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < nonEmpty.length; i++) {
    const previous = nonEmpty[i - 1];
    const current = nonEmpty[i];
    if (current.begin < previous.end) {
      throw new CheckpointError(
        file,
        `tensor "${current.name}": data_offsets [${current.begin}, ${current.end}] overlap ` +
          `those of tensor "${previous.name}" [${previous.begin}, ${previous.end}]`,
      );
    }
  }
}

function extractTensor(bytes: Uint8Array, dataStart: number, entry: TensorEntry): NamedTensor {
  const info = DTYPES[entry.dtype];
  const byteLength = entry.end - entry.begin;
  const absoluteOffset = bytes.byteOffset + dataStart + entry.begin;
  const length = byteLength / info.bytes;
  // The dtype/array pairing is fixed by DTYPES, which TypeScript cannot follow through the lookup.
  const tensor = (data: TensorData) => ({ dtype: entry.dtype, shape: entry.shape, data }) as NamedTensor;
  if (canViewInPlace(bytes, absoluteOffset, info.bytes)) {
    return tensor(info.make(bytes.buffer as ArrayBuffer, absoluteOffset, length));
  }
  // Not bytes.slice(): on a Buffer that returns a view, not a copy.
  const copy = new Uint8Array(byteLength);
  copy.set(bytes.subarray(dataStart + entry.begin, dataStart + entry.end));
  if (!HOST_IS_LITTLE_ENDIAN) swapByteOrder(copy, info.bytes);
  return tensor(info.make(copy.buffer, 0, length));
}

/**
 * A typed-array view needs an aligned offset and the file's byte order. It is also refused when
 * `bytes` is only part of its ArrayBuffer (such as a small Buffer carved from Node's shared pool),
 * because a view would then keep unrelated memory alive and expose it through `data.buffer`.
 */
function canViewInPlace(bytes: Uint8Array, absoluteOffset: number, elementBytes: number): boolean {
  const ownsWholeBuffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const isPlainArrayBuffer = bytes.buffer instanceof ArrayBuffer;
  return HOST_IS_LITTLE_ENDIAN && ownsWholeBuffer && isPlainArrayBuffer && absoluteOffset % elementBytes === 0;
}

/** Reads into a fresh, exactly-sized buffer (fs.readFileSync may hand back a slice of a shared pool). */
function readWholeFile(file: string): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw fileAccessError(file, err);
  }
  try {
    const stats = fs.fstatSync(fd);
    if (!stats.isFile()) throw new CheckpointError(file, 'is not a regular file');
    return readExactly(fd, stats.size, file);
  } catch (err) {
    throw err instanceof CheckpointError ? err : fileAccessError(file, err);
  } finally {
    fs.closeSync(fd);
  }
}

function readExactly(fd: number, size: number, file: string): Uint8Array {
  const bytes = new Uint8Array(size);
  let filled = 0;
  while (filled < size) {
    const read = fs.readSync(fd, bytes, filled, size - filled, filled);
    if (read === 0) {
      throw new CheckpointError(
        file,
        `file shrank while being read (${filled} of ${size} bytes); is it still being written?`,
      );
    }
    filled += read;
  }
  return bytes;
}

function fileAccessError(file: string, err: unknown): CheckpointError {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return new CheckpointError(file, 'safetensors file does not exist');
  if (code === 'EISDIR') return new CheckpointError(file, 'is a folder, not a safetensors file');
  return new CheckpointError(file, `cannot read the safetensors file: ${(err as Error).message}`);
}

// ---------------------------------------------------------------- conversion

/** The tensor's values as float32. F32 data is returned as is (shared, not copied). */
export function toFloat32(tensor: NamedTensor): Float32Array {
  switch (tensor.dtype) {
    case 'F32':
      return tensor.data;
    case 'F16':
      return decodeFloat16(tensor.data);
    case 'BF16':
      return decodeBfloat16(tensor.data);
    case 'I64':
      return Float32Array.from(tensor.data, (value) => Number(value));
    default:
      return new Float32Array(tensor.data);
  }
}

/**
 * The tensor's values as int32, for token ids and labels. I32 data is returned as is (shared).
 * `where` names the tensor in errors, e.g. `${file}: input_ids`.
 */
export function toInt32(tensor: NamedTensor, where = 'tensor'): Int32Array {
  switch (tensor.dtype) {
    case 'I32':
      return tensor.data;
    case 'I64':
      return narrowInt64(tensor.data, where);
    case 'I16':
    case 'I8':
    case 'U8':
    case 'BOOL':
      return new Int32Array(tensor.data);
    default:
      throw new CheckpointError(where, `expected an integer tensor (I64, I32, ...) but it is ${tensor.dtype}`);
  }
}

function narrowInt64(data: BigInt64Array, where: string): Int32Array {
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const value = data[i];
    if (value > 2147483647n || value < -2147483648n) {
      throw new CheckpointError(where, `value ${value} at index ${i} does not fit in 32 bits`);
    }
    out[i] = Number(value);
  }
  return out;
}

/** bfloat16 is the top half of a float32, so widening is a shift into a float32's bit pattern. */
function decodeBfloat16(raw: Uint16Array): Float32Array {
  const out = new Float32Array(raw.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < raw.length; i++) bits[i] = raw[i] << 16;
  return out;
}

function decodeFloat16(raw: Uint16Array): Float32Array {
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = float16ToNumber(raw[i]);
  return out;
}

/** IEEE 754 half precision: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits. */
function float16ToNumber(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >> 10) & 0x1f;
  const fraction = half & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// ---------------------------------------------------------------- writing

/**
 * Serialises tensors the way the reference `safetensors` library does, so a file round-trips through
 * PyTorch byte for byte: "__metadata__" first, then tensors ordered by dtype (I64, F32, I32, which
 * keeps every tensor aligned) and by name; compact JSON header space-padded to a multiple of 8.
 * `file` only names the destination in errors.
 */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
  file = '(safetensors in memory)',
): Uint8Array {
  const planned = Object.entries(tensors)
    .map(([name, tensor]) => checkTensorToWrite(name, tensor, file))
    .sort(compareForLayout);
  const entries = assignOffsets(planned);
  const header = encodeHeader(entries, metadata === undefined ? undefined : checkMetadata(metadata, file));
  const dataLength = entries.length ? entries[entries.length - 1].end : 0;
  const out = new Uint8Array(HEADER_LENGTH_BYTES + header.length + dataLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, HEADER_LENGTH_BYTES);
  const dataStart = HEADER_LENGTH_BYTES + header.length;
  planned.forEach((tensor, i) => copyLittleEndian(out, dataStart + entries[i].begin, tensor.data));
  return out;
}

/** Serialises and writes atomically (see writeFileAtomic): a crash never leaves a half-written checkpoint. */
export function writeSafetensors(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const bytes = serializeSafetensors(tensors, metadata, file);
  try {
    writeFileAtomic(file, bytes);
  } catch (err) {
    // the cause keeps its code, so a caller can tell a full disk from a bug (DiskError.from)
    throw Object.assign(new CheckpointError(file, `cannot write the safetensors file: ${(err as Error).message}`), {
      cause: err,
    });
  }
}

interface PlannedTensor {
  name: string;
  dtype: WritableDtype;
  shape: number[];
  data: TensorToWrite['data'];
}

function checkTensorToWrite(name: string, tensor: TensorToWrite, file: string): PlannedTensor {
  const fail = (detail: string) => new CheckpointError(file, `tensor "${name}": ${detail}`);
  if (name === '' || name === METADATA_KEY) throw fail('is not a valid tensor name');
  const actual = dtypeOfArray(tensor.data);
  if (actual === undefined) throw fail('data must be a Float32Array, Int32Array or BigInt64Array');
  if (tensor.dtype !== undefined && tensor.dtype !== actual) {
    throw fail(`dtype ${tensor.dtype} does not match its data, which holds ${actual} values`);
  }
  if (!isListOfSizes(tensor.shape))
    throw fail(`shape must be a list of non-negative integers, got ${JSON.stringify(tensor.shape)}`);
  const expected = elementCount(tensor.shape);
  if (tensor.data.length !== expected) {
    throw fail(`shape [${tensor.shape.join(', ')}] needs ${expected} values but data has ${tensor.data.length}`);
  }
  return { name, dtype: actual, shape: tensor.shape, data: tensor.data };
}

function dtypeOfArray(data: unknown): WritableDtype | undefined {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof BigInt64Array) return 'I64';
  return undefined;
}

function checkMetadata(metadata: Record<string, string>, file: string): Record<string, string> {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') {
      throw new CheckpointError(
        file,
        `metadata "${key}" must be a string (safetensors metadata is string to string), got ${typeof value}`,
      );
    }
  }
  return metadata;
}

/** Wider dtypes first, then names in UTF-8 byte order, as the reference (Rust) writer sorts them. */
function compareForLayout(a: PlannedTensor, b: PlannedTensor): number {
  return DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));
}

function assignOffsets(planned: PlannedTensor[]): TensorEntry[] {
  let offset = 0;
  return planned.map(({ name, dtype, shape, data }) => {
    const begin = offset;
    offset += data.byteLength;
    return { name, dtype, shape, begin, end: offset };
  });
}

/**
 * Built by hand rather than with one JSON.stringify call, which would move integer-like names
 * such as "0" to the front and so break the offset order.
 */
function encodeHeader(entries: TensorEntry[], metadata: Record<string, string> | undefined): Uint8Array {
  const members: string[] = [];
  if (metadata !== undefined) {
    const pairs = Object.entries(metadata).map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`);
    members.push(`${JSON.stringify(METADATA_KEY)}:{${pairs.join(',')}}`);
  }
  for (const { name, dtype, shape, begin, end } of entries) {
    members.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [begin, end] })}`);
  }
  const json = new TextEncoder().encode(`{${members.join(',')}}`);
  // Padding to 8 bytes keeps the data section, and so every tensor, aligned for zero-copy reads.
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

function copyLittleEndian(out: Uint8Array, offset: number, data: TensorToWrite['data']): void {
  const source = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  out.set(source, offset);
  if (!HOST_IS_LITTLE_ENDIAN) swapByteOrder(out.subarray(offset, offset + data.byteLength), data.BYTES_PER_ELEMENT);
}

// ---------------------------------------------------------------- helpers

function swapByteOrder(bytes: Uint8Array, elementBytes: number): void {
  for (let start = 0; start < bytes.length; start += elementBytes) {
    bytes.subarray(start, start + elementBytes).reverse();
  }
}

function elementCount(shape: number[]): number {
  return shape.reduce((product, size) => product * size, 1);
}

function isListOfSizes(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((n) => Number.isSafeInteger(n) && n >= 0);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
