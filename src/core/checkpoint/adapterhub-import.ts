/**
 * Import of an AdapterHub adapter folder (see adapterhub.ts for the layout and the library sources
 * it follows) as a PEFT Lab run folder holding one checkpoint, `checkpoints/step-0`, on the base
 * model, task and data of a *.peft.json: `peft-lab evaluate <run>/checkpoints/step-0` scores it.
 *
 * Only what PEFT Lab computes exactly is accepted: bottleneck adapters that read the sublayer
 * output before the LayerNorm (Houlsby's placement, at one or both sites), parallel adapters, and
 * LoRA on query/key/value/intermediate/output, each with the 2-layer tanh classification head.
 * Everything else is an error naming the file and the field. Weights the adapter does not carry
 * (the encoder's LayerNorms) keep the base model's values, as they do in the library.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Activation, AdapterSite, LoraTarget, MethodConfig, ResolvedConfig } from '../config/types';
import { loadConfig, parseConfigText } from '../config/load';
import { CheckpointError, ConfigError } from '../errors';
import type { BertConfig, WeightMap } from '../model/bert-config';
import { PeftModel } from '../model/peft-model';
import { adapterPrefix, LORA_MODULES } from '../adapters/method';
import { selectBackend } from '../backend';
import { readExamples } from '../data/readers';
import { loadBaseModel } from '../train/session';
import { Rng } from '../random';
import type { Placement } from '../../protocol/worker';
import { readJsonFile, writeJsonAtomic } from './atomic';
import { RunFolder, readWeightMap, type CheckpointInfo } from './run-folder';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_PICKLE_FILE,
  ADAPTER_WEIGHTS_FILE,
  HEAD_CONFIG_FILE,
  HEAD_PICKLE_FILE,
  HEAD_WEIGHTS_FILE,
  LORA_PLACES,
  SITE_FLAGS,
  bottleneckFor,
  bottleneckTensorNames,
  checkAdapterName,
  headTensorNames,
  libraryLayout,
  loraTargetTensorNames,
  type LibraryLayout,
} from './adapterhub';
import { FAMILY_NAMES, intermediateOutputs, modelTypeOf } from '../model/families';

export interface AdapterHubImportOptions {
  /** The *.peft.json whose model is the base, and whose task and data the checkpoint is evaluated with. */
  config: string;
  /** The run folder to create; default `<runsDir>/<config name>-<adapter name>-adapterhub`. */
  out?: string;
  /** Progress of a hub download of the base model. */
  onLog?: (message: string) => void;
}

export interface AdapterHubImport {
  runDir: string;
  checkpointDir: string;
  /** The adapter's name in the library. */
  name: string;
  method: MethodConfig;
  /** Parts of the files PEFT Lab changed or ignored (a folded scaling, a reordered head). */
  warnings: string[];
}

/** A parsed `adapter_config.json` or `head_config.json`, with the file it came from for errors. */
interface ConfigFile {
  file: string;
  json: Record<string, unknown>;
  config: Record<string, unknown>;
}

interface TensorFile {
  file: string;
  tensors: WeightMap;
  used: Set<string>;
}

interface AdapterFolder {
  dir: string;
  adapter?: { config: ConfigFile; weights: TensorFile };
  head?: { config: ConfigFile; weights: TensorFile };
}

/** Reads an AdapterHub folder onto a config's base model and writes it as a PEFT Lab run folder. */
export async function importAdapterHub(
  adapterDir: string,
  options: AdapterHubImportOptions,
): Promise<AdapterHubImport> {
  const folder = readAdapterFolder(adapterDir);
  const config = loadConfig(options.config);
  const base = await loadBaseModel(config, options.onLog);
  const layout = libraryLayout(modelTypeOf(base.bert));
  for (const part of [folder.adapter, folder.head]) if (part) matchFamily(part, layout);
  const warnings: string[] = [];
  const method = folder.adapter
    ? methodOf(folder.adapter.config, base.bert, warnings)
    : ({ type: 'head-only' } as const);
  const imported = withMethod(config, method);
  const labelNames = readExamples(config.data.train, config.data, config.task, config.task.labels).labelNames;
  const outputs = config.task.type === 'regression' ? 1 : labelNames.length;
  const weights: WeightMap = new Map([
    ...(folder.adapter ? adapterWeights(folder.adapter, imported.method, base.bert, layout, warnings) : []),
    ...headWeights(folder, base.bert, labelNames, outputs, warnings),
  ]);
  const { trainable, placement } = await completeWeights(imported, base, weights, outputs, folder.dir);
  const name = String((folder.adapter ?? folder.head)!.config.json.name);
  const runDir = options.out ? path.resolve(options.out) : defaultRunDir(config, name);
  const checkpointDir = writeImportedRun(runDir, imported, trainable, placement, {
    labelNames,
    source: folder.dir,
    name,
  });
  return { runDir, checkpointDir, name, method: imported.method, warnings };
}

