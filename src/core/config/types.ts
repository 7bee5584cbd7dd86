/**
 * The shape of a `*.peft.json` file after defaults are applied.
 * `schemas/peft-config.schema.json` is the single source of truth for field docs, defaults and
 * ranges; these types mirror it so the compiler checks every use.
 */

export type Activation = 'gelu' | 'relu' | 'swish';
export type AdapterSite = 'attention' | 'ffn';
export type LoraTarget = 'query' | 'key' | 'value' | 'attention_output' | 'intermediate' | 'output';
export type TaskType = 'classification' | 'regression';
export type MetricName = 'accuracy' | 'f1' | 'mcc' | 'pearson' | 'spearman';
export type DataFormat = 'jsonl' | 'csv' | 'tsv';
export type BackendName = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** Architecture of an encoder built from scratch (random init) when no pretrained folder is given. */
export interface ScratchModelConfig {
  vocab: string;
  layers: number;
  hiddenSize: number;
  heads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  /** Std of the random init (Hugging Face's initializer_range). */
  initializerRange: number;
  /** Position embeddings drawn like every weight, or the Transformer's sinusoids at the same spread. */
  positionInit: 'normal' | 'sinusoidal';
  /** Attention weights drawn like every weight, or mimetic (W_q W_kᵀ near I, W_v W_o near -I). */
  attentionInit: 'normal' | 'mimetic';
  seed: number;
}

/**
 * `path`: a local Hugging Face BERT folder; `hub`: a model id fetched into `cacheDir`;
 * `scratch`: a randomly initialised encoder (only useful as a baseline or before pretraining).
 */
export type ModelConfig =
  { path: string } | { hub: string; revision: string; cacheDir: string } | { scratch: ScratchModelConfig };

export interface TaskConfig {
  type: TaskType;
  /**
   * Label names in id order (classification); read from the training file when omitted. The file may
   * give numbers: a resolved config holds their decimal text (`[0, 1]` -> `["0", "1"]`).
   */
  labels?: string[];
  metric: MetricName;
  /** What the head reads: the [CLS] token's last hidden state, or the mean over the real tokens. */
  pooling: 'cls' | 'mean';
}

export interface DataConfig {
  train: string;
  validation?: string;
  test?: string;
  /** Inferred from the file extension when omitted. */
  format?: DataFormat;
  /** How the data files' bytes are text: UTF-8 (checked: invalid bytes are an error) or Latin-1 (ISO-8859-1). Default utf-8. */
  encoding?: 'utf-8' | 'latin1';
  textField: string;
  textPairField?: string;
  labelField: string;
  maxLength: number;
  /** Use at most this many training examples (handy for quick runs). */
  maxTrainExamples?: number;
  /** Fraction of the training file held out as validation when no validation file is given. */
  validationSplit: number;
}

interface BottleneckFields {
  /** Bottleneck size m; `reductionFactor` (d / m) is used when this is omitted. */
  bottleneck?: number;
  reductionFactor: number;
  activation: Activation;
  initStd: number;
  leaveOut: number[];
}

export interface HoulsbyConfig extends BottleneckFields {
  type: 'houlsby';
  sites: AdapterSite[];
}
export interface PfeifferConfig extends BottleneckFields {
  type: 'pfeiffer';
}
export interface ParallelConfig extends BottleneckFields {
  type: 'parallel';
  sites: AdapterSite[];
  scale: number;
}
export interface AdaMixConfig extends BottleneckFields {
  type: 'adamix';
  sites: AdapterSite[];
  experts: number;
  /** Which projection is shared across experts; the paper shares the up-projection. */
  share: 'up' | 'down' | 'none';
  consistencyWeight: number;
}
export interface LoraConfig {
  type: 'lora';
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  leaveOut: number[];
}
export interface HeadOnlyConfig {
  type: 'head-only';
}
export interface FullConfig {
  type: 'full';
}

export type MethodConfig =
  HoulsbyConfig | PfeifferConfig | ParallelConfig | AdaMixConfig | LoraConfig | HeadOnlyConfig | FullConfig;
export type MethodType = MethodConfig['type'];

export interface EarlyStoppingConfig {
  /** Evaluations without improvement before stopping. */
  patience: number;
  minDelta: number;
}

export interface TrainingConfig {
  epochs: number;
  /** Overrides `epochs` when set. */
  maxSteps?: number;
  batchSize: number;
  learningRate: number;
  /** Fraction of total steps used for linear warm-up. */
  warmupRatio: number;
  /** Fraction of all steps, at the end, over which the rate decays to 0; before it the rate holds at its peak. Unset: the decay starts when warm-up ends. */
  decayRatio?: number;
  weightDecay: number;
  maxGradNorm: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  /** Examples per forward/backward pass; gradients of a batch's passes are summed (default: batchSize). */
  microBatchSize?: number;
  seed: number;
  /** Evaluate every N steps, or at the end of each epoch. */
  evalEvery: number | 'epoch';
  logEvery: number;
  earlyStopping?: EarlyStoppingConfig;
  keepCheckpoints: number;
  /** Hidden and attention dropout; the model's own value when omitted. */
  dropout?: number;
  backend: BackendName;
}

export interface OutputConfig {
  runsDir: string;
}

/** Pretraining also writes a Hugging Face model folder. */
export interface PretrainOutputConfig extends OutputConfig {
  /** Where the final model goes; `<run folder>/model` when omitted. */
  modelDir?: string;
}

