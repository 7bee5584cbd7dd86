/**
 * Every encoder family against an independent PyTorch implementation of it
 * (test/fixtures/reference/make_families.py): for each of RoBERTa, XLM-R, DistilBERT, ELECTRA and
 * ModernBERT, the tiny checkpoint in Hugging Face naming loads, its tokenizer.json gives the
 * reference's input ids, and for every method the last hidden states, the logits, the loss (AdaMix:
 * with its consistency term over two routes) and the gradient of every trainable tensor agree with
 * the reference within 1e-4, on the cpu and wasm backends (native-families.test.ts runs the wasm
 * tests again on the native kernels).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf } from '../../src/core/tf';
import * as os from 'node:os';
import {
  readSafetensors,
  toFloat32,
  toInt32,
  writeSafetensors,
  type NamedTensor,
} from '../../src/core/checkpoint/safetensors';
import { loadBaseModel } from '../../src/core/train/session';
import type { WeightMap } from '../../src/core/model/bert-config';
import { readBertFolder } from '../../src/core/model/hf-checkpoint';
import { loadTokenizer } from '../../src/core/data/hf-tokenizer';
import { PeftModel } from '../../src/core/model/peft-model';
import type { MethodConfig } from '../../src/core/config/types';
import type { ExpertChoice } from '../../src/core/adapters/adamix';
import { transposeData } from '../../src/core/model/params';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const TOLERANCE = 1e-4;
const FAMILIES = ['roberta', 'xlm-roberta', 'distilbert', 'electra', 'modernbert'] as const;

const bottleneck = { bottleneck: 4, reductionFactor: 16, initStd: 1e-3, leaveOut: [] as number[] };
const METHODS: Record<string, MethodConfig> = {
  houlsby: { type: 'houlsby', ...bottleneck, activation: 'gelu', sites: ['attention', 'ffn'] },
  pfeiffer: { type: 'pfeiffer', ...bottleneck, activation: 'relu' },
  parallel: { type: 'parallel', ...bottleneck, activation: 'swish', sites: ['attention', 'ffn'], scale: 4 },
  adamix: {
    type: 'adamix',
    ...bottleneck,
    activation: 'gelu',
    sites: ['attention', 'ffn'],
    experts: 2,
    share: 'up',
    consistencyWeight: 1,
  },
  lora: {
    type: 'lora',
    rank: 2,
    alpha: 4,
    targets: ['query', 'key', 'value', 'attention_output', 'intermediate', 'output'],
    leaveOut: [],
  },
  'head-only': { type: 'head-only' },
  full: { type: 'full' },
};

function floats(t: NamedTensor | undefined, what: string): { shape: number[]; data: Float32Array } {
  assert.ok(t, `reference has ${what}`);
  return { shape: t.shape, data: toFloat32(t) };
}

function assertClose(actual: Float32Array | number[], expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst < TOLERANCE, `${what}: max abs difference ${worst} exceeds ${TOLERANCE}`);
}

for (const family of FAMILIES) {
  const folder = path.join(FIXTURES, `tiny-${family}`);
  const reference = readSafetensors(path.join(FIXTURES, 'reference', `${family}.safetensors`)).tensors;
  const texts = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference', `${family}.texts.json`), 'utf8')) as {
    single: string;
    pair: [string, string];
  };
  const ref = (name: string) => floats(reference.get(name), name);
  const ids = reference.get('input_ids')!;
  const [batch, seq] = ids.shape as [number, number];
  const mask = ref('attention_mask').data;

  describe(`${family}: the tiny checkpoint`, () => {
    test('loads from its Hugging Face folder with every weight; only a missing pooler of a family that has one is worth a warning', () => {
      const read = readBertFolder(folder);
      assert.equal(read.config.model_type, family);
      // The RoBERTa fixture carries a pooler; the XLM-R one, like XLMRobertaForMaskedLM checkpoints, has none
      assert.deepEqual(
        read.warnings,
        family === 'xlm-roberta'
          ? ['the checkpoint has no pooler (roberta.pooler.dense.*); it will be initialised randomly']
          : [],
      );
      const config = JSON.parse(fs.readFileSync(path.join(folder, 'config.json'), 'utf8')) as Record<string, number>;
      assert.equal(read.config.hidden_size, config.hidden_size ?? config.dim);
    });

    test('its tokenizer.json gives the reference input ids for a text and for a pair', () => {
      const tokenizer = loadTokenizer(folder);
      const all = toInt32(ids);
      const row = (r: number) => Array.from(all.slice(r * seq, (r + 1) * seq)).filter((_, t) => mask[r * seq + t]! > 0);
      assert.deepEqual(tokenizer.encode(texts.single, undefined, 64).inputIds, row(0));
      const pair = tokenizer.encode(texts.pair[0], texts.pair[1], 64);
      assert.deepEqual(pair.inputIds, row(1));
      const types = toInt32(reference.get('token_type_ids')!);
      // The model reads segment ids only where its embeddings have them (ELECTRA); there they must match
      if (family === 'electra')
        assert.deepEqual(pair.tokenTypeIds, Array.from(types.slice(seq, seq + pair.inputIds.length)));
    });
  });

  const base = readBertFolder(folder);
  const inputs = () => ({
    inputIds: tf.tensor2d(toInt32(ids), [batch, seq], 'int32'),
    tokenTypeIds: tf.tensor2d(toInt32(reference.get('token_type_ids')!), [batch, seq], 'int32'),
    attentionMask: tf.tensor2d(mask, [batch, seq]),
  });
  const labels = () => tf.tensor1d(toInt32(reference.get('labels')!), 'float32');

  function build(name: string): PeftModel {
    const weights: WeightMap = new Map(base.weights);
    // Checkpoints without a pooler get PEFT Lab's random one; the reference's is imported below
    if (!weights.has('bert.pooler.dense.weight')) {
      weights.set('bert.pooler.dense.weight', ref('pooler.weight'));
      weights.set('bert.pooler.dense.bias', ref('pooler.bias'));
    }
    const model = new PeftModel({
      bert: base.config,
      base: weights,
      method: METHODS[name]!,
      task: 'classification',
      outputs: 2,
      seed: 0,
      dropout: 0,
    });
    const trained: WeightMap = new Map([
      ['classifier.weight', ref('classifier.weight')],
      ['classifier.bias', ref('classifier.bias')],
      ['bert.pooler.dense.weight', ref('pooler.weight')],
      ['bert.pooler.dense.bias', ref('pooler.bias')],
    ]);
    const prefix = `${name}.weight.`;
    for (const key of reference.keys()) if (key.startsWith(prefix)) trained.set(key.slice(prefix.length), ref(key));
    model.store.importWeights(trained, `${family}.safetensors`, { allowMissing: true });
    return model;
  }

  function routes(name: string, which: 1 | 2): Map<string, ExpertChoice> | undefined {
    if (name !== 'adamix') return undefined;
    const prefix = `${name}.route${which}.`;
    const out = new Map<string, ExpertChoice>();
    for (const [key, t] of reference)
      if (key.startsWith(prefix)) {
        const [down, up] = toInt32(t);
        out.set(key.slice(prefix.length), { down: down!, up: up! });
      }
    return out;
  }

  /** The loss the trainer minimises: the task loss, plus AdaMix's consistency term over a second route. */
  function loss(model: PeftModel, name: string, x: ReturnType<typeof inputs>): tf.Scalar {
    const ctx = (which: 1 | 2) => ({ training: false, routes: routes(name, which), dropoutSeed: () => undefined });
    const logits = model.forward(x, ctx(1));
    const task = model.taskLoss(logits, labels());
    if (name !== 'adamix') return task as tf.Scalar;
    return tf.add(task, model.consistencyLoss(logits, model.forward(x, ctx(2)))) as tf.Scalar;
  }

  for (const backend of ['cpu', 'wasm']) {
    describe(`${family} on ${backend}: every method matches the PyTorch reference`, () => {
      for (const name of Object.keys(METHODS)) {
        test(`${name}: hidden states, logits, loss and every trainable gradient`, async () => {
          await tf.setBackend(backend);
          const model = build(name);
          const x = inputs();
          const ctx = { training: false, routes: routes(name, 1), dropoutSeed: () => undefined };
          const [hidden, logits, value] = tf.tidy(() => [
            model.encoder.encode(x, ctx).dataSync(),
            model.forward(x, ctx).dataSync(), // the last layer for the [CLS] rows alone
            loss(model, name, x).dataSync(),
          ]);
          assertClose(hidden as Float32Array, ref(`${name}.out.hidden`).data, 'hidden');
          assertClose(logits as Float32Array, ref(`${name}.out.logits`).data, 'logits');
          assertClose(value as Float32Array, ref(`${name}.out.loss`).data, 'loss');

          const trainable = model.store.trainable();
          const expected = [...reference.keys()]
            .filter((k) => k.startsWith(`${name}.grad.`))
            .map((k) => k.slice(`${name}.grad.`.length));
          assert.deepEqual(
            trainable.map((p) => p.name).sort(),
            [...expected].sort(),
            'PEFT Lab trains what the reference trains',
          );
          const { grads, value: lossValue } = tf.variableGrads(
            () => loss(model, name, x),
            trainable.map((p) => p.value),
          );
          for (const p of trainable) {
            const g = grads[p.value.name];
            assert.ok(g, `gradient for ${p.name}`);
            const data = g.dataSync() as Float32Array;
            const disk = p.linear ? transposeData(data, g.shape[0]!, g.shape[1]!).data : data;
            assertClose(disk, ref(`${name}.grad.${p.name}`).data, `grad ${p.name}`);
          }
          tf.dispose([...Object.values(grads), lossValue]);
          model.dispose();
        });
      }
    });
  }
}