// ---- reading the folder ------------------------------------------------------------------------

function readAdapterFolder(adapterDir: string): AdapterFolder {
  const dir = path.resolve(adapterDir);
  if (!fs.existsSync(dir)) throw new CheckpointError(dir, 'does not exist');
  if (!fs.statSync(dir).isDirectory())
    throw new CheckpointError(
      dir,
      'is not a folder (an AdapterHub adapter is a folder with adapter_config.json and adapter.safetensors)',
    );
  const adapter = readPart(dir, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, ADAPTER_PICKLE_FILE);
  const head = readPart(dir, HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, HEAD_PICKLE_FILE);
  if (!adapter && !head) {
    throw new CheckpointError(
      path.join(dir, ADAPTER_CONFIG_FILE),
      'is missing: this is not an AdapterHub adapter folder (model.save_adapter writes adapter_config.json beside the weights)',
    );
  }
  return { dir, adapter, head };
}

/** One config + weights pair, or undefined when neither file is there. */
function readPart(
  dir: string,
  configName: string,
  weightsName: string,
  pickleName: string,
): { config: ConfigFile; weights: TensorFile } | undefined {
  const configFile = path.join(dir, configName);
  const weightsFile = path.join(dir, weightsName);
  if (!fs.existsSync(configFile)) {
    if (fs.existsSync(weightsFile))
      throw new CheckpointError(
        configFile,
        `is missing (${weightsName} is there): the config says how to place the weights`,
      );
    return undefined;
  }
  if (!fs.existsSync(weightsFile)) {
    const pickle = fs.existsSync(path.join(dir, pickleName));
    throw new CheckpointError(
      weightsFile,
      pickle
        ? `is missing; ${pickleName} is a PyTorch pickle, which PEFT Lab does not read: re-save with use_safetensors=True (model.save_adapter(dir, name, with_head=True, use_safetensors=True))`
        : 'is missing',
    );
  }
  return {
    config: readConfigFile(configFile),
    weights: { file: weightsFile, tensors: readWeightMap(weightsFile), used: new Set() },
  };
}

/**
 * The adapter must be for the base model's family (the library records it as model_type), and its
 * names take the family's prefix: saved from a bare model (BertModel, DistilBertModel, ...) rather
 * than an AdapterModel, they lack it, as the library's loader knows.
 */
function matchFamily(part: { config: ConfigFile; weights: TensorFile }, layout: LibraryLayout): void {
  const saved = part.config.json.model_type ?? 'bert';
  if (saved !== layout.modelType) {
    const family = (t: unknown) => FAMILY_NAMES[t as keyof typeof FAMILY_NAMES] ?? String(t);
    throw new ConfigError(
      part.config.file,
      '/model_type',
      `is '${String(saved)}': the adapter was trained on a ${family(saved)} model, but the config's base model is ${family(layout.modelType)} (model_type '${layout.modelType}')`,
    );
  }
  const prefixed = (name: string) =>
    layout.bareModules.some((m) => name.startsWith(m)) ? `${layout.prefix}.${name}` : name;
  part.weights.tensors = new Map([...part.weights.tensors].map(([name, w]) => [prefixed(name), w]));
}

