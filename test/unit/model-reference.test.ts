/**
 * The encoder, Houlsby adapters and head against an independent PyTorch implementation on the same
 * weights (test/fixtures/reference/make_reference.py): outputs and gradients within 1e-4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf } from '../../src/core/tf';
import { readSafetensors, toFloat32, toInt32 } from '../../src/core/checkpoint/safetensors';
import type { BertConfig, WeightMap } from '../../src/core/model/bert-config';
import { PeftModel } from '../../src/core/model/peft-model';
import type { MethodConfig } from '../../src/core/config/types';
import { transposeData } from '../../src/core/model/params';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const bert = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'tiny-bert', 'config.json'), 'utf8')) as BertConfig;
const reference = readSafetensors(path.join(FIXTURES, 'reference', 'houlsby.safetensors')).tensors;
const TOLERANCE = 1e-4;

function weightMap(file: string, filter: (name: string) => boolean = () => true): WeightMap {
  const out: WeightMap = new Map();
  for (const [name, t] of readSafetensors(file).tensors)
    if (filter(name)) out.set(name, { shape: t.shape, data: toFloat32(t) });
  return out;
}

function refFloat(name: string): { shape: number[]; data: Float32Array } {
  const t = reference.get(name);
  assert.ok(t, `reference has ${name}`);
  return { shape: t.shape, data: toFloat32(t) };
}

function inputs() {
  const ids = reference.get('input_ids')!;
  const types = reference.get('token_type_ids')!;
  return {
    inputIds: tf.tensor2d(toInt32(ids), ids.shape as [number, number], 'int32'),
    tokenTypeIds: tf.tensor2d(toInt32(types), types.shape as [number, number], 'int32'),
    attentionMask: tf.tensor2d(refFloat('attention_mask').data, ids.shape as [number, number]),
  };
}

const houlsby: MethodConfig = {
  type: 'houlsby',
  bottleneck: 8,
  reductionFactor: 16,
  activation: 'gelu',
  initStd: 1e-3,
  leaveOut: [],
  sites: ['attention', 'ffn'],
};
const inference = { training: false, dropoutSeed: () => undefined };

function build(method: MethodConfig): PeftModel {
  const base = weightMap(path.join(FIXTURES, 'tiny-bert', 'model.safetensors'));
  const model = new PeftModel({ bert, base, method, task: 'classification', outputs: 2, seed: 0, dropout: 0 });
  const trained = weightMap(
    path.join(FIXTURES, 'reference', 'houlsby.safetensors'),
    (n) => n.startsWith('bert.') || n.startsWith('classifier.'),
  );
  if (method.type === 'houlsby') model.store.importWeights(trained, 'houlsby.safetensors', { allowMissing: true });
  else
    model.store.importWeights(
      new Map([...trained].filter(([n]) => n.startsWith('classifier.'))),
      'houlsby.safetensors',
      { allowMissing: true },
    );
  return model;
}

function assertClose(actual: Float32Array | number[], expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst < TOLERANCE, `${what}: max abs difference ${worst} exceeds ${TOLERANCE}`);
}

test('the encoder without adapters matches the reference last hidden states', async () => {
  await tf.setBackend('cpu');
  const model = build({ type: 'head-only' });
  const hidden = tf.tidy(() => model.encoder.encode(inputs(), inference).dataSync());
  assertClose(hidden as Float32Array, refFloat('out.base_hidden').data, 'base hidden');
  model.dispose();
});

for (const backend of ['cpu', 'wasm']) {
  test(`Houlsby adapters: hidden states, logits and loss match the reference (${backend})`, async () => {
    await tf.setBackend(backend);
    const model = build(houlsby);
    const x = inputs();
    const [hidden, logits, loss] = tf.tidy(() => {
      const h = model.encoder.encode(x, inference);
      const l = model.forward(x, inference); // the last layer for the [CLS] rows alone
      return [
        h.dataSync(),
        l.dataSync(),
        model.taskLoss(l, tf.tensor1d(toInt32(reference.get('labels')!), 'float32')).dataSync(),
      ];
    });
    assertClose(hidden as Float32Array, refFloat('out.hidden').data, 'hidden');
    assertClose(logits as Float32Array, refFloat('out.logits').data, 'logits');
    assertClose(loss as Float32Array, refFloat('out.loss').data, 'loss');
    model.dispose();
  });

  test(`Houlsby adapters: every trainable weight's gradient matches the reference (${backend})`, async () => {
    await tf.setBackend(backend);
    const model = build(houlsby);
    const x = inputs();
    const labels = tf.tensor1d(toInt32(reference.get('labels')!), 'float32');
    const trainable = model.store.trainable();
    const { grads } = tf.variableGrads(
      () => model.taskLoss(model.forward(x, inference), labels) as tf.Scalar,
      trainable.map((p) => p.value),
    );
    let compared = 0;
    for (const p of trainable) {
      const g = grads[p.value.name];
      assert.ok(g, `gradient for ${p.name}`);
      const data = g.dataSync() as Float32Array;
      const disk = p.linear ? transposeData(data, g.shape[0]!, g.shape[1]!).data : data;
      assertClose(disk, refFloat(`grad.${p.name}`).data, `grad ${p.name}`);
      compared++;
    }
    // 16 adapter tensors, 8 per-layer LayerNorm tensors, pooler and classifier weights and biases
    assert.equal(compared, 28);
    model.dispose();
  });
}
