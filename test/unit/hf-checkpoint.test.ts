import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  readSafetensors,
  toFloat32,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/core/checkpoint/safetensors';
import { WordPieceTokenizer } from '../../src/core/data/tokenizer';
import { CheckpointError } from '../../src/core/errors';
import {
  DEFAULT_BERT_CONFIG,
  bertWeightShapes,
  type BertConfig,
  type WeightMap,
} from '../../src/core/model/bert-config';
import {
  randomBertWeights,
  randomPooler,
  readBertConfig,
  readBertFolder,
  writeBertFolder,
} from '../../src/core/model/hf-checkpoint';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'tiny-bert');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-hf-checkpoint-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let folderCount = 0;

/** A fresh folder holding the fixture's config.json and vocab.txt, plus the given files. */
function modelFolder(files: Record<string, string | Uint8Array> = {}): string {
  const folder = path.join(tmp, `model-${++folderCount}`);
  fs.mkdirSync(folder);
  for (const name of ['config.json', 'vocab.txt']) fs.copyFileSync(path.join(FIXTURE, name), path.join(folder, name));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(folder, name), content);
  return folder;
}

function fixtureTensors(): Map<string, { shape: number[]; data: Float32Array }> {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, tensor] of readSafetensors(path.join(FIXTURE, 'model.safetensors')).tensors) {
    tensors.set(name, { shape: tensor.shape, data: toFloat32(tensor) });
  }
  return tensors;
}

/** The fixture's tensors, renamed (undefined drops one) and extended, written as model.safetensors of a new folder. */
function folderWithTensors(
  rename: (name: string) => string | undefined,
  extra: Record<string, TensorToWrite> = {},
  configOverrides: Partial<BertConfig> = {},
): string {
  const folder = modelFolder();
  const tensors: Record<string, TensorToWrite> = { ...extra };
  for (const [name, tensor] of fixtureTensors()) {
    const newName = rename(name);
    if (newName !== undefined) tensors[newName] = tensor;
  }
  writeSafetensors(path.join(folder, 'model.safetensors'), tensors, { format: 'pt' });
  if (Object.keys(configOverrides).length > 0) patchConfig(folder, configOverrides);
  return folder;
}

function patchConfig(folder: string, changes: Record<string, unknown>): void {
  const file = path.join(folder, 'config.json');
  const config = { ...JSON.parse(fs.readFileSync(file, 'utf8')), ...changes };
  for (const [key, value] of Object.entries(changes)) if (value === undefined) delete config[key];
  fs.writeFileSync(file, JSON.stringify(config));
}

/** A safetensors file built by hand, for dtypes writeSafetensors does not write (F16, BF16). */
function rawSafetensors(entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const { name, dtype, shape, bytes } of entries) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return new Uint8Array(Buffer.concat([length, Buffer.from(json), ...entries.map((e) => e.bytes)]));
}

function bytesOf(array: Float32Array | Uint16Array | BigInt64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function assertSameWeights(actual: WeightMap, expected: WeightMap): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, { shape, data }] of expected) {
    const found = actual.get(name);
    assert.ok(found, name);
    assert.deepEqual(found.shape, shape, name);
    assert.deepEqual(found.data, data, name);
  }
}

function checkpointError(fn: () => unknown, fileEnding: string, ...fragments: (string | RegExp)[]): CheckpointError {
  let caught: unknown;
  assert.throws(fn, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof CheckpointError, `expected CheckpointError, got ${String(caught)}`);
  assert.ok(caught.file.endsWith(fileEnding), `error file ${caught.file} should end with ${fileEnding}`);
  for (const fragment of fragments) {
    if (typeof fragment === 'string')
      assert.ok(caught.message.includes(fragment), `"${caught.message}" should mention ${fragment}`);
    else assert.match(caught.message, fragment);
  }
  return caught;
}

const reference = readBertFolder(FIXTURE);

