/**
 * The parameter-efficient methods placed in a BERT encoder: parameter counts and placement,
 * near-identity initialisation, which weights receive gradients (and that frozen ones never move),
 * AdaMix's weight-averaging merge and consistency loss, tensor leaks and dropout reproducibility.
 * Most tests use the tiny fixture (hidden 32, 2 layers, 4 heads, intermediate 64, vocab 128);
 * counting and near-identity also run on a randomly initialised encoder of another shape.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { tf, type Tensor } from '../../src/core/tf';
import { randomBertWeights, readBertFolder } from '../../src/core/model/hf-checkpoint';
import type { BertConfig, WeightMap } from '../../src/core/model/bert-config';
import { PeftModel } from '../../src/core/model/peft-model';
import type { EncoderInputs } from '../../src/core/model/bert';
import { ParamStore, type Param } from '../../src/core/model/params';
import type {
  AdaMixConfig,
  HoulsbyConfig,
  LoraConfig,
  MethodConfig,
  ParallelConfig,
  PfeifferConfig,
  TaskType,
} from '../../src/core/config/types';
import { adapterPrefix, LORA_MODULES, type ForwardContext, type MergedAdapters } from '../../src/core/adapters/method';
import type { ExpertChoice } from '../../src/core/adapters/adamix';
import { addMixture, mergeMixture, routedDelta } from '../../src/core/adapters/adamix';
import { bottleneckDelta } from '../../src/core/adapters/bottleneck';
import { truncatedNormal } from '../../src/core/adapters/init';
import { Rng } from '../../src/core/random';

const TINY = path.join(__dirname, '..', 'fixtures', 'tiny-bert');
const tiny = readBertFolder(TINY);
const tinyBert: BertConfig = tiny.config;
const CLASSES = 3;

/** A randomly initialised encoder of a different shape, so counts are not tuned to d = 32. */
const otherBert: BertConfig = {
  ...tinyBert,
  vocab_size: 50,
  hidden_size: 48,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  intermediate_size: 96,
  max_position_embeddings: 40,
};
const otherBase = randomBertWeights(otherBert, 11);

// ---------------------------------------------------------------- configs

function fields(over: { bottleneck?: number; reductionFactor?: number; initStd?: number; leaveOut?: number[] } = {}) {
  return {
    bottleneck: 'bottleneck' in over ? over.bottleneck : 8,
    reductionFactor: over.reductionFactor ?? 16,
    activation: 'gelu' as const,
    initStd: over.initStd ?? 1e-3,
    leaveOut: over.leaveOut ?? [],
  };
}
const houlsby = (over: Partial<HoulsbyConfig> = {}): HoulsbyConfig => ({
  type: 'houlsby',
  ...fields(over),
  sites: ['attention', 'ffn'],
  ...over,
});
const pfeiffer = (over: Partial<PfeifferConfig> = {}): PfeifferConfig => ({
  type: 'pfeiffer',
  ...fields(over),
  ...over,
});
const parallel = (over: Partial<ParallelConfig> = {}): ParallelConfig => ({
  type: 'parallel',
  ...fields(over),
  activation: 'swish',
  sites: ['attention', 'ffn'],
  scale: 4,
  ...over,
});
const adamix = (over: Partial<AdaMixConfig> = {}): AdaMixConfig => ({
  type: 'adamix',
  ...fields(over),
  sites: ['attention', 'ffn'],
  experts: 4,
  share: 'up',
  consistencyWeight: 1,
  ...over,
});
const lora = (over: Partial<LoraConfig> = {}): LoraConfig => ({
  type: 'lora',
  rank: 4,
  alpha: 8,
  targets: ['query', 'value'],
  leaveOut: [],
  ...over,
});

/** The config as a file that gives only `reductionFactor` would have it: no `bottleneck` key at all. */
function withoutBottleneck<T extends { bottleneck?: number }>(config: T): T {
  const copy = { ...config };
  delete copy.bottleneck;
  return copy;
}

interface BuildOptions {
  bert?: BertConfig;
  base?: WeightMap;
  task?: TaskType;
  outputs?: number;
  dropout?: number;
  seed?: number;
  pooling?: 'cls' | 'mean';
}

function build(method: MethodConfig, o: BuildOptions = {}): PeftModel {
  const bert = o.bert ?? tinyBert;
  const base = o.base ?? tiny.weights;
  return new PeftModel({
    bert,
    base,
    method,
    task: o.task ?? 'classification',
    outputs: o.outputs ?? (o.task === 'regression' ? 1 : CLASSES),
    seed: o.seed ?? 0,
    dropout: o.dropout ?? 0,
    pooling: o.pooling,
  });
}

// ---------------------------------------------------------------- inputs and contexts

/** Four sequences from the fixture vocab ([CLS] 6, [SEP] 7, [PAD] 0), two padded, two with a second segment. */
const IDS = [
  [6, 13, 40, 41, 7, 0, 0, 0],
  [6, 14, 50, 51, 52, 7, 60, 7],
  [6, 90, 7, 0, 0, 0, 0, 0],
  [6, 100, 101, 102, 7, 104, 105, 7],
];
const TYPES = [
  [0, 0, 0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0, 1, 1],
  [0, 0, 0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 1, 1, 1],
];
const LABELS = [0, 2, 1, 2];
const TARGETS = [0.5, -1.25, 2, 0.75];

function batch(vocab = 128): EncoderInputs {
  const ids = IDS.map((row) => row.map((id) => id % vocab));
  return {
    inputIds: tf.tensor2d(ids, [4, 8], 'int32'),
    tokenTypeIds: tf.tensor2d(TYPES, [4, 8], 'int32'),
    attentionMask: tf.tensor2d(
      IDS.map((row) => row.map((id) => (id === 0 ? 0 : 1))),
      [4, 8],
      'float32',
    ),
  };
}

