/**
 * AdapterHub export and import (src/core/checkpoint/adapterhub*.ts, `peft-lab export|import`):
 * tiny runs trained in-process on the cpu backend, exported, checked against the library's names,
 * shapes and config fields, imported back and evaluated. An AdapterHub adapter cannot carry the
 * encoder LayerNorms PEFT Lab trains, so an imported adapter is compared with its original whose
 * LayerNorms are reset to the base model's (what the library computes), LoRA and head-only exactly.
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
  HEAD_WEIGHTS_FILE,
  PyFloat,
  bottleneckFor,
  exportAdapterHub,
  pythonJson,
  reductionFactorFor,
} from '../../src/core/checkpoint/adapterhub';
import { importAdapterHub } from '../../src/core/checkpoint/adapterhub-import';
import { readWeightMap } from '../../src/core/checkpoint/run-folder';
import { serializeSafetensors, type TensorToWrite } from '../../src/core/checkpoint/safetensors';
import { CheckpointError, ConfigError } from '../../src/core/errors';
import type { WeightMap } from '../../src/core/model/bert-config';
import type { EvaluatedMessage } from '../../src/protocol/worker';
import { tinyConfig, writeTrainingData } from './helpers/tiny-experiment';
import { rejection } from './helpers/runs';
import { readJsonObject, type Json } from './helpers/json';
import { runCli } from './helpers/run-cli';

const REPO = path.resolve(__dirname, '..', '..');
const CHECKER = path.join(REPO, 'scripts', 'check-adapterhub-export.py');
const PYTHON = '/usr/bin/python3';
const LAYERS = 2;
const HIDDEN = 16;
const INTERMEDIATE = 32;

let root: string;
let folder: string;

before(() => {
  delete process.env.PEFT_LAB_BACKEND;
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-adapterhub-'));
  folder = path.join(root, 'exp');
  fs.mkdirSync(folder);
  writeTrainingData(path.join(folder, 'train.jsonl'), 80);
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

// ---- helpers -------------------------------------------------------------------------------------

/** A config file for the 2-layer tiny encoder with `method`; returns its path. */
function configFor(name: string, method: object, training: object = {}, task: object = {}): string {
  const base = tinyConfig({ name, method }) as { model: { scratch: object }; training: object; task: object };
  const config = {
    ...base,
    task: { ...base.task, ...task },
    model: { scratch: { ...base.model.scratch, layers: LAYERS, hiddenSize: HIDDEN, intermediateSize: INTERMEDIATE } },
    training: { ...base.training, epochs: 1, seed: 5, ...training },
    output: { runsDir: path.join(root, 'runs') },
  };
  const file = path.join(folder, `${name}.peft.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const runs = new Map<string, Promise<{ configFile: string; checkpoint: string }>>();

/** Trains `name` once (later calls share the run) and returns its config and best checkpoint. */
function trained(
  name: string,
  method: object,
  training: object = {},
  task: object = {},
): Promise<{ configFile: string; checkpoint: string }> {
  if (!runs.has(name)) {
    runs.set(
      name,
      (async () => {
        const configFile = configFor(name, method, training, task);
        const finished = await train(configFile, {});
        assert.ok(finished.bestCheckpoint, `${name} has a best checkpoint`);
        return { configFile, checkpoint: finished.bestCheckpoint };
      })(),
    );
  }
  return runs.get(name)!;
}

let exports = 0;
function exportTo(checkpoint: string, name?: string) {
  return exportAdapterHub(checkpoint, { out: path.join(root, 'exports', `export-${++exports}`), name });
}

let imports = 0;
function importFrom(dir: string, configFile: string) {
  return importAdapterHub(dir, { config: configFile, out: path.join(root, 'imports', `import-${++imports}`) });
}

function shapes(weights: WeightMap): Record<string, number[]> {
  return Object.fromEntries(
    [...weights].map(([name, w]) => [name, w.shape]).sort(([a], [b]) => String(a).localeCompare(String(b))),
  );
}

function writeWeights(file: string, weights: WeightMap): void {
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, w] of weights) tensors[name] = { shape: w.shape, data: w.data };
  fs.writeFileSync(file, serializeSafetensors(tensors));
}

/** A copy of the checkpoint's run whose encoder LayerNorms hold the base model's values: what the library computes. */
async function withBaseLayerNorms(checkpoint: string, configFile: string): Promise<string> {
  const runDir = path.dirname(path.dirname(checkpoint));
  const copy = path.join(root, 'base-ln', `${path.basename(runDir)}-${Math.random().toString(16).slice(2)}`);
  fs.cpSync(runDir, copy, { recursive: true });
  const copied = path.join(copy, 'checkpoints', path.basename(checkpoint));
  const base = (await loadBaseModel(loadConfig(configFile))).weights;
  const weights = readWeightMap(path.join(copied, 'weights.safetensors'));
  for (const name of weights.keys()) if (name.includes('LayerNorm')) weights.set(name, base.get(name)!);
  writeWeights(path.join(copied, 'weights.safetensors'), weights);
  return copied;
}

function assertSameMetrics(actual: EvaluatedMessage, expected: EvaluatedMessage, tolerance = 0): void {
  assert.deepEqual(Object.keys(actual.metrics).sort(), Object.keys(expected.metrics).sort());
  for (const [name, value] of Object.entries(expected.metrics)) {
    assert.ok(
      Math.abs(actual.metrics[name]! - value) <= tolerance,
      `${name}: imported ${actual.metrics[name]}, original ${value}`,
    );
  }
}

const BN_FIELDS = [
  'adapter_residual_before_ln',
  'cross_adapter',
  'dropout',
  'factorized_phm_W',
  'factorized_phm_rule',
  'hypercomplex_nonlinearity',
  'init_weights',
  'init_weights_seed',
  'inv_adapter',
  'inv_adapter_reduction_factor',
  'is_parallel',
  'learn_phm',
  'leave_out',
  'ln_after',
  'ln_before',
  'mh_adapter',
  'non_linearity',
  'original_ln_after',
  'original_ln_before',
  'output_adapter',
  'phm_bias',
  'phm_c_init',
  'phm_dim',
  'phm_init_range',
  'phm_layer',
  'phm_rank',
  'reduction_factor',
  'residual_before_ln',
  'scaling',
  'shared_W_phm',
  'shared_phm_rule',
  'stochastic_depth',
  'use_gating',
];

function bottleneckNames(
  name: string,
  sites: ('attention.output' | 'output')[],
  m: number,
  layers = [0, 1],
): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const layer of layers) {
    for (const module of sites) {
      const p = `bert.encoder.layer.${layer}.${module}.adapters.${name}`;
      Object.assign(out, {
        [`${p}.adapter_down.0.weight`]: [m, HIDDEN],
        [`${p}.adapter_down.0.bias`]: [m],
        [`${p}.adapter_up.weight`]: [HIDDEN, m],
        [`${p}.adapter_up.bias`]: [HIDDEN],
      });
    }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

// ---- the layout ----------------------------------------------------------------------------------

describe('layout rules', () => {
  test('reduction factors turn back into the same bottleneck under Python float floor division', () => {
    assert.equal(reductionFactorFor(768, 48), 16);
    assert.equal(bottleneckFor(768, 16), 48);
    assert.equal(bottleneckFor(16, 32), 1, 'at least 1, as the library');
    for (const d of [16, 100, 128, 300, 768, 1024]) {
      for (let m = 1; m < d; m++) assert.equal(bottleneckFor(d, reductionFactorFor(d, m)), m, `d ${d}, m ${m}`);
    }
  });

  test('JSON is written as Python json.dump(indent=2, sort_keys=True): floats stay floats', () => {
    const text = pythonJson({ b: new PyFloat(1), a: [], c: { z: null, y: 'é', x: [1, new PyFloat(0.5)] }, d: {} });
    assert.equal(
      text,
      '{\n  "a": [],\n  "b": 1.0,\n  "c": {\n    "x": [\n      1,\n      0.5\n    ],\n    "y": "\\u00e9",\n    "z": null\n  },\n  "d": {}\n}',
    );
  });
});

// ---- export ------------------------------------------------------------------------------------

describe('export of a Houlsby run', () => {
  let run: { configFile: string; checkpoint: string };
  let exported: ReturnType<typeof exportAdapterHub>;

  before(async () => {
    run = await trained('houlsby', { type: 'houlsby', bottleneck: 4 });
    exported = exportTo(run.checkpoint);
  });

  test('writes the four files save_adapter(with_head=True, use_safetensors=True) writes, and nothing else', () => {
    assert.deepEqual(
      fs.readdirSync(exported.dir).sort(),
      [ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE, HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE].sort(),
    );
    assert.equal(exported.name, 'houlsby');
    assert.deepEqual(
      fs.readdirSync(path.dirname(exported.dir)).filter((f) => f.includes('.tmp-')),
      [],
      'no staging folder left',
    );
  });

  test('adapter_config.json holds every BnConfig field with the Houlsby placement', () => {
    const full = readJsonObject(path.join(exported.dir, ADAPTER_CONFIG_FILE));
    assert.deepEqual(Object.keys(full).sort(), [
      'config',
      'hidden_size',
      'model_class',
      'model_name',
      'model_type',
      'name',
      'version',
    ]);
    assert.equal(full.hidden_size, HIDDEN);
    assert.equal(full.model_class, 'BertAdapterModel');
    assert.equal(full.model_type, 'bert');
    assert.equal(full.name, 'houlsby');
    assert.match(full.version, /^adapters\.1\.\d+\.\d+$/);
    assert.deepEqual(Object.keys(full.config).sort(), BN_FIELDS);
    const c = full.config;
    assert.deepEqual(
      {
        mh: c.mh_adapter,
        out: c.output_adapter,
        rf: c.reduction_factor,
        act: c.non_linearity,
        lnBefore: c.original_ln_before,
        lnAfter: c.original_ln_after,
        residual: c.residual_before_ln,
        parallel: c.is_parallel,
        init: c.init_weights,
        leaveOut: c.leave_out,
      },
      {
        mh: true,
        out: true,
        rf: 4,
        act: 'gelu',
        lnBefore: false,
        lnAfter: true,
        residual: true,
        parallel: false,
        init: 'bert',
        leaveOut: [],
      },
    );
    const text = fs.readFileSync(path.join(exported.dir, ADAPTER_CONFIG_FILE), 'utf8');
    assert.match(text, /"scaling": 1\.0,/, 'a float, which the library requires');
    assert.match(text, /^\{\n {2}"config": \{\n {4}"adapter_residual_before_ln": false,/, 'sorted keys, indent 2');
  });

  test('adapter.safetensors uses the library names and torch [out, in] shapes, with the trained values', () => {
    const weights = readWeightMap(path.join(exported.dir, ADAPTER_WEIGHTS_FILE));
    assert.deepEqual(shapes(weights), bottleneckNames('houlsby', ['attention.output', 'output'], 4));
    const original = readWeightMap(path.join(run.checkpoint, 'weights.safetensors'));
    assert.deepEqual(
      weights.get('bert.encoder.layer.1.attention.output.adapters.houlsby.adapter_down.0.weight')!.data,
      original.get('bert.encoder.layer.1.attention.output.adapter.down.weight')!.data,
    );
    assert.deepEqual(
      weights.get('bert.encoder.layer.0.output.adapters.houlsby.adapter_up.bias')!.data,
      original.get('bert.encoder.layer.0.output.adapter.up.bias')!.data,
    );
  });

  test('the head is ClassificationHead(layers=2, tanh): the pooler as module 1, the classifier as module 4', () => {
    const full = readJsonObject(path.join(exported.dir, HEAD_CONFIG_FILE));
    assert.deepEqual(full.config, {
      head_type: 'classification',
      num_labels: 2,
      layers: 2,
      activation_function: 'tanh',
      label2id: { neg: 0, pos: 1 },
      use_pooler: false,
      bias: true,
    });
    assert.equal(full.model_class, 'BertAdapterModel');
    const weights = readWeightMap(path.join(exported.dir, HEAD_WEIGHTS_FILE));
    assert.deepEqual(shapes(weights), {
      'heads.houlsby.1.bias': [HIDDEN],
      'heads.houlsby.1.weight': [HIDDEN, HIDDEN],
      'heads.houlsby.4.bias': [2],
      'heads.houlsby.4.weight': [2, HIDDEN],
    });
    const original = readWeightMap(path.join(run.checkpoint, 'weights.safetensors'));
    assert.deepEqual(weights.get('heads.houlsby.1.weight')!.data, original.get('bert.pooler.dense.weight')!.data);
    assert.deepEqual(weights.get('heads.houlsby.4.weight')!.data, original.get('classifier.weight')!.data);
  });

  test('the trained LayerNorms are listed as not exported', () => {
    assert.equal(exported.notExported.length, LAYERS * 4);
    assert.ok(
      exported.notExported.every((n) =>
        /^bert\.encoder\.layer\.\d\.(attention\.output|output)\.LayerNorm\.(weight|bias)$/.test(n),
      ),
    );
  });

  test('--name renames the adapter and its tensors; a name with a dot is refused', () => {
    const renamed = exportTo(run.checkpoint, 'sst2_adapter');
    assert.equal(readJsonObject(path.join(renamed.dir, ADAPTER_CONFIG_FILE)).name, 'sst2_adapter');
    assert.ok(
      [...readWeightMap(path.join(renamed.dir, ADAPTER_WEIGHTS_FILE)).keys()].every((n) =>
        n.includes('.adapters.sst2_adapter.'),
      ),
    );
    assert.throws(
      () => exportTo(run.checkpoint, 'a.b'),
      (err: unknown) => err instanceof CheckpointError && /not a valid adapter name/.test(err.message),
    );
  });

  test('an existing non-empty output folder is refused, not overwritten', () => {
    assert.throws(
      () => exportAdapterHub(run.checkpoint, { out: exported.dir }),
      (err: unknown) => err instanceof CheckpointError && /already exists/.test(err.message),
    );
    assert.equal(fs.readdirSync(exported.dir).length, 4);
  });

  test('imported back, it evaluates as the original does with the base LayerNorms, and exports to the same files', async () => {
    const imported = await importFrom(exported.dir, run.configFile);
    assert.equal(imported.method.type, 'houlsby');
    assert.deepEqual(imported.warnings, []);
    const original = await evaluateCheckpoint(await withBaseLayerNorms(run.checkpoint, run.configFile), 'validation');
    assertSameMetrics(await evaluateCheckpoint(imported.checkpointDir, 'validation'), original);
    const again = exportTo(imported.checkpointDir);
    for (const file of [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE]) {
      assert.deepEqual(
        fs.readFileSync(path.join(again.dir, file)),
        fs.readFileSync(path.join(exported.dir, file)),
        file,
      );
    }
  });
});

describe('export of the other methods', () => {
  test('AdaMix exports the weight average of its experts, which evaluates as the merged adapter does', async () => {
    const run = await trained('adamix', { type: 'adamix', bottleneck: 4, experts: 3, sites: ['ffn'] });
    const exported = exportTo(run.checkpoint);
    const c = readJsonObject(path.join(exported.dir, ADAPTER_CONFIG_FILE)).config;
    assert.deepEqual([c.mh_adapter, c.output_adapter], [false, true]);
    assert.match(exported.notes.join('\n'), /average of its experts \(3 down, 1 up\)/);
    const weights = readWeightMap(path.join(exported.dir, ADAPTER_WEIGHTS_FILE));
    assert.deepEqual(shapes(weights), bottleneckNames('adamix', ['output'], 4));
    const original = readWeightMap(path.join(run.checkpoint, 'weights.safetensors'));
    const experts = [0, 1, 2].map(
      (k) => original.get(`bert.encoder.layer.0.output.adapter.experts.${k}.down.weight`)!.data,
    );
    const exportedDown = weights.get('bert.encoder.layer.0.output.adapters.adamix.adapter_down.0.weight')!.data;
    exportedDown.forEach((v, i) =>
      assert.ok(Math.abs(v - (experts[0]![i]! + experts[1]![i]! + experts[2]![i]!) / 3) < 1e-7),
    );
    const imported = await importFrom(exported.dir, run.configFile);
    assert.equal(imported.method.type, 'pfeiffer', 'one sequential adapter after the feed-forward block');
    const merged = await evaluateCheckpoint(await withBaseLayerNorms(run.checkpoint, run.configFile), 'validation');
    assertSameMetrics(await evaluateCheckpoint(imported.checkpointDir, 'validation'), merged, 1e-6);
  });

  test('LoRA exports in the library LoRA layout and imports back to exactly the same evaluation', async () => {
    const run = await trained('lora', {
      type: 'lora',
      rank: 2,
      alpha: 6,
      targets: ['query', 'value', 'intermediate'],
      leaveOut: [1],
    });
    const exported = exportTo(run.checkpoint);
    const c = readJsonObject(path.join(exported.dir, ADAPTER_CONFIG_FILE)).config;
    assert.deepEqual(
      {
        architecture: c.architecture,
        r: c.r,
        alpha: c.alpha,
        attn: c.attn_matrices,
        self: c.selfattn_lora,
        inter: c.intermediate_lora,
        out: c.output_lora,
        mode: c.composition_mode,
        init: c.init_weights,
        leaveOut: c.leave_out,
      },
      {
        architecture: 'lora',
        r: 2,
        alpha: 6,
        attn: ['q', 'v'],
        self: true,
        inter: true,
        out: false,
        mode: 'add',
        init: 'lora',
        leaveOut: [1],
      },
    );
    const p = 'bert.encoder.layer.0';
    assert.deepEqual(shapes(readWeightMap(path.join(exported.dir, ADAPTER_WEIGHTS_FILE))), {
      [`${p}.attention.self.query.loras.lora.lora_A`]: [2, HIDDEN],
      [`${p}.attention.self.query.loras.lora.lora_B`]: [HIDDEN, 2],
      [`${p}.attention.self.value.loras.lora.lora_A`]: [2, HIDDEN],
      [`${p}.attention.self.value.loras.lora.lora_B`]: [HIDDEN, 2],
      [`${p}.intermediate.dense.loras.lora.lora_A`]: [2, HIDDEN],
      [`${p}.intermediate.dense.loras.lora.lora_B`]: [INTERMEDIATE, 2],
    });
    assert.deepEqual(exported.notExported, [], 'LoRA trains no LayerNorm');
    const imported = await importFrom(exported.dir, run.configFile);
    assert.deepEqual(imported.method, {
      type: 'lora',
      rank: 2,
      alpha: 6,
      targets: ['query', 'value', 'intermediate'],
      leaveOut: [1],
    });
    assertSameMetrics(
      await evaluateCheckpoint(imported.checkpointDir, 'validation'),
      await evaluateCheckpoint(run.checkpoint, 'validation'),
    );
  });

  test('parallel adapters export as ParBnConfig placement with a float scaling, and import back', async () => {
    const run = await trained('parallel', {
      type: 'parallel',
      bottleneck: 3,
      scale: 2,
      sites: ['attention', 'ffn'],
      activation: 'relu',
    });
    const exported = exportTo(run.checkpoint);
    const text = fs.readFileSync(path.join(exported.dir, ADAPTER_CONFIG_FILE), 'utf8');
    assert.match(text, /"scaling": 2\.0,/);
    const c = readJsonObject(path.join(exported.dir, ADAPTER_CONFIG_FILE)).config;
    assert.deepEqual(
      [c.is_parallel, c.init_weights, c.non_linearity, c.original_ln_after],
      [true, 'mam_adapter', 'relu', true],
    );
    assert.equal(
      bottleneckFor(HIDDEN, c.reduction_factor),
      3,
      `reduction factor ${c.reduction_factor} gives bottleneck 3`,
    );
    const imported = await importFrom(exported.dir, run.configFile);
    assert.deepEqual(
      { ...imported.method, initStd: undefined, reductionFactor: undefined },
      {
        type: 'parallel',
        bottleneck: 3,
        activation: 'relu',
        leaveOut: [],
        sites: ['attention', 'ffn'],
        scale: 2,
        initStd: undefined,
        reductionFactor: undefined,
      },
    );
    const original = await evaluateCheckpoint(await withBaseLayerNorms(run.checkpoint, run.configFile), 'validation');
    assertSameMetrics(await evaluateCheckpoint(imported.checkpointDir, 'validation'), original);
  });

  test("pfeiffer's adapter reads the sublayer output before the LayerNorm: original_ln_before is false", async () => {
    const run = await trained('pfeiffer', { type: 'pfeiffer', bottleneck: 4, leaveOut: [0] }, { maxSteps: 2 });
    const exported = exportTo(run.checkpoint);
    const c = readJsonObject(path.join(exported.dir, ADAPTER_CONFIG_FILE)).config;
    assert.deepEqual([c.mh_adapter, c.output_adapter, c.original_ln_before, c.leave_out], [false, true, false, [0]]);
    assert.match(exported.notes.join('\n'), /original_ln_before false/);
    assert.deepEqual(
      shapes(readWeightMap(path.join(exported.dir, ADAPTER_WEIGHTS_FILE))),
      bottleneckNames('pfeiffer', ['output'], 4, [1]),
    );
  });

  test("a head trained on mean pooling exports with a note that the library's head reads [CLS], and imports back with its pooling", async () => {
    const run = await trained('houlsby-mean', { type: 'houlsby', bottleneck: 4 }, { maxSteps: 2 }, { pooling: 'mean' });
    const exported = exportTo(run.checkpoint);
    assert.match(exported.notes.join('\n'), /task.pooling is 'mean'.*reads the \[CLS\] token's/);
    const imported = await importFrom(exported.dir, run.configFile);
    const original = await evaluateCheckpoint(await withBaseLayerNorms(run.checkpoint, run.configFile), 'validation');
    assertSameMetrics(await evaluateCheckpoint(imported.checkpointDir, 'validation'), original, 1e-6);
  });

  test('head-only exports only the head, and imports back exactly', async () => {
    const run = await trained('head-only', { type: 'head-only' }, { maxSteps: 3 });
    const exported = exportTo(run.checkpoint);
    assert.deepEqual(fs.readdirSync(exported.dir).sort(), [HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE]);
    const imported = await importFrom(exported.dir, run.configFile);
    assert.equal(imported.method.type, 'head-only');
    assertSameMetrics(
      await evaluateCheckpoint(imported.checkpointDir, 'validation'),
      await evaluateCheckpoint(run.checkpoint, 'validation'),
    );
  });

  test('full fine-tuning and LoRA on attention.output.dense are refused with the reason', async () => {
    const full = await trained('full', { type: 'full' }, { maxSteps: 1 });
    assert.throws(
      () => exportTo(full.checkpoint),
      (err: unknown) => err instanceof CheckpointError && /method 'full'.*no adapter to export/.test(err.message),
    );
    const lora = await trained('lora-ao', { type: 'lora', rank: 2, targets: ['attention_output'] }, { maxSteps: 1 });
    assert.throws(
      () => exportTo(lora.checkpoint),
      (err: unknown) => err instanceof CheckpointError && /attention_output cannot be exported/.test(err.message),
    );
  });
});

// ---- import with bad input -------------------------------------------------------------------

describe('import refuses what it cannot compute exactly, naming the file and the field', () => {
  let run: { configFile: string; checkpoint: string };
  let good: string;

  before(async () => {
    run = await trained('houlsby', { type: 'houlsby', bottleneck: 4 });
    good = exportTo(run.checkpoint).dir;
  });

  /** A copy of the good export, changed by `edit`. */
  function variant(edit: (dir: string) => void): string {
    const dir = path.join(root, 'variants', `v-${Math.random().toString(16).slice(2)}`);
    fs.cpSync(good, dir, { recursive: true });
    edit(dir);
    return dir;
  }

  function editJson(file: string, edit: (json: Json) => void): void {
    const json = readJsonObject(file);
    edit(json);
    fs.writeFileSync(file, JSON.stringify(json));
  }

  async function importError(dir: string): Promise<Error> {
    return rejection(importFrom(dir, run.configFile));
  }

  test('a folder without adapter_config.json', async () => {
    const err = await importError(fs.mkdtempSync(path.join(root, 'empty-')));
    assert.ok(err instanceof CheckpointError);
    assert.match(err.message, /adapter_config\.json: is missing: this is not an AdapterHub adapter folder/);
  });

  test('an unsupported architecture such as prefix tuning', async () => {
    const dir = variant((d) =>
      editJson(path.join(d, ADAPTER_CONFIG_FILE), (j) => {
        j.config = { architecture: 'prefix_tuning', prefix_length: 30 };
      }),
    );
    const err = await importError(dir);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.file, path.join(dir, ADAPTER_CONFIG_FILE));
    assert.equal(err.path, '/config/architecture');
    assert.match(err.message, /'prefix_tuning' \(prefix tuning\) is not supported/);
  });

  test("Pfeiffer's SeqBnConfig placement (adapter after the LayerNorm)", async () => {
    const dir = variant((d) =>
      editJson(path.join(d, ADAPTER_CONFIG_FILE), (j) => {
        j.config.original_ln_before = true;
      }),
    );
    const err = await importError(dir);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.path, '/config/original_ln_before');
  });

  test('a tensor whose shape does not fit the base model names the tensor and both shapes', async () => {
    const name = 'bert.encoder.layer.1.output.adapters.houlsby.adapter_up.weight';
    const dir = variant((d) => {
      const weights = readWeightMap(path.join(d, ADAPTER_WEIGHTS_FILE));
      weights.set(name, { shape: [HIDDEN, 5], data: new Float32Array(HIDDEN * 5) });
      writeWeights(path.join(d, ADAPTER_WEIGHTS_FILE), weights);
    });
    const err = await importError(dir);
    assert.ok(err instanceof CheckpointError);
    assert.equal(err.file, path.join(dir, ADAPTER_WEIGHTS_FILE));
    assert.match(
      err.message,
      new RegExp(
        `${name.replace(/\./g, '\\.')}: shape \\[16, 5\\] does not fit the base model, which needs \\[16, 4\\]`,
      ),
    );
  });

  test("a hidden size other than the base model's", async () => {
    const dir = variant((d) =>
      editJson(path.join(d, ADAPTER_CONFIG_FILE), (j) => {
        j.hidden_size = 768;
      }),
    );
    const err = await importError(dir);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.path, '/hidden_size');
    assert.match(err.message, /hidden size 768, the base model has 16/);
  });

  test('a tensor the config does not place', async () => {
    const dir = variant((d) => {
      const weights = readWeightMap(path.join(d, ADAPTER_WEIGHTS_FILE));
      weights.set('bert.encoder.layer.0.output.adapters.houlsby.adapter_norm_after.weight', {
        shape: [HIDDEN],
        data: new Float32Array(HIDDEN),
      });
      writeWeights(path.join(d, ADAPTER_WEIGHTS_FILE), weights);
    });
    assert.match((await importError(dir)).message, /does not place .*adapter_norm_after\.weight/);
  });

  test('only the PyTorch pickle and no safetensors file', async () => {
    const dir = variant((d) => fs.renameSync(path.join(d, ADAPTER_WEIGHTS_FILE), path.join(d, 'pytorch_adapter.bin')));
    assert.match(
      (await importError(dir)).message,
      /adapter\.safetensors: is missing; pytorch_adapter\.bin is a PyTorch pickle.*use_safetensors=True/,
    );
  });

  test("a head whose labels are not the data's", async () => {
    const dir = variant((d) =>
      editJson(path.join(d, HEAD_CONFIG_FILE), (j) => {
        j.config.label2id = { negative: 0, positive: 1 };
      }),
    );
    const err = await importError(dir);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.path, '/config/label2id');
    assert.match(err.message, /names the labels negative, positive; the config's data has neg, pos/);
  });

  test('a head with the labels in another order is reordered, and evaluates the same', async () => {
    const dir = variant((d) => {
      editJson(path.join(d, HEAD_CONFIG_FILE), (j) => {
        j.config.label2id = { pos: 0, neg: 1 };
      });
      const weights = readWeightMap(path.join(d, HEAD_WEIGHTS_FILE));
      const swap = (w: { shape: number[]; data: Float32Array }) => {
        const width = w.data.length / 2;
        return { shape: w.shape, data: Float32Array.from([...w.data.subarray(width), ...w.data.subarray(0, width)]) };
      };
      weights.set('heads.houlsby.4.weight', swap(weights.get('heads.houlsby.4.weight')!));
      weights.set('heads.houlsby.4.bias', swap(weights.get('heads.houlsby.4.bias')!));
      writeWeights(path.join(d, HEAD_WEIGHTS_FILE), weights);
    });
    const reordered = await importFrom(dir, run.configFile);
    assert.match(reordered.warnings.join('\n'), /reordered/);
    const plain = await importFrom(good, run.configFile);
    assertSameMetrics(
      await evaluateCheckpoint(reordered.checkpointDir, 'validation'),
      await evaluateCheckpoint(plain.checkpointDir, 'validation'),
    );
  });

  test('a scaling on a sequential adapter is folded into adapter_up', async () => {
    const dir = variant((d) => {
      editJson(path.join(d, ADAPTER_CONFIG_FILE), (j) => {
        j.config.scaling = 2.0;
      });
      const weights = readWeightMap(path.join(d, ADAPTER_WEIGHTS_FILE));
      for (const [name, w] of weights)
        if (name.includes('adapter_up')) weights.set(name, { shape: w.shape, data: w.data.map((v) => v / 2) });
      writeWeights(path.join(d, ADAPTER_WEIGHTS_FILE), weights);
    });
    const folded = await importFrom(dir, run.configFile);
    assert.match(folded.warnings.join('\n'), /scaling 2 is folded into adapter_up/);
    const plain = await importFrom(good, run.configFile);
    assertSameMetrics(
      await evaluateCheckpoint(folded.checkpointDir, 'validation'),
      await evaluateCheckpoint(plain.checkpointDir, 'validation'),
    );
  });
});

// ---- the Python checker --------------------------------------------------------------------------

const pythonProblem = (() => {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} does not exist`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : `${PYTHON} cannot import torch`;
})();