function readConfigFile(file: string): ConfigFile {
  const json = readJsonFile(file, path.basename(file));
  if (!isObject(json)) throw new ConfigError(file, '', 'must be a JSON object');
  if (!isObject(json.config))
    throw new ConfigError(
      file,
      '/config',
      `must be an object (the ${path.basename(file) === HEAD_CONFIG_FILE ? 'head' : 'adapter'} configuration), found ${JSON.stringify(json.config ?? null)}`,
    );
  if (typeof json.name !== 'string') throw new ConfigError(file, '/name', 'must be the adapter name (a string)');
  checkAdapterNameIn(file, json.name);
  return { file, json, config: json.config };
}

function checkAdapterNameIn(file: string, name: string): void {
  try {
    checkAdapterName(name);
  } catch (err) {
    throw new ConfigError(file, '/name', (err as Error).message.replace(/^.*?: /, ''));
  }
}

// ---- the method ------------------------------------------------------------------------------

/** Names the library's other architectures, for the error that says they are not supported. */
const ARCHITECTURES: Record<string, string> = {
  prefix_tuning: 'prefix tuning',
  prompt_tuning: 'prompt tuning',
  union: 'a combination of methods (ConfigUnion, e.g. MAM or UniPELT)',
  reft: 'ReFT',
  mtl_lora: 'MTL-LoRA',
};

/** The PEFT Lab method (unresolved: the schema fills its defaults) that computes what the adapter config describes. */
function methodOf(
  c: ConfigFile,
  bert: BertConfig,
  warnings: string[],
): Record<string, unknown> & { type: MethodConfig['type'] } {
  const hidden = c.json.hidden_size;
  if (hidden !== undefined && hidden !== null && hidden !== bert.hidden_size) {
    throw new ConfigError(
      c.file,
      '/hidden_size',
      `the adapter was trained for hidden size ${String(hidden)}, the base model has ${bert.hidden_size}`,
    );
  }
  const architecture = c.config.architecture ?? 'bottleneck';
  if (architecture === 'bottleneck') return bottleneckMethod(c, bert, warnings);
  if (architecture === 'lora') return loraMethod(c, bert);
  const what = ARCHITECTURES[String(architecture)];
  throw new ConfigError(
    c.file,
    '/config/architecture',
    `'${String(architecture)}'${what ? ` (${what})` : ''} is not supported: PEFT Lab imports bottleneck adapters and LoRA`,
  );
}

/** Config values whose effect PEFT Lab does not implement: [field, is the value fine, what it would need]. */
const BOTTLENECK_UNSUPPORTED: [string, (v: unknown) => boolean, string][] = [
  ['phm_layer', (v) => !v, 'Compacter (PHM) layers'],
  ['ln_before', (v) => !v, 'a LayerNorm inside the adapter'],
  ['ln_after', (v) => !v, 'a LayerNorm inside the adapter'],
  ['use_gating', (v) => !v, 'gated adapters (UniPELT)'],
  ['inv_adapter', (v) => v === null || v === undefined, 'invertible adapters'],
  ['original_ln_after', (v) => v === undefined || v === true, "an adapter output that skips the model's LayerNorm"],
  [
    'residual_before_ln',
    (v) => v === undefined || typeof v === 'boolean',
    "a residual taken after the model's residual sum ('post_add')",
  ],
  ['scaling', (v) => v === undefined || typeof v === 'number', "a learned scaling ('learned' or 'channel')"],
];

