/**
 * The adapter layout of the Python `adapters` library (AdapterHub): what `model.save_adapter(dir,
 * name, with_head=True)` writes and `model.load_adapter(dir, use_safetensors=True)` reads, and the
 * export of a PEFT Lab checkpoint into it. No TensorFlow.js: export only renames and averages weights.
 *
 *   adapter_config.json     {"config": {...BnConfig or LoRAConfig fields}, "hidden_size", "model_class",
 *                           "model_name", "model_type", "name", "version"}, json.dump(indent=2, sort_keys=True)
 *   adapter.safetensors     bert.encoder.layer.{i}.attention.output.adapters.{name}.adapter_down.0.weight [m, d] ...
 *   head_config.json        {"config": {"head_type": "classification", ...}, ...}
 *   model_head.safetensors  heads.{name}.1.weight [d, d] ... heads.{name}.4.weight [labels, d]
 *
 * The rules below were read from the library's source (adapter-hub/adapters, main branch):
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/methods/modeling.py
 *     Adapter: adapter_down = Sequential(Linear(d, m), act) (so its Linear is `adapter_down.0`),
 *     adapter_up = Linear(m, d) (torch layout [out, in]); output = up * scaling + residual;
 *     pre_forward/post_forward place it (original_ln_before/after, residual_before_ln);
 *     ParallelAdapter reads the sublayer's input and adds to its output before the LayerNorm.
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/methods/bottleneck.py
 *     BottleneckLayer.add_adapter: down_sample = int(hidden_size // reduction_factor), at least 1.
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/models/bert/mixin_bert.py
 *     BertSelfOutput (`attention.output`) holds the "mh_adapter" adapters, BertOutput (`output`)
 *     the "output_adapter" ones; LoRA wraps attention.self.{query,key,value} ("selfattn", q/k/v),
 *     intermediate.dense ("intermediate") and output.dense ("output").
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/models/bert/modeling_bert.py
 *     BertSelfOutput/BertOutput: dense, dropout, then the adapters with the residual and LayerNorm,
 *     the order PEFT Lab's encoder layer uses (src/core/model/bert.ts).
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/methods/lora.py
 *     LoRA: lora_A [r, in], lora_B [out, r] (plain parameters, no `.weight`), scaling alpha / r.
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/configuration/adapter_config.py
 *     BnConfig / DoubleSeqBnConfig / SeqBnConfig / ParBnConfig / LoRAConfig fields and defaults.
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/configuration/model_adapters_config.py
 *     build_full_config: the top-level fields and "version": "adapters.<version>".
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/loading.py and .../utils.py
 *     file names; a local folder needs adapter_config.json and pytorch_adapter.bin or adapter.safetensors.
 *   https://github.com/adapter-hub/adapters/blob/main/src/adapters/heads/base.py
 *     ClassificationHead(layers=2, activation "tanh"): Dropout, Linear(d, d), tanh, Dropout,
 *     Linear(d, labels), on the [CLS] hidden state when use_pooler is false.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  Activation,
  AdapterSite,
  LoraTarget,
  MethodConfig,
  MethodType,
  ModelConfig,
  ResolvedConfig,
} from '../config/types';
import type { ModelType, WeightMap } from '../model/bert-config';
import type { Placement } from '../../protocol/worker';
import { CheckpointError } from '../errors';
import { readJsonFile, writeFileAtomic } from './atomic';
import { RunFolder, readWeightMap, runDirOfCheckpoint, type CheckpointInfo } from './run-folder';
import { serializeSafetensors, type TensorToWrite } from './safetensors';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter.safetensors';
/** The library's default (torch.save pickle); PEFT Lab neither writes nor reads it. */
export const ADAPTER_PICKLE_FILE = 'pytorch_adapter.bin';
export const HEAD_CONFIG_FILE = 'head_config.json';
export const HEAD_WEIGHTS_FILE = 'model_head.safetensors';
export const HEAD_PICKLE_FILE = 'pytorch_model_head.bin';
/**
 * The library version the files claim. At least 1.1.0: loading.py rewrites a LoRA's alpha to r for
 * older versions (a bug fix of 1.1.0), which would change the scaling of every exported LoRA.
 */
export const LIBRARY_VERSION = 'adapters.1.1.0';
/** The flex-head model class; a head only loads into the class that saved it. */
export const MODEL_CLASS = 'BertAdapterModel';