describe('scripts/check-adapterhub-export.py', { skip: pythonProblem }, () => {
  function check(dir: string, ...args: string[]) {
    return spawnSync(
      PYTHON,
      [CHECKER, dir, '--layers', String(LAYERS), '--intermediate-size', String(INTERMEDIATE), ...args],
      { encoding: 'utf8' },
    );
  }

  test('finds the names and shapes the library would create for every exported method', async () => {
    for (const [name, method] of [
      ['houlsby', { type: 'houlsby', bottleneck: 4 }],
      ['lora', { type: 'lora', rank: 2, alpha: 6, targets: ['query', 'value', 'intermediate'], leaveOut: [1] }],
      ['parallel', { type: 'parallel', bottleneck: 3, scale: 2, sites: ['attention', 'ffn'], activation: 'relu' }],
      ['head-only', { type: 'head-only' }],
    ] as const) {
      const result = check(exportTo((await trained(name, method)).checkpoint).dir);
      assert.equal(result.status, 0, `${name}: ${result.stderr}`);
      assert.match(result.stdout, /^ok: /);
    }
  });

  test('reports a renamed tensor and a wrong layer count as a diff and exits 1', async () => {
    const dir = exportTo((await trained('houlsby', { type: 'houlsby', bottleneck: 4 })).checkpoint).dir;
    const weights = readWeightMap(path.join(dir, ADAPTER_WEIGHTS_FILE));
    const from = 'bert.encoder.layer.0.output.adapters.houlsby.adapter_up.weight';
    weights.set(from.replace('adapter_up', 'adapter_upp'), weights.get(from)!);
    weights.delete(from);
    writeWeights(path.join(dir, ADAPTER_WEIGHTS_FILE), weights);
    const result = check(dir);
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      /missing in adapter\.safetensors: bert\.encoder\.layer\.0\.output\.adapters\.houlsby\.adapter_up\.weight \[16, 4\]/,
    );
    assert.match(result.stderr, /unexpected in adapter\.safetensors: .*adapter_upp\.weight/);
    assert.equal(check(dir, '--layers', '3').status, 1);
  });

  test('agrees with Python on int(hidden // reduction_factor) for non-integer factors', () => {
    const pairs = [16, 100, 300, 768].flatMap((d) =>
      Array.from({ length: d - 1 }, (_, i) => [d, reductionFactorFor(d, i + 1), i + 1] as const),
    );
    const code =
      'import json, sys\nfor d, rf, m in json.load(sys.stdin):\n    assert max(1, int(d // rf)) == m, (d, rf, m)\n';
    const result = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify(pairs), encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
  });
});

