/**
 * AdapterHub export and import for every encoder family: a tiny run on each fixture checkpoint
 * (test/fixtures/tiny-<family>) is exported with the `adapters` library's parameter names for its
 * model type, checked by scripts/check-adapterhub-export.py (an independent reading of the library's
 * layout), imported back onto the same base and evaluated: LoRA gives exactly the original's
 * numbers; a bottleneck adapter those of the original with the base model's LayerNorms (an
 * AdapterHub adapter cannot carry the LayerNorms PEFT Lab trains).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evaluateCheckpoint, train } from '../../src/core/train/trainer';
import { loadBaseModel } from '../../src/core/train/session';
import { loadConfig } from '../../src/core/config/load';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  HEAD_CONFIG_FILE,
  exportAdapterHub,
} from '../../src/core/checkpoint/adapterhub';
import { importAdapterHub } from '../../src/core/checkpoint/adapterhub-import';
import { readWeightMap } from '../../src/core/checkpoint/run-folder';
import { serializeSafetensors, type TensorToWrite } from '../../src/core/checkpoint/safetensors';
import { ConfigError } from '../../src/core/errors';
import type { EvaluatedMessage } from '../../src/protocol/worker';
import { readJsonObject } from './helpers/json';
import { writeTrainingData } from './helpers/tiny-experiment';

const REPO = path.resolve(__dirname, '..', '..');
const FIXTURES = path.join(REPO, 'test', 'fixtures');
const CHECKER = path.join(REPO, 'scripts', 'check-adapterhub-export.py');
const PYTHON = '/usr/bin/python3';
const HIDDEN = 16;
const INTERMEDIATE = 32;

/** Each family's adapter and LoRA module names in the library, for layer 1 (what the library's model classes hold). */
const EXPECTED = {
  roberta: {
    layers: 2,
    modelClass: 'RobertaAdapterModel',
    attention: 'roberta.encoder.layer.1.attention.output',
    ffn: 'roberta.encoder.layer.1.output',
    query: 'roberta.encoder.layer.1.attention.self.query',
    intermediate: 'roberta.encoder.layer.1.intermediate.dense',
  },
  'xlm-roberta': {
    layers: 2,
    modelClass: 'XLMRobertaAdapterModel',
    attention: 'roberta.encoder.layer.1.attention.output',
    ffn: 'roberta.encoder.layer.1.output',
    query: 'roberta.encoder.layer.1.attention.self.query',
    intermediate: 'roberta.encoder.layer.1.intermediate.dense',
  },
  distilbert: {
    layers: 2,
    modelClass: 'DistilBertAdapterModel',
    attention: 'distilbert.transformer.layer.1.attention_adapters',
    ffn: 'distilbert.transformer.layer.1.output_adapters',
    query: 'distilbert.transformer.layer.1.attention.q_lin',
    intermediate: 'distilbert.transformer.layer.1.ffn.lin1',
  },
  electra: {
    layers: 2,
    modelClass: 'ElectraAdapterModel',
    attention: 'electra.encoder.layer.1.attention.output',
    ffn: 'electra.encoder.layer.1.output',
    query: 'electra.encoder.layer.1.attention.self.query',
    intermediate: 'electra.encoder.layer.1.intermediate.dense',
  },
  modernbert: {
    layers: 3,
    modelClass: 'ModernBertModel',
    attention: 'model.layers.1.attention_adapters',
    ffn: 'model.layers.1.output_adapters',
    query: 'model.layers.1.attn.Wqkv',
    intermediate: 'model.layers.1.mlp.Wi',
  },
} as const;
type Family = keyof typeof EXPECTED;

