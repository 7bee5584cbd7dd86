/**
 * Training throughput on a BERT encoder of any shape (default the benchmark encoder: 4 layers,
 * hidden 256, 4 heads, intermediate 1024, vocabulary 30,522, 512 positions; random init), with the
 * same shapes and measurement as the PyTorch peer (../shared/bench/peer_torch.py): 2 warm-up steps,
 * then N timed steps of a real training step (forward, backward, gradient clipping, AdamW).
 *
 * Methods: houlsby and adamix (bottleneck 64 at both sites), full (every weight and a
 * classification head) and mlm (masked-language-model pretraining: 15% of the tokens selected,
 * BertForMaskedLM's head at those rows only, the decoder tied to the word embeddings; every weight).
 *
 *   node --import tsx bench/train-throughput.ts [--method houlsby|adamix|full|mlm|pfeiffer|parallel|lora|head-only|all] [--backend wasm|cpu|...]
 *        [--layers 4] [--hidden 256] [--heads 4] [--intermediate 1024] [--vocab 30522]
 *        [--steps 5] [--seq 128] [--batch 32] [--consistency 0] [--dropout 0.1] [--clip on|off]
 *        [--last-layer cls|all] [--micro auto|N] [--native on|off] [--threads N] [--profile] [--plan-only]
 *
 * Each method runs in its own child process so `peak_rss_mib` is that method's alone. Prints one JSON
 * line per method, then a summary line. Measures only: no thresholds, no pass/fail.
 */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { tf } from '../src/core/tf';
import type { BackendName, MethodConfig } from '../src/core/config/types';
import { selectBackend } from '../src/core/backend';
import { DEFAULT_BERT_CONFIG, type BertConfig } from '../src/core/model/bert-config';
import { randomBertWeights } from '../src/core/model/hf-checkpoint';
import { PeftModel } from '../src/core/model/peft-model';
import { MlmModel, randomMlmHead } from '../src/core/model/mlm-model';
import type { ParamStore } from '../src/core/model/params';
import { maskBatch, splitMaskedBatch, type MaskedBatch, type MaskVocabulary } from '../src/core/data/corpus';
import { splitBatch } from '../src/core/data/batches';
import { accumulateGradients, type MicroBatch } from '../src/core/train/loop';
import { planFromProbes } from '../src/core/train/memory-plan';
import type { EncoderInputs } from '../src/core/model/bert';
import type { Batch } from '../src/core/data/batches';
import type { ExpertChoice } from '../src/core/adapters/adamix';
import type { ForwardContext } from '../src/core/adapters/method';
import { AdamW, clipScale } from '../src/core/train/optimizer';
import { batchTensors } from '../src/core/train/trainer';
import { Rng } from '../src/core/random';
import { NATIVE_ENV } from '../src/core/native/addon';
import { NATIVE_THREADS_ENV } from '../src/core/native/wasm-kernels';
import { positiveInteger, readFlags } from './args';

/** `all` runs these; the others are asked for by name (the peer has houlsby, adamix, full and mlm). */
const METHODS = ['houlsby', 'adamix'] as const;
const ALL_METHODS = ['houlsby', 'adamix', 'full', 'mlm', 'pfeiffer', 'parallel', 'lora', 'head-only'] as const;
type BenchMethod = (typeof ALL_METHODS)[number];

/** Set in the environment of the per-method child processes. */
const CHILD_ENV = 'PEFT_BENCH_THROUGHPUT_CHILD';
const WARMUP_STEPS = 2;
const SEED = 0;
const NUM_LABELS = 2;
/** Token ids below this are special in the random batches (never selected or drawn); [MASK] is one of them. */
const MLM_SPECIAL_IDS = 5;
const MLM_MASK_ID = 4;
/** The peer's optimiser settings: AdamW, lr 1e-3, torch's default weight decay 0.01; clipping as PEFT Lab's default. */
const LEARNING_RATE = 1e-3;
const WEIGHT_DECAY = 0.01;
const MAX_GRAD_NORM = 1.0;

