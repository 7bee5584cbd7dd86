/**
 * Hugging Face PEFT's LoRA format, out and in: what `PeftModel.save_pretrained(dir)` writes for a
 * `get_peft_model(AutoModelForSequenceClassification..., LoraConfig(task_type="SEQ_CLS", ...))` and
 * `PeftModel.from_pretrained(base, dir)` reads.
 *
 *   adapter_config.json        LoraConfig.to_dict(), json.dumps(indent=2, sort_keys=True):
 *                              peft_type "LORA", task_type "SEQ_CLS", r, lora_alpha, lora_dropout,
 *                              target_modules, fan_in_fan_out false, bias "none", modules_to_save, ...
 *   adapter_model.safetensors  base_model.model.bert.encoder.layer.{i}.attention.self.query.lora_A.weight [r, in]
 *                              ...lora_B.weight [out, r]; the modules_to_save without their
 *                              `modules_to_save.default` wrapper: base_model.model.classifier.weight ...
 *
 * The rules were read from huggingface/peft (main branch):
 *   src/peft/tuners/lora/layer.py       Linear: lora_A = nn.Linear(in, r, bias=False) (weight [r, in]),
 *                                       lora_B = nn.Linear(r, out, bias=False) ([out, r]);
 *                                       scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora).
 *   src/peft/tuners/tuners_utils.py     check_target_module_exists: a list entry matches a module whose
 *                                       name equals it or ends with "." + it; a string is re.fullmatch'ed.
 *   src/peft/utils/save_and_load.py     get_peft_model_state_dict: keeps "lora_" keys, the modules_to_save'
 *                                       copies with "modules_to_save." removed, then drops ".default".
 *   src/peft/utils/other.py             ModulesToSaveWrapper (a trainable copy of a module, by name suffix);
 *                                       SEQ_CLS adds "classifier" and "score" to modules_to_save.
 *   src/peft/config.py                  save_pretrained: json.dumps(output_dict, indent=2, sort_keys=True).
 *   transformers BertForSequenceClassification: bert.pooler (dense + tanh on [CLS]), dropout, classifier;
 *   RobertaForSequenceClassification: no pooler, classifier.dense + tanh + classifier.out_proj on <s>.
 *
 * PEFT has no bottleneck adapters (Houlsby, Pfeiffer, parallel, AdaMix): those go to the AdapterHub
 * format (adapterhub.ts), and are refused here with that reason.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoraTarget, MethodConfig } from '../config/types';
import { loadConfig } from '../config/load';
import { CheckpointError, ConfigError } from '../errors';
import type { WeightMap } from '../model/bert-config';
import { FAMILY_NAMES, modelTypeOf } from '../model/families';
import { readExamples } from '../data/readers';
import { loadBaseModel } from '../train/session';
import { readJsonFile } from './atomic';
import { modelNameOf, PyFloat, pythonJson, readExportSource, writeFolderAtomically } from './adapterhub';
import { completeWeights, defaultRunDir, withMethod, writeImportedRun } from './adapterhub-import';
import { readWeightMap, runDirOfCheckpoint } from './run-folder';
import { serializeSafetensors, type TensorToWrite } from './safetensors';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';
/** PeftModel wraps the LoraModel (base_model) around the transformers model (model). */
export const SAVED_PREFIX = 'base_model.model.';
/** The PEFT version the config claims (a recent release; older ones ignore unknown keys with a warning). */
export const PEFT_VERSION = '0.13.2';

/** Where PEFT Lab's LoRA targets sit in BERT's modules (the checkpoint's canonical names). */
const LORA_MODULES: Record<string, LoraTarget> = {
  'attention.self.query': 'query',
  'attention.self.key': 'key',
  'attention.self.value': 'value',
  'intermediate.dense': 'intermediate',
  'output.dense': 'output',
};
const MODULE_OF: Partial<Record<LoraTarget, string>> = Object.fromEntries(
  Object.entries(LORA_MODULES).map(([m, t]) => [t, m]),
);