describe('readBertConfig', () => {
  it('reads the fixture config', () => {
    const config = readBertConfig(FIXTURE);
    assert.deepEqual(config, {
      vocab_size: 128,
      hidden_size: 32,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      intermediate_size: 64,
      hidden_act: 'gelu',
      hidden_dropout_prob: 0.1,
      attention_probs_dropout_prob: 0.1,
      max_position_embeddings: 64,
      type_vocab_size: 2,
      layer_norm_eps: 1e-12,
      pad_token_id: 0,
      initializer_range: 0.02,
    });
  });

  it('fills optional fields from the defaults', () => {
    const folder = modelFolder({
      'config.json': JSON.stringify({
        model_type: 'bert',
        vocab_size: 10,
        hidden_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 16,
      }),
    });
    assert.deepEqual(readBertConfig(folder), {
      ...DEFAULT_BERT_CONFIG,
      vocab_size: 10,
      hidden_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      intermediate_size: 16,
    });
  });

  it('names the file when it is missing or not JSON', () => {
    const folder = modelFolder();
    fs.rmSync(path.join(folder, 'config.json'));
    checkpointError(() => readBertConfig(folder), 'config.json', 'does not exist');
    fs.writeFileSync(path.join(folder, 'config.json'), '{"vocab_size": 3,');
    checkpointError(() => readBertConfig(folder), 'config.json', 'not valid JSON');
  });

  it('refuses model types it does not support yet, naming them and the supported ones', () => {
    for (const modelType of ['deberta-v2', 'gpt2']) {
      const folder = modelFolder();
      patchConfig(folder, { model_type: modelType });
      checkpointError(
        () => readBertConfig(folder),
        'config.json',
        `model_type "${modelType}"`,
        'not supported yet',
        '"roberta"',
        '"modernbert"',
      );
    }
  });

  it('lists every missing required field', () => {
    const folder = modelFolder();
    patchConfig(folder, { vocab_size: undefined, intermediate_size: undefined });
    checkpointError(() => readBertConfig(folder), 'config.json', '"vocab_size"', '"intermediate_size"');
  });

  it('rejects malformed values and a hidden size the heads do not divide', () => {
    const folder = modelFolder();
    patchConfig(folder, { num_hidden_layers: 1.5 });
    checkpointError(() => readBertConfig(folder), 'config.json', '"num_hidden_layers" must be a positive integer');
    patchConfig(folder, { num_hidden_layers: 2, num_attention_heads: 5 });
    checkpointError(
      () => readBertConfig(folder),
      'config.json',
      'hidden_size" 32 is not a multiple of "num_attention_heads" 5',
    );
    patchConfig(folder, { num_attention_heads: 4, hidden_act: 'swish' });
    checkpointError(() => readBertConfig(folder), 'config.json', '"swish" is not supported');
  });
});

