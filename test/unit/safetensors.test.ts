import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  toFloat32,
  toInt32,
  writeSafetensors,
  type NamedTensor,
} from '../../src/core/checkpoint/safetensors';
import { isTempFile } from '../../src/core/checkpoint/atomic';
import { CheckpointError } from '../../src/core/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-safetensors-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const FILE = 'model.safetensors';

/** Builds a file from a header given as text, exactly as written, plus raw data bytes. */
function buildFile(headerJson: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const header = Buffer.from(headerJson, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return new Uint8Array(Buffer.concat([length, header, data]));
}

function headerOf(bytes: Uint8Array): string {
  const length = Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0));
  return Buffer.from(bytes.buffer, bytes.byteOffset + 8, length).toString('utf8');
}

function leBytes(values: number[], kind: 'u16' | 'f32'): Uint8Array {
  const size = kind === 'u16' ? 2 : 4;
  const out = Buffer.alloc(values.length * size);
  values.forEach((v, i) => (kind === 'u16' ? out.writeUInt16LE(v, i * 2) : out.writeFloatLE(v, i * 4)));
  return new Uint8Array(out);
}

function assertCheckpointError(fn: () => unknown, file: string, ...fragments: (string | RegExp)[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CheckpointError, `expected CheckpointError, got ${String(err)}`);
    assert.equal(err.file, file);
    for (const fragment of fragments) {
      if (typeof fragment === 'string')
        assert.ok(err.message.includes(fragment), `"${err.message}" should mention ${fragment}`);
      else assert.match(err.message, fragment);
    }
    return true;
  });
}

function tensor(contents: { tensors: Map<string, NamedTensor> }, name: string): NamedTensor {
  const found = contents.tensors.get(name);
  assert.ok(found, `tensor ${name} missing`);
  return found;
}

describe('safetensors round trip', () => {
  const weights = new Float32Array([0.5, -1.25, 3, 1e-8, -0, 65504]);
  const tensors = {
    'encoder.weight': { shape: [2, 3], data: weights },
    'encoder.bias': { dtype: 'F32' as const, shape: [3], data: new Float32Array([1, 2, 3]) },
    input_ids: { shape: [3], data: new Int32Array([101, -7, 2147483647]) },
    step: { dtype: 'I64' as const, shape: [], data: new BigInt64Array([123456789012n]) },
    empty: { shape: [0, 4], data: new Float32Array(0) },
  };
  const metadata = { format: 'pt', note: 'ünïcode "quoted"' };

  it('reads back every tensor, dtype, shape and the metadata', () => {
    const file = path.join(tmp, 'nested', 'round-trip.safetensors');
    writeSafetensors(file, tensors, metadata);
    const read = readSafetensors(file);

    assert.deepEqual(read.metadata, metadata);
    assert.deepEqual([...read.tensors.keys()].sort(), Object.keys(tensors).sort());
    assert.deepEqual(tensor(read, 'encoder.weight'), { dtype: 'F32', shape: [2, 3], data: weights });
    assert.deepEqual(tensor(read, 'encoder.bias').data, new Float32Array([1, 2, 3]));
    assert.deepEqual(tensor(read, 'input_ids'), {
      dtype: 'I32',
      shape: [3],
      data: new Int32Array([101, -7, 2147483647]),
    });
    assert.deepEqual(tensor(read, 'step'), { dtype: 'I64', shape: [], data: new BigInt64Array([123456789012n]) });
    assert.deepEqual(tensor(read, 'empty'), { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) });
    assert.ok(Object.is(tensor(read, 'encoder.weight').data[4], -0), 'negative zero survives');
    assert.deepEqual(fs.readdirSync(path.dirname(file)).filter(isTempFile), []);
  });

  it('lays tensors out like the reference writer: metadata first, then I64, F32, I32, each by name', () => {
    const header = headerOf(serializeSafetensors(tensors, metadata));
    const keys = Object.keys(JSON.parse(header));
    assert.deepEqual(keys, ['__metadata__', 'step', 'empty', 'encoder.bias', 'encoder.weight', 'input_ids']);
    const offsets = keys.slice(1).map((k) => JSON.parse(header)[k].data_offsets);
    assert.deepEqual(offsets, [
      [0, 8],
      [8, 8],
      [8, 20],
      [20, 44],
      [44, 56],
    ]);
  });

  it('keeps integer-like names in offset order (a plain JSON.stringify would move them first)', () => {
    const bytes = serializeSafetensors({
      b: { shape: [1], data: new Float32Array([1]) },
      '10': { shape: [1], data: new Float32Array([2]) },
      '2': { shape: [1], data: new Float32Array([3]) },
    });
    assert.ok(headerOf(bytes).startsWith('{"10":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"2":'));
    const read = parseSafetensors(bytes, FILE);
    assert.deepEqual(
      [...toFloat32(tensor(read, '10')), ...toFloat32(tensor(read, '2')), ...toFloat32(tensor(read, 'b'))],
      [2, 3, 1],
    );
  });

  it('writes no metadata entry when none is given', () => {
    const header = headerOf(serializeSafetensors({ x: { shape: [1], data: new Float32Array([1]) } }));
    assert.ok(!header.includes('__metadata__'));
  });
});

