/**
 * The dashboard's view model (webview/model/, no DOM): placement rows from the placement.json of
 * every method (made by the real engine on the tiny fixture), smoothing, aligning and decimating
 * series, the charts' data, the run store fed by host messages, the summary; and the message
 * validation of src/protocol/dashboard.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { tf } from '../../src/core/tf';
import { readBertFolder } from '../../src/core/model/hf-checkpoint';
import { PeftModel } from '../../src/core/model/peft-model';
import type { MethodConfig } from '../../src/core/config/types';
import type { Placement } from '../../src/protocol/worker';
import {
  parseDashboardState,
  parseDashboardToHost,
  parseHostToDashboard,
  type RunSnapshot,
} from '../../src/protocol/dashboard';
import { buildPlacementView, type PlacementView } from '../../webview/model/placement';
import {
  alignSeries,
  bucketWidth,
  decimateMinMax,
  emaSmooth,
  EmaSmoother,
  MinMaxDecimator,
  SmoothingCache,
  unionSteps,
} from '../../webview/model/series';
import { buildCharts, decimate } from '../../webview/model/charts';
import { primaryMetric, runLabels, RunStore } from '../../webview/model/store';
import { summarize } from '../../webview/model/summary';

const tiny = readBertFolder(path.join(__dirname, '..', 'fixtures', 'tiny-bert'));
const D = tiny.config.hidden_size; // 32
const L = tiny.config.num_hidden_layers; // 2

const bottleneck = {
  bottleneck: 8,
  reductionFactor: 16,
  activation: 'gelu' as const,
  initStd: 1e-3,
  leaveOut: [] as number[],
};
const METHODS: Record<string, MethodConfig> = {
  houlsby: { type: 'houlsby', ...bottleneck, sites: ['attention', 'ffn'] },
  pfeiffer: { type: 'pfeiffer', ...bottleneck },
  parallel: { type: 'parallel', ...bottleneck, sites: ['attention', 'ffn'], scale: 4 },
  adamix: { type: 'adamix', ...bottleneck, sites: ['attention', 'ffn'], experts: 4, share: 'up', consistencyWeight: 1 },
  'adamix-leave-out': {
    type: 'adamix',
    ...bottleneck,
    leaveOut: [1],
    sites: ['ffn'],
    experts: 3,
    share: 'none',
    consistencyWeight: 1,
  },
  'houlsby-leave-out': { type: 'houlsby', ...bottleneck, leaveOut: [0], sites: ['attention', 'ffn'] },
  lora: { type: 'lora', rank: 4, alpha: 8, targets: ['query', 'value'], leaveOut: [] },
  'lora-leave-out': {
    type: 'lora',
    rank: 2,
    alpha: 4,
    targets: ['query', 'key', 'value', 'intermediate'],
    leaveOut: [1],
  },
  'head-only': { type: 'head-only' },
  full: { type: 'full' },
};

const placements = new Map<string, Placement>();
async function placementOf(name: string): Promise<Placement> {
  let p = placements.get(name);
  if (!p) {
    await tf.setBackend('cpu');
    const model = new PeftModel({
      bert: tiny.config,
      base: tiny.weights,
      method: METHODS[name]!,
      task: 'classification',
      outputs: 2,
      seed: 0,
      dropout: 0,
    });
    // through JSON, as the dashboard reads placement.json
    p = JSON.parse(JSON.stringify(model.placement())) as Placement;
    model.dispose();
    placements.set(name, p);
  }
  return p;
}

function adaptersOf(view: PlacementView) {
  return view.layers.flatMap((row) =>
    row.blocks
      .flatMap((b) => [b.adapter, b.parallel, ...b.sublayers.map((s) => s.lora)])
      .filter((a) => a !== undefined)
      .map((a) => ({ row: row.index, a: a! })),
  );
}

describe('placement diagram rows from placement.json', () => {
  test('every method gives one row per layer with the attention and feed-forward blocks in forward order', async () => {
    for (const name of Object.keys(METHODS)) {
      const view = buildPlacementView(await placementOf(name));
      assert.equal(view.layers.length, L, name);
      for (const row of view.layers) {
        assert.deepEqual(
          row.blocks.map((b) => b.id),
          ['attention', 'ffn'],
          name,
        );
        assert.deepEqual(
          row.blocks[0].sublayers.map((s) => s.id),
          ['query', 'key', 'value', 'attention', 'attention_output'],
          name,
        );
        assert.deepEqual(
          row.blocks[1].sublayers.map((s) => s.id),
          ['intermediate', 'output'],
          name,
        );
        assert.equal(row.blocks[0].sublayers[0]!.shape, `${D} × ${D}`);
        assert.equal(row.blocks[1].sublayers[0]!.shape, `${D} × ${tiny.config.intermediate_size}`);
      }
      // totals and share of the base model come straight from placement.json
      const p = await placementOf(name);
      assert.equal(view.trainableParams, p.trainableParams);
      assert.equal(view.baseParams, p.baseParams);
      assert.ok(Math.abs(view.trainableShare - p.trainableParams / p.baseParams) < 1e-12);
      assert.equal(
        view.adapterParams,
        p.sites.reduce((n, s) => n + s.trainableParams, 0),
        name,
      );
      assert.equal(
        view.layers.reduce((n, r) => n + r.adapterParams, 0),
        view.adapterParams,
        `${name}: layer totals add up`,
      );
    }
  });

  test('houlsby: a sequential adapter after each block, bottleneck and exact shapes in the hover', async () => {
    const view = buildPlacementView(await placementOf('houlsby'));
    const site = 2 * D * 8 + D + 8;
    for (const row of view.layers) {
      for (const block of row.blocks) {
        assert.equal(block.adapter?.kind, 'bottleneck');
        assert.equal(block.parallel, undefined);
        assert.equal(block.adapter?.bottleneck, 8);
        assert.equal(block.adapter?.sizeText, 'm = 8');
        assert.equal(block.adapter?.trainableParams, site);
        assert.match(block.adapter!.tooltip, new RegExp(`down: \\[${D} × 8\\] \\+ bias \\[8\\]`));
        assert.match(block.adapter!.tooltip, new RegExp(`up: \\[8 × ${D}\\] \\+ bias \\[${D}\\]`));
        assert.ok(block.norm.trains, 'LayerNorms train with adapters');
      }
      assert.equal(row.adapterParams, 2 * site);
      assert.ok(Math.abs(row.share - (2 * site) / view.baseParams) < 1e-12);
    }
    assert.equal(view.headTrains, true);
    assert.equal(view.encoderTrains, false);
  });

  test('pfeiffer: one adapter per layer, feed-forward only (no empty slot at attention)', async () => {
    const view = buildPlacementView(await placementOf('pfeiffer'));
    for (const row of view.layers) {
      assert.equal(row.blocks[0].adapter, undefined);
      assert.equal(row.blocks[0].emptySlot, undefined);
      assert.equal(row.blocks[1].adapter?.kind, 'bottleneck');
    }
  });

  test('parallel: beside the block, not after it', async () => {
    const view = buildPlacementView(await placementOf('parallel'));
    for (const b of view.layers.flatMap((r) => r.blocks)) {
      assert.equal(b.adapter, undefined);
      assert.equal(b.parallel?.kind, 'parallel');
      assert.equal(b.parallel?.title, 'Parallel adapter');
    }
  });

  test('adamix: experts with the shared up-projection marked, routing frequencies per expert, merged for inference', async () => {
    const p = await placementOf('adamix');
    const routing = {
      step: 40,
      sites: { '0.attention': { down: [10, 30, 0, 60], up: [100] }, '1.ffn': { down: [25, 25, 25, 25], up: [100] } },
    };
    const view = buildPlacementView(p, routing);
    assert.equal(view.routingStep, 40);
    const card = view.layers[0]!.blocks[0].adapter!;
    assert.equal(card.kind, 'adamix');
    assert.equal(card.title, 'AdaMix · 4 experts');
    assert.equal(card.merged, true);
    assert.equal(card.experts?.down.length, 4);
    assert.equal(card.experts?.up.length, 1);
    assert.equal(card.experts?.sharedUp, true);
    assert.equal(card.experts?.sharedDown, false);
    assert.deepEqual(
      card.experts?.down.map((e) => e.count),
      [10, 30, 0, 60],
    );
    assert.deepEqual(
      card.experts?.down.map((e) => e.share),
      [0.1, 0.3, 0, 0.6],
    );
    assert.equal(card.experts?.up[0]!.share, 1);
    assert.equal(card.trainableParams, 4 * (D * 8 + 8) + (8 * D + D));
    assert.equal(card.inferenceParams, 2 * D * 8 + D + 8);
    assert.match(card.tooltip, /down: \[32 × 8\] \+ bias \[8\] × 4 experts/);
    assert.match(card.tooltip, /up: \[8 × 32\] \+ bias \[32\] \(shared by every expert\)/);
    assert.match(card.tooltip, /one merged adapter/);
    assert.match(card.tooltip, /routed up to step 40: down 10 \(10\.0%\), 30 \(30\.0%\), 0 \(0%\), 60 \(60\.0%\)/);
    // a site without counts: bars with no share, not zeros pretending to be data
    const noCounts = view.layers[0]!.blocks[1].adapter!;
    assert.equal(noCounts.experts?.routedAtStep, undefined);
    assert.ok(noCounts.experts?.down.every((e) => e.share === undefined));
    assert.ok(view.inferenceParams < view.adapterParams);
  });

  test('adamix without sharing, with a layer left out: M down and M up, and an empty slot in the left-out layer', async () => {
    const view = buildPlacementView(await placementOf('adamix-leave-out'));
    const [kept, left] = view.layers;
    assert.equal(kept!.leftOut, false);
    const card = kept!.blocks[1].adapter!;
    assert.equal(card.experts?.down.length, 3);
    assert.equal(card.experts?.up.length, 3);
    assert.equal(card.experts?.sharedUp, false);
    assert.equal(left!.leftOut, true);
    assert.equal(left!.adapterCount, 0);
    assert.equal(left!.blocks[1].adapter, undefined);
    assert.equal(left!.blocks[1].emptySlot, 'sequential');
    assert.equal(left!.blocks[0].emptySlot, undefined, 'no slot where no layer has an adapter');
    assert.deepEqual(view.leftOut, [1]);
  });

  test('houlsby with layer 0 left out: both slots of layer 0 visibly empty', async () => {
    const view = buildPlacementView(await placementOf('houlsby-leave-out'));
    assert.deepEqual(
      view.layers[0]!.blocks.map((b) => b.emptySlot),
      ['sequential', 'sequential'],
    );
    assert.deepEqual(
      view.layers[1]!.blocks.map((b) => b.emptySlot),
      [undefined, undefined],
    );
    assert.equal(view.layers[0]!.adapterParams, 0);
  });

  test('lora: on the targeted projections only, with rank and A/B shapes', async () => {
    const view = buildPlacementView(await placementOf('lora'));
    for (const row of view.layers) {
      const subs = Object.fromEntries(row.blocks.flatMap((b) => b.sublayers).map((s) => [s.id, s]));
      assert.equal(subs.query!.lora?.rank, 4);
      assert.equal(subs.value!.lora?.sizeText, 'r = 4');
      assert.equal(subs.key!.lora, undefined);
      assert.equal(subs.intermediate!.lora, undefined);
      assert.match(subs.query!.lora!.tooltip, /A: \[32 × 4\]/);
      assert.match(subs.query!.lora!.tooltip, /B: \[4 × 32\]/);
      assert.equal(subs.query!.lora!.trainableParams, 4 * (D + D));
      assert.equal(row.blocks[0].adapter, undefined);
    }
    assert.equal(adaptersOf(view).length, 2 * L);
  });

  test('lora with a layer left out: that layer keeps empty LoRA slots on its targets', async () => {
    const view = buildPlacementView(await placementOf('lora-leave-out'));
    const left = view.layers[1]!;
    const subs = left.blocks.flatMap((b) => b.sublayers);
    assert.deepEqual(
      subs.filter((s) => s.loraEmpty).map((s) => s.id),
      ['query', 'key', 'value', 'intermediate'],
    );
    assert.ok(subs.every((s) => s.lora === undefined));
    const kept = view.layers[0]!.blocks.flatMap((b) => b.sublayers);
    assert.equal(
      kept.find((s) => s.id === 'intermediate')?.lora?.trainableParams,
      2 * (D + tiny.config.intermediate_size),
    );
  });

  test('head-only: no adapter anywhere, only the head trains; full: every sublayer trains', async () => {
    const head = buildPlacementView(await placementOf('head-only'));
    assert.equal(adaptersOf(head).length, 0);
    assert.ok(
      head.layers.every((r) =>
        r.blocks.every((b) => !b.emptySlot && !b.norm.trains && b.sublayers.every((s) => !s.trains)),
      ),
    );
    assert.equal(head.headTrains, true);
    const full = buildPlacementView(await placementOf('full'));
    assert.equal(full.encoderTrains, true);
    assert.ok(
      full.layers.every((r) =>
        r.blocks.every((b) => b.norm.trains && b.sublayers.filter((s) => s.id !== 'attention').every((s) => s.trains)),
      ),
    );
    assert.ok(full.trainableShare > 0.99);
  });
});

describe('smoothing (TensorBoard EMA)', () => {
  /** TensorBoard's own loop (vz_line_chart2), for comparison. */
  function tensorboard(values: number[], w: number): number[] {
    let last = 0;
    let n = 0;
    return values.map((v) => {
      last = last * w + (1 - w) * v;
      n++;
      return last / (1 - Math.pow(w, n));
    });
  }

  test('matches TensorBoard, debiased so the first value is not pulled towards 0', () => {
    const values = [1, 0.9, 0.95, 0.7, 0.6, 0.65, 0.4, 0.45, 0.3];
    for (const w of [0, 0.3, 0.6, 0.9, 0.99]) {
      const ours = emaSmooth(values, w);
      tensorboard(values, w).forEach((v, i) => assert.ok(Math.abs((ours[i] as number) - v) < 1e-12, `w=${w} i=${i}`));
    }
    assert.equal(emaSmooth([5, 5, 5], 0.9)[0], 5);
    assert.ok(Math.abs((emaSmooth([5, 5, 5], 0.9)[2] as number) - 5) < 1e-12);
  });

  test('weight 0 leaves values as they are; non-finite values pass through and do not enter the average', () => {
    assert.deepEqual(emaSmooth([3, 1, 2], 0), [3, 1, 2]);
    const out = emaSmooth([1, null, 3, NaN, 5], 0.5);
    assert.equal(out[1], null);
    assert.ok(Number.isNaN(out[3] as number));
    assert.deepEqual([out[0], out[2], out[4]], emaSmooth([1, 3, 5], 0.5));
  });

  test('extending incrementally gives what smoothing everything at once gives', () => {
    const values: number[] = [];
    const s = new EmaSmoother(0.8);
    for (let i = 0; i < 50; i++) {
      values.push(Math.sin(i) + i / 10);
      if (i % 7 === 0) s.extend(values);
    }
    assert.deepEqual(s.extend(values), emaSmooth(values, 0.8));
    assert.throws(() => new EmaSmoother(1), /\[0, 1\)/);
  });

  test('the cache restarts when the weight or the data array changes', () => {
    const cache = new SmoothingCache();
    const a = [1, 2, 3];
    const first = cache.get('k', a, 0.5);
    a.push(4);
    assert.equal(cache.get('k', a, 0.5), first, 'same array, same weight: extended in place');
    assert.equal(first.length, 4);
    assert.notEqual(cache.get('k', a, 0.6), first);
    assert.deepEqual(cache.get('k', [9], 0.6), [9]);
  });
});