/**
 * Where the library keeps adapters in each family's model (its base_model_prefix, then the modules):
 *   src/adapters/models/{bert,roberta,xlm_roberta,electra}: BERT's modules, `attention.output` and
 *     `output` hold the adapters, LoRA wraps attention.self.{query,key,value}, intermediate.dense, output.dense
 *   src/adapters/models/distilbert/mixin_distilbert.py: TransformerBlock.attention_adapters and
 *     output_adapters; LoRA wraps attention.{q,k,v}_lin, ffn.lin1, ffn.lin2
 *   src/adapters/wrappers/interfaces.py ("modernbert", the plugin interface) with
 *     methods/bottleneck.py init_bottleneck: layers.{i}.attention_adapters (hooked on attn.Wo) and
 *     output_adapters (on mlp.Wo); methods/lora.py init_lora: one LoRAMergedLinear on attn.Wqkv
 *     whose lora_A stacks the enabled matrices' A [r, in] in q, k, v order and lora_B their B [d, r]
 */
export interface LibraryLayout {
  modelType: ModelType;
  /** The class save_adapter records: the family's flex-head AdapterModel, or ModernBERT's own class (plugin interface). */
  modelClass: string;
  prefix: string;
  /** The module holding a site's adapters, without the trailing `.adapters.{name}`. */
  siteModule(layer: number, site: AdapterSite): string;
  /** The module a LoRA target wraps; ModernBERT's q, k and v share one (merged) module. */
  loraModule(layer: number, target: LoraTarget): string;
  /** q, k and v live in one merged LoRA module, their A and B stacked. */
  mergedQkv: boolean;
  /** Top-level modules of the bare model, whose names a save from it carries without the prefix. */
  bareModules: string[];
}

const BERT_LIKE_LORA: Partial<Record<LoraTarget, string>> = {
  query: 'attention.self.query',
  key: 'attention.self.key',
  value: 'attention.self.value',
  intermediate: 'intermediate.dense',
  output: 'output.dense',
};

function bertLikeLayout(modelType: ModelType, prefix: string, modelClass: string): LibraryLayout {
  return {
    modelType,
    modelClass,
    prefix,
    mergedQkv: false,
    bareModules: ['encoder.'],
    siteModule: (layer, site) => `${prefix}.encoder.layer.${layer}.${SITE_MODULES[site]}`,
    loraModule: (layer, target) => `${prefix}.encoder.layer.${layer}.${BERT_LIKE_LORA[target]}`,
  };
}

const DISTILBERT_LORA: Partial<Record<LoraTarget, string>> = {
  query: 'attention.q_lin',
  key: 'attention.k_lin',
  value: 'attention.v_lin',
  intermediate: 'ffn.lin1',
  output: 'ffn.lin2',
};
const MODERNBERT_LORA: Partial<Record<LoraTarget, string>> = {
  query: 'attn.Wqkv',
  key: 'attn.Wqkv',
  value: 'attn.Wqkv',
  intermediate: 'mlp.Wi',
  output: 'mlp.Wo',
};
const LAYER_SITE_MODULES: Record<AdapterSite, string> = { attention: 'attention_adapters', ffn: 'output_adapters' };

export const LIBRARY_LAYOUTS: Record<ModelType, LibraryLayout> = {
  bert: bertLikeLayout('bert', 'bert', 'BertAdapterModel'),
  roberta: bertLikeLayout('roberta', 'roberta', 'RobertaAdapterModel'),
  'xlm-roberta': bertLikeLayout('xlm-roberta', 'roberta', 'XLMRobertaAdapterModel'),
  electra: bertLikeLayout('electra', 'electra', 'ElectraAdapterModel'),
  distilbert: {
    modelType: 'distilbert',
    modelClass: 'DistilBertAdapterModel',
    prefix: 'distilbert',
    mergedQkv: false,
    bareModules: ['transformer.'],
    siteModule: (layer, site) => `distilbert.transformer.layer.${layer}.${LAYER_SITE_MODULES[site]}`,
    loraModule: (layer, target) => `distilbert.transformer.layer.${layer}.${DISTILBERT_LORA[target]}`,
  },
  modernbert: {
    modelType: 'modernbert',
    modelClass: 'ModernBertModel',
    prefix: 'model',
    mergedQkv: true,
    bareModules: ['layers.'],
    siteModule: (layer, site) => `model.layers.${layer}.${LAYER_SITE_MODULES[site]}`,
    loraModule: (layer, target) => `model.layers.${layer}.${MODERNBERT_LORA[target]}`,
  },
};

export function libraryLayout(modelType: string | undefined): LibraryLayout {
  return LIBRARY_LAYOUTS[(modelType ?? 'bert') as ModelType] ?? LIBRARY_LAYOUTS.bert;
}

