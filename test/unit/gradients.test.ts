/**
 * variableGrads (src/core/train/gradients.ts): the gradients of tf.variableGrads bit for bit, with a
 * lower peak of tensor memory during the step, and nothing left behind.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/core/tf';
import { selectBackend } from '../../src/core/backend';
import { randomBertWeights } from '../../src/core/model/hf-checkpoint';
import { PeftModel } from '../../src/core/model/peft-model';
import { DEFAULT_BERT_CONFIG, type BertConfig } from '../../src/core/model/bert-config';
import type { MethodConfig } from '../../src/core/config/types';
import { variableGrads } from '../../src/core/train/gradients';
import { Rng } from '../../src/core/random';

const BERT: BertConfig = {
  ...DEFAULT_BERT_CONFIG,
  num_hidden_layers: 3,
  hidden_size: 64,
  num_attention_heads: 4,
  intermediate_size: 256,
  vocab_size: 200,
  max_position_embeddings: 64,
};
const BOTTLENECK = { bottleneck: 8, reductionFactor: 16, activation: 'gelu' as const, initStd: 1e-2, leaveOut: [] };
const METHODS: MethodConfig[] = [
  { type: 'houlsby', ...BOTTLENECK, sites: ['attention', 'ffn'] },
  { type: 'adamix', ...BOTTLENECK, sites: ['attention', 'ffn'], experts: 3, share: 'up', consistencyWeight: 1 },
  { type: 'full' },
];
const BATCH = 4;
const SEQ = 32;

before(async () => {
  await selectBackend('wasm');
});

/** One training step's loss as the trainer builds it: dropout on, AdaMix with its consistency pass. */
function stepLoss(model: PeftModel, method: MethodConfig): () => tf.Scalar {
  const rng = new Rng(3);
  const ids = Int32Array.from({ length: BATCH * SEQ }, () => rng.int(BERT.vocab_size));
  const routes = model.method.drawRoutes(rng);
  const second = method.type === 'adamix' ? model.method.drawRoutes(rng) : undefined;
  return () => {
    let seed = 100;
    const ctx = (r: typeof routes) => ({ training: true, routes: r, dropoutSeed: () => seed++ });
    const inputs = {
      inputIds: tf.tensor2d(ids, [BATCH, SEQ], 'int32'),
      tokenTypeIds: tf.zeros([BATCH, SEQ], 'int32') as tf.Tensor2D,
      attentionMask: tf.ones([BATCH, SEQ]) as tf.Tensor2D,
      labels: tf.tensor1d([0, 1, 1, 0]),
    };
    const logits = model.forward(inputs, ctx(routes));
    const loss = model.taskLoss(logits, inputs.labels) as tf.Scalar;
    if (!second) return loss;
    return tf.add(loss, model.consistencyLoss(logits, model.forward(inputs, ctx(second)))) as tf.Scalar;
  };
}

function build(method: MethodConfig): PeftModel {
  return new PeftModel({
    bert: BERT,
    base: randomBertWeights(BERT, 5),
    method,
    task: 'classification',
    outputs: 2,
    seed: 1,
  });
}

describe('variableGrads', () => {
  for (const method of METHODS) {
    test(`${method.type}: the same loss and gradients as tf.variableGrads, bit for bit, at a lower memory peak`, async () => {
      const model = build(method);
      const vars = model.store.trainable().map((p) => p.value);
      const lossOf = stepLoss(model, method);
      const run = async (grads: typeof variableGrads) => {
        let out: { loss: Float32Array; grads: Map<string, Float32Array> } | undefined;
        const before = tf.memory().numTensors;
        const profile = await tf.profile(() => {
          const { value, grads: g } = grads(lossOf, vars);
          out = {
            loss: value.dataSync() as Float32Array,
            grads: new Map(Object.entries(g).map(([name, t]) => [name, (t as Tensor).dataSync() as Float32Array])),
          };
          tf.dispose([value, ...Object.values(g)]);
        });
        assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
        return { ...out!, peak: profile.peakBytes };
      };
      const reference = await run((f, v) => tf.variableGrads(f, v) as ReturnType<typeof variableGrads>);
      const lean = await run(variableGrads);
      assert.deepEqual(lean.loss, reference.loss);
      assert.deepEqual([...lean.grads.keys()].sort(), [...reference.grads.keys()].sort());
      for (const [name, grad] of reference.grads) assert.deepEqual(lean.grads.get(name), grad, name);
      assert.ok(lean.peak < 0.85 * reference.peak, `peak ${lean.peak} bytes, tf.variableGrads ${reference.peak}`);
      model.dispose();
    });
  }

  test('a loss that depends on no variable is an error, and leaves no tensor behind', () => {
    const v = tf.variable(tf.ones([3]), true, 'unused-variable');
    const before = tf.memory().numTensors;
    assert.throws(
      () => variableGrads(() => tf.sum(tf.ones([2])) as tf.Scalar, [v]),
      /does not depend on any of the variables/,
    );
    assert.equal(tf.memory().numTensors, before);
    v.dispose();
  });
});
