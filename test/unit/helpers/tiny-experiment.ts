/** A config and data file for a 1-layer random encoder that trains in about a second on the cpu backend. */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const TINY_VOCAB = path.resolve(__dirname, '..', '..', 'fixtures', 'tiny-bert', 'vocab.txt');

/** A valid config; `overrides` replace whole top-level fields. */
export function tinyConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'tiny',
    model: {
      scratch: { vocab: TINY_VOCAB, layers: 1, hiddenSize: 16, heads: 2, intermediateSize: 32, maxPositions: 64 },
    },
    task: { type: 'classification' },
    data: { train: 'train.jsonl', maxLength: 32 },
    method: { type: 'houlsby', bottleneck: 4 },
    training: { epochs: 2, batchSize: 8, evalEvery: 'epoch', backend: 'cpu', logEvery: 1 },
    ...overrides,
  };
}

/** Alternating positive and negative one-line reviews, built only from words in the tiny vocabulary's neighbourhood. */
export function writeTrainingData(file: string, lines = 40): void {
  const words = {
    pos: ['good', 'great', 'excellent', 'fun', 'loved'],
    neg: ['bad', 'terrible', 'awful', 'boring', 'hated'],
  };
  const rows = Array.from({ length: lines }, (_, i) => {
    const label = i % 2 === 0 ? 'pos' : 'neg';
    return JSON.stringify({ text: `this movie was really ${words[label][i % 5]}`, label });
  });
  fs.writeFileSync(file, `${rows.join('\n')}\n`);
}

/** A fresh folder under `parent` holding the tiny config (with `training` overrides) and its data. */
export function tinyExperiment(parent: string, training: Record<string, unknown> = {}): string {
  const folder = fs.mkdtempSync(path.join(parent, 'exp-'));
  writeTrainingData(path.join(folder, 'train.jsonl'));
  const config = tinyConfig();
  const file = path.join(folder, 'tiny.peft.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ ...config, training: { ...(config.training as object), ...training } }, null, 2),
  );
  return file;
}