describe('series alignment and decimation', () => {
  test('series on the same steps align without search; different steps align on their union with gaps', () => {
    const x = [1, 2, 3];
    assert.deepEqual(
      alignSeries([
        { x, y: [1, 2, 3] },
        { x: [1, 2, 3], y: [4, 5, 6] },
      ]),
      {
        x: [1, 2, 3],
        ys: [
          [1, 2, 3],
          [4, 5, 6],
        ],
      },
    );
    const aligned = alignSeries([
      { x: [1, 3, 5], y: [10, 30, 50] },
      { x: [2, 3, 6], y: [0.2, 0.3, 0.6] },
    ]);
    assert.deepEqual(aligned.x, [1, 2, 3, 5, 6]);
    assert.deepEqual(aligned.ys, [
      [10, null, 30, 50, null],
      [null, 0.2, 0.3, null, 0.6],
    ]);
    assert.deepEqual(unionSteps([[5, 9], [1, 5], []]), [1, 5, 9]);
  });

  test("min/max decimation keeps every bucket's first, lowest, highest and last point", () => {
    const n = 100_000;
    const x = Array.from({ length: n }, (_, i) => i + 1);
    const y = x.map((s) => Math.sin(s / 50) + (s === 54_321 ? 10 : 0) - (s === 77_777 ? 10 : 0));
    const idx = decimateMinMax(x, y, 1000);
    assert.ok(idx.length <= 4 * 1001, `${idx.length} points`);
    assert.ok(idx.length >= 1000);
    assert.ok(
      idx.every((k, i) => i === 0 || k > idx[i - 1]!),
      'ascending, no duplicates',
    );
    assert.equal(idx[0], 0);
    assert.equal(idx[idx.length - 1], n - 1);
    assert.ok(idx.includes(54_320), 'a spike survives');
    assert.ok(idx.includes(77_776), 'a dip survives');
    assert.deepEqual(decimateMinMax([1, 2, 3], [1, 2, 3], 1000), [0, 1, 2], 'short series are kept whole');
    assert.equal(bucketWidth(100_000, 1000), 128);
  });

  test('the incremental decimator of a growing run equals decimating it from scratch', () => {
    const x: number[] = [];
    const y: number[] = [];
    const d = new MinMaxDecimator();
    for (let s = 1; s <= 30_000; s++) {
      x.push(s);
      y.push(Math.cos(s / 7) * (1 + (s % 13)));
      if (s % 997 === 0 || s === 30_000)
        assert.deepEqual(d.indices(x, y, 500), decimateMinMax(x, y, 500), `at step ${s}`);
    }
  });

  test('decimate keeps series of one run on one shared x, and full detail inside a zoom', () => {
    const x = Array.from({ length: 50_000 }, (_, i) => i + 1);
    const raw = x.map((s) => (s % 2 ? 1 : 0));
    const smooth = x.map((s) => 1 / s);
    const evals = { x: [10_000, 50_000], y: [0.5, 0.4] };
    const out = decimate([{ x, y: raw }, { x, y: smooth }, evals], { smoothing: 0.6, logScale: false, buckets: 500 });
    assert.equal(out[0]!.x, out[1]!.x, 'raw and smoothed share one decimated x');
    assert.ok(out[0]!.x.length < 5000);
    assert.equal(out[2], evals, 'evaluations are kept whole');
    const zoomed = decimate([{ x, y: raw }], { smoothing: 0.6, logScale: false, buckets: 500, zoom: [20_000, 20_400] });
    assert.deepEqual(
      Array.from(zoomed[0]!.x),
      Array.from({ length: 403 }, (_, i) => 19_999 + i),
      'every step in the zoomed range, and one either side',
    );
  });
});