describe('readBertFolder', () => {
  it('loads the tiny-bert fixture with all 39 weights', () => {
    assert.equal(reference.weights.size, 39);
    assert.deepEqual(reference.warnings, []);
    assert.equal(reference.files.config, path.join(FIXTURE, 'config.json'));
    assert.equal(reference.files.weights, path.join(FIXTURE, 'model.safetensors'));
    for (const [name, shape] of bertWeightShapes(reference.config)) {
      const weight = reference.weights.get(name);
      assert.ok(weight, name);
      assert.deepEqual(weight.shape, shape);
      assert.ok(weight.data instanceof Float32Array);
    }
    assert.deepEqual(
      reference.weights.get('bert.pooler.dense.bias')?.data,
      fixtureTensors().get('bert.pooler.dense.bias')?.data,
    );
  });

  it('loads names without the bert. prefix identically, dropping cls.* heads and buffers', () => {
    const folder = folderWithTensors((name) => name.replace(/^bert\./, ''), {
      'cls.predictions.bias': { shape: [128], data: new Float32Array(128) },
      'embeddings.position_ids': { shape: [1, 64], data: BigInt64Array.from({ length: 64 }, (_, i) => BigInt(i)) },
    });
    const loaded = readBertFolder(folder);
    assert.deepEqual(loaded.warnings, []);
    assertSameWeights(loaded.weights, reference.weights);
  });

  it('maps TensorFlow-era LayerNorm.gamma/beta names', () => {
    const folder = folderWithTensors((name) =>
      name.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta'),
    );
    assertSameWeights(readBertFolder(folder).weights, reference.weights);
  });

  it('converts F16 and BF16 weights to float32', () => {
    const halves = [0.5, -1.25, 2, 0];
    const f16Bits = [0x3800, 0xbd00, 0x4000, 0x0000];
    const lnWeight = new Uint16Array(32).map((_, i) => f16Bits[i % 4]);
    const word = fixtureTensors().get('bert.embeddings.word_embeddings.weight')!.data;
    const wordBf16 = new Uint16Array(new Uint32Array(word.slice().buffer).map((bits) => bits >>> 16));
    const entries = [...fixtureTensors()]
      .filter(
        ([name]) => name !== 'bert.embeddings.LayerNorm.weight' && name !== 'bert.embeddings.word_embeddings.weight',
      )
      .map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, bytes: bytesOf(t.data.slice()) }));
    entries.push({ name: 'bert.embeddings.LayerNorm.weight', dtype: 'F16', shape: [32], bytes: bytesOf(lnWeight) });
    entries.push({
      name: 'bert.embeddings.word_embeddings.weight',
      dtype: 'BF16',
      shape: [128, 32],
      bytes: bytesOf(wordBf16),
    });
    const loaded = readBertFolder(modelFolder({ 'model.safetensors': rawSafetensors(entries) }));
    assert.deepEqual(
      [...loaded.weights.get('bert.embeddings.LayerNorm.weight')!.data],
      Array.from({ length: 32 }, (_, i) => halves[i % 4]),
    );
    const wordLoaded = loaded.weights.get('bert.embeddings.word_embeddings.weight')!.data;
    assert.ok(wordLoaded instanceof Float32Array);
    for (let i = 0; i < word.length; i++)
      assert.ok(Math.abs(wordLoaded[i] - word[i]) <= Math.abs(word[i]) / 128 + 1e-30);
  });

  it('explains how to convert a folder that has only pytorch_model.bin', () => {
    const folder = modelFolder({ 'pytorch_model.bin': 'pickle' });
    const err = checkpointError(
      () => readBertFolder(folder),
      'pytorch_model.bin',
      'reads safetensors weights only',
      'from transformers import AutoModel',
      `AutoModel.from_pretrained(${JSON.stringify(folder)}).save_pretrained(${JSON.stringify(folder)}, safe_serialization=True)`,
    );
    assert.ok(!err.message.includes('undefined'));
  });

  it('reports a folder without any weights', () => {
    checkpointError(() => readBertFolder(modelFolder()), 'model.safetensors', 'model weights not found');
    checkpointError(() => readBertFolder(path.join(tmp, 'nowhere')), 'nowhere', 'does not exist');
  });

  it('names every missing and mis-shaped weight with its shapes, in one error', () => {
    const folder = folderWithTensors(
      (name) => (name === 'bert.encoder.layer.1.attention.self.key.weight' ? undefined : name),
      {},
    );
    const tensors = readSafetensors(path.join(folder, 'model.safetensors')).tensors;
    const rewritten: Record<string, TensorToWrite> = {};
    for (const [name, t] of tensors) rewritten[name] = { shape: t.shape, data: toFloat32(t) };
    rewritten['bert.encoder.layer.0.intermediate.dense.weight'] = { shape: [32, 64], data: new Float32Array(32 * 64) };
    writeSafetensors(path.join(folder, 'model.safetensors'), rewritten);
    const err = checkpointError(() => readBertFolder(folder), 'model.safetensors', '2 weight problem(s)');
    assert.match(
      err.message,
      /missing bert\.encoder\.layer\.1\.attention\.self\.key\.weight \(expected shape \[32, 32\]\)/,
    );
    assert.match(
      err.message,
      /bert\.encoder\.layer\.0\.intermediate\.dense\.weight: expected shape \[64, 32\], found \[32, 64\]/,
    );
  });

  it('caps the problem list at 20 lines', () => {
    const folder = folderWithTensors((name) => name, {}, { num_hidden_layers: 4 });
    const err = checkpointError(
      () => readBertFolder(folder),
      'model.safetensors',
      '32 weight problem(s)',
      'and 12 more',
    );
    assert.equal(err.message.split('\n').filter((line) => line.startsWith('  ')).length, 21);
  });

  it('tolerates a missing pooler with a warning, but not half a pooler', () => {
    const noPooler = readBertFolder(folderWithTensors((name) => (name.startsWith('bert.pooler.') ? undefined : name)));
    assert.equal(noPooler.weights.size, 37);
    assert.ok(!noPooler.weights.has('bert.pooler.dense.weight'));
    assert.equal(noPooler.warnings.length, 1);
    assert.match(noPooler.warnings[0], /no pooler/);
    const halfPooler = folderWithTensors((name) => (name === 'bert.pooler.dense.bias' ? undefined : name));
    checkpointError(() => readBertFolder(halfPooler), 'model.safetensors', 'missing bert.pooler.dense.bias');
  });

  it('warns about unexpected extra weights, naming a few', () => {
    const extra = Object.fromEntries(
      Array.from({ length: 7 }, (_, i) => [
        `classifier.${i}.weight`,
        { shape: [2], data: new Float32Array(2) } as TensorToWrite,
      ]),
    );
    const loaded = readBertFolder(folderWithTensors((name) => name, extra));
    assert.equal(loaded.weights.size, 39);
    assert.equal(loaded.warnings.length, 1);
    assert.match(loaded.warnings[0], /ignored 7 tensor\(s\).*classifier\.0\.weight.*and 2 more/);
  });

  it('merges a sharded checkpoint', () => {
    const names = [...fixtureTensors().keys()];
    const folder = modelFolder();
    const shards = [names.slice(0, 20), names.slice(20)];
    const weightMap: Record<string, string> = {};
    shards.forEach((shardNames, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      const tensors = fixtureTensors();
      writeSafetensors(
        path.join(folder, file),
        Object.fromEntries(shardNames.map((name) => [name, tensors.get(name)!])),
      );
      for (const name of shardNames) weightMap[name] = file;
    });
    fs.writeFileSync(
      path.join(folder, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
    const loaded = readBertFolder(folder);
    assert.equal(loaded.files.weights, path.join(folder, 'model.safetensors.index.json'));
    assertSameWeights(loaded.weights, reference.weights);

    weightMap['bert.extra.weight'] = 'model-00001-of-00002.safetensors';
    fs.writeFileSync(path.join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    checkpointError(() => readBertFolder(folder), 'model.safetensors.index.json', 'bert.extra.weight');
    fs.writeFileSync(
      path.join(folder, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }),
    );
    checkpointError(() => readBertFolder(folder), 'model.safetensors.index.json', 'must be a file name');
  });
});