describe('safetensors bytes match the reference Python/Rust library', () => {
  it('writes the exact bytes for a single F32 tensor (header padded with 7 spaces)', () => {
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const actual = serializeSafetensors({ attn0: { shape: [1, 1, 2, 3], data } });
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    const expected = buildFile(json + ' '.repeat(7), leBytes([...data], 'f32'));
    assert.equal(json.length + 7, 72);
    assert.deepEqual(actual, expected);
  });

  it('writes the exact bytes for metadata only, and for an empty file', () => {
    assert.deepEqual(
      serializeSafetensors({}, { framework: 'pt' }),
      buildFile('{"__metadata__":{"framework":"pt"}}' + ' '.repeat(5)),
    );
    assert.deepEqual(serializeSafetensors({}), buildFile('{}' + ' '.repeat(6)));
  });

  it('pads the header with spaces to a multiple of 8 bytes for every name length', () => {
    for (let length = 1; length <= 16; length++) {
      const bytes = serializeSafetensors({ ['n'.repeat(length)]: { shape: [1], data: new Int32Array([length]) } });
      const header = headerOf(bytes);
      assert.equal(header.length % 8, 0, `name length ${length}`);
      assert.match(header, /^\{[^ ]*\} *$/, 'compact JSON followed only by spaces');
      assert.ok(header.length - header.trimEnd().length < 8);
      assert.deepEqual(toInt32(tensor(parseSafetensors(bytes, FILE), 'n'.repeat(length))), new Int32Array([length]));
    }
  });
});

describe('safetensors dtype conversion', () => {
  it('decodes F16 and BF16 bit patterns, including subnormals, infinities, NaN and -0', () => {
    const f16 = [0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x8000];
    const bf16 = [0x3f80, 0xc040, 0x4049, 0x3e80, 0x7f80, 0xff80];
    const json = JSON.stringify({
      half: { dtype: 'F16', shape: [3, 3], data_offsets: [0, 18] },
      brain: { dtype: 'BF16', shape: [6], data_offsets: [18, 30] },
    });
    const read = parseSafetensors(
      buildFile(json, new Uint8Array([...leBytes(f16, 'u16'), ...leBytes(bf16, 'u16')])),
      FILE,
    );

    const half = toFloat32(tensor(read, 'half'));
    assert.deepEqual([...half.slice(0, 7)], [1, -2, 0.333251953125, 65504, 2 ** -24, Infinity, -Infinity]);
    assert.ok(Number.isNaN(half[7]));
    assert.ok(Object.is(half[8], -0));
    assert.deepEqual([...toFloat32(tensor(read, 'brain'))], [1, -3, 3.140625, 0.25, Infinity, -Infinity]);
    assert.deepEqual(tensor(read, 'half').shape, [3, 3]);
  });

  it('converts F64, integer and bool tensors to float32, and integer tensors to int32', () => {
    const f64 = Buffer.alloc(16);
    f64.writeDoubleLE(0.1, 0);
    f64.writeDoubleLE(-2.5, 8);
    const i64 = Buffer.alloc(16);
    i64.writeBigInt64LE(-5n, 0);
    i64.writeBigInt64LE(30522n, 8);
    const small = new Uint8Array([0xff, 0x7f, 0xff, 200, 1, 0]); // I16 32767 | I8 -1 | U8 200 | BOOL 1, 0
    const json = JSON.stringify({
      d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
      ids: { dtype: 'I64', shape: [2], data_offsets: [16, 32] },
      s: { dtype: 'I16', shape: [1], data_offsets: [32, 34] },
      b: { dtype: 'I8', shape: [1], data_offsets: [34, 35] },
      u: { dtype: 'U8', shape: [1], data_offsets: [35, 36] },
      flags: { dtype: 'BOOL', shape: [2], data_offsets: [36, 38] },
    });
    const read = parseSafetensors(buildFile(json, new Uint8Array([...f64, ...i64, ...small])), FILE);

    assert.deepEqual(toFloat32(tensor(read, 'd')), new Float32Array([0.1, -2.5]));
    assert.deepEqual(toFloat32(tensor(read, 'ids')), new Float32Array([-5, 30522]));
    assert.deepEqual(toInt32(tensor(read, 'ids')), new Int32Array([-5, 30522]));
    assert.deepEqual(toInt32(tensor(read, 's')), new Int32Array([32767]));
    assert.deepEqual(toInt32(tensor(read, 'b')), new Int32Array([-1]));
    assert.deepEqual(toFloat32(tensor(read, 'u')), new Float32Array([200]));
    assert.deepEqual(toInt32(tensor(read, 'flags')), new Int32Array([1, 0]));
  });

  it('refuses ids that do not fit in int32, and float tensors as ids', () => {
    const ids: NamedTensor = { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n ** 40n]) };
    assertCheckpointError(
      () => toInt32(ids, 'model.safetensors: input_ids'),
      'model.safetensors: input_ids',
      'index 1',
      '32 bits',
    );
    const floats: NamedTensor = { dtype: 'F32', shape: [1], data: new Float32Array([1]) };
    assertCheckpointError(() => toInt32(floats), 'tensor', 'integer', 'F32');
  });
});