function bottleneckMethod(
  c: ConfigFile,
  bert: BertConfig,
  warnings: string[],
): Record<string, unknown> & { type: MethodConfig['type'] } {
  for (const [field, ok, what] of BOTTLENECK_UNSUPPORTED) {
    if (!ok(c.config[field]))
      throw new ConfigError(
        c.file,
        `/config/${field}`,
        `is ${JSON.stringify(c.config[field])}: ${what} is not supported by PEFT Lab`,
      );
  }
  const parallel = c.config.is_parallel === true;
  if (!parallel && c.config.original_ln_before === true) {
    throw new ConfigError(
      c.file,
      '/config/original_ln_before',
      "is true: the adapter reads the LayerNorm's output (the Pfeiffer/SeqBnConfig placement); PEFT Lab's adapters read the sublayer output before the LayerNorm (original_ln_before false, as in DoubleSeqBnConfig), so this adapter would compute something else",
    );
  }
  const sites = (['attention', 'ffn'] as AdapterSite[]).filter((s) => c.config[SITE_FLAGS[s]] === true);
  if (!sites.length)
    throw new ConfigError(
      c.file,
      '/config/output_adapter',
      'mh_adapter and output_adapter are both false: the adapter has no place in a BERT encoder',
    );
  const leaveOut = leaveOutOf(c, bert);
  const bottleneck = bottleneckOf(c, bert, leaveOut);
  const activation = activationOf(c);
  const scaling = typeof c.config.scaling === 'number' ? c.config.scaling : 1;
  if (parallel) return { type: 'parallel', bottleneck, activation, leaveOut, sites, scale: scaling };
  if (scaling !== 1)
    warnings.push(
      `scaling ${scaling} is folded into adapter_up (PEFT Lab's sequential adapters have no scaling factor)`,
    );
  if (sites.length === 1 && sites[0] === 'ffn') return { type: 'pfeiffer', bottleneck, activation, leaveOut };
  return { type: 'houlsby', bottleneck, activation, leaveOut, sites };
}

function leaveOutOf(c: ConfigFile, bert: BertConfig): number[] {
  const value = c.config.leave_out ?? [];
  if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v) && v >= 0))
    throw new ConfigError(
      c.file,
      '/config/leave_out',
      `must be a list of layer numbers, found ${JSON.stringify(value)}`,
    );
  return [...new Set(value as number[])].filter((layer) => layer < bert.num_hidden_layers).sort((a, b) => a - b);
}

/** One bottleneck for every layer: PEFT Lab has no per-layer sizes. */
function bottleneckOf(c: ConfigFile, bert: BertConfig, leaveOut: number[]): number {
  const rf = c.config.reduction_factor;
  const pointer = '/config/reduction_factor';
  const sizeOf = (value: unknown): number => {
    if (typeof value !== 'number' || !(value > 0))
      throw new ConfigError(c.file, pointer, `must be a positive number, found ${JSON.stringify(value)}`);
    return bottleneckFor(bert.hidden_size, value);
  };
  if (!isObject(rf)) return sizeOf(rf);
  const layers = Array.from({ length: bert.num_hidden_layers }, (_, i) => i).filter((i) => !leaveOut.includes(i));
  const sizes = new Set(layers.map((i) => sizeOf(rf[String(i)] ?? rf.default)));
  if (sizes.size > 1)
    throw new ConfigError(
      c.file,
      pointer,
      `gives layers different bottleneck sizes (${[...sizes].join(', ')}); PEFT Lab uses one size for every layer`,
    );
  return [...sizes][0] ?? sizeOf(rf.default);
}

/** The library's names (Hugging Face's ACT2FN, lower-cased) that PEFT Lab computes the same way. */
const ACTIVATIONS: Record<string, Activation> = { gelu: 'gelu', relu: 'relu', swish: 'swish', silu: 'swish' };

function activationOf(c: ConfigFile): Activation {
  const name = String(c.config.non_linearity ?? '').toLowerCase();
  const activation = ACTIVATIONS[name];
  if (!activation)
    throw new ConfigError(
      c.file,
      '/config/non_linearity',
      `'${String(c.config.non_linearity)}' is not supported; PEFT Lab's adapters use ${Object.keys(ACTIVATIONS).join(', ')}`,
    );
  return activation;
}

function loraMethod(c: ConfigFile, bert: BertConfig): Record<string, unknown> & { type: 'lora' } {
  const unsupported: [string, (v: unknown) => boolean, string][] = [
    ['composition_mode', (v) => v === undefined || v === 'add', "(IA)^3's 'scale' composition"],
    ['use_gating', (v) => !v, 'gated LoRA (UniPELT)'],
    ['vera_d', (v) => v === null || v === undefined, 'VeRA'],
    ['vera_b', (v) => v === null || v === undefined, 'VeRA'],
  ];
  for (const [field, ok, what] of unsupported) {
    if (!ok(c.config[field]))
      throw new ConfigError(
        c.file,
        `/config/${field}`,
        `is ${JSON.stringify(c.config[field])}: ${what} is not supported by PEFT Lab`,
      );
  }
  const rank = c.config.r ?? 8;
  if (!Number.isInteger(rank) || (rank as number) < 1)
    throw new ConfigError(c.file, '/config/r', `must be a positive integer, found ${JSON.stringify(rank)}`);
  const alpha = c.config.alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0))
    throw new ConfigError(c.file, '/config/alpha', `must be a positive number, found ${JSON.stringify(alpha)}`);
  const targets = loraTargetsOf(c);
  return { type: 'lora', rank, alpha, targets, leaveOut: leaveOutOf(c, bert) };
}

