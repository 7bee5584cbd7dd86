/**
 * Fake run folders laid out exactly as RunFolder writes them (status.json, config.json,
 * metrics.jsonl, placement.json, checkpoints/step-N/, best), for the Runs sidebar's tests and
 * bench/runs-tree.ts. Weights are a few bytes: the sidebar only looks at their presence and size.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Placement } from '../../../src/protocol/worker';

export interface FakeRun {
  name?: string;
  state?: 'running' | 'finished' | 'failed' | 'stopped';
  configFile: string;
  method?: string;
  /** ISO time; default 2026-11-25T00:00:00Z plus `minute` minutes. */
  started?: string;
  minute?: number;
  durationMs?: number;
  pid?: number;
  step?: number;
  totalSteps?: number;
  /** Validation accuracy at each checkpoint step. */
  checkpoints?: Record<number, number>;
  bestStep?: number;
  trainLines?: number;
  testAccuracy?: number;
  data?: { train?: string; validation?: string; test?: string };
  error?: string;
  reason?: string;
  backend?: string;
  weightsBytes?: number;
}

export function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

export function placementOf(method: string): Placement {
  return {
    method,
    layers: 2,
    hiddenSize: 128,
    heads: 2,
    intermediateSize: 512,
    baseParams: 4_385_920,
    trainableParams: 100_738,
    trainableByGroup: { adapter: 82_944, layerNorm: 1_024, pooler: 16_512, head: 258 },
    leftOut: [],
    sites: [0, 1].map((layer) => ({
      layer,
      site: 'ffn' as const,
      kind: method === 'adamix' ? ('adamix' as const) : ('bottleneck' as const),
      shapes: { down: [128, 32], up: [32, 128] },
      bottleneck: 32,
      activation: 'gelu',
      experts: method === 'adamix' ? { down: 4, up: 1 } : undefined,
      trainableParams: 20_736,
      inferenceParams: 8_352,
    })),
  };
}

/** Writes a run folder `<root>/<name>`; returns its path. */
export function makeRun(root: string, run: FakeRun): string {
  const minute = run.minute ?? 0;
  const started = run.started ?? new Date(Date.UTC(2026, 10, 25, 0, minute)).toISOString();
  const name =
    run.name ??
    `${path.basename(run.configFile, '.peft.json')}-${started
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, '')
      .replace('T', '-')}`;
  const dir = path.join(root, name);
  const method = run.method ?? 'houlsby';
  const state = run.state ?? 'finished';
  const checkpoints = run.checkpoints ?? { 10: 0.6, 20: 0.75 };
  const steps = Object.keys(checkpoints)
    .map(Number)
    .sort((a, b) => a - b);
  const bestStep =
    run.bestStep ??
    steps.reduce<number | undefined>(
      (best, s) => (best === undefined || checkpoints[s]! > checkpoints[best]! ? s : best),
      undefined,
    );
  const totalSteps = run.totalSteps ?? 20;
  fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  writeJson(path.join(dir, 'config.json'), {
    name: path.basename(run.configFile, '.peft.json'),
    model: { scratch: { layers: 2, hiddenSize: 128 } },
    task: { type: 'classification', metric: 'accuracy' },
    data: {
      train: run.data?.train ?? '/data/train.jsonl',
      validation: run.data?.validation,
      test: run.data?.test,
      validationSplit: 0.1,
    },
    method:
      method === 'adamix'
        ? { type: 'adamix', bottleneck: 32, experts: 4, share: 'up', sites: ['ffn'], activation: 'gelu' }
        : { type: method, bottleneck: 32, sites: ['attention', 'ffn'], activation: 'gelu' },
    training: { epochs: 2, batchSize: 16 },
    output: { runsDir: root },
    sourceFile: run.configFile,
  });
  writeJson(path.join(dir, 'placement.json'), placementOf(method));
  const lines: string[] = [];
  const trainLines = run.trainLines ?? totalSteps;
  const evaluated = new Set<number>();
  for (let i = 1; i <= trainLines; i++) {
    const step = Math.max(1, Math.round((i * (run.step ?? totalSteps)) / trainLines));
    lines.push(
      JSON.stringify({
        kind: 'train',
        step,
        epoch: 0,
        loss: 0.7 - step * 0.001,
        learningRate: 1e-3,
        examplesPerSecond: 50,
        elapsedMs: step * 100,
      }),
    );
    if (step in checkpoints && !evaluated.has(step)) {
      evaluated.add(step);
      lines.push(
        JSON.stringify({
          kind: 'eval',
          split: 'validation',
          step,
          epoch: 0,
          accuracy: checkpoints[step],
          loss: 0.5,
          isBest: step === bestStep,
        }),
      );
    }
  }
  if (run.testAccuracy !== undefined && bestStep !== undefined)
    lines.push(JSON.stringify({ kind: 'eval', split: 'test', step: bestStep, accuracy: run.testAccuracy, loss: 0.45 }));
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.map((l) => l + '\n').join(''));
  for (const s of steps) {
    const ck = path.join(dir, 'checkpoints', `step-${s}`);
    fs.mkdirSync(ck, { recursive: true });
    fs.writeFileSync(path.join(ck, 'weights.safetensors'), Buffer.alloc(run.weightsBytes ?? 2048, 1));
    fs.writeFileSync(path.join(ck, 'optimizer.safetensors'), Buffer.alloc((run.weightsBytes ?? 2048) * 2, 1));
    writeJson(path.join(ck, 'checkpoint.json'), {
      step: s,
      epoch: 0,
      method,
      labelNames: ['neg', 'pos'],
      metrics: { accuracy: checkpoints[s], loss: 0.5 },
      trainer: { step: s },
      created: started,
    });
  }
  if (bestStep !== undefined) fs.writeFileSync(path.join(dir, 'best'), `step-${bestStep}\n`);
  const ended =
    state === 'running' ? undefined : new Date(Date.parse(started) + (run.durationMs ?? 72_000)).toISOString();
  writeJson(path.join(dir, 'status.json'), {
    state,
    name: path.basename(run.configFile, '.peft.json'),
    method,
    configFile: run.configFile,
    backend: run.backend ?? 'cpu (TensorFlow.js, plain JavaScript)',
    pid: run.pid ?? process.pid,
    started,
    ended,
    step: run.step ?? (state === 'running' ? Math.floor(totalSteps / 2) : totalSteps),
    totalSteps,
    bestCheckpoint: bestStep !== undefined ? path.join(dir, 'checkpoints', `step-${bestStep}`) : undefined,
    bestMetrics:
      state === 'running' || bestStep === undefined ? undefined : { accuracy: checkpoints[bestStep], loss: 0.5 },
    error: run.error ? { name: 'Error', message: run.error } : undefined,
    reason: run.reason,
  });
  return dir;
}

export function appendMetric(dir: string, record: Record<string, unknown>): void {
  fs.appendFileSync(path.join(dir, 'metrics.jsonl'), JSON.stringify(record) + '\n');
}