/** A family transformers' *ForSequenceClassification computes exactly as PEFT Lab does. */
interface PeftFamily {
  /** The encoder's attribute in the classification model (`bert`, `roberta`). */
  prefix: string;
  /** PEFT Lab head weight -> the classification model's name. */
  head: Record<string, string>;
  /** What modules_to_save lists for the head. */
  headModules: string[];
}

const BERT_HEAD: PeftFamily = {
  prefix: 'bert',
  head: {
    'bert.pooler.dense.weight': 'bert.pooler.dense.weight',
    'bert.pooler.dense.bias': 'bert.pooler.dense.bias',
    'classifier.weight': 'classifier.weight',
    'classifier.bias': 'classifier.bias',
  },
  headModules: ['classifier', 'pooler'],
};
const ROBERTA_HEAD: PeftFamily = {
  prefix: 'roberta',
  head: {
    'bert.pooler.dense.weight': 'classifier.dense.weight',
    'bert.pooler.dense.bias': 'classifier.dense.bias',
    'classifier.weight': 'classifier.out_proj.weight',
    'classifier.bias': 'classifier.out_proj.bias',
  },
  headModules: ['classifier'],
};
const FAMILIES: Record<string, PeftFamily> = { bert: BERT_HEAD, roberta: ROBERTA_HEAD, 'xlm-roberta': ROBERTA_HEAD };
const UNSUPPORTED_FAMILIES: Record<string, string> = {
  electra: "ElectraForSequenceClassification's head uses gelu between its layers, PEFT Lab's head tanh",
  distilbert: "DistilBertForSequenceClassification's head is pre_classifier + ReLU, PEFT Lab's head dense + tanh",
  modernbert: 'ModernBERT merges query, key and value into one Wqkv module, which PEFT adapts as one matrix',
};

function familyOf(modelType: string | undefined, file: string): PeftFamily {
  const type = modelType ?? 'bert';
  const family = FAMILIES[type];
  if (family) return family;
  const name = FAMILY_NAMES[type as keyof typeof FAMILY_NAMES] ?? type;
  throw new CheckpointError(
    file,
    `is a ${name} model: the PEFT format is written for BERT, RoBERTa and XLM-RoBERTa only (${UNSUPPORTED_FAMILIES[type] ?? 'no exact mapping'}); use --format adapterhub`,
  );
}

/** The classification model's name of a canonical encoder weight (`bert.encoder...` -> `roberta.encoder...`). */
function encoderName(canonical: string, family: PeftFamily): string {
  return `${family.prefix}${canonical.slice('bert'.length)}`;
}

// ---- export ----------------------------------------------------------------------------------------

export interface PeftExport {
  dir: string;
  files: string[];
  loraTensors: number;
  /** Head and LayerNorm tensors, saved as modules_to_save. */
  savedModules: number;
  notes: string[];
}

const BOTTLENECK_METHODS = new Set(['houlsby', 'pfeiffer', 'parallel', 'adamix']);

