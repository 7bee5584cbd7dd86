/**
 * Hugging Face PEFT export and import (src/core/checkpoint/hf-peft.ts, `peft-lab export --format
 * peft`, `peft-lab import`): tiny LoRA runs trained in-process on the cpu backend, exported with
 * PEFT's names, config fields and modules_to_save, read back and evaluated to the same metrics;
 * bottleneck methods refused with the reason; scripts/check-peft-export.py rebuilds what PEFT saves.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evaluateCheckpoint, train } from '../../src/core/train/trainer';
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, exportPeft, importPeft } from '../../src/core/checkpoint/hf-peft';
import { readWeightMap } from '../../src/core/checkpoint/run-folder';
import { serializeSafetensors, type TensorToWrite } from '../../src/core/checkpoint/safetensors';
import { CheckpointError, ConfigError } from '../../src/core/errors';
import { tinyConfig, writeTrainingData } from './helpers/tiny-experiment';
import { rejection } from './helpers/runs';
import { readJsonObject } from './helpers/json';
import { runCli } from './helpers/run-cli';

const REPO = path.resolve(__dirname, '..', '..');
const CHECKER = path.join(REPO, 'scripts', 'check-peft-export.py');
const PYTHON = '/usr/bin/python3';
const LAYERS = 2;
const HIDDEN = 16;
const INTERMEDIATE = 32;

let root: string;
let folder: string;

before(() => {
  delete process.env.PEFT_LAB_BACKEND;
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-hf-peft-'));
  folder = path.join(root, 'exp');
  fs.mkdirSync(folder);
  writeTrainingData(path.join(folder, 'train.jsonl'), 80);
});

after(() => fs.rmSync(root, { recursive: true, force: true }));

function configFor(name: string, method: object): string {
  const base = tinyConfig({ name, method }) as { model: { scratch: object }; training: object };
  const config = {
    ...base,
    model: { scratch: { ...base.model.scratch, layers: LAYERS, hiddenSize: HIDDEN, intermediateSize: INTERMEDIATE } },
    training: { ...base.training, epochs: 1, seed: 5 },
    output: { runsDir: path.join(root, 'runs') },
  };
  const file = path.join(folder, `${name}.peft.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const runs = new Map<string, Promise<{ configFile: string; checkpoint: string }>>();
function trained(name: string, method: object) {
  if (!runs.has(name)) {
    runs.set(
      name,
      (async () => {
        const configFile = configFor(name, method);
        const finished = await train(configFile, {});
        assert.ok(finished.bestCheckpoint);
        return { configFile, checkpoint: finished.bestCheckpoint };
      })(),
    );
  }
  return runs.get(name)!;
}

let outputs = 0;
const fresh = (label: string) => path.join(root, 'out', `${label}-${++outputs}`);
const LORA = { type: 'lora', rank: 2, alpha: 6, targets: ['query', 'value'] };
const LORA_WIDE = {
  type: 'lora',
  rank: 3,
  alpha: 3,
  targets: ['query', 'key', 'intermediate', 'output'],
  leaveOut: [0],
};

describe('export --format peft', () => {
  test('adapter_config.json as PEFT writes it: LORA, SEQ_CLS, r, alpha, targets, the head as modules_to_save', async () => {
    const run = await trained('lora', LORA);
    const result = exportPeft(run.checkpoint, { out: fresh('lora') });
    assert.deepEqual(result.files, [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE]);
    const text = fs.readFileSync(path.join(result.dir, PEFT_CONFIG_FILE), 'utf8');
    const config = JSON.parse(text);
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.task_type, 'SEQ_CLS');
    assert.equal(config.r, 2);
    assert.equal(config.lora_alpha, 6);
    assert.match(text, /"lora_dropout": 0\.0,/, 'a float, as Python writes it');
    assert.equal(config.fan_in_fan_out, false);
    assert.equal(config.bias, 'none');
    assert.deepEqual(config.target_modules, ['query', 'value']);
    assert.deepEqual(config.modules_to_save, ['classifier', 'pooler']);
    assert.deepEqual(Object.keys(config), Object.keys(config).sort(), 'sort_keys=True');
    const weights = readWeightMap(path.join(result.dir, PEFT_WEIGHTS_FILE));
    const shapes = Object.fromEntries([...weights].map(([k, w]) => [k, w.shape]));
    assert.deepEqual(shapes['base_model.model.bert.encoder.layer.1.attention.self.query.lora_A.weight'], [2, HIDDEN]);
    assert.deepEqual(shapes['base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight'], [HIDDEN, 2]);
    assert.deepEqual(shapes['base_model.model.bert.pooler.dense.weight'], [HIDDEN, HIDDEN]);
    assert.deepEqual(shapes['base_model.model.classifier.weight'], [2, HIDDEN]);
    assert.equal(weights.size, LAYERS * 2 * 2 + 4);
    assert.equal(result.loraTensors, 8);
  });

  test('a left-out layer and output.dense give full module names (output.dense alone would also match attention.output.dense)', async () => {
    const run = await trained('lora-wide', LORA_WIDE);
    const config = readJsonObject(path.join(exportPeft(run.checkpoint, { out: fresh('wide') }).dir, PEFT_CONFIG_FILE));
    assert.deepEqual(config.target_modules, [
      'bert.encoder.layer.1.attention.self.query',
      'bert.encoder.layer.1.attention.self.key',
      'bert.encoder.layer.1.intermediate.dense',
      'bert.encoder.layer.1.output.dense',
    ]);
  });

  test('bottleneck methods are refused with the reason and pointed to --format adapterhub', async () => {
    const run = await trained('houlsby', { type: 'houlsby', bottleneck: 4 });
    const err = assert.throws(
      () => exportPeft(run.checkpoint, { out: fresh('houlsby') }),
      (e: unknown) => {
        assert.ok(e instanceof CheckpointError);
        assert.match(e.message, /method 'houlsby', a bottleneck adapter: Hugging Face PEFT has no bottleneck adapters/);
        assert.match(e.message, /--format adapterhub/);
        return true;
      },
    );
    void err;
  });
});

describe('import of a PEFT folder', () => {
  test('round trip: the imported checkpoint scores exactly as the original', async () => {
    for (const [name, method] of [
      ['lora', LORA],
      ['lora-wide', LORA_WIDE],
    ] as const) {
      const run = await trained(name, method);
      const exported = exportPeft(run.checkpoint, { out: fresh(`rt-${name}`) });
      const imported = await importPeft(exported.dir, { config: run.configFile, out: fresh(`import-${name}`) });
      assert.equal(imported.method.type, 'lora');
      const m = imported.method as Extract<typeof imported.method, { type: 'lora' }>;
      assert.deepEqual(
        [m.rank, m.alpha, m.targets, m.leaveOut],
        [method.rank, method.alpha, method.targets, 'leaveOut' in method ? method.leaveOut : []],
      );
      const original = await evaluateCheckpoint(run.checkpoint, 'validation');
      const back = await evaluateCheckpoint(imported.checkpointDir, 'validation');
      assert.deepEqual(back.metrics, original.metrics, name);
      assert.deepEqual(
        readWeightMap(path.join(imported.checkpointDir, 'weights.safetensors')),
        readWeightMap(path.join(run.checkpoint, 'weights.safetensors')),
        `${name}: the same trainable weights`,
      );
    }
  });

  test('refuses what it cannot compute, naming the file and field', async () => {
    const run = await trained('lora', LORA);
    const dir = exportPeft(run.checkpoint, { out: fresh('bad') }).dir;
    const configFile = path.join(dir, PEFT_CONFIG_FILE);
    const good = readJsonObject(configFile);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ peft_type: 'IA3' }, /adapter_config\.json.*peft_type.*PEFT Lab imports LoRA adapters/],
      [{ use_dora: true }, /use_dora.*DoRA/],
      [
        { target_modules: ['query', 'dense'] },
        /target_modules.*matches bert\.encoder\.layer\.0\.attention\.output\.dense/,
      ],
    ];
    for (const [change, error] of cases) {
      fs.writeFileSync(configFile, JSON.stringify({ ...good, ...change }));
      const err = await rejection(importPeft(dir, { config: run.configFile, out: fresh('never') }));
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(`${(err as ConfigError).file} ${err.message}`, error);
    }
    fs.writeFileSync(configFile, JSON.stringify(good));
    const weights = readWeightMap(path.join(dir, PEFT_WEIGHTS_FILE));
    weights.delete('base_model.model.classifier.weight');
    const tensors: Record<string, TensorToWrite> = {};
    for (const [k, w] of weights) tensors[k] = { shape: w.shape, data: w.data };
    fs.writeFileSync(path.join(dir, PEFT_WEIGHTS_FILE), serializeSafetensors(tensors));
    const missing = await rejection(importPeft(dir, { config: run.configFile, out: fresh('never') }));
    assert.match(
      missing.message,
      /has no base_model\.model\.classifier\.weight: PEFT Lab evaluates with the classification head/,
    );
  });
});

const pythonProblem = (() => {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} does not exist`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : `${PYTHON} cannot import torch`;
})();

describe('scripts/check-peft-export.py', { skip: pythonProblem }, () => {
  const check = (dir: string, ...extra: string[]) =>
    spawnSync(
      PYTHON,
      [
        CHECKER,
        dir,
        '--layers',
        String(LAYERS),
        '--hidden',
        String(HIDDEN),
        '--intermediate-size',
        String(INTERMEDIATE),
        '--labels',
        '2',
        ...extra,
      ],
      { encoding: 'utf8' },
    );

  test('finds exactly the tensors PEFT would save for both exports', async () => {
    for (const [name, method] of [
      ['lora', LORA],
      ['lora-wide', LORA_WIDE],
    ] as const) {
      const result = check(exportPeft((await trained(name, method)).checkpoint, { out: fresh(`py-${name}`) }).dir);
      assert.equal(result.status, 0, `${name}: ${result.stderr}`);
      assert.match(result.stdout, /^ok: \d+ tensors as PEFT saves them/);
    }
  });

  test('reports a renamed tensor and a wrong layer count', async () => {
    const dir = exportPeft((await trained('lora', LORA)).checkpoint, { out: fresh('py-bad') }).dir;
    const weights = readWeightMap(path.join(dir, PEFT_WEIGHTS_FILE));
    const from = 'base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight';
    const tensors: Record<string, TensorToWrite> = {};
    for (const [k, w] of weights)
      tensors[k === from ? from.replace('lora_A.weight', 'lora_A.default.weight') : k] = {
        shape: w.shape,
        data: w.data,
      };
    fs.writeFileSync(path.join(dir, PEFT_WEIGHTS_FILE), serializeSafetensors(tensors));
    const result = check(dir);
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      /missing in adapter_model\.safetensors: base_model\.model\.bert\.encoder\.layer\.0\.attention\.self\.query\.lora_A\.weight \[2, 16\]/,
    );
    assert.match(result.stderr, /unexpected in adapter_model\.safetensors: .*lora_A\.default\.weight/);
    assert.equal(check(dir, '--layers', '3').status, 1);
  });
});

describe('peft-lab export --format peft and import', () => {
  test('export writes the folder and says how to load it; import detects the format; evaluate scores it', async () => {
    const run = await trained('lora', LORA);
    const out = path.join(root, 'cli-peft');
    const exported = await runCli(['export', run.checkpoint, '--format', 'peft', '--out', out], root);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(
      exported.stdout,
      /as a Hugging Face PEFT adapter to cli-peft: adapter_config\.json, adapter_model\.safetensors \(8 LoRA tensors, 4 in modules_to_save\)/,
    );
    assert.match(exported.stdout, /peft\.PeftModel\.from_pretrained/);
    const back = path.join(root, 'cli-peft-import');
    const imported = await runCli(['import', out, '--base', run.configFile, '--out', back], root);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /\(Hugging Face PEFT: lora, rank 2, alpha 6 on query, value\)/);
    const evaluated = await runCli(['evaluate', path.join(back, 'checkpoints', 'step-0')], root);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const houlsby = await trained('houlsby', { type: 'houlsby', bottleneck: 4 });
    const refused = await runCli(
      ['export', houlsby.checkpoint, '--format', 'peft', '--out', path.join(root, 'never')],
      root,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error: .*Hugging Face PEFT has no bottleneck adapters.*--format adapterhub/m);
  });
});