function disposeBatch(x: EncoderInputs): void {
  tf.dispose([x.inputIds, x.tokenTypeIds, x.attentionMask]);
}

const evalCtx: ForwardContext = { training: false, dropoutSeed: () => undefined };

function trainCtx(routes?: Map<string, ExpertChoice>, seeds?: Rng): ForwardContext {
  return { training: true, routes, dropoutSeed: () => (seeds ? seeds.nextUint32() : undefined) };
}

function inferCtx(merged?: MergedAdapters): ForwardContext {
  return { training: false, merged, dropoutSeed: () => undefined };
}

/** The same expert pair at every site. */
function uniformRoutes(model: PeftModel, choice: ExpertChoice): Map<string, ExpertChoice> {
  const routes = model.method.drawRoutes(new Rng(0));
  assert.ok(routes, 'adamix draws routes');
  return new Map([...routes.keys()].map((k) => [k, { ...choice }]));
}

function disposeMerged(merged: MergedAdapters | undefined): void {
  for (const { down, up } of merged?.values() ?? []) tf.dispose([down.kernel, down.bias, up.kernel, up.bias]);
}

// ---------------------------------------------------------------- numeric helpers

function read(t: Tensor): Float32Array {
  const data = t.dataSync() as Float32Array;
  t.dispose();
  return data;
}

function logitsOf(model: PeftModel, x: EncoderInputs, ctx: ForwardContext): Float32Array {
  return read(tf.tidy(() => model.forward(x, ctx)));
}

function hiddenOf(model: PeftModel, x: EncoderInputs, ctx: ForwardContext): Float32Array {
  return read(tf.tidy(() => model.encoder.encode(x, ctx)));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'same length');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function maxAbs(a: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]));
  return worst;
}

function labelsTensor(task: TaskType): Tensor {
  return tf.tensor1d(task === 'regression' ? TARGETS : LABELS, 'float32');
}

/** Task-loss gradients of every trainable parameter, keyed by parameter name; a missing key means no gradient. */
function taskGrads(
  model: PeftModel,
  x: EncoderInputs,
  ctx: ForwardContext,
): { loss: number; grads: Map<string, Float32Array> } {
  const trainable = model.store.trainable();
  const labels = labelsTensor(model.spec.task);
  const { value, grads } = tf.variableGrads(
    () => model.taskLoss(model.forward(x, ctx), labels) as tf.Scalar,
    trainable.map((p) => p.value),
  );
  const out = new Map<string, Float32Array>();
  for (const p of trainable) {
    const g = grads[p.value.name];
    if (g) out.set(p.name, read(g));
  }
  const loss = read(value)[0];
  labels.dispose();
  return { loss, grads: out };
}

function snapshot(params: Param[]): Map<string, Float32Array> {
  return new Map(params.map((p) => [p.name, (p.value.dataSync() as Float32Array).slice()]));
}