describe('safetensors memory sharing', () => {
  const bytes = serializeSafetensors({
    a: { shape: [3], data: new Float32Array([1, 2, 3]) },
    ids: { shape: [2], data: new Int32Array([7, 8]) },
  });

  it('views aligned F32 data in place when the bytes own their buffer', () => {
    const read = parseSafetensors(bytes, FILE);
    const a = tensor(read, 'a');
    assert.equal(a.data.buffer, bytes.buffer);
    assert.equal(toFloat32(a), a.data, 'F32 is returned without a copy');
    assert.equal(toInt32(tensor(read, 'ids')), tensor(read, 'ids').data, 'I32 is returned without a copy');
  });

  it('reads a file into its own buffer, never into a slice of a shared pool', () => {
    const file = path.join(tmp, 'small.safetensors');
    fs.writeFileSync(file, bytes);
    const a = tensor(readSafetensors(file), 'a');
    assert.equal(a.data.byteOffset % 4, 0);
    assert.equal(a.data.buffer.byteLength, bytes.length, 'the buffer holds exactly this file');
    assert.deepEqual(a.data, new Float32Array([1, 2, 3]));
  });

  it('copies tensors out of a pooled Buffer so they never expose or pin other data', () => {
    const pooled = Buffer.from(bytes); // small Buffers are carved from Node's shared 8 KiB pool
    const a = tensor(parseSafetensors(pooled, FILE), 'a');
    assert.equal(a.data.buffer.byteLength, a.data.byteLength);
    pooled.fill(0);
    assert.deepEqual(a.data, new Float32Array([1, 2, 3]));
  });

  it('reads misaligned data correctly', () => {
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const read = parseSafetensors(shifted.subarray(1), FILE);
    assert.deepEqual(tensor(read, 'a').data, new Float32Array([1, 2, 3]));
    assert.deepEqual(tensor(read, 'ids').data, new Int32Array([7, 8]));
  });
});