const BENCH_BERT: BertConfig = {
  ...DEFAULT_BERT_CONFIG,
  num_hidden_layers: 4,
  hidden_size: 256,
  num_attention_heads: 4,
  intermediate_size: 1024,
  vocab_size: 30522,
  max_position_embeddings: 512,
};

interface Options {
  methods: BenchMethod[];
  /** The encoder's shape: BENCH_BERT with --layers, --hidden, --heads, --intermediate, --vocab. */
  bert: BertConfig;
  backend: BackendName;
  steps: number;
  seq: number;
  batch: number;
  consistency: number;
  /** Hidden and attention dropout (default: the config's 0.1; the PyTorch peer has none). */
  dropout: number;
  /** Clip gradients by their global norm (the Trainer's default; the peer does not clip). */
  clip: boolean;
  /**
   * cls: the last layer computes the [CLS] rows alone, as PeftModel.forward does; all: every token's
   * rows (the work of Hugging Face's BertForSequenceClassification, which the peer runs).
   */
  lastLayer: 'cls' | 'all';
  /** Rows per forward/backward pass: auto (the Trainer's memory plan) or a number. */
  micro: 'auto' | number;
  /** wasm only: the native OpenBLAS kernels (on when the addon loads) or plain wasm kernels. */
  native: boolean;
  /** Threads of the native kernels (default: PEFT_LAB_NATIVE_THREADS, else the physical cores the process may use). */
  threads?: number;
  /** Time every kernel of the active backend during the timed steps (adds a `profile` field). */
  profile: boolean;
  planOnly: boolean;
}