function bitIdentical(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** Assigns fresh truncated-normal values to a parameter (in engine layout; the distribution does not care). */
function randomise(p: Param, std: number, rng: Rng): void {
  const t = tf.tensor(truncatedNormal(p.value.size, std, rng), p.value.shape);
  p.value.assign(t);
  t.dispose();
}

/** Every AdaMix expert (kernel and bias) gets its own random values, so the experts differ. */
function randomiseAdapters(model: PeftModel, seed: number): void {
  const rng = new Rng(seed);
  for (const p of model.store.all().filter((q) => q.group === 'adapter'))
    randomise(p, p.name.endsWith('.bias') ? 0.1 : 0.3, rng);
}

async function useBackend(name: string): Promise<void> {
  assert.ok(await tf.setBackend(name), `backend ${name} loads`);
  await tf.ready();
}

// ================================================================ 1. parameter counts

describe('parameter counts and placement', () => {
  for (const [label, bert, base] of [
    ['tiny fixture', tinyBert, tiny.weights],
    ['random 48x3', otherBert, otherBase],
  ] as const) {
    const d = bert.hidden_size;
    const L = bert.num_hidden_layers;
    const I = bert.intermediate_size;
    const m = 8;
    const houlsbySite = 2 * m * d + d + m;
    const layerNorms = 4 * d * L;
    const pooler = d * d + d;
    const classifier = d * CLASSES + CLASSES;
    /** Independent of the store: every weight of bertWeightShapes, summed by hand. */
    const baseParams =
      (bert.vocab_size + bert.max_position_embeddings + bert.type_vocab_size) * d +
      2 * d +
      L * (4 * (d * d + d) + 4 * d + (d * I + I) + (I * d + d)) +
      pooler;

    /** Parameters actually stored under one site's adapter prefix (not what the site declares). */
    const storedAt = (model: PeftModel, layer: number, site: 'attention' | 'ffn') =>
      model.store.count((p) => p.name.startsWith(`${adapterPrefix(layer, site)}.`));

    test(`houlsby: 2 sites per layer, 2md + d + m each, totals add up (${label})`, async () => {
      await useBackend('cpu');
      const model = build(houlsby(), { bert, base });
      const pl = model.placement();
      assert.equal(pl.sites.length, 2 * L);
      assert.deepEqual(
        pl.sites.map((s) => `${s.layer}.${s.site}`),
        Array.from({ length: L }, (_, i) => [`${i}.attention`, `${i}.ffn`]).flat(),
      );
      for (const s of pl.sites) {
        assert.equal(s.kind, 'bottleneck');
        assert.equal(s.bottleneck, m);
        assert.deepEqual(s.shapes, { down: [d, m], up: [m, d] });
        assert.equal(s.trainableParams, houlsbySite);
        assert.equal(s.inferenceParams, houlsbySite);
        assert.equal(storedAt(model, s.layer, s.site as 'attention' | 'ffn'), houlsbySite);
      }
      // engine layout [in, out] for the down kernel
      assert.deepEqual(model.store.tensor(`${adapterPrefix(0, 'attention')}.down.weight`).shape, [d, m]);
      assert.equal(pl.trainableParams, 2 * L * houlsbySite + layerNorms + pooler + classifier);
      assert.deepEqual(pl.trainableByGroup, {
        layerNorm: layerNorms,
        pooler,
        head: classifier,
        adapter: 2 * L * houlsbySite,
      });
      assert.equal(pl.baseParams, baseParams);
      assert.deepEqual(pl.leftOut, []);
      model.dispose();
    });

    test(`pfeiffer: one ffn site per layer (${label})`, async () => {
      await useBackend('cpu');
      const model = build(pfeiffer(), { bert, base });
      const pl = model.placement();
      assert.deepEqual(
        pl.sites.map((s) => `${s.layer}.${s.site}`),
        Array.from({ length: L }, (_, i) => `${i}.ffn`),
      );
      for (const s of pl.sites) assert.equal(storedAt(model, s.layer, 'ffn'), houlsbySite);
      assert.equal(
        model.store.count((p) => p.name.includes('attention.output.adapter')),
        0,
      );
      assert.equal(pl.trainableParams, L * houlsbySite + layerNorms + pooler + classifier);
      model.dispose();
    });

    test(`parallel: sites as configured (${label})`, async () => {
      await useBackend('cpu');
      for (const sites of [['ffn'], ['attention', 'ffn'], ['attention']] as const) {
        const model = build(parallel({ sites: [...sites] }), { bert, base });
        const pl = model.placement();
        assert.equal(pl.sites.length, sites.length * L, `sites ${sites}`);
        for (const s of pl.sites) {
          assert.equal(s.kind, 'parallel');
          assert.ok((sites as readonly string[]).includes(s.site));
          assert.equal(s.trainableParams, houlsbySite);
          assert.equal(storedAt(model, s.layer, s.site as 'attention' | 'ffn'), houlsbySite);
        }
        assert.equal(pl.trainableParams, sites.length * L * houlsbySite + layerNorms + pooler + classifier);
        model.dispose();
      }
    });

    for (const [share, downs, ups] of [
      ['up', 4, 1],
      ['none', 4, 4],
      ['down', 1, 4],
    ] as const) {
      test(`adamix, 4 experts, share '${share}': ${downs} down and ${ups} up projections per site (${label})`, async () => {
        await useBackend('cpu');
        const model = build(adamix({ share }), { bert, base });
        const pl = model.placement();
        const siteTrain = downs * (d * m + m) + ups * (m * d + d);
        assert.equal(pl.sites.length, 2 * L);
        for (const s of pl.sites) {
          assert.equal(s.kind, 'adamix');
          assert.deepEqual(s.experts, { down: downs, up: ups });
          assert.equal(s.trainableParams, siteTrain);
          assert.equal(s.inferenceParams, houlsbySite);
          const prefix = adapterPrefix(s.layer, s.site as 'attention' | 'ffn');
          assert.equal(storedAt(model, s.layer, s.site as 'attention' | 'ffn'), siteTrain);
          const downKernels = model.store
            .all()
            .filter((p) => p.name.startsWith(prefix) && /\.down\.weight$/.test(p.name));
          const upKernels = model.store.all().filter((p) => p.name.startsWith(prefix) && /\.up\.weight$/.test(p.name));
          assert.equal(downKernels.length, downs);
          assert.equal(upKernels.length, ups);
          // a shared projection keeps the plain name; experts are numbered
          if (downs === 1) assert.ok(model.store.has(`${prefix}.down.weight`));
          else for (let k = 0; k < downs; k++) assert.ok(model.store.has(`${prefix}.experts.${k}.down.weight`));
          if (ups === 1) assert.ok(model.store.has(`${prefix}.up.weight`));
          else for (let k = 0; k < ups; k++) assert.ok(model.store.has(`${prefix}.experts.${k}.up.weight`));
        }
        if (share === 'up') assert.equal(pl.sites[0].trainableParams, 4 * (d * m + m) + (m * d + d));
        assert.equal(pl.trainableParams, 2 * L * siteTrain + layerNorms + pooler + classifier);
        model.dispose();
      });
    }

    test(`lora rank 4 on query and value: r(d + d) per target, no layer norms (${label})`, async () => {
      await useBackend('cpu');
      const r = 4;
      const model = build(lora({ rank: r }), { bert, base });
      const pl = model.placement();
      assert.equal(pl.sites.length, 2 * L);
      for (const s of pl.sites) {
        assert.equal(s.kind, 'lora');
        assert.equal(s.trainableParams, r * (d + d));
        assert.deepEqual(s.shapes, { A: [d, r], B: [r, d] });
        const prefix = `bert.encoder.layer.${s.layer}.${LORA_MODULES[s.site as 'query' | 'value']}`;
        assert.equal(
          model.store.count((p) => p.name.startsWith(`${prefix}.lora_`)),
          r * (d + d),
        );
      }
      assert.equal(pl.trainableParams, 2 * L * r * 2 * d + pooler + classifier);
      assert.deepEqual(pl.trainableByGroup, { pooler, head: classifier, lora: 2 * L * r * 2 * d });
      // a target with in != out: intermediate is [d, I]
      const wide = build(lora({ rank: r, targets: ['intermediate'] }), { bert, base });
      assert.equal(wide.placement().sites[0].trainableParams, r * (d + I));
      wide.dispose();
      model.dispose();
    });

    test(`leaveOut [0] leaves layer 0 without sites (${label})`, async () => {
      await useBackend('cpu');
      for (const method of [
        houlsby({ leaveOut: [0] }),
        adamix({ leaveOut: [0] }),
        lora({ leaveOut: [0] }),
        parallel({ leaveOut: [0] }),
      ]) {
        const model = build(method, { bert, base });
        const pl = model.placement();
        assert.deepEqual(pl.leftOut, [0], method.type);
        assert.ok(pl.sites.length > 0);
        assert.ok(
          pl.sites.every((s) => s.layer !== 0),
          `${method.type}: no site in layer 0`,
        );
        assert.equal(new Set(pl.sites.map((s) => s.layer)).size, L - 1);
        assert.equal(
          model.store.count(
            (p) => p.name.startsWith('bert.encoder.layer.0.') && (p.group === 'adapter' || p.group === 'lora'),
          ),
          0,
        );
        const siteSum = pl.sites.reduce((n, s) => n + s.trainableParams, 0);
        const extra = method.type === 'lora' ? 0 : layerNorms; // every layer's LayerNorms still train
        assert.equal(pl.trainableParams, siteSum + extra + pooler + classifier, method.type);
        model.dispose();
      }
    });

    test(`head-only trains pooler + classifier; full trains everything (${label})`, async () => {
      await useBackend('cpu');
      const head = build({ type: 'head-only' }, { bert, base });
      assert.equal(head.placement().trainableParams, pooler + classifier);
      assert.deepEqual(head.placement().trainableByGroup, { pooler, head: classifier });
      assert.deepEqual(head.placement().sites, []);
      head.dispose();
      const full = build({ type: 'full' }, { bert, base });
      const pl = full.placement();
      assert.equal(pl.baseParams, baseParams);
      assert.equal(pl.trainableParams, baseParams + classifier);
      assert.equal(full.store.trainable().length, full.store.all().length);
      full.dispose();
    });

    test(`reductionFactor sets the bottleneck to floor(d / rf) when bottleneck is omitted (${label})`, async () => {
      await useBackend('cpu');
      for (const rf of [5, 16]) {
        const expected = Math.floor(d / rf);
        for (const method of [
          withoutBottleneck(houlsby({ reductionFactor: rf })),
          withoutBottleneck(adamix({ reductionFactor: rf })),
        ]) {
          assert.equal('bottleneck' in method, false);
          const model = build(method, { bert, base });
          const s = model.placement().sites[0];
          assert.equal(s.bottleneck, expected, `${method.type} rf ${rf}`);
          assert.deepEqual(s.shapes, { down: [d, expected], up: [expected, d] });
          assert.equal(s.inferenceParams, 2 * expected * d + d + expected);
          const downName =
            method.type === 'adamix'
              ? `${adapterPrefix(0, 'attention')}.experts.0.down.weight`
              : `${adapterPrefix(0, 'attention')}.down.weight`;
          assert.deepEqual(model.store.tensor(downName).shape, [d, expected]);
          model.dispose();
        }
      }
    });
  }
});

// ================================================================ 2. near-identity init

describe('near-identity initialisation', () => {
  for (const [label, bert, base] of [
    ['tiny fixture', tinyBert, tiny.weights],
    ['random 48x3', otherBert, otherBase],
  ] as const) {
    test(`adapters with initStd 1e-3 barely move the encoder output; LoRA does not move it (${label})`, async () => {
      await useBackend('cpu');
      const x = batch(bert.vocab_size);
      const head = build({ type: 'head-only' }, { bert, base });
      const reference = hiddenOf(head, x, evalCtx);
      head.dispose();
      for (const method of [houlsby(), pfeiffer(), adamix(), adamix({ share: 'none' })]) {
        const model = build(method, { bert, base });
        const merged = model.method.mergeForInference();
        const out = hiddenOf(model, x, inferCtx(merged));
        const diff = maxAbsDiff(out, reference);
        assert.ok(diff < 1e-3, `${method.type}: max abs difference ${diff} from the head-only encoder`);
        assert.ok(diff > 0, `${method.type}: the adapters are in the forward pass`);
        disposeMerged(merged);
        model.dispose();
      }
      const loraModel = build(lora(), { bert, base });
      const loraDiff = maxAbsDiff(hiddenOf(loraModel, x, evalCtx), reference);
      assert.ok(loraDiff <= 1e-6, `lora at init: ${loraDiff}`);
      loraModel.dispose();
      // control: a large init std does move the output, so the bound above is a real constraint
      const loud = build(houlsby({ initStd: 0.2 }), { bert, base });
      assert.ok(maxAbsDiff(hiddenOf(loud, x, evalCtx), reference) > 1e-2);
      loud.dispose();
      disposeBatch(x);
    });
  }
});

// ================================================================ 3. gradients and frozen weights

/** Only `full` trains key biases; their exact gradient is zero (softmax is shift-invariant). */
const KEY_BIAS = /attention\.self\.key\.bias$/;

const GRADIENT_METHODS: MethodConfig[] = [
  houlsby(),
  pfeiffer(),
  parallel(),
  adamix(),
  lora(),
  { type: 'head-only' },
  { type: 'full' },
];

for (const backend of ['cpu', 'wasm']) {
  describe(`gradients (${backend})`, () => {
    for (const method of GRADIENT_METHODS) {
      test(`${method.type}: every trainable weight gets a non-zero gradient, SGD moves only trainable weights`, async () => {
        await useBackend(backend);
        const model = build(method);
        const x = batch();
        const routes = model.method.drawRoutes(new Rng(5));
        const ctx = method.type === 'adamix' ? trainCtx(routes) : evalCtx;
        const trainable = model.store.trainable();
        const frozen = model.store.all().filter((p) => !p.trainable);
        assert.ok(trainable.length > 0);
        if (method.type === 'full') assert.equal(frozen.length, 0);
        else assert.ok(frozen.length > 0);

        if (method.type === 'lora') {
          // B = 0 at init: dL/dB = (x A)^T dy is non-zero, dL/dA = x^T (dy B^T) is exactly zero
          const { grads } = taskGrads(model, x, ctx);
          for (const p of trainable.filter((q) => q.group === 'lora')) {
            const g = grads.get(p.name);
            assert.ok(g, `gradient for ${p.name}`);
            if (p.name.includes('lora_A')) assert.equal(maxAbs(g), 0, `${p.name} at init`);
            else assert.ok(maxAbs(g) > 0, `${p.name} at init`);
          }
          const rng = new Rng(9);
          for (const p of trainable.filter((q) => q.name.includes('lora_B'))) randomise(p, 0.1, rng);
        }

        const before = snapshot(model.store.all());
        const { loss, grads } = taskGrads(model, x, ctx);
        assert.ok(Number.isFinite(loss) && loss > 0, `loss ${loss}`);

        const unrouted = new Set<string>();
        const noiseOnly = new Set<string>();
        if (method.type === 'adamix') {
          // Only the routed expert of each site is on the path to the loss; tf.variableGrads leaves
          // every other expert OUT of the gradient map (absent, not a zero tensor).
          assert.ok(routes);
          for (const [key, choice] of routes) {
            const [layer, site] = key.split('.') as [string, 'attention' | 'ffn'];
            const prefix = adapterPrefix(Number(layer), site);
            for (let k = 0; k < 4; k++) {
              for (const suffix of ['weight', 'bias']) {
                const name = `${prefix}.experts.${k}.down.${suffix}`;
                assert.ok(model.store.has(name));
                if (k === choice.down) assert.ok(grads.has(name), `routed ${name} has a gradient`);
                else {
                  assert.equal(grads.has(name), false, `unrouted ${name} is absent from the gradient map`);
                  unrouted.add(name);
                }
              }
            }
          }
          assert.equal(unrouted.size, routes.size * 3 * 2);
        }

        for (const p of trainable) {
          if (unrouted.has(p.name)) continue;
          const g = grads.get(p.name);
          assert.ok(g, `gradient for ${p.name}`);
          assert.equal(g.length, p.value.size);
          assert.ok(g.every(Number.isFinite), `${p.name}: finite gradient`);
          if (KEY_BIAS.test(p.name)) {
            // Adding b to every key shifts all scores of a query by q·b, which softmax ignores: the
            // exact gradient is zero and what comes back is rounding noise (~1e-10 here).
            assert.ok(maxAbs(g) < 1e-7, `${p.name}: ${maxAbs(g)} should be ~0`);
            noiseOnly.add(p.name);
          } else {
            assert.ok(maxAbs(g) > 0, `${p.name}: non-zero gradient`);
          }
        }
        // tf.variableGrads over every store variable: the frozen ones are non-trainable engine variables
        const labels = labelsTensor('classification');
        const all = tf.variableGrads(
          () => model.taskLoss(model.forward(x, ctx), labels) as tf.Scalar,
          model.store.all().map((p) => p.value),
        );
        for (const p of frozen) assert.equal(all.grads[p.value.name], null, `${p.name} is a non-trainable variable`);
        tf.dispose([all.value, labels, ...Object.values(all.grads).filter((g): g is Tensor => g !== null)]);

        // plain SGD on the trainable variables only
        for (const p of trainable) {
          const g = grads.get(p.name);
          if (!g) continue;
          const step = tf.tidy(() => tf.sub(p.value, tf.mul(0.1, tf.tensor(g, p.value.shape))));
          p.value.assign(step);
          step.dispose();
        }
        const after = snapshot(model.store.all());
        for (const p of frozen)
          assert.ok(bitIdentical(after.get(p.name)!, before.get(p.name)!), `frozen ${p.name} unchanged`);
        for (const p of trainable) {
          if (noiseOnly.has(p.name)) continue; // a 0.1 * 1e-10 step may or may not round to a change
          const changed = !bitIdentical(after.get(p.name)!, before.get(p.name)!);
          assert.equal(
            changed,
            !unrouted.has(p.name),
            `${p.name} ${unrouted.has(p.name) ? 'unrouted, unchanged' : 'changed'}`,
          );
        }
        if (method.type === 'lora') {
          const { grads: afterB } = taskGrads(model, x, ctx);
          for (const p of trainable.filter((q) => q.name.includes('lora_A')))
            assert.ok(maxAbs(afterB.get(p.name)!) > 0, `${p.name} once B != 0`);
        }
        disposeBatch(x);
        model.dispose();
      });
    }
  });
}

// ================================================================ 4. AdaMix merge

/** Element-wise mean of equally shaped weights, in float64 then rounded once. */
function average(ws: { shape: number[]; data: Float32Array }[]): { shape: number[]; data: Float32Array } {
  const out = new Float32Array(ws[0].data.length);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (const w of ws) s += w.data[i];
    out[i] = s / ws.length;
  }
  return { shape: [...ws[0].shape], data: out };
}