/** Writes a LoRA checkpoint as a Hugging Face PEFT adapter folder. */
export function exportPeft(checkpointDir: string, options: { out: string }): PeftExport {
  const source = readExportSource(checkpointDir);
  const method = source.config.method;
  const dir = path.resolve(checkpointDir);
  if (BOTTLENECK_METHODS.has(method.type)) {
    throw new CheckpointError(
      dir,
      `was trained with method '${method.type}', a bottleneck adapter: Hugging Face PEFT has no bottleneck adapters (its adapters are LoRA and its relatives, prompt and prefix tuning, IA3), so it could not load one; export it with --format adapterhub for the Python adapters library`,
    );
  }
  if (method.type !== 'lora') {
    throw new CheckpointError(
      dir,
      `was trained with method '${method.type}': the PEFT format holds a LoRA adapter (${method.type === 'full' ? 'a full fine-tune is a whole model' : 'a head-only run has no adapter'}); use --format adapterhub`,
    );
  }
  const family = familyOf(source.placement?.architecture?.modelType, dir);
  const tensors: WeightMap = new Map();
  const layers = new Set<number>();
  const savedModules = new Set<string>();
  let loraTensors = 0;
  for (const [name, w] of source.weights) {
    const lora = /^bert\.encoder\.layer\.(\d+)\.(.+)\.lora_(A|B)\.weight$/.exec(name);
    if (lora) {
      if (!(lora[2]! in LORA_MODULES))
        throw new CheckpointError(
          dir,
          `weights.safetensors has ${name}, a LoRA on a module PEFT Lab does not place one`,
        );
      tensors.set(`${SAVED_PREFIX}${encoderName(name, family)}`, w); // A [r, in], B [out, r]: PEFT's layouts already
      layers.add(Number(lora[1]));
      loraTensors++;
    } else if (name.startsWith('bert.encoder.') && name.includes('LayerNorm')) {
      // a trained encoder LayerNorm: PEFT saves it as a module to save, so the export stays exact
      tensors.set(`${SAVED_PREFIX}${encoderName(name, family)}`, w);
      savedModules.add(encoderName(name.slice(0, name.lastIndexOf('.')), family));
    } else if (name in family.head) {
      tensors.set(`${SAVED_PREFIX}${family.head[name]}`, w);
    } else {
      throw new CheckpointError(dir, `weights.safetensors has ${name}, which a PEFT LoRA adapter has no place for`);
    }
  }
  for (const head of Object.keys(family.head))
    if (!source.weights.has(head))
      throw new CheckpointError(dir, `weights.safetensors has no ${head} (the head PEFT Lab always trains)`);
  if (!loraTensors) throw new CheckpointError(dir, 'weights.safetensors holds no LoRA weights');
  const config = peftConfigJson(
    method,
    [...layers].sort((a, b) => a - b),
    family,
    [...family.headModules, ...[...savedModules].sort()],
    modelNameOf(source.config.model),
  );
  const files = {
    [PEFT_CONFIG_FILE]: pythonJson(config),
    [PEFT_WEIGHTS_FILE]: serializeSafetensors(writable(tensors)),
  };
  const written = writeFolderAtomically(options.out, files);
  const notes = [
    `load it in Python: model = peft.PeftModel.from_pretrained(transformers.AutoModelForSequenceClassification.from_pretrained(<base model>, num_labels=${source.info.labelNames.length || 1}), ${JSON.stringify(written)})`,
  ];
  if (source.config.task.pooling === 'mean') {
    notes.push(
      "task.pooling is 'mean': this head was trained on the mean of the real tokens' hidden states, but transformers' classification heads read the first token's, so with them the head predicts differently from PEFT Lab",
    );
  }
  if (source.info.labelNames.length)
    notes.push(
      `the head's outputs are the labels ${source.info.labelNames.join(', ')}, in that order (set id2label when loading)`,
    );
  return { dir: written, files: Object.keys(files), loraTensors, savedModules: tensors.size - loraTensors, notes };
}

/**
 * Every LoraConfig field PEFT writes. target_modules are the short names when each matches exactly
 * the modules meant ("query" ends only attention.self.query); otherwise, and whenever layers are
 * left out, the full module names.
 */
export function peftConfigJson(
  method: Extract<MethodConfig, { type: 'lora' }>,
  layers: number[],
  family: PeftFamily,
  modulesToSave: string[],
  modelName: string | null,
): Record<string, unknown> {
  const short: Partial<Record<LoraTarget, string>> = {
    query: 'query',
    key: 'key',
    value: 'value',
    intermediate: 'intermediate.dense',
  };
  const exact = !method.leaveOut.length && method.targets.every((t) => short[t]);
  const targetModules = exact
    ? method.targets.map((t) => short[t]!)
    : layers.flatMap((layer) => method.targets.map((t) => `${family.prefix}.encoder.layer.${layer}.${MODULE_OF[t]}`));
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: modelName,
    bias: 'none',
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: method.alpha,
    lora_bias: false,
    lora_dropout: new PyFloat(0),
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: modulesToSave,
    peft_type: 'LORA',
    r: method.rank,
    rank_pattern: {},
    revision: null,
    target_modules: targetModules,
    task_type: 'SEQ_CLS',
    use_dora: false,
    use_rslora: false,
  };
}