/** Where each PEFT Lab adapter site sits in Hugging Face's BERT modules (as adapterPrefix in adapters/method.ts). */
export const SITE_MODULES: Record<AdapterSite, string> = { attention: 'attention.output', ffn: 'output' };
/** The BnConfig flag that puts an adapter at a site. */
export const SITE_FLAGS: Record<AdapterSite, 'mh_adapter' | 'output_adapter'> = {
  attention: 'mh_adapter',
  ffn: 'output_adapter',
};
/** LoRA targets the library can place, with their module and (for attention) attn_matrices letter. */
export const LORA_PLACES: Partial<
  Record<
    LoraTarget,
    { module: string; flag: 'selfattn_lora' | 'intermediate_lora' | 'output_lora'; matrix?: 'q' | 'k' | 'v' }
  >
> = {
  query: { module: 'attention.self.query', flag: 'selfattn_lora', matrix: 'q' },
  key: { module: 'attention.self.key', flag: 'selfattn_lora', matrix: 'k' },
  value: { module: 'attention.self.value', flag: 'selfattn_lora', matrix: 'v' },
  intermediate: { module: 'intermediate.dense', flag: 'intermediate_lora' },
  output: { module: 'output.dense', flag: 'output_lora' },
};

// ---- naming ------------------------------------------------------------------------------------

export function bottleneckTensorNames(
  layer: number,
  site: AdapterSite,
  name: string,
  layout: LibraryLayout = LIBRARY_LAYOUTS.bert,
) {
  const p = `${layout.siteModule(layer, site)}.adapters.${name}`;
  return {
    downWeight: `${p}.adapter_down.0.weight`,
    downBias: `${p}.adapter_down.0.bias`,
    upWeight: `${p}.adapter_up.weight`,
    upBias: `${p}.adapter_up.bias`,
  };
}

export function loraTensorNames(layer: number, module: string, name: string) {
  const p = `bert.encoder.layer.${layer}.${module}.loras.${name}`;
  return { a: `${p}.lora_A`, b: `${p}.lora_B` };
}

/** A LoRA target's tensor names in the family's model (ModernBERT: the merged Wqkv module's, shared by q, k, v). */
export function loraTargetTensorNames(layer: number, target: LoraTarget, name: string, layout: LibraryLayout) {
  const p = `${layout.loraModule(layer, target)}.loras.${name}`;
  return { a: `${p}.lora_A`, b: `${p}.lora_B` };
}

/** ClassificationHead's Linear layers: module 1 (d -> d, then tanh) and module 4 (d -> labels). */
export function headTensorNames(name: string) {
  return {
    denseWeight: `heads.${name}.1.weight`,
    denseBias: `heads.${name}.1.bias`,
    outWeight: `heads.${name}.4.weight`,
    outBias: `heads.${name}.4.bias`,
  };
}

/** `int(hidden_size // reduction_factor)`, at least 1, exactly as Python computes it. */
export function bottleneckFor(hidden: number, reductionFactor: number): number {
  return Math.max(1, pythonFloorDiv(hidden, reductionFactor));
}

/** A reduction factor the library turns back into exactly `bottleneck`: d / m, nudged when float division would round below m. */
export function reductionFactorFor(hidden: number, bottleneck: number): number {
  if (hidden % bottleneck === 0) return hidden / bottleneck;
  const candidates = [hidden / bottleneck, hidden / (bottleneck + 0.5)];
  const rf = candidates.find((c) => bottleneckFor(hidden, c) === bottleneck);
  if (rf === undefined)
    throw new RangeError(`no reduction factor gives bottleneck ${bottleneck} for hidden size ${hidden}`);
  return rf;
}

/** CPython's float floor division (float_floor_div), which differs from Math.floor(a / b) near integers. */
function pythonFloorDiv(a: number, b: number): number {
  const mod = a % b; // JavaScript's % on doubles is C's fmod, as CPython uses
  let div = (a - mod) / b;
  if (mod !== 0 && b < 0 !== mod < 0) div -= 1;
  const floor = Math.floor(div);
  return div - floor > 0.5 ? floor + 1 : floor;
}

/** Adapter and head names become module names (`adapters.{name}.`), so they must not contain dots. */
export function checkAdapterName(name: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(name)) return name;
  throw new CheckpointError(
    name,
    'is not a valid adapter name: use letters, digits, "_" and "-" (it becomes part of module names)',
  );
}

/** The config's name made into a valid adapter name. */
export function defaultAdapterName(configName: string): string {
  return configName.replace(/[^A-Za-z0-9_-]+/g, '_') || 'adapter';
}