describe('writeBertFolder', () => {
  const vocab = fs.readFileSync(path.join(FIXTURE, 'vocab.txt'), 'utf8').split('\n').slice(0, -1);

  it('round-trips exactly through readBertFolder', () => {
    const folder = path.join(tmp, 'written');
    writeBertFolder(folder, reference.config, reference.weights, vocab, { 'README.md': '# tiny\n' });
    const loaded = readBertFolder(folder);
    assert.deepEqual(loaded.config, reference.config);
    assert.deepEqual(loaded.warnings, []);
    assertSameWeights(loaded.weights, reference.weights);
    assert.deepEqual(readSafetensors(path.join(folder, 'model.safetensors')).metadata, { format: 'pt' });
    const configJson = JSON.parse(fs.readFileSync(path.join(folder, 'config.json'), 'utf8'));
    assert.deepEqual(configJson.architectures, ['BertModel']);
    assert.equal(configJson.model_type, 'bert');
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(folder, 'tokenizer_config.json'), 'utf8')), {
      do_lower_case: true,
      model_max_length: 64,
    });
    assert.equal(
      fs.readFileSync(path.join(folder, 'vocab.txt'), 'utf8'),
      fs.readFileSync(path.join(FIXTURE, 'vocab.txt'), 'utf8'),
    );
    assert.deepEqual(WordPieceTokenizer.fromFolder(folder).tokens, vocab);
    assert.equal(fs.readFileSync(path.join(folder, 'README.md'), 'utf8'), '# tiny\n');
    assert.deepEqual(fs.readdirSync(folder).sort(), [
      'README.md',
      'config.json',
      'model.safetensors',
      'tokenizer_config.json',
      'vocab.txt',
    ]);
  });

  it('refuses weights that do not fit the config, writing nothing', () => {
    const folder = path.join(tmp, 'not-written');
    const broken: WeightMap = new Map(reference.weights);
    broken.set('bert.embeddings.LayerNorm.bias', { shape: [31], data: new Float32Array(31) });
    checkpointError(
      () => writeBertFolder(folder, reference.config, broken, vocab),
      'model.safetensors',
      'expected shape [32], found [31]',
    );
    assert.ok(!fs.existsSync(folder));
  });

  it('refuses extra files outside the folder and vocabularies larger than vocab_size', () => {
    const folder = path.join(tmp, 'not-written-2');
    checkpointError(
      () => writeBertFolder(folder, reference.config, reference.weights, vocab, { '../escape.txt': 'x' }),
      'escape.txt',
      'inside the model folder',
    );
    checkpointError(
      () => writeBertFolder(folder, reference.config, reference.weights, [...vocab, 'one-too-many']),
      'vocab.txt',
      '129 token(s)',
    );
    assert.ok(!fs.existsSync(folder));
  });
});