function writable(weights: WeightMap): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, w] of weights) out[name] = { dtype: 'F32', shape: w.shape, data: w.data };
  return out;
}

/** `<parent>/<run>-<step>-peft`, with a counter when that exists. */
export function defaultPeftFolder(checkpointDir: string, parent: string): string {
  const dir = path.resolve(checkpointDir);
  const base = path.join(path.resolve(parent), `${path.basename(runDirOfCheckpoint(dir))}-${path.basename(dir)}-peft`);
  let target = base;
  for (let n = 2; fs.existsSync(target); n++) target = `${base}-${n}`;
  return target;
}

// ---- import ----------------------------------------------------------------------------------------

export interface PeftImport {
  runDir: string;
  checkpointDir: string;
  method: MethodConfig;
  warnings: string[];
}

/** Config values whose effect PEFT Lab does not compute: [field, is the value fine, what it would need]. */
const UNSUPPORTED: [string, (v: unknown) => boolean, string][] = [
  ['use_dora', (v) => !v, 'DoRA (a learned magnitude per output)'],
  ['use_rslora', (v) => !v, 'rank-stabilized LoRA (scaling alpha / sqrt(r))'],
  ['fan_in_fan_out', (v) => !v, 'transposed (Conv1D) weights'],
  ['bias', (v) => v === undefined || v === 'none', 'trained biases'],
  ['lora_bias', (v) => !v, 'a bias on lora_B'],
  [
    'rank_pattern',
    (v) => v === undefined || v === null || (typeof v === 'object' && !Object.keys(v as object).length),
    'a rank per module',
  ],
  [
    'alpha_pattern',
    (v) => v === undefined || v === null || (typeof v === 'object' && !Object.keys(v as object).length),
    'an alpha per module',
  ],
  ['layer_replication', (v) => v === undefined || v === null, 'replicated layers'],
];

