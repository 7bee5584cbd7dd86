/**
 * Messages between the extension host (or the CLI) and the training worker.
 * This folder imports nothing: the worker, the host and the webview all depend on it, never the reverse.
 */

/** One adapter (or LoRA pair) at one place of one layer, as `placement.json` stores it. */
export interface PlacementSite {
  layer: number;
  /** Where in the layer: after the attention output projection, after the feed-forward block, or a projection LoRA targets. */
  site: 'attention' | 'ffn' | 'query' | 'key' | 'value' | 'attention_output' | 'intermediate' | 'output';
  kind: 'bottleneck' | 'parallel' | 'adamix' | 'lora';
  /** Weight shapes in [in, out] order, e.g. down [768, 48], up [48, 768]; LoRA: A [in, r], B [r, out]. */
  shapes: Record<string, number[]>;
  bottleneck?: number;
  rank?: number;
  activation?: string;
  /** AdaMix: number of distinct down and up projections (a shared projection counts once). */
  experts?: { down: number; up: number };
  /** Trainable parameters of this site during training (all experts). */
  trainableParams: number;
  /** Parameters this site costs at inference (AdaMix: one merged adapter). */
  inferenceParams: number;
}

/** The encoder's architecture as the placement view draws it; runs from before it existed were BERT. */
export interface PlacementArchitecture {
  /** config.json's model_type, e.g. "roberta", and its display name, e.g. "RoBERTa". */
  modelType: string;
  family: string;
  /** post: Add & LayerNorm after each block (BERT and its relatives); pre: LayerNorm before each block, then a residual Add (ModernBERT). */
  norm: 'post' | 'pre';
  /** The feed-forward block: "GELU", "ReLU", or "GeGLU" (ModernBERT's gated GELU, its input projection twice as wide). */
  feedForward: string;
  /** Whether the linear layers carry biases (ModernBERT's have none). */
  biases: boolean;
  /** Absolute position embeddings added to the tokens, or rotary positions turning q and k. */
  positions: 'absolute' | 'rotary';
  /** Each layer's attention: over the whole sequence, or within `window` tokens (ModernBERT's local layers). */
  attention: ('global' | 'local')[];
  window?: number;
  /** ELECTRA: embeddings narrower than the encoder, projected up. */
  embeddingSize?: number;
  /** ModernBERT: a LayerNorm after the last layer. */
  finalNorm: boolean;
}

export interface Placement {
  method: string;
  architecture?: PlacementArchitecture;
  layers: number;
  hiddenSize: number;
  heads: number;
  intermediateSize: number;
  /** Parameters of the pretrained encoder (embeddings, layers, pooler). */
  baseParams: number;
  /** Everything that trains: adapters, layer norms, head (or the whole model for `full`). */
  trainableParams: number;
  /** Trainable parameters by group, e.g. adapters, layerNorms, head, lora, encoder. */
  trainableByGroup: Record<string, number>;
  /** Layers that carry no adapter (`leaveOut`). */
  leftOut: number[];
  sites: PlacementSite[];
}

export interface BackendInfo {
  active: string;
  description: string;
  skipped: { name: string; reason: string }[];
  /** wasm only: whether the native OpenBLAS kernels are in use, and why not when they are not. */
  native?: { active: boolean; reason?: string };
}

export interface ErrorInfo {
  name: string;
  message: string;
  file?: string;
  line?: number;
  path?: string;
}

export type Split = 'validation' | 'test';

// ---- worker -> host ------------------------------------------------------------------------------

export interface StartedMessage {
  readonly type: 'started';
  /** Fine-tuning ('train') or masked-language-model pretraining ('pretrain'); absent means 'train'. */
  kind?: 'train' | 'pretrain';
  runId: string;
  runDir: string;
  configFile: string;
  backend: BackendInfo;
  placement: Placement;
  totalSteps: number;
  stepsPerEpoch: number;
  trainExamples: number;
  validationExamples: number;
  resumedFromStep?: number;
  /** How the step's passes were sized to memory (the wasm backend without training.microBatchSize). */
  memory?: MemoryPlanInfo;
}