describe('randomBertWeights', () => {
  const config: BertConfig = { ...DEFAULT_BERT_CONFIG, vocab_size: 30522 };

  it('makes every weight of a 4-layer hidden-256 model with a 30,522-token vocabulary', () => {
    // (its speed is the benchmarks' business: a timed assertion here fails on a busy machine)
    const weights = randomBertWeights(config, 1);
    const count = [...weights.values()].reduce((sum, w) => sum + w.data.length, 0);
    assert.ok(count > 11_000_000, `${count} numbers`);
  });

  it("follows Hugging Face's initialisation", () => {
    const small: BertConfig = { ...DEFAULT_BERT_CONFIG, vocab_size: 1000, pad_token_id: 3 };
    const weights = randomBertWeights(small, 7);
    assert.deepEqual([...weights.keys()], [...bertWeightShapes(small).keys()]);
    for (const [name, { shape, data }] of weights) {
      assert.equal(
        data.length,
        shape.reduce((a, b) => a * b, 1),
        name,
      );
      if (name.endsWith('.bias'))
        assert.ok(
          data.every((v) => v === 0),
          `${name} is zero`,
        );
      else if (name.includes('LayerNorm'))
        assert.ok(
          data.every((v) => v === 1),
          `${name} is one`,
        );
      else
        assert.ok(
          data.every((v) => Math.abs(v) <= 2 * small.initializer_range + 1e-9),
          `${name} is truncated at 2 std`,
        );
    }
    const word = weights.get('bert.embeddings.word_embeddings.weight')!.data;
    const width = small.hidden_size;
    assert.ok(
      word.subarray(3 * width, 4 * width).every((v) => v === 0),
      'the padding row is zero',
    );
    assert.ok(word.subarray(2 * width, 3 * width).some((v) => v !== 0));
    // A normal truncated at 2 std keeps about 0.88 of the std; the mean stays 0.
    const { mean, std } = moments(word);
    assert.ok(Math.abs(mean) < 3e-4, `mean ${mean}`);
    assert.ok(Math.abs(std - 0.8796 * small.initializer_range) < 3e-4, `std ${std}`);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const small: BertConfig = { ...reference.config };
    assertSameWeights(randomBertWeights(small, 42), randomBertWeights(small, 42));
    const a = randomBertWeights(small, 42).get('bert.encoder.layer.0.attention.self.query.weight')!.data;
    const b = randomBertWeights(small, 43).get('bert.encoder.layer.0.attention.self.query.weight')!.data;
    assert.notDeepEqual(a, b);
  });

  it('gives randomPooler the same pooler as a full initialisation', () => {
    const pooler = randomPooler(reference.config, 5);
    assert.deepEqual([...pooler.keys()], ['bert.pooler.dense.weight', 'bert.pooler.dense.bias']);
    const full = randomBertWeights(reference.config, 5);
    for (const [name, weight] of pooler) assert.deepEqual(weight, full.get(name));
  });

  it('writes a folder that reads back', () => {
    const folder = path.join(tmp, 'random');
    const weights = randomBertWeights(reference.config, 9);
    writeBertFolder(
      folder,
      reference.config,
      weights,
      Array.from({ length: 128 }, (_, i) => `[unused${i}]`),
    );
    assertSameWeights(readBertFolder(folder).weights, weights);
  });
});

function moments(values: Float32Array): { mean: number; std: number } {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  return { mean, std: Math.sqrt(squares / values.length) };
}