describe('AdaMix merge', () => {
  for (const share of ['up', 'none', 'down'] as const) {
    test(`merged inference equals a Houlsby model holding the averaged experts (share '${share}')`, async () => {
      await useBackend('cpu');
      const method = adamix({ share });
      const mix = build(method);
      randomiseAdapters(mix, 21);
      // LayerNorms, pooler and classifier away from their init too, to check that everything is carried over
      const rng = new Rng(22);
      for (const p of mix.store.trainable().filter((q) => q.group !== 'adapter')) {
        const t = tf.tidy(() => tf.add(p.value, tf.tensor(truncatedNormal(p.value.size, 0.05, rng), p.value.shape)));
        p.value.assign(t);
        t.dispose();
      }
      const x = batch();
      const merged = mix.method.mergeForInference();
      assert.ok(merged);
      assert.equal(merged.size, 4);
      const mergedLogits = logitsOf(mix, x, inferCtx(merged));

      const exported = mix.store.exportWeights((p) => p.trainable);
      const twin = build(houlsby({ sites: method.sites, bottleneck: method.bottleneck }));
      const imported: WeightMap = new Map();
      for (const p of twin.store.trainable()) {
        const match = /^(.*\.adapter)\.(down|up)\.(weight|bias)$/.exec(p.name);
        if (!match) {
          imported.set(p.name, exported.get(p.name)!);
          continue;
        }
        const [, prefix, proj, kind] = match;
        const shared = exported.get(p.name);
        const experts = Array.from({ length: 4 }, (_, k) => exported.get(`${prefix}.experts.${k}.${proj}.${kind}`));
        const sources = shared ? [shared] : experts.map((e) => (assert.ok(e, `${prefix} expert ${proj}`), e));
        assert.equal(sources.length, share === proj ? 1 : 4, `${p.name} averages ${sources.length}`);
        imported.set(p.name, average(sources));
      }
      twin.store.importWeights(imported, 'averaged experts'); // every trainable weight must be present
      const twinLogits = logitsOf(twin, x, evalCtx);
      const diff = maxAbsDiff(mergedLogits, twinLogits);
      assert.ok(diff < 1e-5, `merged vs averaged Houlsby: ${diff}`);

      // the merge is not the average of the experts' outputs: average the logits of the E "diagonal" routes
      const naive = new Float32Array(mergedLogits.length);
      for (let k = 0; k < 4; k++) {
        const routes = uniformRoutes(mix, { down: share === 'down' ? 0 : k, up: share === 'up' ? 0 : k });
        const l = logitsOf(mix, x, trainCtx(routes));
        for (let i = 0; i < naive.length; i++) naive[i] += l[i] / 4;
      }
      const gap = maxAbsDiff(naive, mergedLogits);
      assert.ok(gap > 1e-3, `output average differs from the weight average (gap ${gap})`);
      // and no single expert is the merge
      assert.ok(maxAbsDiff(logitsOf(mix, x, trainCtx(uniformRoutes(mix, { down: 0, up: 0 }))), mergedLogits) > 1e-3);

      disposeMerged(merged);
      disposeBatch(x);
      twin.dispose();
      mix.dispose();
    });
  }

  test('at one site, mergeMixture averages weights; averaging the expert outputs differs', async () => {
    await useBackend('cpu');
    const d = 32;
    const m = 8;
    const store = new ParamStore();
    const mixture = addMixture(store, 'site', d, m, adamix({ share: 'up' }), new Rng(1));
    assert.equal(mixture.downs.length, 4);
    assert.equal(mixture.ups.length, 1);
    // experts start identical (routing noise, not init noise, makes them differ)
    const k0 = mixture.downs[0].kernel.dataSync() as Float32Array;
    for (const e of mixture.downs) assert.ok(bitIdentical(e.kernel.dataSync() as Float32Array, k0));
    const rng = new Rng(2);
    for (const p of store.all()) randomise(p, p.name.endsWith('.bias') ? 0.2 : 0.5, rng);
    const h = tf.tensor2d(truncatedNormal(5 * d, 1, new Rng(3)), [5, d]);
    const merged = mergeMixture(mixture);
    const viaMerge = read(tf.tidy(() => bottleneckDelta(h, merged.down, merged.up, 'gelu')));
    const avgDown = {
      kernel: tf.tensor(
        average(mixture.downs.map((e) => ({ shape: e.kernel.shape, data: e.kernel.dataSync() as Float32Array }))).data,
        mixture.downs[0].kernel.shape,
      ),
      bias: tf.tensor(
        average(mixture.downs.map((e) => ({ shape: e.bias.shape, data: e.bias.dataSync() as Float32Array }))).data,
        mixture.downs[0].bias.shape,
      ),
    };
    const byHand = read(tf.tidy(() => bottleneckDelta(h, avgDown, mixture.ups[0], 'gelu')));
    assert.ok(maxAbsDiff(viaMerge, byHand) < 1e-6);
    const outputMean = read(
      tf.tidy(() => tf.div(tf.addN([0, 1, 2, 3].map((k) => routedDelta(h, mixture, { down: k, up: 0 }, 'gelu'))), 4)),
    );
    assert.ok(
      maxAbsDiff(outputMean, viaMerge) > 1e-3,
      `output mean vs weight mean: ${maxAbsDiff(outputMean, viaMerge)}`,
    );
    tf.dispose([
      h,
      merged.down.kernel,
      merged.down.bias,
      merged.up.kernel,
      merged.up.bias,
      avgDown.kernel,
      avgDown.bias,
    ]);
    store.dispose();
  });
});