function loraTargetsOf(c: ConfigFile): LoraTarget[] {
  const targets: LoraTarget[] = [];
  if (c.config.selfattn_lora ?? true) {
    const matrices = c.config.attn_matrices ?? ['q', 'v'];
    if (!Array.isArray(matrices))
      throw new ConfigError(
        c.file,
        '/config/attn_matrices',
        `must be a list of 'q', 'k', 'v', found ${JSON.stringify(matrices)}`,
      );
    for (const target of ['query', 'key', 'value'] as const)
      if (matrices.includes(LORA_PLACES[target]!.matrix)) targets.push(target);
    const other = matrices.filter((m) => !['q', 'k', 'v'].includes(m as string));
    if (other.length)
      throw new ConfigError(
        c.file,
        '/config/attn_matrices',
        `holds ${JSON.stringify(other)}: only 'q', 'k' and 'v' exist in BERT`,
      );
  }
  if (c.config.intermediate_lora === true) targets.push('intermediate');
  if (c.config.output_lora === true) targets.push('output');
  if (!targets.length)
    throw new ConfigError(
      c.file,
      '/config/selfattn_lora',
      'the LoRA adapts no matrix (selfattn_lora, intermediate_lora and output_lora select none)',
    );
  return targets;
}

/** The config with its method replaced, through the schema so every default is filled as for a file. */
export function withMethod(config: ResolvedConfig, method: Record<string, unknown>): ResolvedConfig {
  const { sourceFile, ...plain } = config;
  return parseConfigText(JSON.stringify({ ...plain, method }), sourceFile);
}

// ---- the weights -----------------------------------------------------------------------------

/** Takes a tensor of the expected shape (marking it used), or names the tensor and both shapes. */
function take(t: TensorFile, name: string, shape: number[], what: string): { shape: number[]; data: Float32Array } {
  const tensor = t.tensors.get(name);
  if (!tensor) throw new CheckpointError(t.file, `has no tensor ${name} (${what})`);
  if (tensor.shape.join() !== shape.join()) {
    throw new CheckpointError(
      t.file,
      `${name}: shape [${tensor.shape.join(', ')}] does not fit the base model, which needs [${shape.join(', ')}] (${what})`,
    );
  }
  t.used.add(name);
  return tensor;
}

/** Tensors the config does not account for would be silently dropped: refuse them. */
function checkAllUsed(t: TensorFile): void {
  const unused = [...t.tensors.keys()].filter((n) => !t.used.has(n));
  if (!unused.length) return;
  const shown = unused.slice(0, 4).join(', ') + (unused.length > 4 ? `, and ${unused.length - 4} more` : '');
  throw new CheckpointError(t.file, `has tensors its config does not place (PEFT Lab would drop them): ${shown}`);
}

function layersWithAdapters(bert: BertConfig, leaveOut: number[]): number[] {
  return Array.from({ length: bert.num_hidden_layers }, (_, i) => i).filter((i) => !leaveOut.includes(i));
}

/** The adapter's tensors under PEFT Lab's names (see adapterPrefix and LoraMethod in adapters/method.ts). */
function adapterWeights(
  part: { config: ConfigFile; weights: TensorFile },
  method: MethodConfig,
  bert: BertConfig,
  layout: LibraryLayout,
  warnings: string[],
): WeightMap {
  const out =
    method.type === 'lora'
      ? loraWeights(part, method, bert, layout)
      : bottleneckWeights(part, method, bert, layout, warnings);
  checkAllUsed(part.weights);
  return out;
}

