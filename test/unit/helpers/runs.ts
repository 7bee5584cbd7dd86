/** Running trainings in-process and reading what they wrote, for the trainer and pretraining suites. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunOptions } from '../../../src/core/train/loop';
import type { FinishedMessage, WorkerMessage } from '../../../src/protocol/worker';

/** A fresh folder under `parent` holding `files` and `config` as `configName`; returns the config file. */
export function writeExperiment(
  parent: string,
  files: Record<string, string>,
  config: object,
  configName: string,
): string {
  const folder = fs.mkdtempSync(path.join(parent, 'exp-'));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(folder, name), content);
  const file = path.join(folder, configName);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export interface Outcome {
  result: FinishedMessage;
  messages: WorkerMessage[];
}

/** Runs `entry` (train or pretrain) and records every message it sends. */
export async function runRecorded(
  entry: (file: string, options: RunOptions) => Promise<FinishedMessage>,
  configFile: string,
  options: RunOptions = {},
): Promise<Outcome> {
  const messages: WorkerMessage[] = [];
  const result = await entry(configFile, {
    ...options,
    onMessage: (m) => {
      messages.push(m);
      options.onMessage?.(m);
    },
  });
  return { result, messages };
}

export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Error, `rejected with a non-Error: ${String(err)}`);
    return err;
  }
  assert.fail('expected the promise to reject');
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

export interface MetricsLine {
  kind: 'train' | 'eval';
  split?: string;
  step: number;
  epoch?: number;
  loss?: number;
  learningRate?: number;
  [key: string]: unknown;
}

export function metricsLines(runDir: string): MetricsLine[] {
  return fs
    .readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as MetricsLine);
}

export function ofType<K extends WorkerMessage['type']>(
  messages: WorkerMessage[],
  type: K,
): Extract<WorkerMessage, { type: K }>[] {
  return messages.filter((m): m is Extract<WorkerMessage, { type: K }> => m.type === type);
}