// ================================================================ 5. consistency loss

function softmax(row: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(row));
  const e = Array.from(row, (v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('AdaMix consistency loss', () => {
  test('zero for the same routes, zero at init for any routes, the symmetric KL for different routes', async () => {
    await useBackend('cpu');
    const model = build(adamix({ share: 'none' }));
    const x = batch();
    const consistency = (a: ExpertChoice, b: ExpertChoice) =>
      tf.tidy(() => {
        const first = model.forward(x, trainCtx(uniformRoutes(model, a)));
        const second = model.forward(x, trainCtx(uniformRoutes(model, b)));
        return [
          first.dataSync() as Float32Array,
          second.dataSync() as Float32Array,
          model.consistencyLoss(first, second).dataSync()[0],
        ] as const;
      });
    // experts start identical: any two routes give the same prediction
    assert.equal(consistency({ down: 0, up: 0 }, { down: 3, up: 2 })[2], 0);

    randomiseAdapters(model, 31);
    const drawn = model.method.drawRoutes(new Rng(4))!;
    const same = tf.tidy(
      () => model.consistencyLoss(model.forward(x, trainCtx(drawn)), model.forward(x, trainCtx(drawn))).dataSync()[0],
    );
    assert.equal(same, 0);

    const [p, q, loss] = consistency({ down: 0, up: 1 }, { down: 2, up: 3 });
    assert.ok(loss > 1e-4, `different routes: ${loss}`);
    // 0.5 (KL(q || p) + KL(p || q)), averaged over the batch
    let expected = 0;
    for (let b = 0; b < 4; b++) {
      const pp = softmax(p.subarray(b * CLASSES, (b + 1) * CLASSES));
      const qq = softmax(q.subarray(b * CLASSES, (b + 1) * CLASSES));
      for (let c = 0; c < CLASSES; c++)
        expected += 0.5 * (qq[c] * Math.log(qq[c] / pp[c]) + pp[c] * Math.log(pp[c] / qq[c]));
    }
    expected /= 4;
    assert.ok(
      Math.abs(loss - expected) < 1e-6 * Math.max(1, expected),
      `consistency ${loss} vs symmetric KL ${expected}`,
    );
    disposeBatch(x);
    model.dispose();
  });

  test('regression: the mean squared difference of the two outputs', async () => {
    await useBackend('cpu');
    const model = build(adamix({ share: 'up' }), { task: 'regression', outputs: 1 });
    randomiseAdapters(model, 41);
    const x = batch();
    const [a, b, loss, same] = tf.tidy(() => {
      const first = model.forward(x, trainCtx(uniformRoutes(model, { down: 0, up: 0 })));
      const second = model.forward(x, trainCtx(uniformRoutes(model, { down: 3, up: 0 })));
      const again = model.forward(x, trainCtx(uniformRoutes(model, { down: 0, up: 0 })));
      return [
        first.dataSync() as Float32Array,
        second.dataSync() as Float32Array,
        model.consistencyLoss(first, second).dataSync()[0],
        model.consistencyLoss(first, again).dataSync()[0],
      ] as const;
    });
    assert.equal(a.length, 4);
    let mse = 0;
    for (let i = 0; i < 4; i++) mse += (a[i] - b[i]) ** 2 / 4;
    assert.ok(mse > 1e-8, `the routes disagree (${mse})`);
    assert.ok(Math.abs(loss - mse) <= 1e-5 * mse, `consistency ${loss} vs MSE ${mse}`);
    assert.equal(same, 0);
    disposeBatch(x);
    model.dispose();
  });
});

// ================================================================ 5b. [CLS] readout

/** The head over the [CLS] rows of every token's last hidden state: what forward computed before its [CLS] readout. */
function fullLayerLoss(model: PeftModel, x: EncoderInputs, ctx: ForwardContext, labels: Tensor): tf.Scalar {
  const [b, t] = x.inputIds.shape;
  const hidden = model.encoder.encode(x, ctx); // [N, d]
  return model.taskLoss(model.head(model.encoder.clsRows(hidden, b, t), ctx), labels) as tf.Scalar;
}

for (const backend of ['cpu', 'wasm']) {
  describe(`the last layer for the [CLS] rows alone (${backend})`, () => {
    const methods: MethodConfig[] = [
      houlsby(),
      pfeiffer(),
      parallel(),
      adamix(),
      lora({ targets: ['query', 'key', 'value', 'attention_output', 'intermediate', 'output'] }),
      { type: 'full' },
    ];
    for (const method of methods) {
      test(`${method.type}: the same loss and gradients as the full last layer, padded sequences included`, async () => {
        await useBackend(backend);
        const model = build(method);
        randomiseAdapters(model, 5); // so the adapters are far from the identity
        const x = batch();
        const labels = labelsTensor('classification');
        const routes = model.method.drawRoutes(new Rng(3));
        const ctx = trainCtx(routes);
        const vars = model.store.trainable().map((p) => p.value);
        const cls = tf.variableGrads(() => model.taskLoss(model.forward(x, ctx), labels) as tf.Scalar, vars);
        const full = tf.variableGrads(() => fullLayerLoss(model, x, ctx, labels), vars);
        const [clsLoss, fullLoss] = [read(cls.value)[0]!, read(full.value)[0]!];
        assert.ok(Math.abs(clsLoss - fullLoss) < 1e-5, `loss ${clsLoss} vs ${fullLoss}`);
        assert.deepEqual(Object.keys(cls.grads).sort(), Object.keys(full.grads).sort());
        assert.ok(Object.keys(full.grads).length > 0);
        for (const [name, g] of Object.entries(full.grads)) {
          const expected = read(g);
          const actual = read(cls.grads[name]!);
          const scale = Math.max(1e-3, maxAbs(expected));
          assert.ok(
            maxAbsDiff(actual, expected) <= 1e-4 * scale,
            `${name}: ${maxAbsDiff(actual, expected)} (scale ${scale})`,
          );
        }
        labels.dispose();
        disposeBatch(x);
        model.dispose();
      });
    }
  });
}

for (const backend of ['cpu', 'wasm']) {
  describe(`mean pooling: the head reads the mean of the real tokens (${backend})`, () => {
    for (const method of [houlsby(), adamix(), { type: 'full' } as MethodConfig]) {
      test(`${method.type}: logits, loss and gradients equal the head over a masked mean written with plain ops, padding excluded`, async () => {
        await useBackend(backend);
        const model = build(method, { pooling: 'mean' });
        randomiseAdapters(model, 7);
        const x = batch();
        const labels = labelsTensor('classification');
        const routes = model.method.drawRoutes(new Rng(4));
        const ctx = trainCtx(routes);
        const vars = model.store.trainable().map((p) => p.value);
        const reference = () => {
          const [b, t] = x.inputIds.shape;
          const hidden = tf.reshape(model.encoder.encode(x, ctx), [b, t, -1]);
          const mask = tf.expandDims(x.attentionMask, 2);
          const mean = tf.div(tf.sum(tf.mul(hidden, mask), 1), tf.sum(mask, 1)) as tf.Tensor2D;
          return model.taskLoss(model.head(mean, ctx), labels) as tf.Scalar;
        };
        const ours = tf.variableGrads(() => model.taskLoss(model.forward(x, ctx), labels) as tf.Scalar, vars);
        const theirs = tf.variableGrads(reference, vars);
        assert.ok(Math.abs(read(ours.value)[0]! - read(theirs.value)[0]!) < 1e-5);
        assert.deepEqual(Object.keys(ours.grads).sort(), Object.keys(theirs.grads).sort());
        for (const [name, g] of Object.entries(theirs.grads)) {
          const expected = read(g);
          const actual = read(ours.grads[name]!);
          assert.ok(
            maxAbsDiff(actual, expected) <= 1e-4 * Math.max(1e-3, maxAbs(expected)),
            `${name}: ${maxAbsDiff(actual, expected)}`,
          );
        }
        // padding changes nothing: the same sentences with 3 more padded columns give the same logits
        const padded: EncoderInputs = {
          inputIds: tf.pad(x.inputIds, [
            [0, 0],
            [0, 3],
          ]) as tf.Tensor2D,
          tokenTypeIds: tf.pad(x.tokenTypeIds, [
            [0, 0],
            [0, 3],
          ]) as tf.Tensor2D,
          attentionMask: tf.pad(x.attentionMask, [
            [0, 0],
            [0, 3],
          ]) as tf.Tensor2D,
        };
        assert.ok(maxAbsDiff(logitsOf(model, padded, ctx), logitsOf(model, x, ctx)) < 1e-5);
        tf.dispose([labels]);
        disposeBatch(padded);
        disposeBatch(x);
        model.dispose();
      });
    }
  });
}

// ================================================================ 6. tensor leaks

for (const backend of ['cpu', 'wasm']) {
  describe(`no tensor leaks (${backend})`, () => {
    for (const method of [houlsby(), adamix()]) {
      test(`${method.type}: forward + backward in training mode with dropout leaves numTensors unchanged`, async () => {
        await useBackend(backend);
        const model = build(method, { dropout: 0.1 });
        const x = batch();
        const labels = labelsTensor('classification');
        const rng = new Rng(12);
        const vars = model.store.trainable().map((p) => p.value);
        const step = () => {
          const ctx = trainCtx(model.method.drawRoutes(rng), rng);
          const { value, grads } = tf.variableGrads(
            () => model.taskLoss(model.forward(x, ctx), labels) as tf.Scalar,
            vars,
          );
          const loss = value.dataSync()[0];
          const count = Object.keys(grads).length;
          value.dispose();
          for (const g of Object.values(grads)) g.dispose();
          return { loss, count };
        };
        const before = tf.memory().numTensors;
        let seen = { loss: 0, count: 0 };
        tf.tidy(() => {
          seen = step();
        });
        assert.equal(tf.memory().numTensors, before, 'inside tf.tidy');
        assert.ok(seen.loss > 0 && seen.count > 0);
        // and without a surrounding tidy: variableGrads must not leave anything behind either
        step();
        assert.equal(tf.memory().numTensors, before, 'without tf.tidy');
        tf.dispose([labels]);
        disposeBatch(x);
        model.dispose();
      });
    }
  });
}

// ================================================================ 7. dropout reproducibility

describe('dropout reproducibility', () => {
  test('the same seed sequence gives identical logits, another gives different ones', async () => {
    await useBackend('cpu');
    const model = build(houlsby(), { dropout: 0.1 });
    const x = batch();
    const run = (seed: number) => logitsOf(model, x, trainCtx(undefined, new Rng(seed)));
    const first = run(7);
    const second = run(7);
    assert.ok(bitIdentical(first, second), 'same seeds: identical logits');
    const other = run(8);
    assert.ok(maxAbsDiff(first, other) > 1e-4, `different seeds: ${maxAbsDiff(first, other)}`);
    const clean = logitsOf(model, x, evalCtx);
    assert.ok(maxAbsDiff(first, clean) > 1e-4, 'dropout is active in training mode');
    // dropout rate 0 ignores the seeds
    const noDrop = build(houlsby(), { dropout: 0 });
    assert.ok(bitIdentical(logitsOf(noDrop, x, trainCtx(undefined, new Rng(7))), logitsOf(noDrop, x, evalCtx)));
    noDrop.dispose();
    disposeBatch(x);
    model.dispose();
  });
});