// ---- JSON as Python writes it -------------------------------------------------------------------

/** A number Python must read back as a float: the library rejects `"scaling": 1` (an int) but accepts 1.0. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** `json.dump(value, indent=2, sort_keys=True)` (ensure_ascii), with PyFloat written as floats. */
export function pythonJson(value: unknown, indent = ''): string {
  if (value instanceof PyFloat)
    return Number.isInteger(value.value) ? value.value.toFixed(1) : JSON.stringify(value.value);
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string')
    return JSON.stringify(value).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  if (typeof value !== 'object') return JSON.stringify(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    return value.length ? `[\n${value.map((v) => inner + pythonJson(v, inner)).join(',\n')}\n${indent}]` : '[]';
  }
  const keys = Object.keys(value).sort();
  if (!keys.length) return '{}';
  const members = keys.map(
    (k) => `${inner}${pythonJson(k)}: ${pythonJson((value as Record<string, unknown>)[k], inner)}`,
  );
  return `{\n${members.join(',\n')}\n${indent}}`;
}

// ---- configs ---------------------------------------------------------------------------------

export interface BnPlacement {
  sites: AdapterSite[];
  bottleneck: number;
  hidden: number;
  activation: Activation;
  leaveOut: number[];
  parallel?: { scale: number };
}

/**
 * Every BnConfig field, as `asdict` serialises it. The placement fields reproduce PEFT Lab's
 * computation, LN(x + f + adapter(f)) (parallel: LN(x + f + s * adapter(x))): the adapter reads the
 * sublayer output before the LayerNorm (original_ln_before false, as in DoubleSeqBnConfig) at
 * every site, also for PEFT Lab's one-site `pfeiffer`, whose adapter sits where Houlsby's FFN
 * adapter does (SeqBnConfig's original_ln_before true would feed it LN(x + f) instead).
 */
export function bnConfigJson(p: BnPlacement): Record<string, unknown> {
  return {
    mh_adapter: p.sites.includes('attention'),
    output_adapter: p.sites.includes('ffn'),
    reduction_factor: reductionFactorFor(p.hidden, p.bottleneck),
    non_linearity: p.activation,
    original_ln_before: false,
    original_ln_after: true,
    ln_before: false,
    ln_after: false,
    // init_weights only matters for a fresh adapter; these are the values of the matching library configs
    init_weights: p.parallel ? 'mam_adapter' : 'bert',
    init_weights_seed: null,
    is_parallel: p.parallel !== undefined,
    scaling: new PyFloat(p.parallel?.scale ?? 1),
    use_gating: false,
    residual_before_ln: true,
    adapter_residual_before_ln: false,
    inv_adapter: null,
    inv_adapter_reduction_factor: null,
    cross_adapter: false,
    leave_out: [...p.leaveOut],
    dropout: new PyFloat(0),
    phm_layer: false,
    phm_dim: 4,
    factorized_phm_W: true,
    shared_W_phm: false,
    shared_phm_rule: true,
    factorized_phm_rule: false,
    phm_c_init: 'normal',
    phm_init_range: 0.0001,
    learn_phm: true,
    hypercomplex_nonlinearity: 'glorot-uniform',
    phm_rank: 1,
    phm_bias: true,
    stochastic_depth: new PyFloat(0),
  };
}

/** Every LoRAConfig field; `targets` must all be places the library has (see LORA_PLACES). */
export function loraConfigJson(
  rank: number,
  alpha: number,
  targets: LoraTarget[],
  leaveOut: number[],
): Record<string, unknown> {
  const places = targets.map((t) => LORA_PLACES[t]!);
  return {
    architecture: 'lora',
    selfattn_lora: places.some((p) => p.flag === 'selfattn_lora'),
    intermediate_lora: places.some((p) => p.flag === 'intermediate_lora'),
    output_lora: places.some((p) => p.flag === 'output_lora'),
    leave_out: [...leaveOut],
    r: rank,
    alpha,
    dropout: new PyFloat(0),
    attn_matrices: (['q', 'k', 'v'] as const).filter((m) => places.some((p) => p.matrix === m)),
    composition_mode: 'add',
    init_weights: 'lora',
    init_weights_seed: null,
    use_gating: false,
    vera_d: null,
    vera_b: null,
    dtype: null,
  };
}

/**
 * PEFT Lab's head is BERT's pooler (dense + tanh on [CLS]) and a linear classifier: exactly
 * ClassificationHead with layers 2 and tanh on the [CLS] hidden state (use_pooler false). The only
 * difference is a dropout the library applies before the first Linear, which is inactive at inference.
 * `dropout_prob` is left out: versions before it was added reject it as an argument.
 */