/** Reads a PEFT LoRA folder onto a config's base model and writes it as a PEFT Lab run folder with one checkpoint. */
export async function importPeft(
  adapterDir: string,
  options: { config: string; out?: string; onLog?: (message: string) => void },
): Promise<PeftImport> {
  const dir = path.resolve(adapterDir);
  const configFile = path.join(dir, PEFT_CONFIG_FILE);
  const weightsFile = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!fs.existsSync(configFile))
    throw new CheckpointError(
      configFile,
      'is missing: this is not a Hugging Face PEFT adapter folder (save_pretrained writes adapter_config.json beside adapter_model.safetensors)',
    );
  if (!fs.existsSync(weightsFile)) {
    const pickle = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    throw new CheckpointError(
      weightsFile,
      pickle
        ? 'is missing; adapter_model.bin is a PyTorch pickle, which PEFT Lab does not read: save with safe_serialization=True (the default)'
        : 'is missing',
    );
  }
  const json = readJsonFile(configFile, PEFT_CONFIG_FILE) as Record<string, unknown>;
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConfigError(configFile, '', 'must be a JSON object');
  if (json.peft_type !== 'LORA')
    throw new ConfigError(
      configFile,
      '/peft_type',
      `is ${JSON.stringify(json.peft_type ?? null)}: PEFT Lab imports LoRA adapters (peft_type "LORA")`,
    );
  for (const [field, ok, what] of UNSUPPORTED)
    if (!ok(json[field]))
      throw new ConfigError(
        configFile,
        `/${field}`,
        `is ${JSON.stringify(json[field])}: ${what} is not supported by PEFT Lab`,
      );
  const warnings: string[] = [];
  if (json.task_type !== 'SEQ_CLS')
    warnings.push(
      `task_type is ${JSON.stringify(json.task_type ?? null)}, not "SEQ_CLS": the weights are read as a sequence classifier's`,
    );
  const rank = json.r;
  if (!Number.isInteger(rank) || (rank as number) < 1)
    throw new ConfigError(configFile, '/r', `must be a positive integer, found ${JSON.stringify(rank)}`);
  const alpha = json.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0))
    throw new ConfigError(configFile, '/lora_alpha', `must be a positive number, found ${JSON.stringify(alpha)}`);

  const config = loadConfig(options.config);
  const base = await loadBaseModel(config, options.onLog);
  const family = familyOf(modelTypeOf(base.bert), options.config);
  const layerCount = base.bert.num_hidden_layers;
  const { targets, leaveOut } = targetsOf(
    json.target_modules,
    json.layers_to_transform,
    family,
    layerCount,
    configFile,
  );
  const method = { type: 'lora', rank, alpha, targets, leaveOut };
  const imported = withMethod(config, method);

  const tensors = readWeightMap(weightsFile);
  const used = new Set<string>();
  const take = (saved: string, shape: number[], what: string) => {
    const t = tensors.get(saved);
    if (!t) throw new CheckpointError(weightsFile, `has no tensor ${saved} (${what})`);
    if (t.shape.join() !== shape.join())
      throw new CheckpointError(
        weightsFile,
        `${saved}: shape [${t.shape.join(', ')}] does not fit the base model, which needs [${shape.join(', ')}] (${what})`,
      );
    used.add(saved);
    return t;
  };
  const d = base.bert.hidden_size;
  const sizes: Record<LoraTarget, [number, number]> = {
    query: [d, d],
    key: [d, d],
    value: [d, d],
    intermediate: [d, base.bert.intermediate_size],
    output: [base.bert.intermediate_size, d],
  } as Record<LoraTarget, [number, number]>;
  const weights: WeightMap = new Map();
  for (let layer = 0; layer < layerCount; layer++) {
    if (leaveOut.includes(layer)) continue;
    for (const target of targets) {
      const canonical = `bert.encoder.layer.${layer}.${MODULE_OF[target]}`;
      const [inSize, outSize] = sizes[target];
      const what = `LoRA rank ${rank as number} on layer ${layer} ${target}`;
      weights.set(
        `${canonical}.lora_A.weight`,
        take(`${SAVED_PREFIX}${encoderName(canonical, family)}.lora_A.weight`, [rank as number, inSize], what),
      );
      weights.set(
        `${canonical}.lora_B.weight`,
        take(`${SAVED_PREFIX}${encoderName(canonical, family)}.lora_B.weight`, [outSize, rank as number], what),
      );
    }
  }
  const labelNames = readExamples(imported.data.train, imported.data, imported.task, imported.task.labels).labelNames;
  const outputs = imported.task.type === 'regression' ? 1 : labelNames.length;
  for (const [canonical, saved] of Object.entries(family.head)) {
    const shape =
      canonical === 'classifier.weight'
        ? [outputs, d]
        : canonical === 'classifier.bias'
          ? [outputs]
          : canonical.endsWith('weight')
            ? [d, d]
            : [d];
    if (!tensors.has(`${SAVED_PREFIX}${saved}`)) {
      throw new CheckpointError(
        weightsFile,
        `has no ${SAVED_PREFIX}${saved}: PEFT Lab evaluates with the classification head, so the adapter must be saved with it (modules_to_save ${JSON.stringify(family.headModules)}, which task_type "SEQ_CLS" adds for "classifier")`,
      );
    }
    weights.set(
      canonical,
      take(
        `${SAVED_PREFIX}${saved}`,
        shape,
        `the classification head for hidden size ${d} and ${outputs} output${outputs === 1 ? '' : 's'}`,
      ),
    );
  }
  // trained encoder LayerNorms saved as modules_to_save
  for (const [saved, t] of tensors) {
    if (
      used.has(saved) ||
      !saved.startsWith(`${SAVED_PREFIX}${family.prefix}.encoder.`) ||
      !saved.includes('LayerNorm')
    )
      continue;
    weights.set(`bert${saved.slice(SAVED_PREFIX.length + family.prefix.length)}`, t);
    used.add(saved);
  }
  const unused = [...tensors.keys()].filter((n) => !used.has(n));
  if (unused.length)
    throw new CheckpointError(
      weightsFile,
      `has tensors its config does not place (PEFT Lab would drop them): ${unused.slice(0, 4).join(', ')}${unused.length > 4 ? `, and ${unused.length - 4} more` : ''}`,
    );
  if (labelNames.length)
    warnings.push(
      `the head's outputs are taken as the labels ${labelNames.join(', ')}, in that order (a PEFT folder does not name them)`,
    );

  const { trainable, placement } = await completeWeights(imported, base, weights, outputs, dir);
  const name = path.basename(dir).replace(/[^A-Za-z0-9_-]+/g, '_') || 'peft';
  const runDir = options.out ? path.resolve(options.out) : defaultRunDir(imported, name, 'peft');
  const checkpointDir = writeImportedRun(runDir, imported, trainable, placement, {
    labelNames,
    source: dir,
    name,
    format: 'peft',
  });
  return { runDir, checkpointDir, method: imported.method, warnings };
}