// ---- the command line ------------------------------------------------------------------------------

describe('peft-lab export and import', () => {
  let run: { configFile: string; checkpoint: string };

  before(async () => {
    run = await trained('houlsby', { type: 'houlsby', bottleneck: 4 });
  });

  test('export writes the folder, lists the LayerNorms it leaves out and says how to load it', async () => {
    const out = path.join(root, 'cli-export');
    const result = await runCli(
      ['export', run.checkpoint, '--out', out, '--format', 'adapterhub', '--name', 'cli'],
      root,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^exported .* \(houlsby\) as AdapterHub adapter 'cli' to cli-export: adapter_config\.json, adapter\.safetensors \(16 tensors\)/,
    );
    assert.match(result.stdout, /not exported \(trained LayerNorms\):\n {2}bert\.encoder\.layer\.0\./);
    assert.match(result.stdout, /load_adapter\(".*cli-export", use_safetensors=True, set_active=True\)/);
    assert.match(result.stderr, /^warning: 8 LayerNorm weights the run trained are not part of an AdapterHub adapter/m);
    assert.equal(readJsonObject(path.join(out, ADAPTER_CONFIG_FILE)).name, 'cli');
  });

  test('import makes a run folder that peft-lab evaluate scores', async () => {
    const adapter = exportTo(run.checkpoint).dir;
    const out = path.join(root, 'cli-import');
    const result = await runCli(['import', adapter, '--base', run.configFile, '--out', out], root);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /adapter 'houlsby': houlsby, bottleneck 4 at attention and ffn, gelu/);
    assert.match(result.stdout, /evaluate it with: peft-lab evaluate cli-import\/checkpoints\/step-0/);
    for (const file of [
      'config.json',
      'status.json',
      'placement.json',
      'best',
      'checkpoints/step-0/weights.safetensors',
      'checkpoints/step-0/checkpoint.json',
    ]) {
      assert.ok(fs.existsSync(path.join(out, file)), file);
    }
    const evaluated = await runCli(['evaluate', path.join(out, 'checkpoints', 'step-0')], root);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    assert.match(evaluated.stdout, /validation \(\d+ examples\) on .*: accuracy/);
  });

  test('usage errors exit 2; a model folder as --base and a bad adapter folder exit 1 naming the file', async () => {
    const noBase = await runCli(['import', 'somewhere'], root);
    assert.equal(noBase.code, 2);
    assert.match(noBase.stderr, /import: missing --base <file\.peft\.json>/);
    const format = await runCli(['export', run.checkpoint, '--format', 'onnx'], root);
    assert.equal(format.code, 2);
    assert.match(format.stderr, /--format must be one of adapterhub, peft, not 'onnx'/);
    const folderBase = await runCli(['import', root, '--base', folder], root);
    assert.equal(folderBase.code, 1);
    assert.match(folderBase.stderr, /^error: .*exp: is a folder; --base takes a \*\.peft\.json config/m);
    const empty = fs.mkdtempSync(path.join(root, 'cli-empty-'));
    const bad = await runCli(['import', empty, '--base', run.configFile], root);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: cli-empty-\w+\/adapter_config\.json: is missing/m);
    assert.doesNotMatch(bad.stderr, /^\s+at /m);
  });
});