export function headConfigJson(labelNames: string[], outputs: number): Record<string, unknown> {
  return {
    head_type: 'classification',
    num_labels: outputs,
    layers: 2,
    activation_function: 'tanh',
    label2id: labelNames.length ? Object.fromEntries(labelNames.map((label, id) => [label, id])) : null,
    use_pooler: false,
    bias: true,
  };
}

/** The wrapper build_full_config puts around a config. */
export function fullConfigJson(
  config: Record<string, unknown>,
  hidden: number,
  modelName: string | null,
  name: string,
  layout: LibraryLayout = LIBRARY_LAYOUTS.bert,
): Record<string, unknown> {
  return {
    config,
    hidden_size: hidden,
    model_class: layout.modelClass,
    model_name: modelName,
    model_type: layout.modelType,
    name,
    version: LIBRARY_VERSION,
  };
}

/** What the library records as the model's name: the hub id, a local folder's name, nothing for a random init. */
export function modelNameOf(model: ModelConfig): string | null {
  if ('hub' in model) return model.hub;
  if ('path' in model) return path.basename(path.resolve(model.path));
  return null;
}

// ---- export ------------------------------------------------------------------------------------

export interface AdapterHubExportOptions {
  /** The folder to create; it must not exist, or be empty. */
  out: string;
  /** The adapter's (and its head's) name in the library; default: the run's config name. */
  name?: string;
}

export interface AdapterHubExport {
  dir: string;
  name: string;
  method: MethodType;
  files: string[];
  adapterTensors: number;
  headTensors: number;
  /** Trained weights an AdapterHub adapter cannot carry (the encoder's LayerNorms): the library uses the base model's. */
  notExported: string[];
  /** Things worth telling the user: merged experts, what differs, how to load it. */
  notes: string[];
}

export interface ExportSource {
  config: ResolvedConfig;
  info: CheckpointInfo;
  weights: WeightMap;
  placement?: Placement;
}

interface Part {
  config: Record<string, unknown>;
  tensors: WeightMap;
  notes: string[];
}

/** Writes a checkpoint as an AdapterHub adapter folder (adapter and head), assembled aside and renamed into place. */
export function exportAdapterHub(checkpointDir: string, options: AdapterHubExportOptions): AdapterHubExport {
  const source = readExportSource(checkpointDir);
  const name = checkAdapterName(options.name ?? defaultAdapterName(source.config.name));
  const hidden = hiddenSizeOf(source.weights, checkpointDir);
  const modelName = modelNameOf(source.config.model);
  // placement.json names the family; runs from before it did were BERT
  const layout = libraryLayout(source.placement?.architecture?.modelType);
  const adapter = adapterPart(source, name, hidden, checkpointDir, layout);
  const head = headPart(source, name, checkpointDir);
  const files: Record<string, string | Uint8Array> = {};
  if (adapter) {
    files[ADAPTER_CONFIG_FILE] = pythonJson(fullConfigJson(adapter.config, hidden, modelName, name, layout));
    files[ADAPTER_WEIGHTS_FILE] = serializeSafetensors(writable(adapter.tensors));
  }
  files[HEAD_CONFIG_FILE] = pythonJson(fullConfigJson(head.config, hidden, modelName, name, layout));
  files[HEAD_WEIGHTS_FILE] = serializeSafetensors(writable(head.tensors));
  const dir = writeFolderAtomically(options.out, files);
  return {
    dir,
    name,
    method: source.config.method.type,
    files: Object.keys(files),
    adapterTensors: adapter?.tensors.size ?? 0,
    headTensors: head.tensors.size,
    notExported: layerNormsTrained(source),
    notes: [...(adapter?.notes ?? []), ...head.notes],
  };
}

/** `<parent>/<run>-<step>-adapterhub`, with a counter when that exists: a new folder for an export. */
export function defaultExportFolder(checkpointDir: string, parent: string): string {
  const dir = path.resolve(checkpointDir);
  const base = path.join(
    path.resolve(parent),
    `${path.basename(runDirOfCheckpoint(dir))}-${path.basename(dir)}-adapterhub`,
  );
  let target = base;
  for (let n = 2; fs.existsSync(target); n++) target = `${base}-${n}`;
  return target;
}