/** PEFT Lab's targets and left-out layers from target_modules (a list of name suffixes, or a regex) and layers_to_transform. */
function targetsOf(
  targetModules: unknown,
  layersToTransform: unknown,
  family: PeftFamily,
  layers: number,
  file: string,
): { targets: LoraTarget[]; leaveOut: number[] } {
  const modules: { name: string; layer: number; target: LoraTarget }[] = [];
  for (let layer = 0; layer < layers; layer++) {
    for (const [module, target] of Object.entries(LORA_MODULES))
      modules.push({ name: `${family.prefix}.encoder.layer.${layer}.${module}`, layer, target });
  }
  let matches: (name: string) => boolean;
  if (typeof targetModules === 'string') {
    const re = new RegExp(`^(?:${targetModules})$`);
    matches = (name) => re.test(name);
  } else if (Array.isArray(targetModules) && targetModules.every((t) => typeof t === 'string')) {
    const list = targetModules as string[];
    matches = (name) => list.some((t) => name === t || name.endsWith(`.${t}`));
  } else {
    throw new ConfigError(
      file,
      '/target_modules',
      `must be a list of module names or a regular expression, found ${JSON.stringify(targetModules ?? null)}`,
    );
  }
  // the classification model's other Linear modules: PEFT would adapt them too, PEFT Lab cannot
  const others = [
    ...Array.from({ length: layers }, (_, layer) => `${family.prefix}.encoder.layer.${layer}.attention.output.dense`),
    ...Object.values(family.head)
      .filter((n) => n.endsWith('.weight') && !n.includes('LayerNorm'))
      .map((n) => n.slice(0, -'.weight'.length)),
  ].filter(matches);
  if (others.length)
    throw new ConfigError(
      file,
      '/target_modules',
      `matches ${others.slice(0, 3).join(', ')}${others.length > 3 ? ', ...' : ''}, which PEFT Lab cannot adapt: its LoRA targets are query, key, value, intermediate.dense and output.dense`,
    );
  const only = Array.isArray(layersToTransform)
    ? new Set(layersToTransform as number[])
    : typeof layersToTransform === 'number'
      ? new Set([layersToTransform])
      : undefined;
  const chosen = modules.filter((m) => matches(m.name) && (!only || only.has(m.layer)));
  if (!chosen.length)
    throw new ConfigError(
      file,
      '/target_modules',
      `matches none of the modules PEFT Lab adapts (e.g. ${modules[0]!.name})`,
    );
  const targets = [...new Set(chosen.map((m) => m.target))];
  const layerSet = [...new Set(chosen.map((m) => m.layer))];
  for (const t of targets) {
    const at = chosen.filter((m) => m.target === t).map((m) => m.layer);
    if (at.length !== layerSet.length)
      throw new ConfigError(
        file,
        '/target_modules',
        `adapts ${t} in layers ${at.join(', ')} but other modules in layers ${layerSet.join(', ')}: PEFT Lab places the same targets in every adapted layer`,
      );
  }
  const order: LoraTarget[] = ['query', 'key', 'value', 'intermediate', 'output'];
  return {
    targets: order.filter((t) => targets.includes(t)),
    leaveOut: Array.from({ length: layers }, (_, i) => i).filter((i) => !layerSet.includes(i)),
  };
}