function bottleneckWeights(
  part: { config: ConfigFile; weights: TensorFile },
  method: MethodConfig,
  bert: BertConfig,
  layout: LibraryLayout,
  warnings: string[],
): WeightMap {
  if (method.type !== 'houlsby' && method.type !== 'pfeiffer' && method.type !== 'parallel')
    throw new Error(`not a bottleneck method: ${method.type}`);
  const d = bert.hidden_size;
  const m = method.bottleneck!;
  const sites: AdapterSite[] = method.type === 'pfeiffer' ? ['ffn'] : method.sites;
  const name = String(part.config.json.name);
  const scaling =
    method.type !== 'parallel' && typeof part.config.config.scaling === 'number' ? part.config.config.scaling : 1;
  const why = `hidden size ${d}, bottleneck ${m} from reduction_factor ${JSON.stringify(part.config.config.reduction_factor)}`;
  const out: WeightMap = new Map();
  for (const layer of layersWithAdapters(bert, method.leaveOut)) {
    for (const site of sites) {
      const t = bottleneckTensorNames(layer, site, name, layout);
      const prefix = adapterPrefix(layer, site);
      out.set(`${prefix}.down.weight`, take(part.weights, t.downWeight, [m, d], why));
      out.set(`${prefix}.down.bias`, take(part.weights, t.downBias, [m], why));
      out.set(`${prefix}.up.weight`, scaled(take(part.weights, t.upWeight, [d, m], why), scaling));
      out.set(`${prefix}.up.bias`, scaled(take(part.weights, t.upBias, [d], why), scaling));
    }
  }
  if (!out.size) warnings.push('every layer is left out: the adapter changes nothing');
  return out;
}

/** s * up(z) = (s W) z + s b: a constant scaling of a sequential adapter lives in its up-projection. */
function scaled(w: { shape: number[]; data: Float32Array }, s: number): { shape: number[]; data: Float32Array } {
  return s === 1 ? w : { shape: w.shape, data: w.data.map((v) => v * s) };
}

function loraWeights(
  part: { config: ConfigFile; weights: TensorFile },
  method: Extract<MethodConfig, { type: 'lora' }>,
  bert: BertConfig,
  layout: LibraryLayout,
): WeightMap {
  const name = String(part.config.json.name);
  const r = method.rank;
  const d = bert.hidden_size;
  const out: WeightMap = new Map();
  const sizes = (target: LoraTarget): [number, number] =>
    target === 'intermediate'
      ? [d, intermediateOutputs(bert)]
      : target === 'output'
        ? [bert.intermediate_size, d]
        : [d, d];
  for (const layer of layersWithAdapters(bert, method.leaveOut)) {
    const qkv: LoraTarget[] = method.targets.filter((t) => t === 'query' || t === 'key' || t === 'value');
    if (layout.mergedQkv && qkv.length) {
      // One LoRAMergedLinear on Wqkv: A stacks the enabled matrices' [r, d] in q, k, v order, B their [d, r]
      const t = loraTargetTensorNames(layer, 'query', name, layout);
      const why = `rank ${r} on ${qkv.join(', ')} merged in attn.Wqkv, ${d} in, ${d} out each`;
      const a = take(part.weights, t.a, [r * qkv.length, d], why);
      const b = take(part.weights, t.b, [d * qkv.length, r], why);
      qkv.forEach((target, k) => {
        const prefix = `bert.encoder.layer.${layer}.${LORA_MODULES[target]}`;
        out.set(`${prefix}.lora_A.weight`, { shape: [r, d], data: a.data.slice(k * r * d, (k + 1) * r * d) });
        out.set(`${prefix}.lora_B.weight`, { shape: [d, r], data: b.data.slice(k * d * r, (k + 1) * d * r) });
      });
    }
    for (const target of method.targets) {
      if (layout.mergedQkv && qkv.includes(target)) continue;
      const [inSize, outSize] = sizes(target);
      const t = loraTargetTensorNames(layer, target, name, layout);
      const prefix = `bert.encoder.layer.${layer}.${LORA_MODULES[target]}`;
      const why = `rank ${r} on ${layout.loraModule(layer, target).split('.').slice(-2).join('.')}, ${inSize} in, ${outSize} out`;
      out.set(`${prefix}.lora_A.weight`, take(part.weights, t.a, [r, inSize], why));
      out.set(`${prefix}.lora_B.weight`, take(part.weights, t.b, [outSize, r], why));
    }
  }
  return out;
}