export function readExportSource(checkpointDir: string): ExportSource {
  const dir = path.resolve(checkpointDir);
  const infoFile = path.join(dir, 'checkpoint.json');
  if (!fs.existsSync(infoFile))
    throw new CheckpointError(dir, 'is not a complete PEFT Lab checkpoint (no checkpoint.json)');
  const run = RunFolder.open(runDirOfCheckpoint(dir));
  const config = run.readConfig();
  if ('pretrain' in config)
    throw new CheckpointError(
      dir,
      'is a pretraining checkpoint: it is already a Hugging Face model folder, there is no adapter to export',
    );
  const placementFile = run.file('placement.json');
  const placement = fs.existsSync(placementFile) ? (readJsonFile(placementFile, 'placement') as Placement) : undefined;
  const info = readJsonFile(infoFile, 'checkpoint') as CheckpointInfo;
  return { config, info, weights: readWeightMap(path.join(dir, 'weights.safetensors')), placement };
}

/** Every method trains the pooler, so its [d, d] weight gives the hidden size without reading the base model. */
function hiddenSizeOf(weights: WeightMap, checkpointDir: string): number {
  const pooler = weights.get('bert.pooler.dense.weight');
  if (!pooler)
    throw new CheckpointError(
      checkpointDir,
      'weights.safetensors has no bert.pooler.dense.weight (the head PEFT Lab always trains)',
    );
  return pooler.shape[0]!;
}

function adapterPart(
  source: ExportSource,
  name: string,
  hidden: number,
  checkpointDir: string,
  layout: LibraryLayout,
): Part | undefined {
  const method = source.config.method;
  switch (method.type) {
    case 'houlsby':
    case 'pfeiffer':
    case 'parallel':
    case 'adamix':
      return bottleneckPart(source, method, name, hidden, checkpointDir, layout);
    case 'lora':
      return loraPart(source, method, name, checkpointDir, layout);
    case 'head-only':
      return undefined;
    case 'full':
      throw new CheckpointError(
        checkpointDir,
        "was trained with method 'full', which changes every weight of the encoder: there is no adapter to export (AdapterHub export supports houlsby, pfeiffer, parallel, adamix, lora and head-only)",
      );
  }
}

type BottleneckMethod = Extract<MethodConfig, { type: 'houlsby' | 'pfeiffer' | 'parallel' | 'adamix' }>;

function bottleneckPart(
  source: ExportSource,
  method: BottleneckMethod,
  name: string,
  hidden: number,
  checkpointDir: string,
  layout: LibraryLayout,
): Part {
  const sites: AdapterSite[] = method.type === 'pfeiffer' ? ['ffn'] : method.sites;
  const merged = mergedAdapters(source.weights);
  const tensors: WeightMap = new Map();
  let bottleneck: number | undefined;
  for (const [key, adapter] of merged) {
    const [layer, site] = parseSiteKey(key);
    const t = bottleneckTensorNames(layer, site, name, layout);
    tensors
      .set(t.downWeight, adapter.down.weight)
      .set(t.downBias, adapter.down.bias)
      .set(t.upWeight, adapter.up.weight)
      .set(t.upBias, adapter.up.bias);
    bottleneck ??= adapter.down.weight.shape[0];
  }
  checkSitesComplete(merged, sites, method.leaveOut, source.placement, checkpointDir);
  const config = bnConfigJson({
    sites,
    bottleneck: bottleneck!,
    hidden,
    activation: method.activation,
    leaveOut: method.leaveOut,
    parallel: method.type === 'parallel' ? { scale: method.scale } : undefined,
  });
  const notes = method.type === 'adamix' ? [adamixNote(source.weights)] : [];
  if (method.type === 'pfeiffer')
    notes.push(
      "PEFT Lab's pfeiffer adapter reads the feed-forward output before the LayerNorm, so its config sets original_ln_before false (SeqBnConfig's default is true)",
    );
  return { config, tensors, notes };
}

interface MergedProjection {
  weight: { shape: number[]; data: Float32Array };
  bias: { shape: number[]; data: Float32Array };
}

/** `bert.encoder.layer.3.output.adapter[.experts.k].down.weight`: PEFT Lab's adapter names (see adapters/method.ts, adamix.ts). */
const ADAPTER_WEIGHT =
  /^bert\.encoder\.layer\.(\d+)\.(attention\.output|output)\.adapter\.(?:experts\.\d+\.)?(down|up)\.(weight|bias)$/;

/**
 * One down and one up projection per site, keyed `layer.site`. AdaMix experts are averaged weight
 * by weight (mergeMixture in adapters/adamix.ts): the single adapter PEFT Lab evaluates with.
 */