interface Result {
  bench: 'train-throughput';
  method: BenchMethod;
  backend: string;
  /** layers x hidden / heads / intermediate / vocabulary, e.g. "4x256/4/1024/30522". */
  shape: string;
  /** Kernels replaced by the native addon, [] when it is off or did not load. */
  native_kernels: string[];
  seq: number;
  batch: number;
  steps: number;
  dropout: number;
  clip: boolean;
  last_layer: 'cls' | 'all';
  /** Rows per forward/backward pass the step ran (the batch size when one pass fits). */
  micro_batch: number;
  /** --micro auto on wasm: what the memory plan measured (MiB) and the limit it planned for. */
  plan?: {
    passes: number;
    held_mib: number;
    pass_fixed_mib: number;
    per_row_mib: number;
    limit_mib: number;
    limit: string;
  };
  /** Absent with --plan-only, which measures the plan and runs no step. */
  ms_per_step?: number;
  examples_per_sec?: number;
  peak_rss_mib: number;
  /** Resident memory with the model built, before the first step: what the steps add is the difference. */
  model_rss_mib: number;
  /** The wasm backend's heap at the end (it never shrinks, so this is its high-water mark); absent on other backends. */
  wasm_heap_mib?: number;
  tensors_after: number;
  trainable_params: number;
  node: string;
  /** --profile: milliseconds per step and calls per step of each kernel, largest first. */
  profile?: { kernel: string; ms_per_step: number; calls_per_step: number }[];
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: node --import tsx bench/train-throughput.ts [--method houlsby|adamix|full|mlm|pfeiffer|parallel|lora|head-only|all] [--backend wasm|cpu|tensorflow|tensorflow-gpu|auto] [--layers N] [--hidden N] [--heads N] [--intermediate N] [--vocab N] [--steps N] [--seq N] [--batch N] [--consistency W] [--dropout P] [--clip on|off] [--last-layer cls|all] [--micro auto|N] [--native on|off] [--threads N] [--profile] [--plan-only]\n`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const flags = readFlags(
    argv,
    {
      method: { type: 'string' },
      backend: { type: 'string' },
      steps: { type: 'string' },
      layers: { type: 'string' },
      hidden: { type: 'string' },
      heads: { type: 'string' },
      intermediate: { type: 'string' },
      vocab: { type: 'string' },
      seq: { type: 'string' },
      batch: { type: 'string' },
      consistency: { type: 'string' },
      dropout: { type: 'string' },
      clip: { type: 'string' },
      'last-layer': { type: 'string' },
      micro: { type: 'string' },
      native: { type: 'string' },
      threads: { type: 'string' },
      profile: { type: 'boolean' },
      'plan-only': { type: 'boolean' },
    },
    usage,
    'train-throughput: training steps per second (adapters, full fine-tuning, MLM pretraining) on an encoder of any shape',
  );
  const bert: BertConfig = { ...BENCH_BERT };
  if (flags.layers !== undefined) bert.num_hidden_layers = positiveInteger('--layers', flags.layers, usage);
  if (flags.hidden !== undefined) bert.hidden_size = positiveInteger('--hidden', flags.hidden, usage);
  if (flags.heads !== undefined) bert.num_attention_heads = positiveInteger('--heads', flags.heads, usage);
  if (flags.intermediate !== undefined)
    bert.intermediate_size = positiveInteger('--intermediate', flags.intermediate, usage);
  if (flags.vocab !== undefined) bert.vocab_size = positiveInteger('--vocab', flags.vocab, usage);
  if (bert.hidden_size % bert.num_attention_heads !== 0)
    usage(`--heads ${bert.num_attention_heads} must divide --hidden ${bert.hidden_size}`);
  if (bert.vocab_size < MLM_SPECIAL_IDS + 2) usage(`--vocab must be at least ${MLM_SPECIAL_IDS + 2}`);
  const o: Options = {
    methods: [...METHODS],
    bert,
    backend: 'wasm',
    steps: 5,
    seq: 128,
    batch: 32,
    consistency: 0,
    dropout: BENCH_BERT.hidden_dropout_prob,
    clip: true,
    lastLayer: 'cls',
    micro: 'auto',
    native: true,
    profile: flags.profile === true,
    planOnly: flags['plan-only'] === true,
  };
  const method = flags.method;
  if (method !== undefined && method !== 'all') {
    if (!(ALL_METHODS as readonly string[]).includes(method)) usage(`unknown method '${method}'`);
    o.methods = [method as BenchMethod];
  }
  if (flags.backend !== undefined) o.backend = flags.backend as BackendName; // selectBackend rejects unknown names
  if (flags.steps !== undefined) o.steps = positiveInteger('--steps', flags.steps, usage);
  if (flags.seq !== undefined) o.seq = positiveInteger('--seq', flags.seq, usage);
  if (o.seq > bert.max_position_embeddings) usage(`--seq must be at most ${BENCH_BERT.max_position_embeddings}`);
  if (flags.batch !== undefined) o.batch = positiveInteger('--batch', flags.batch, usage);
  if (flags.consistency !== undefined) {
    o.consistency = Number(flags.consistency);
    if (!Number.isFinite(o.consistency) || o.consistency < 0)
      usage(`--consistency must be a number >= 0, got '${flags.consistency}'`);
  }
  if (flags.dropout !== undefined) {
    o.dropout = Number(flags.dropout);
    if (!(o.dropout >= 0 && o.dropout < 1)) usage(`--dropout must be a number in [0, 1), got '${flags.dropout}'`);
  }
  if (flags.clip !== undefined) {
    if (flags.clip !== 'on' && flags.clip !== 'off') usage(`--clip must be on or off, got '${flags.clip}'`);
    o.clip = flags.clip === 'on';
  }
  const lastLayer = flags['last-layer'];
  if (lastLayer !== undefined) {
    if (lastLayer !== 'cls' && lastLayer !== 'all') usage(`--last-layer must be cls or all, got '${lastLayer}'`);
    o.lastLayer = lastLayer;
  }
  if (flags.native !== undefined) {
    if (flags.native !== 'on' && flags.native !== 'off') usage(`--native must be on or off, got '${flags.native}'`);
    o.native = flags.native === 'on';
  }
  if (flags.threads !== undefined) o.threads = positiveInteger('--threads', flags.threads, usage);
  if (flags.micro !== undefined && flags.micro !== 'auto') o.micro = positiveInteger('--micro', flags.micro, usage);
  return o;
}

function methodConfig(method: Exclude<BenchMethod, 'mlm'>, consistency: number): MethodConfig {
  const bottleneck = { bottleneck: 64, reductionFactor: 16, activation: 'gelu' as const, initStd: 1e-3, leaveOut: [] };
  if (method === 'full') return { type: 'full' };
  if (method === 'houlsby') return { type: 'houlsby', ...bottleneck, sites: ['attention', 'ffn'] };
  if (method === 'pfeiffer') return { type: 'pfeiffer', ...bottleneck };
  if (method === 'parallel') return { type: 'parallel', ...bottleneck, sites: ['attention', 'ffn'], scale: 4 };
  if (method === 'lora') return { type: 'lora', rank: 8, alpha: 16, targets: ['query', 'value'], leaveOut: [] };
  if (method === 'head-only') return { type: 'head-only' };
  return {
    type: 'adamix',
    ...bottleneck,
    sites: ['attention', 'ffn'],
    experts: 4,
    share: 'up',
    consistencyWeight: consistency,
  };
}

/** Random token ids (seeded) with a full attention mask and random labels, like the peer's batch. */
function randomBatch(batchSize: number, seqLength: number, vocabSize: number, rng: Rng): Batch {
  const n = batchSize * seqLength;
  const inputIds = new Int32Array(n);
  for (let i = 0; i < n; i++) inputIds[i] = MLM_SPECIAL_IDS + rng.int(vocabSize - MLM_SPECIAL_IDS);
  const labels = new Float32Array(batchSize);
  for (let i = 0; i < batchSize; i++) labels[i] = rng.int(NUM_LABELS);
  return {
    inputIds,
    tokenTypeIds: new Int32Array(n),
    attentionMask: new Float32Array(n).fill(1),
    labels,
    batchSize,
    seqLength,
  };
}

// ---------------------------------------------------------------- one method (child process)

/** The model's logits; with lastLayer 'all' the last layer runs for every token and the head takes the [CLS] rows. */
function forward(model: PeftModel, inputs: EncoderInputs, ctx: ForwardContext, lastLayer: 'cls' | 'all'): tf.Tensor2D {
  if (lastLayer === 'cls') return model.forward(inputs, ctx);
  const [batch, seq] = inputs.inputIds.shape;
  return model.head(model.encoder.clsRows(model.encoder.encode(inputs, ctx, 'all'), batch, seq), ctx);
}

/** One method's model and loss: what a timed step differentiates and updates. */
interface Workload {
  store: ParamStore;
  /**
   * Draws what a step draws before its forward pass (AdaMix routes) and returns the step's passes of
   * at most `rows` rows (the Trainer's micro-batches, weighted by their share of the batch).
   */
  prepare(rng: Rng, rows: number): { parts: MicroBatch[]; after(): void };
  dispose(): void;
}

function adapterWorkload(method: Exclude<BenchMethod, 'mlm'>, o: Options): Workload {
  const model = new PeftModel({
    bert: o.bert,
    base: randomBertWeights(o.bert, SEED),
    method: methodConfig(method, o.consistency),
    task: 'classification',
    outputs: NUM_LABELS,
    seed: SEED,
    dropout: o.dropout,
  });
  const batch = randomBatch(o.batch, o.seq, o.bert.vocab_size, new Rng(SEED + 2));
  const consistency = method === 'adamix' && o.consistency > 0;
  return {
    store: model.store,
    prepare(rng, rows) {
      const routes = model.method.drawRoutes(rng);
      const second = consistency ? model.method.drawRoutes(rng) : undefined;
      const context = (r?: Map<string, ExpertChoice>): ForwardContext => ({
        training: true,
        routes: r,
        dropoutSeed: () => rng.nextUint32(),
      });
      const lossOf = (part: Batch) => (): tf.Scalar => {
        const inputs = batchTensors(part);
        const logits = forward(model, inputs, context(routes), o.lastLayer);
        const taskLoss = model.taskLoss(logits, inputs.labels);
        if (!second) return taskLoss as tf.Scalar;
        const other = forward(model, inputs, context(second), o.lastLayer);
        return tf.add(taskLoss, tf.mul(model.consistencyLoss(logits, other), o.consistency)) as tf.Scalar;
      };
      return {
        parts: splitBatch(batch, rows).map((part) => ({
          weight: part.batchSize / batch.batchSize,
          lossOf: lossOf(part),
        })),
        after() {
          if (routes) model.method.recordRoutes(routes);
          if (second) model.method.recordRoutes(second);
        },
      };
    },
    dispose: () => model.dispose(),
  };
}

/** BERT's masking of a random batch: 15% of the tokens, 80/10/10, fresh every step as in pretraining. */
function mlmWorkload(o: Options): Workload {
  const model = new MlmModel({
    bert: o.bert,
    encoder: randomBertWeights(o.bert, SEED),
    head: randomMlmHead(o.bert, SEED),
    dropout: o.dropout,
  });
  const batch = randomBatch(o.batch, o.seq, o.bert.vocab_size, new Rng(SEED + 2));
  const vocab: MaskVocabulary = {
    maskId: MLM_MASK_ID,
    protectedIds: new Set(Array.from({ length: MLM_SPECIAL_IDS }, (_, i) => i)),
    randomIds: Int32Array.from({ length: o.bert.vocab_size - MLM_SPECIAL_IDS }, (_, i) => MLM_SPECIAL_IDS + i),
  };
  return {
    store: model.store,
    prepare(rng, rows) {
      const masked = maskBatch(batch, vocab, { probability: 0.15, replaceWithMask: 0.8, replaceWithRandom: 0.1 }, rng);
      const ctx: ForwardContext = { training: true, dropoutSeed: () => rng.nextUint32() };
      const lossOf = (part: MaskedBatch) => () =>
        model.loss(
          model.logits(batchTensors(part.batch), tf.tensor1d(part.positions, 'int32'), ctx),
          tf.tensor1d(part.targets, 'int32'),
        );
      return {
        parts: splitMaskedBatch(masked, rows).map((part) => ({
          weight: part.targets.length / masked.targets.length,
          lossOf: lossOf(part),
        })),
        after() {},
      };
    },
    dispose: () => model.dispose(),
  };
}

/**
 * The rows per pass the Trainer's memory plan would choose (loop.ts planPasses): one and two rows
 * measured, 80% of the memory limit; the whole batch off the wasm backend.
 */
function planFor(work: Workload, o: Options, method: BenchMethod): { rows: number; plan?: Result['plan'] } {
  if (tf.getBackend() !== 'wasm') return { rows: o.batch };
  const probe = (rows: number) => work.prepare(new Rng(SEED + 3), rows).parts[0]!.lossOf as () => tf.Scalar;
  const measured = planFromProbes(probe, work.store.trainable(), 0, o.batch, {
    configFile: `train-throughput --method ${method}`,
    field: '--seq',
    tokens: o.seq,
  });
  const mib = (bytes: number) => round(bytes / 2 ** 20, 1);
  return {
    rows: measured.rows,
    plan: {
      passes: Math.ceil(o.batch / measured.rows),
      held_mib: mib(measured.steady),
      pass_fixed_mib: mib(measured.passFixed),
      per_row_mib: mib(measured.perRow),
      limit_mib: mib(measured.limit.bytes),
      limit: measured.limit.why,
    },
  };
}

async function runMethod(method: BenchMethod, o: Options): Promise<Result> {
  if (!o.native) process.env[NATIVE_ENV] = '0';
  if (o.threads !== undefined) process.env[NATIVE_THREADS_ENV] = String(o.threads);
  const backend = await selectBackend(o.backend);
  const work = method === 'mlm' ? mlmWorkload(o) : adapterWorkload(method, o);
  const optimizer = new AdamW({ weightDecay: WEIGHT_DECAY });
  const rng = new Rng(SEED + 1);
  const trainable = work.store.trainable();
  /** Parameters that have had a gradient: AdamW creates a parameter's two moment variables at its first one. */
  const updated = new Set<string>();

  const { rows, plan } = o.micro === 'auto' ? planFor(work, o, method) : { rows: o.micro, plan: undefined };

  /** The Trainer's step: its passes' gradients summed (accumulateGradients, as loop.ts), clipping, AdamW; returns the loss. */
  const step = (): number => {
    const { parts, after } = work.prepare(rng, rows);
    const { loss, grads } = accumulateGradients(parts, trainable);
    try {
      for (const name of grads.keys()) updated.add(name);
      tf.tidy(() =>
        optimizer.apply(trainable, grads, LEARNING_RATE, o.clip ? clipScale(grads, MAX_GRAD_NORM).scale : 1),
      );
    } finally {
      for (const g of grads.values()) g.dispose();
    }
    if (!Number.isFinite(loss)) throw new Error(`${method}: training loss became ${loss}`);
    after();
    return loss;
  };

  const modelRss = process.memoryUsage().rss;
  const steps = o.planOnly ? 0 : o.steps;
  for (let i = 0; i < (o.planOnly ? 0 : WARMUP_STEPS); i++) step();
  const tensorsBefore = tf.memory().numTensors;
  const slotsBefore = 2 * updated.size;
  const profiler = o.profile ? profileKernels(tf.getBackend()) : undefined;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const seconds = (performance.now() - t0) / 1000;
  const profile = profiler?.stop(Math.max(1, steps));
  const tensorsAfter = tf.memory().numTensors;
  // AdaMix experts first picked during the timed steps get their AdamW moments then: growth, not a leak.
  const leaked = tensorsAfter - tensorsBefore - (2 * updated.size - slotsBefore);
  if (leaked !== 0) process.stderr.write(`warning: ${method}: ${leaked} tensors leaked over ${steps} timed steps\n`);
  const result: Result = {
    bench: 'train-throughput',
    method,
    backend: backend.description,
    shape: `${o.bert.num_hidden_layers}x${o.bert.hidden_size}/${o.bert.num_attention_heads}/${o.bert.intermediate_size}/${o.bert.vocab_size}`,
    native_kernels: backend.native?.active ? backend.native.kernels : [],
    seq: o.seq,
    batch: o.batch,
    steps,
    dropout: o.dropout,
    clip: o.clip,
    last_layer: o.lastLayer,
    micro_batch: rows,
    ...(plan ? { plan } : {}),
    ...(steps > 0
      ? { ms_per_step: round((seconds * 1000) / steps, 2), examples_per_sec: round((o.batch * steps) / seconds, 2) }
      : {}),
    peak_rss_mib: round(process.resourceUsage().maxRSS / 1024, 1),
    model_rss_mib: round(modelRss / 2 ** 20, 1),
    ...wasmHeap(),
    tensors_after: tensorsAfter,
    trainable_params: work.store.count((p) => p.trainable),
    node: process.version,
    ...(profile ? { profile } : {}),
  };
  optimizer.dispose();
  work.dispose();
  return result;
}

function wasmHeap(): { wasm_heap_mib?: number } {
  const heap = (tf.backend() as unknown as { wasm?: { HEAPF32?: Float32Array } }).wasm?.HEAPF32;
  return heap ? { wasm_heap_mib: round(heap.buffer.byteLength / 2 ** 20, 1) } : {};
}

/**
 * Wraps every kernel registered for `backendName` with a wall-clock timer (kernels run synchronously
 * on the wasm and cpu backends); stop() restores them and returns the totals per step.
 */
function profileKernels(backendName: string): { stop(steps: number): NonNullable<Result['profile']> } {
  // PEFT_BENCH_PROFILE_SHAPES=1 splits each kernel's time by input shapes and attributes.
  const byShape = process.env.PEFT_BENCH_PROFILE_SHAPES === '1';
  const totals = new Map<string, { ms: number; calls: number }>();
  const originals = tf.getKernelsForBackend(backendName);
  for (const config of originals) {
    const inner = config.kernelFunc;
    const entry = { ms: 0, calls: 0 };
    totals.set(config.kernelName, entry);
    const entryFor = (args: Parameters<typeof inner>[0]) => {
      if (!byShape) return entry;
      const shapes = Object.entries(args.inputs).map(([k, t]) => `${k}[${t?.shape.join(',')}]`);
      const key = `${config.kernelName} ${shapes.join(' ')} ${JSON.stringify(args.attrs ?? {})}`;
      let e = totals.get(key);
      if (!e) totals.set(key, (e = { ms: 0, calls: 0 }));
      return e;
    };
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel({
      ...config,
      setupFunc: undefined,
      kernelFunc: (args) => {
        const e = entryFor(args);
        const t = performance.now();
        const out = inner(args);
        e.ms += performance.now() - t;
        e.calls++;
        return out;
      },
    });
  }
  return {
    stop(steps: number) {
      for (const config of originals) {
        tf.unregisterKernel(config.kernelName, backendName);
        tf.registerKernel(config);
      }
      return [...totals]
        .filter(([, e]) => e.calls > 0)
        .sort((x, y) => y[1].ms - x[1].ms)
        .map(([kernel, e]) => ({
          kernel,
          ms_per_step: round(e.ms / steps, 1),
          calls_per_step: round(e.calls / steps, 1),
        }));
    },
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------- driver (parent process)

/** Runs this file again for one method; resolves with the child's JSON result line. */
/**
 * The children run this script bundled by esbuild, as the worker runs bundled: under tsx (the
 * parent's loader) a process holds ~90 MiB more, which is not the engine's and would count in its
 * peak memory. The bundle sits in bench/.build so that the native addon and node_modules are found
 * from it as from dist/.
 */
async function bundleForChildren(): Promise<string> {
  const outfile = path.join(__dirname, '.build', 'train-throughput.cjs');
  await esbuild.build({
    entryPoints: [__filename],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    mainFields: ['module', 'main'],
    external: ['@tensorflow/*', 'esbuild'],
    logLevel: 'warning',
  });
  return outfile;
}

function runChild(script: string, method: BenchMethod, argv: string[]): Promise<Result> {
  const args = [script, ...argv, '--method', method];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, [CHILD_ENV]: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = out
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{'));
      if (code !== 0 || !line) {
        reject(
          new Error(
            `${method}: child exited with ${signal ?? `code ${code}`}${out.trim() ? `; output: ${out.trim()}` : ''}`,
          ),
        );
        return;
      }
      try {
        resolve(JSON.parse(line) as Result);
      } catch (err) {
        reject(new Error(`${method}: unreadable child output '${line}': ${String(err)}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  if (process.env[CHILD_ENV]) {
    const result = await runMethod(o.methods[0]!, o);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  // The children get the caller's arguments minus --method, then one method each.
  const passOn: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--method') i++;
    else if (!argv[i]!.startsWith('--method=')) passOn.push(argv[i]!);
  }
  const loadBefore = os.loadavg();
  const summary: Record<string, Omit<Result, 'bench' | 'method' | 'node'> | { error: string }> = {};
  let failed = false;
  const script = await bundleForChildren();
  for (const method of o.methods) {
    try {
      const result = await runChild(script, method, passOn);
      process.stdout.write(`${JSON.stringify(result)}\n`);
      const { bench: _b, method: _m, node: _n, ...numbers } = result;
      summary[method] = numbers;
    } catch (err) {
      failed = true;
      summary[method] = { error: err instanceof Error ? err.message : String(err) };
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  const loadAfter = os.loadavg();
  const loadavg = {
    before: loadBefore.map((x) => round(x, 2)),
    after: loadAfter.map((x) => round(x, 2)),
    cpus: os.cpus().length,
  };
  process.stdout.write(`${JSON.stringify({ bench: 'train-throughput', summary, loadavg, node: process.version })}\n`);
  if (failed) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