/** The head as PEFT Lab's pooler dense and classifier, its rows reordered to the data's label order. */
function headWeights(
  folder: AdapterFolder,
  bert: BertConfig,
  labelNames: string[],
  outputs: number,
  warnings: string[],
): WeightMap {
  if (!folder.head) {
    throw new CheckpointError(
      path.join(folder.dir, HEAD_CONFIG_FILE),
      'is missing: PEFT Lab evaluates with the classification head; save the adapter with model.save_adapter(dir, name, with_head=True, use_safetensors=True)',
    );
  }
  const { config: c, weights: t } = folder.head;
  checkHeadConfig(c, bert, outputs, labelNames);
  const d = bert.hidden_size;
  const names = headTensorNames(String(c.json.name));
  const why = `the classification head for hidden size ${d} and ${outputs} output${outputs === 1 ? '' : 's'}`;
  const order = labelOrder(c, labelNames, warnings);
  const out: WeightMap = new Map([
    ['bert.pooler.dense.weight', take(t, names.denseWeight, [d, d], why)],
    ['bert.pooler.dense.bias', take(t, names.denseBias, [d], why)],
    ['classifier.weight', rows(take(t, names.outWeight, [outputs, d], why), order)],
    ['classifier.bias', rows(take(t, names.outBias, [outputs], why), order)],
  ]);
  checkAllUsed(t);
  return out;
}

function checkHeadConfig(c: ConfigFile, bert: BertConfig, outputs: number, labelNames: string[]): void {
  const h = c.config;
  if (c.json.hidden_size !== undefined && c.json.hidden_size !== bert.hidden_size) {
    throw new ConfigError(
      c.file,
      '/hidden_size',
      `the head was trained for hidden size ${String(c.json.hidden_size)}, the base model has ${bert.hidden_size}`,
    );
  }
  const rules: [string, boolean, string][] = [
    [
      'head_type',
      h.head_type === 'classification',
      "PEFT Lab's head is a classification (or, with one label, regression) head",
    ],
    ['layers', h.layers === 2, "PEFT Lab's head has 2 layers: the pooler's dense + tanh, then the classifier"],
    [
      'activation_function',
      String(h.activation_function).toLowerCase() === 'tanh',
      "PEFT Lab's head uses tanh, as BERT's pooler",
    ],
    ['use_pooler', !h.use_pooler, "PEFT Lab's head reads the [CLS] hidden state (its first layer is the pooler)"],
    ['bias', h.bias === undefined || h.bias === true, "PEFT Lab's classifier has a bias"],
  ];
  for (const [field, ok, why] of rules)
    if (!ok) throw new ConfigError(c.file, `/config/${field}`, `is ${JSON.stringify(h[field] ?? null)}: ${why}`);
  if (h.num_labels !== outputs) {
    const data = labelNames.length ? `${outputs} labels (${labelNames.join(', ')})` : '1 output (regression)';
    throw new ConfigError(
      c.file,
      '/config/num_labels',
      `is ${JSON.stringify(h.num_labels)}, but the config's task and data need ${data}`,
    );
  }
}

/** For each data label in id order, the head's row for it; the identity when the head names no labels. */
function labelOrder(c: ConfigFile, labelNames: string[], warnings: string[]): number[] {
  const identity = Array.from({ length: Math.max(1, labelNames.length) }, (_, i) => i);
  const label2id = c.config.label2id;
  if (!labelNames.length) return [0];
  if (!isObject(label2id)) {
    warnings.push(
      `the head names no labels (label2id is null): its outputs are taken as ${labelNames.join(', ')}, in that order`,
    );
    return identity;
  }
  const headLabels = Object.keys(label2id);
  const same = headLabels.length === labelNames.length && labelNames.every((l) => l in label2id);
  if (!same)
    throw new ConfigError(
      c.file,
      '/config/label2id',
      `names the labels ${headLabels.join(', ')}; the config's data has ${labelNames.join(', ')}`,
    );
  const order = labelNames.map((label) => Number(label2id[label]));
  if (order.some((id, i) => id !== i))
    warnings.push(`the head's outputs are reordered to the data's label order (${labelNames.join(', ')})`);
  return order;
}