function mergedAdapters(weights: WeightMap): Map<string, { down: MergedProjection; up: MergedProjection }> {
  const groups = new Map<string, { shape: number[]; data: Float32Array }[]>();
  for (const [weightName, w] of weights) {
    const m = ADAPTER_WEIGHT.exec(weightName);
    if (!m) continue;
    const key = `${m[1]}.${m[2] === 'output' ? 'ffn' : 'attention'}.${m[3]}.${m[4]}`;
    groups.set(key, [...(groups.get(key) ?? []), w]);
  }
  const out = new Map<string, { down: MergedProjection; up: MergedProjection }>();
  for (const key of [...groups.keys()].filter((k) => k.endsWith('.down.weight'))) {
    const site = key.slice(0, -'.down.weight'.length);
    const projection = (p: 'down' | 'up'): MergedProjection => ({
      weight: average(groups.get(`${site}.${p}.weight`)!),
      bias: average(groups.get(`${site}.${p}.bias`)!),
    });
    out.set(site, { down: projection('down'), up: projection('up') });
  }
  return new Map([...out].sort(([a], [b]) => compareSiteKeys(a, b)));
}

function average(tensors: { shape: number[]; data: Float32Array }[]): { shape: number[]; data: Float32Array } {
  if (tensors.length === 1) return tensors[0]!;
  const data = new Float32Array(tensors[0]!.data.length);
  // Summed in float64 and rounded once; tf.mean in float32 may differ in the last bit.
  for (let i = 0; i < data.length; i++) {
    let sum = 0;
    for (const t of tensors) sum += t.data[i]!;
    data[i] = sum / tensors.length;
  }
  return { shape: [...tensors[0]!.shape], data };
}

function adamixNote(weights: WeightMap): string {
  const experts = (projection: 'down' | 'up') =>
    new Set(
      [...weights.keys()]
        .filter((n) => n.includes('.experts.') && n.endsWith(`.${projection}.weight`))
        .map((n) => /experts\.(\d+)/.exec(n)![1]),
    ).size || 1;
  return `AdaMix: each site is the weight average of its experts (${experts('down')} down, ${experts('up')} up), the merged adapter PEFT Lab evaluates with`;
}

function parseSiteKey(key: string): [number, AdapterSite] {
  const [layer, site] = key.split('.');
  return [Number(layer), site as AdapterSite];
}

function compareSiteKeys(a: string, b: string): number {
  const [la, sa] = parseSiteKey(a);
  const [lb, sb] = parseSiteKey(b);
  return la - lb || sa.localeCompare(sb);
}

/**
 * The library adds an adapter to every layer not left out and silently keeps a fresh one where the
 * file has none, so a checkpoint with a site missing must not export as if complete.
 */
function checkSitesComplete(
  merged: Map<string, unknown>,
  sites: AdapterSite[],
  leaveOut: number[],
  placement: Placement | undefined,
  checkpointDir: string,
): void {
  if (merged.size === 0) throw new CheckpointError(checkpointDir, 'weights.safetensors holds no adapter weights');
  const layers = placement?.layers ?? Math.max(...[...merged.keys()].map((k) => parseSiteKey(k)[0])) + 1;
  const missing: string[] = [];
  for (let layer = 0; layer < layers; layer++) {
    if (leaveOut.includes(layer)) continue;
    for (const site of sites) if (!merged.has(`${layer}.${site}`)) missing.push(`layer ${layer} ${site}`);
  }
  if (missing.length)
    throw new CheckpointError(
      checkpointDir,
      `weights.safetensors has no adapter for ${missing.join(', ')}, which the run's method places one at`,
    );
}