// ---- runs, as the host sends them --------------------------------------------------------------

function snapshotRun(name: string, steps: number, over: Partial<RunSnapshot> = {}): RunSnapshot {
  const step = Array.from({ length: steps }, (_, i) => (i + 1) * 10);
  return {
    dir: `/runs/${name}`,
    name,
    configFile: `/work/${name}.peft.json`,
    config: {
      name,
      task: { type: 'classification', metric: 'accuracy' },
      method: { type: 'houlsby', bottleneck: 8 },
      training: { epochs: 2 },
    },
    status: {
      state: 'running',
      step: steps * 10,
      totalSteps: 1000,
      backend: 'cpu',
      followed: true,
      started: '2026-11-25T01:00:00.000Z',
    },
    train: {
      step,
      epoch: step.map(() => 0),
      loss: step.map((s) => 1 / s),
      learningRate: step.map((s) => s / 1e6),
      examplesPerSecond: step.map(() => 40),
      elapsedMs: step.map((s) => s * 100),
    },
    evals: [
      { step: 50, split: 'validation', metrics: { accuracy: 0.6, f1: 0.5, loss: 0.7 }, isBest: true },
      { step: 100, split: 'validation', metrics: { accuracy: 0.7, f1: 0.6, loss: 0.6 }, isBest: true },
    ],
    checkpoints: [50, 100],
    problems: [],
    ...over,
  };
}