function rows(w: { shape: number[]; data: Float32Array }, order: number[]): { shape: number[]; data: Float32Array } {
  const width = w.data.length / w.shape[0]!;
  const data = new Float32Array(w.data.length);
  order.forEach((from, to) => data.set(w.data.subarray(from * width, (from + 1) * width), to * width));
  return { shape: w.shape, data };
}

/**
 * Every weight the imported method trains: the adapter's and the head's, and the base model's for
 * the rest (the encoder's LayerNorms). Built through PeftModel, so the checkpoint holds exactly what
 * `evaluate` will load, and every name and shape is checked by the code that uses them.
 */
export async function completeWeights(
  config: ResolvedConfig,
  base: Awaited<ReturnType<typeof loadBaseModel>>,
  weights: WeightMap,
  outputs: number,
  source: string,
) {
  await selectBackend('cpu'); // only variables are created: the slowest backend is fast enough and always loads
  const model = new PeftModel({
    bert: base.bert,
    base: base.weights,
    method: config.method,
    task: config.task.type,
    outputs,
    seed: config.training.seed,
    dropout: config.training.dropout,
    pooling: config.task.pooling,
  });
  try {
    model.store.importWeights(weights, source, { allowMissing: true });
    return { trainable: model.store.exportWeights((p) => p.trainable), placement: model.placement() };
  } finally {
    model.dispose();
  }
}

// ---- the run folder ----------------------------------------------------------------------------

export function defaultRunDir(config: ResolvedConfig, name: string, format = 'adapterhub'): string {
  const base = path.join(config.output.runsDir, `${config.name}-${name}-${format}`);
  let dir = base;
  for (let n = 2; fs.existsSync(dir); n++) dir = `${base}-${n}`;
  return dir;
}

/** A finished run with one checkpoint, assembled aside and renamed into place; returns the checkpoint folder. */
export function writeImportedRun(
  target: string,
  config: ResolvedConfig,
  weights: WeightMap,
  placement: Placement,
  about: ImportedFrom,
): string {
  if (fs.existsSync(target) && (!fs.statSync(target).isDirectory() || fs.readdirSync(target).length)) {
    throw new CheckpointError(target, 'already exists and is not an empty folder: choose another --out');
  }
  const staging = `${target}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    writeJsonAtomic(path.join(staging, 'config.json'), config);
    const run = RunFolder.open(staging);
    run.writePlacement(placement);
    run.saveCheckpoint(checkpointInfo(config, about), weights, new Map());
    run.markBest(0);
    const now = new Date().toISOString();
    run.writeStatus({
      state: 'finished',
      name: config.name,
      method: config.method.type,
      configFile: config.sourceFile,
      pid: process.pid,
      started: now,
      ended: now,
      step: 0,
      totalSteps: 0,
      bestCheckpoint: path.join(target, 'checkpoints', 'step-0'),
    });
    fs.rmSync(target, { recursive: true, force: true }); // an empty folder, checked above
    fs.renameSync(staging, target);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return path.join(target, 'checkpoints', 'step-0');
}

/** Where an imported checkpoint came from (recorded in its checkpoint.json). */
export interface ImportedFrom {
  labelNames: string[];
  source: string;
  name: string;
  /** 'adapterhub' (default) or 'peft'. */
  format?: string;
}

function checkpointInfo(config: ResolvedConfig, about: ImportedFrom): CheckpointInfo & { importedFrom: object } {
  return {
    step: 0,
    epoch: 0,
    method: config.method.type,
    labelNames: about.labelNames,
    created: new Date().toISOString(),
    trainer: {
      step: 0,
      epoch: 0,
      rng: new Rng(config.training.seed).state(),
      evalsWithoutImprovement: 0,
      routing: {},
      optimizerSteps: {},
    },
    importedFrom: { format: about.format ?? 'adapterhub', dir: about.source, name: about.name },
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