function loraPart(
  source: ExportSource,
  method: Extract<MethodConfig, { type: 'lora' }>,
  name: string,
  checkpointDir: string,
  layout: LibraryLayout,
): Part {
  const unsupported = method.targets.filter((t) => !LORA_PLACES[t]);
  if (unsupported.length) {
    throw new CheckpointError(
      checkpointDir,
      `LoRA target${unsupported.length > 1 ? 's' : ''} ${unsupported.join(', ')} cannot be exported: the adapters library's LoRAConfig adapts only query, key, value, intermediate and output`,
    );
  }
  const byTarget = new Map<string, { a: WeightEntry; b: WeightEntry }>(); // `${layer}.${target}`
  for (const [weightName, w] of source.weights) {
    const m = /^bert\.encoder\.layer\.(\d+)\.(.+)\.lora_(A|B)\.weight$/.exec(weightName);
    if (!m) continue;
    // PEFT Lab's LoRA modules carry BERT's names for every family (adapters/method.ts LORA_MODULES)
    const target = (Object.keys(LORA_PLACES) as LoraTarget[]).find((t) => LORA_PLACES[t]!.module === m[2]);
    if (!target) continue;
    const key = `${m[1]}.${target}`;
    const entry = byTarget.get(key) ?? ({} as { a: WeightEntry; b: WeightEntry });
    entry[m[3] === 'A' ? 'a' : 'b'] = w; // both already in the library's layout: A [r, in], B [out, r]
    byTarget.set(key, entry);
  }
  if (!byTarget.size) throw new CheckpointError(checkpointDir, 'weights.safetensors holds no LoRA weights');
  const tensors: WeightMap = new Map();
  const layers = [...new Set([...byTarget.keys()].map((k) => Number(k.split('.')[0])))].sort((a, b) => a - b);
  for (const layer of layers) {
    const at = (t: LoraTarget) => byTarget.get(`${layer}.${t}`);
    const qkv = (['query', 'key', 'value'] as const).filter((t) => at(t));
    if (layout.mergedQkv && qkv.length) {
      // LoRAMergedLinear: the enabled matrices' A stacked along rows, their B likewise, in q, k, v order
      const t = loraTargetTensorNames(layer, 'query', name, layout);
      tensors.set(t.a, stackRows(qkv.map((target) => at(target)!.a)));
      tensors.set(t.b, stackRows(qkv.map((target) => at(target)!.b)));
    }
    for (const target of ['query', 'key', 'value', 'intermediate', 'output'] as const) {
      const pair = at(target);
      if (!pair || (layout.mergedQkv && qkv.includes(target as (typeof qkv)[number]))) continue;
      const t = loraTargetTensorNames(layer, target, name, layout);
      tensors.set(t.a, pair.a).set(t.b, pair.b);
    }
  }
  return { config: loraConfigJson(method.rank, method.alpha, method.targets, method.leaveOut), tensors, notes: [] };
}

type WeightEntry = { shape: number[]; data: Float32Array };

/** Tensors of equal width stacked along their first axis. */
function stackRows(parts: WeightEntry[]): WeightEntry {
  const rows = parts.reduce((n, p) => n + p.shape[0]!, 0);
  const data = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p.data, offset);
    offset += p.data.length;
  }
  return { shape: [rows, ...parts[0]!.shape.slice(1)], data };
}

function headPart(source: ExportSource, name: string, checkpointDir: string): Part {
  const get = (weightName: string) => {
    const w = source.weights.get(weightName);
    if (!w) throw new CheckpointError(checkpointDir, `weights.safetensors has no ${weightName}`);
    return w;
  };
  const t = headTensorNames(name);
  const classifier = get('classifier.weight');
  const tensors: WeightMap = new Map([
    [t.denseWeight, get('bert.pooler.dense.weight')],
    [t.denseBias, get('bert.pooler.dense.bias')],
    [t.outWeight, classifier],
    [t.outBias, get('classifier.bias')],
  ]);
  const outputs = classifier.shape[0]!;
  const notes =
    source.config.method.type === 'head-only'
      ? ['head-only: only the head is exported; load it with model.load_head(dir, use_safetensors=True)']
      : [];
  if (source.config.task.pooling === 'mean') {
    notes.push(
      "task.pooling is 'mean': this head was trained on the mean of the real tokens' hidden states, but the adapters library's classification head reads the [CLS] token's, " +
        'so with it the head predicts differently from PEFT Lab; the adapter itself is unaffected (use it with your own mean pooling, e.g. a sentence-transformers Pooling module)',
    );
  }
  return { config: headConfigJson(source.info.labelNames, outputs), tensors, notes };
}

/** Encoder LayerNorms the run trained (adapter methods train both of every layer); an AdapterHub adapter has no place for them. */
function layerNormsTrained(source: ExportSource): string[] {
  return [...source.weights.keys()].filter((n) => n.startsWith('bert.encoder.') && n.includes('.LayerNorm.'));
}

function writable(weights: WeightMap): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const [name, w] of weights) out[name] = { dtype: 'F32', shape: w.shape, data: w.data };
  return out;
}

/**
 * Writes `files` into `target` so that it appears complete or not at all: assembled in a sibling
 * folder and renamed. An existing non-empty `target` is never touched.
 */
export function writeFolderAtomically(target: string, files: Record<string, string | Uint8Array>): string {
  const dir = path.resolve(target);
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length)
      throw new CheckpointError(dir, 'already exists and is not an empty folder: choose another output folder');
    fs.rmdirSync(dir);
  }
  const staging = `${dir}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  try {
    for (const [name, content] of Object.entries(files)) writeFileAtomic(path.join(staging, name), content);
    fs.renameSync(staging, dir);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return dir;
}