let root: string;
before(() => {
  delete process.env.PEFT_LAB_BACKEND;
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-adapterhub-families-'));
  writeTrainingData(path.join(root, 'train.jsonl'), 40);
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

function configFor(family: Family, name: string, method: object): string {
  const config = {
    name,
    model: { path: path.join(FIXTURES, `tiny-${family}`) },
    task: { type: 'classification' },
    data: { train: path.join(root, 'train.jsonl'), maxLength: 16, validationSplit: 0.25 },
    method,
    training: {
      epochs: 1,
      maxSteps: 3,
      batchSize: 8,
      learningRate: 0.01,
      seed: 3,
      evalEvery: 'epoch',
      backend: 'cpu',
      logEvery: 1,
    },
    output: { runsDir: path.join(root, 'runs') },
  };
  const file = path.join(root, `${name}.peft.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

async function trained(family: Family, name: string, method: object) {
  const configFile = configFor(family, name, method);
  const finished = await train(configFile, {});
  assert.ok(finished.bestCheckpoint);
  return { configFile, checkpoint: finished.bestCheckpoint };
}

function assertSameMetrics(actual: EvaluatedMessage, expected: EvaluatedMessage, tolerance = 1e-6): void {
  for (const [name, value] of Object.entries(expected.metrics)) {
    assert.ok(
      Math.abs(actual.metrics[name]! - value) <= tolerance,
      `${name}: imported ${actual.metrics[name]}, original ${value}`,
    );
  }
}

/** A copy of the run whose encoder LayerNorms hold the base model's values: what the library computes with the adapter. */
async function withBaseLayerNorms(checkpoint: string, configFile: string): Promise<string> {
  const runDir = path.dirname(path.dirname(checkpoint));
  const copy = path.join(root, 'base-ln', path.basename(runDir));
  fs.cpSync(runDir, copy, { recursive: true });
  const copied = path.join(copy, 'checkpoints', path.basename(checkpoint));
  const base = (await loadBaseModel(loadConfig(configFile))).weights;
  const weights = readWeightMap(path.join(copied, 'weights.safetensors'));
  for (const name of weights.keys()) if (name.includes('LayerNorm')) weights.set(name, base.get(name)!);
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, w] of weights) tensors[name] = { shape: w.shape, data: w.data };
  fs.writeFileSync(path.join(copied, 'weights.safetensors'), serializeSafetensors(tensors));
  return copied;
}

function checker(dir: string, layers: number) {
  return spawnSync(PYTHON, [CHECKER, dir, '--layers', String(layers), '--intermediate-size', String(INTERMEDIATE)], {
    encoding: 'utf8',
  });
}
const pythonMissing = fs.existsSync(PYTHON) ? false : `${PYTHON} is not installed`;

let exports = 0;
for (const family of Object.keys(EXPECTED) as Family[]) {
  const expected = EXPECTED[family];
  describe(`AdapterHub round trip on ${family}`, () => {
    test('Houlsby: the library names for the type, accepted by the checker, imported back to the same evaluation', async () => {
      const run = await trained(family, `${family}-houlsby`, { type: 'houlsby', bottleneck: 4 });
      const exported = exportAdapterHub(run.checkpoint, { out: path.join(root, 'exports', `e${++exports}`) });
      const full = readJsonObject(path.join(exported.dir, ADAPTER_CONFIG_FILE));
      assert.equal(full.model_type, family);
      assert.equal(full.model_class, expected.modelClass);
      assert.equal(readJsonObject(path.join(exported.dir, HEAD_CONFIG_FILE)).model_type, family);
      const names = [...readWeightMap(path.join(exported.dir, ADAPTER_WEIGHTS_FILE)).keys()];
      assert.equal(names.length, expected.layers * 2 * 4);
      const adapter = `${expected.attention}.adapters.${family}-houlsby`;
      assert.ok(
        names.includes(`${adapter}.adapter_down.0.weight`),
        `${adapter}.adapter_down.0.weight in ${names.slice(0, 4).join(', ')}`,
      );
      assert.ok(names.includes(`${expected.ffn}.adapters.${family}-houlsby.adapter_up.bias`));
      if (!pythonMissing) {
        const check = checker(exported.dir, expected.layers);
        assert.equal(check.status, 0, check.stdout + check.stderr);
      }
      const imported = await importAdapterHub(exported.dir, {
        config: run.configFile,
        out: path.join(root, 'imports', `i${exports}`),
      });
      assert.equal(imported.method.type, 'houlsby');
      const original = await evaluateCheckpoint(await withBaseLayerNorms(run.checkpoint, run.configFile), 'validation');
      assertSameMetrics(await evaluateCheckpoint(imported.checkpointDir, 'validation'), original);
    });

    test('LoRA on query, key, value and intermediate: the library names and shapes, imported back exactly', async () => {
      const run = await trained(family, `${family}-lora`, {
        type: 'lora',
        rank: 2,
        alpha: 4,
        targets: ['query', 'key', 'value', 'intermediate'],
      });
      const exported = exportAdapterHub(run.checkpoint, { out: path.join(root, 'exports', `e${++exports}`) });
      const weights = readWeightMap(path.join(exported.dir, ADAPTER_WEIGHTS_FILE));
      const a = weights.get(`${expected.query}.loras.${family}-lora.lora_A`);
      const b = weights.get(`${expected.query}.loras.${family}-lora.lora_B`);
      assert.ok(a && b, `LoRA on ${expected.query} among ${[...weights.keys()].slice(0, 6).join(', ')}`);
      // ModernBERT: one merged Wqkv LoRA, q, k and v stacked; elsewhere one per projection
      assert.deepEqual(
        [a.shape, b.shape],
        family === 'modernbert'
          ? [
              [6, HIDDEN],
              [3 * HIDDEN, 2],
            ]
          : [
              [2, HIDDEN],
              [HIDDEN, 2],
            ],
      );
      const wide = family === 'modernbert' ? 2 * INTERMEDIATE : INTERMEDIATE;
      assert.deepEqual(weights.get(`${expected.intermediate}.loras.${family}-lora.lora_B`)?.shape, [wide, 2]);
      if (!pythonMissing) {
        const check = checker(exported.dir, expected.layers);
        assert.equal(check.status, 0, check.stdout + check.stderr);
      }
      const imported = await importAdapterHub(exported.dir, {
        config: run.configFile,
        out: path.join(root, 'imports', `i${exports}`),
      });
      assert.deepEqual(imported.method, {
        type: 'lora',
        rank: 2,
        alpha: 4,
        targets: ['query', 'key', 'value', 'intermediate'],
        leaveOut: [],
      });
      assertSameMetrics(
        await evaluateCheckpoint(imported.checkpointDir, 'validation'),
        await evaluateCheckpoint(run.checkpoint, 'validation'),
        0,
      );
    });
  });
}

test('an adapter of one family is refused on a base model of another, naming both', async () => {
  const run = await trained('roberta', 'roberta-for-distilbert', { type: 'houlsby', bottleneck: 4 });
  const exported = exportAdapterHub(run.checkpoint, { out: path.join(root, 'exports', 'cross') });
  const distilConfig = configFor('distilbert', 'distil-base', { type: 'houlsby', bottleneck: 4 });
  await assert.rejects(
    importAdapterHub(exported.dir, { config: distilConfig, out: path.join(root, 'imports', 'cross') }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /adapter_config\.json/);
      assert.match(
        err.message,
        /trained on a RoBERTa model, but the config's base model is DistilBERT \(model_type 'distilbert'\)/,
      );
      return true;
    },
  );
});