/** The memory plan of a run: bytes held between passes, a pass's fixed and per-row peak, the limit planned for. */
export interface MemoryPlanInfo {
  heldBytes: number;
  passBytes: number;
  rowBytes: number;
  /** Tokens of the longest sequence the pass was measured with. */
  tokens: number;
  limitBytes: number;
  /** What sets the limit: the WebAssembly heap, the machine's or container's memory, PEFT_LAB_MEMORY_LIMIT_MIB. */
  limitedBy: string;
  /** Rows per pass (the batch size when one pass fits). */
  rows: number;
}

export interface ProgressMessage {
  readonly type: 'progress';
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  learningRate: number;
  examplesPerSecond: number;
  elapsedMs: number;
}

export interface MetricsMessage {
  readonly type: 'metrics';
  step: number;
  split: Split;
  metrics: Record<string, number>;
  isBest: boolean;
}

export interface CheckpointMessage {
  readonly type: 'checkpoint';
  step: number;
  dir: string;
  isBest: boolean;
  sizeBytes: number;
}

export interface FinishedMessage {
  readonly type: 'finished';
  runDir: string;
  state: 'finished' | 'stopped';
  /** Why the run ended before its last step, if it did. */
  reason?: 'cancelled' | 'early-stopping';
  bestCheckpoint?: string;
  bestMetrics?: Record<string, number>;
  /** Pretraining: the Hugging Face model folder written at the end. */
  modelDir?: string;
  durationMs: number;
}

export interface EvaluatedMessage {
  readonly type: 'evaluated';
  checkpointDir: string;
  split: Split;
  metrics: Record<string, number>;
  examples: number;
}

export interface FailedMessage {
  readonly type: 'failed';
  error: ErrorInfo;
  runDir?: string;
}

export interface LogMessage {
  readonly type: 'log';
  level: 'info' | 'warn' | 'error';
  message: string;
}

export type WorkerMessage =
  | StartedMessage
  | ProgressMessage
  | MetricsMessage
  | CheckpointMessage
  | FinishedMessage
  | EvaluatedMessage
  | FailedMessage
  | LogMessage;

// ---- host -> worker ------------------------------------------------------------------------------

export interface TrainRequest {
  readonly type: 'train';
  configFile: string;
  /** A run folder to continue from its last checkpoint. */
  resume?: string;
  /** With `resume`: continue even when the config file changes what the run computes (recorded in its status.json). */
  allowConfigChange?: boolean;
  backend?: string;
  /** Overrides the config's output.runsDir (the extension's peftLab.runsDirectory setting). */
  runsDir?: string;
  /**
   * Keep training when the host goes away (a window reload): the worker then logs only to the run
   * folder's worker.log, and a new host follows the run through its folder.
   */
  detach?: boolean;
  /**
   * A resolved, already checked config to train instead of reading `configFile`: one point of a
   * sweep, with `name` and `sweepPoint` set (see src/core/config/sweep.ts). `configFile` still
   * names the file it came from, for status.json and the Runs view.
   */
  config?: { readonly name: string; readonly sourceFile: string };
}

/**
 * Masked-language-model pretraining of a config with a `pretrain` section; fields as for `train`.
 * (A `train` request for such a config is run as pretraining too, so a host need not tell them apart.)
 */
export interface PretrainRequest extends Omit<TrainRequest, 'type'> {
  readonly type: 'pretrain';
}

export interface EvaluateRequest {
  readonly type: 'evaluate';
  checkpointDir: string;
  split: Split;
  backend?: string;
}

/** Stop at the next step boundary, writing a checkpoint first so the run can be resumed. */
export interface CancelRequest {
  readonly type: 'cancel';
}

export type HostRequest = TrainRequest | PretrainRequest | EvaluateRequest | CancelRequest;

const WORKER_TYPES = new Set([
  'started',
  'progress',
  'metrics',
  'checkpoint',
  'finished',
  'evaluated',
  'failed',
  'log',
]);
const HOST_TYPES = new Set(['train', 'pretrain', 'evaluate', 'cancel']);

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return hasType(value) && WORKER_TYPES.has(value.type);
}

export function isHostRequest(value: unknown): value is HostRequest {
  return hasType(value) && HOST_TYPES.has(value.type);
}

function hasType(value: unknown): value is { type: string } {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}