describe('run store and charts', () => {
  test('a snapshot, then appends (duplicates ignored, a repeated last step replaced), updates and a reset', () => {
    const store = new RunStore();
    store.applySnapshot({ type: 'snapshot', mode: 'run', runs: [snapshotRun('a', 10)] });
    const run = store.runs[0]!;
    const steps = run.train.step;
    const cols = (s: number[], loss: number) => ({
      step: s,
      epoch: s.map(() => 1),
      loss: s.map(() => loss),
      learningRate: s.map(() => 1e-4),
      examplesPerSecond: s.map(() => 40),
      elapsedMs: s.map(() => 1),
    });
    assert.ok(
      store.applyAppend({
        type: 'append',
        dir: '/runs/a',
        train: cols([90, 100, 110, 120], 0.5),
        evals: [
          { step: 100, split: 'validation', metrics: { accuracy: 0.7 }, isBest: true },
          { step: 120, split: 'validation', metrics: { accuracy: 0.8 }, isBest: true },
        ],
      }),
    );
    assert.equal(run.train.step, steps, 'appended in place');
    assert.deepEqual(run.train.step.slice(-3), [100, 110, 120]);
    assert.equal(run.train.step.length, 12);
    assert.equal(run.train.loss[9], 0.5, 'step 100 replaced by the later line');
    assert.deepEqual(
      run.evals.map((e) => e.step),
      [50, 100, 120],
    );
    assert.equal(store.applyAppend({ type: 'append', dir: '/runs/elsewhere', train: cols([1], 1), evals: [] }), false);
    assert.ok(
      store.applyUpdate({
        type: 'runUpdate',
        dir: '/runs/a',
        status: { state: 'finished', step: 120, totalSteps: 120, followed: false },
      }),
    );
    assert.equal(run.status.state, 'finished');
    assert.ok(store.applyReset(snapshotRun('a', 3)));
    assert.equal(store.runs[0]!.train.step.length, 3);
    assert.equal(primaryMetric(store.runs[0]!), 'accuracy');
  });

  test('one run: raw and smoothed loss, validation loss, every validation metric, learning rate; point counts', () => {
    const store = new RunStore();
    store.applySnapshot({ type: 'snapshot', mode: 'run', runs: [snapshotRun('a', 20)] });
    const [loss, metric, lr] = buildCharts(store.runs, { smoothing: 0.6, logScale: false }, new SmoothingCache());
    assert.deepEqual(
      loss!.series.map((s) => s.role),
      ['raw', 'smoothed', 'eval'],
    );
    assert.equal(loss!.points, 20);
    assert.equal(loss!.x.length, 20, 'eval steps 50 and 100 are logged steps too');
    assert.deepEqual(
      loss!.ys[2]!.filter((v) => v !== null),
      [0.7, 0.6],
    );
    assert.deepEqual(
      metric!.series.map((s) => s.label),
      ['accuracy', 'f1'],
    );
    assert.equal(metric!.points, 4);
    assert.equal(lr!.ys[0]!.length, 20);
    const noSmoothing = buildCharts(store.runs, { smoothing: 0, logScale: false }, new SmoothingCache())[0]!;
    assert.deepEqual(
      noSmoothing.series.map((s) => s.role),
      ['line', 'eval'],
    );
  });

  test('log scale turns non-positive values into gaps (they cannot be drawn)', () => {
    const store = new RunStore();
    const run = snapshotRun('a', 3);
    store.applySnapshot({
      type: 'snapshot',
      mode: 'run',
      runs: [{ ...run, train: { ...run.train, learningRate: [0, 1e-4, 2e-4] } }],
    });
    const lr = buildCharts(store.runs, { smoothing: 0, logScale: true }, new SmoothingCache())[2]!;
    assert.deepEqual(lr.ys[0], [null, 1e-4, 2e-4]);
  });

  test("several runs: one smoothed line per run (raw behind it), each run's primary metric, aligned on the union of steps", () => {
    const store = new RunStore();
    const b = snapshotRun('b', 5);
    store.applySnapshot({
      type: 'snapshot',
      mode: 'compare',
      runs: [snapshotRun('a', 10), { ...b, train: { ...b.train, step: b.train.step.map((s) => s + 5) } }],
    });
    const [loss, metric, lr] = buildCharts(store.runs, { smoothing: 0.6, logScale: false }, new SmoothingCache());
    assert.deepEqual(
      loss!.series.filter((s) => s.role === 'smoothed').map((s) => [s.label, s.run]),
      [
        ['a', 0],
        ['b', 1],
      ],
    );
    assert.equal(loss!.x.length, 15);
    assert.deepEqual(
      metric!.series.map((s) => s.label),
      ['a accuracy', 'b accuracy'],
    );
    assert.equal(lr!.series.length, 2);
  });

  test('summary: state, speed, progress, best checkpoint, final and best metrics, what the buttons may do', () => {
    const store = new RunStore();
    store.applySnapshot({
      type: 'snapshot',
      mode: 'run',
      runs: [
        snapshotRun('a', 10, {
          status: {
            state: 'stopped',
            reason: 'cancelled',
            step: 100,
            totalSteps: 400,
            backend: 'wasm',
            followed: false,
            bestCheckpoint: '/runs/a/checkpoints/step-100',
            bestMetrics: { accuracy: 0.7, loss: 0.6 },
          },
        }),
      ],
    });
    const s = summarize(store.runs[0]!);
    const fact = (label: string) => s.facts.find((f) => f.label === label)?.value;
    assert.equal(fact('State'), 'stopped (can resume)');
    assert.equal(fact('Backend'), 'wasm');
    assert.equal(fact('Progress'), 'step 100 of 400 (25%)');
    assert.equal(fact('Speed'), '40.0 examples/s');
    assert.equal(fact('Best checkpoint'), 'step 100 · accuracy 0.7000');
    assert.deepEqual(
      s.metrics.map((m) => m.label),
      ['Final validation', 'Best validation'],
    );
    assert.equal(s.canStop, false);
    assert.equal(s.canResume, true);
    assert.equal(s.canEvaluate, true);
    assert.deepEqual(
      s.config.map((c) => c.section),
      ['Task', 'Method', 'Training'],
    );
  });

  test('runs shown together are labelled without their timestamps when that keeps them apart', () => {
    const store = new RunStore();
    store.applySnapshot({
      type: 'snapshot',
      mode: 'compare',
      runs: [snapshotRun('sst2-houlsby-20261125-010203', 2), snapshotRun('sst2-adamix-20261125-020304-2', 2)],
    });
    assert.deepEqual(runLabels(store.runs), ['sst2-houlsby', 'sst2-adamix']);
    store.applySnapshot({
      type: 'snapshot',
      mode: 'compare',
      runs: [snapshotRun('x-20261125-010203', 2), snapshotRun('x-20261125-020304', 2)],
    });
    assert.deepEqual(runLabels(store.runs), ['x-20261125-010203', 'x-20261125-020304']);
  });
});