describe('safetensors corruption is reported with the file and tensor', () => {
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const eightBytes = new Uint8Array(8);
  const withEntry = (entry: unknown, data = eightBytes) => buildFile(JSON.stringify({ w: entry }), data);

  const cases: [string, Uint8Array, ...(string | RegExp)[]][] = [
    ['a file shorter than the length prefix', new Uint8Array(4), 'too short'],
    [
      'a header length beyond the file',
      (() => {
        const b = buildFile('{}');
        b[0] = 200;
        return b;
      })(),
      'header length 200',
      'beyond the end',
    ],
    [
      'a huge header length',
      (() => {
        const b = buildFile('{}');
        b.fill(0xff, 0, 8);
        return b;
      })(),
      'beyond the end',
    ],
    ['invalid JSON', buildFile('{"w": {'), 'not valid JSON'],
    ['invalid UTF-8', buildFile('{"w":1}').fill(0xff, 10, 11), 'UTF-8'],
    ['a header that is not an object', buildFile('[1,2]'), 'JSON object'],
    ['an unknown dtype', withEntry({ ...ok, dtype: 'F8_E4M3' }), 'tensor "w"', 'F8_E4M3'],
    ['a missing dtype', withEntry({ shape: [2], data_offsets: [0, 8] }), 'tensor "w"', 'dtype'],
    ['a fractional shape', withEntry({ ...ok, shape: [2.5] }), 'tensor "w"', 'shape'],
    ['a negative shape', withEntry({ ...ok, shape: [-2] }), 'tensor "w"', 'shape'],
    ['a string shape', withEntry({ ...ok, shape: '2' }), 'tensor "w"', 'shape'],
    ['offsets beyond the data', withEntry({ ...ok, data_offsets: [4, 12] }), 'tensor "w"', 'truncated'],
    ['reversed offsets', withEntry({ ...ok, data_offsets: [8, 0] }), 'tensor "w"', 'data_offsets'],
    ['three offsets', withEntry({ ...ok, data_offsets: [0, 4, 8] }), 'tensor "w"', 'data_offsets'],
    [
      'a size that does not match shape x dtype',
      withEntry({ ...ok, shape: [3] }),
      'tensor "w"',
      'needs 12 bytes',
      'span 8',
    ],
    ['an entry that is not an object', withEntry(42), 'tensor "w"'],
    ['non-string metadata', buildFile(JSON.stringify({ __metadata__: { epoch: 3 } })), '__metadata__', 'epoch'],
    [
      'overlapping tensors',
      buildFile(
        JSON.stringify({
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'I32', shape: [1], data_offsets: [4, 8] },
        }),
        eightBytes,
      ),
      'tensor "b"',
      'overlap',
      'tensor "a"',
    ],
  ];

  for (const [name, bytes, ...fragments] of cases) {
    it(`rejects ${name}`, () => assertCheckpointError(() => parseSafetensors(bytes, FILE), FILE, ...fragments));
  }

  it('rejects a file cut short, naming the tensor whose data is missing', () => {
    const bytes = serializeSafetensors({
      a: { shape: [2], data: new Float32Array([1, 2]) },
      z: { shape: [2], data: new Float32Array([3, 4]) },
    });
    assertCheckpointError(
      () => parseSafetensors(bytes.subarray(0, bytes.length - 3), FILE),
      FILE,
      'tensor "z"',
      'truncated',
    );
  });

  it('says a missing file does not exist', () => {
    const file = path.join(tmp, 'missing.safetensors');
    assertCheckpointError(() => readSafetensors(file), file, 'does not exist');
  });

  it('says a folder is not a safetensors file', () => {
    assertCheckpointError(() => readSafetensors(tmp), tmp, /folder|not a regular file/);
  });
});

describe('safetensors writing validates its input', () => {
  it('rejects data whose length does not match the shape', () => {
    assertCheckpointError(
      () => serializeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }),
      '(safetensors in memory)',
      'tensor "w"',
      'needs 4 values',
      'has 3',
    );
  });

  it('rejects a dtype that does not match the array type, and reserved names', () => {
    assertCheckpointError(
      () => serializeSafetensors({ w: { dtype: 'I32', shape: [1], data: new Float32Array(1) } }),
      '(safetensors in memory)',
      'tensor "w"',
      'I32',
    );
    assertCheckpointError(
      () => serializeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } }),
      '(safetensors in memory)',
      '__metadata__',
    );
  });

  it('names the destination when writing fails, and leaves no temporary file', () => {
    const blocker = path.join(tmp, 'not-a-folder');
    fs.writeFileSync(blocker, 'x');
    const file = path.join(blocker, 'model.safetensors');
    assertCheckpointError(
      () => writeSafetensors(file, { w: { shape: [1], data: new Float32Array(1) } }),
      file,
      'cannot write',
    );
    assertCheckpointError(
      () => writeSafetensors(file, { w: { shape: [2], data: new Float32Array(1) } }),
      file,
      'tensor "w"',
    );
    assert.deepEqual(fs.readdirSync(tmp).filter(isTempFile), []);
  });
});

describe('safetensors fixtures written by PyTorch tooling', () => {
  it('reads the reference Houlsby checkpoint, including its I32 inputs', () => {
    const file = path.join(__dirname, '..', 'fixtures', 'reference', 'houlsby.safetensors');
    const read = readSafetensors(file);
    assert.equal(read.metadata.format, 'pt');
    const ids = tensor(read, 'input_ids');
    assert.equal(ids.dtype, 'I32');
    assert.deepEqual(ids.shape, [2, 12]);
    assert.equal(toInt32(ids).length, 24);
    for (const [name, t] of read.tensors) {
      assert.equal(
        toFloat32(t).length,
        t.shape.reduce((a, b) => a * b, 1),
        name,
      );
    }
  });
});