describe('a tokenizer and weights of different models', () => {
  test('are refused when the tokenizer has more tokens than the embeddings have rows, naming config.json', async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-vocab-'));
    try {
      fs.cpSync(path.join(FIXTURES, 'tiny-xlm-roberta'), folder, { recursive: true });
      const config = JSON.parse(fs.readFileSync(path.join(folder, 'config.json'), 'utf8')) as Record<string, unknown>;
      const read = readBertFolder(path.join(FIXTURES, 'tiny-xlm-roberta'));
      // fewer embedding rows than tokens: shrink the table in the weights and the config alike
      fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...config, vocab_size: 10 }));
      const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      for (const [name, w] of read.weights) {
        const hf = name.replace(/^bert\./, 'roberta.');
        tensors[hf] = name.endsWith('word_embeddings.weight')
          ? { dtype: 'F32', shape: [10, w.shape[1]!], data: w.data.slice(0, 10 * w.shape[1]!) }
          : { dtype: 'F32', shape: w.shape, data: w.data };
      }
      writeSafetensors(path.join(folder, 'model.safetensors'), tensors, { format: 'pt' });
      await assert.rejects(
        loadBaseModel({ model: { path: folder }, training: { seed: 1 } } as Parameters<typeof loadBaseModel>[0]),
        (err: unknown) => {
          assert.match(
            String((err as Error).message),
            /config\.json: the tokenizer has \d+ tokens but "vocab_size" is 10/,
          );
          return true;
        },
      );
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});