describe('dashboard messages are validated on arrival', () => {
  test('well-formed host messages pass; malformed ones are refused with the path of the problem', () => {
    assert.ok(parseHostToDashboard({ type: 'snapshot', mode: 'run', runs: [snapshotRun('a', 3)] }).ok);
    const bad = [
      [null, /message: expected an object/],
      [{ type: 'explode' }, /message\.type/],
      [
        { type: 'snapshot', mode: 'run', runs: [{ ...snapshotRun('a', 3), dir: 7 }] },
        /snapshot\.runs\[0\]\.dir: expected a string/,
      ],
      [
        { type: 'append', dir: '/r', train: { ...snapshotRun('a', 3).train, loss: [1] }, evals: [] },
        /append\.train\.loss: expected 3 values/,
      ],
      [
        { type: 'append', dir: '/r', train: { ...snapshotRun('a', 3).train, step: [3, 2, 1] }, evals: [] },
        /steps must ascend/,
      ],
      [
        { type: 'runUpdate', dir: '/r', status: { state: 'exploded', step: 1, totalSteps: 1, followed: true } },
        /runUpdate\.status\.state/,
      ],
      [{ type: 'runUpdate', dir: '/r', placement: { method: 'houlsby' } }, /runUpdate\.placement\.layers/],
    ] as const;
    for (const [message, error] of bad) {
      const parsed = parseHostToDashboard(message);
      assert.equal(parsed.ok, false, JSON.stringify(message)?.slice(0, 80));
      if (!parsed.ok) assert.match(parsed.error, error);
    }
  });

  test('webview messages: ready, actions on a run, errors; anything else is refused', () => {
    assert.deepEqual(parseDashboardToHost({ type: 'ready' }), { ok: true, value: { type: 'ready' } });
    assert.deepEqual(parseDashboardToHost({ type: 'action', action: 'stop', dir: '/r', extra: 1 }), {
      ok: true,
      value: { type: 'action', action: 'stop', dir: '/r' },
    });
    assert.equal(parseDashboardToHost({ type: 'action', action: 'rm -rf', dir: '/r' }).ok, false);
    assert.equal(parseDashboardToHost({ type: 'action', action: 'stop' }).ok, false);
    assert.equal(parseDashboardToHost('ready').ok, false);
  });

  test("saved webview state (the serializer's input) is checked too", () => {
    assert.ok(
      parseDashboardState({
        version: 1,
        runDirs: ['/r'],
        mode: 'run',
        ui: { smoothing: 0.6, logScale: true, zoom: [1, 2] },
      }).ok,
    );
    assert.equal(parseDashboardState({ version: 1, runDirs: [], mode: 'run' }).ok, false);
    assert.equal(parseDashboardState(undefined).ok, false);
    assert.equal(parseDashboardState({ version: 2, runDirs: ['/r'], mode: 'run' }).ok, false);
  });
});