/** How a corpus file is read: plain text (see `documents`) or JSON Lines with a text field. */
export type CorpusFormat = 'text' | 'jsonl';

/** Masked language modelling on plain-text corpora (BERT's pretraining objective, without NSP). */
export interface PretrainSection {
  /** Corpus files trained on. */
  corpus: string[];
  /** Held-out files scored during training; a `validationSplit` of the corpus documents when omitted. */
  validation?: string[];
  /** Inferred from each file's extension when omitted: `.jsonl`/`.json` are JSONL, anything else text. */
  format?: CorpusFormat;
  /** Plain text: one document per line, or paragraphs separated by blank lines. */
  documents: 'lines' | 'paragraphs';
  textField: string;
  /** Tokens per sequence including [CLS] and [SEP]; longer documents are cut into several sequences. */
  maxLength: number;
  /** Fill every sequence to maxLength with consecutive documents, separated by [SEP]. */
  pack: boolean;
  maskProbability: number;
  /** Of the selected tokens: the share replaced by [MASK] and by a random token; the rest stay. */
  replaceWithMask: number;
  replaceWithRandom: number;
  validationSplit: number;
  maxValidationSequences: number;
  /** Use at most this many corpus documents (quick runs). */
  maxDocuments?: number;
}

/** A `*.peft.json` with a `pretrain` section: no task, data or method. */
export interface PretrainConfig {
  name: string;
  model: ModelConfig;
  pretrain: PretrainSection;
  training: TrainingConfig;
  output: PretrainOutputConfig;
  slurm?: SlurmOptions;
}

export interface PeftConfig {
  name: string;
  model: ModelConfig;
  task: TaskConfig;
  data: DataConfig;
  method: MethodConfig;
  training: TrainingConfig;
  output: OutputConfig;
  /** A hyperparameter search over this config (`peft-lab sweep`, the Sweep CodeLens); Train ignores it. */
  sweep?: SweepConfig;
  /** Options for runs of this config on a Slurm cluster; local runs ignore them. */
  slurm?: SlurmOptions;
}

/** What users set for their cluster (settings `peftLab.slurm.*`, a config's `slurm` section, CLI flags); see core/slurm/job.ts. */
export interface SlurmOptions {
  /** `--partition`; default: the cluster's default partition. */
  partition?: string;
  /** `--time`, in Slurm's format (`30`, `4:00:00`, `1-00:00:00`); default: the partition's limit. */
  time?: string;
  /** `--cpus-per-task`; default 1. */
  cpusPerTask?: number;
  /** `--mem`, e.g. `8G`; default: the cluster's. */
  mem?: string;
  /** `--gres`, e.g. `gpu:1`. */
  gres?: string;
  account?: string;
  qos?: string;
  /** More `#SBATCH` lines, e.g. `--constraint=a100` (with or without the `#SBATCH `). */
  extraDirectives?: string[];
  /** The Node.js executable on the compute nodes; default: the one running PEFT Lab (visible on a shared home) or `node`. */
  nodePath?: string;
}

/** A config with every relative path made absolute against the config file's folder. */
export interface ResolvedConfig extends PeftConfig {
  /** Absolute path of the file the config came from. */
  sourceFile: string;
  /** Set in the config of one point of a sweep (and so in its run folder's config.json). */
  sweepPoint?: SweepPointInfo;
}

// ---- sweeps ------------------------------------------------------------------------------------

export type SweepMethod = 'grid' | 'random';
export type SweepGoal = 'maximize' | 'minimize';
/** What a sweep can rank its points by: the task's metrics and the validation loss. */
export type SweepMetric = MetricName | 'mse' | 'loss';

/** The values one field takes: a list (grid or random), or a range (random only). */
export type SweepParameter =
  { values: unknown[] } | { min: number; max: number; scale: 'linear' | 'log'; integer: boolean };

export interface SweepConfig {
  method: SweepMethod;
  /** Dotted field path (e.g. `method.bottleneck`) -> its values, in the order written. */
  parameters: Record<string, SweepParameter>;
  /** Random: how many points (default 10); grid: at most this many of its points. */
  count?: number;
  /** Seed of the random draws. */
  seed: number;
  /** Default: the task metric. */
  metric?: SweepMetric;
  /** Default: minimize for loss and mse, else maximize. */
  goal?: SweepGoal;
}

/**
 * What a run of one sweep point records about its sweep, in `config.json` under `sweepPoint`:
 * enough to group the runs of a sweep and chart each swept field against the metric.
 */
export interface SweepPointInfo {
  /** Shared by every point of one sweep: `<config name>-sweep-<UTC stamp>` of when it was planned. */
  sweepId: string;
  /** 0-based position of this point in the sweep, and how many points the sweep has. */
  index: number;
  total: number;
  method: SweepMethod;
  /** This point's value of every swept field, by dotted path, e.g. {"method.bottleneck": 16}. */
  values: Record<string, unknown>;
  /** The config's own name; the run's `name` is this plus the point's values. */
  baseName: string;
  /** How points are ranked: this validation metric of each run's best checkpoint, in this direction. */
  metric: SweepMetric;
  goal: SweepGoal;
}

export interface ResolvedPretrainConfig extends PretrainConfig {
  sourceFile: string;
}

/** Either kind of config: fine-tuning (`task`, `data`, `method`) or pretraining (`pretrain`). */
export type AnyResolvedConfig = ResolvedConfig | ResolvedPretrainConfig;
