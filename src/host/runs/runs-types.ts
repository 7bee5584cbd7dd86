/**
 * The Runs view's plain data: what the model (runs-model.ts) reads from each run folder, and the
 * view options the tree and its commands pass. No behaviour here; the queries over it are in
 * runs-queries.ts.
 */
import type { RunState, RunStatus } from '../../core/checkpoint/run-folder';
import type { Split } from '../../protocol/worker';
import type { RunAnnotations } from './annotations';

export type { RunState } from '../../core/checkpoint/run-folder';

/** What the sidebar shows for a run: its status's state, or `unknown` when status.json is missing or broken. */
export type RunDisplayState = RunState | 'unknown';

/** Values of the state filter: the four states, and runs with a problem (corrupt or half-written). */
export type StateFilter = RunState | 'problem';
export const STATE_FILTERS: readonly StateFilter[] = ['running', 'finished', 'failed', 'stopped', 'problem'];

export type RunsSort = 'date' | 'metric';

export interface RunsViewOptions {
  /** Newest first (default), or best validation metric first. */
  sort: RunsSort;
  /** Config files to show (absolute; '' is the group of runs whose config is unknown); all when undefined or empty. */
  configs?: readonly string[];
  /** States to show; all when undefined or empty. */
  states?: readonly StateFilter[];
}

export interface TrainRecord {
  step: number;
  epoch: number;
  loss: number;
  learningRate?: number;
  examplesPerSecond?: number;
  elapsedMs?: number;
}

export interface EvalRecord {
  split: Split;
  step: number;
  metrics: Record<string, number>;
  isBest: boolean;
}

/** What metrics.jsonl said so far. */
export interface MetricsLog {
  /** Complete lines read (including broken ones). */
  lines: number;
  trainLines: number;
  lastTrain?: TrainRecord;
  evals: EvalRecord[];
  /** Complete lines that are not valid records; `line` is 1-based. */
  broken: { line: number; reason: string }[];
  /** True while the file ends in a line without its newline (being written, or cut by a crash). */
  partialLastLine: boolean;
}

export interface SplitEval {
  metrics: Record<string, number>;
  examples?: number;
  evaluated?: string;
}

export interface CheckpointRecord {
  readonly dir: string;
  readonly runDir: string;
  readonly name: string;
  step: number;
  epoch?: number;
  /** Validation metrics at this step (checkpoint.json), if it was evaluated then. */
  metrics?: Record<string, number>;
  /** eval-validation.json / eval-test.json written by an evaluation of this checkpoint. */
  evals: Partial<Record<Split, SplitEval>>;
  created?: string;
  sizeBytes: number;
  hasWeights: boolean;
  hasOptimizer: boolean;
  problems: string[];
}

/** The parts of config.json the sidebar uses (the whole resolved config is kept as read). */
export interface RunConfig {
  name?: string;
  sourceFile?: string;
  task?: { type?: string; metric?: string; labels?: string[] };
  data?: {
    train?: string;
    validation?: string;
    test?: string;
    format?: string;
    maxTrainExamples?: number;
    validationSplit?: number;
  };
  method?: {
    type?: string;
    bottleneck?: number;
    reductionFactor?: number;
    experts?: number;
    share?: string;
    rank?: number;
    alpha?: number;
    sites?: string[];
    targets?: string[];
    activation?: string;
  };
  training?: { epochs?: number; maxSteps?: number; batchSize?: number; learningRate?: number };
  output?: { runsDir?: string };
  [key: string]: unknown;
}

export interface RunRecord {
  readonly dir: string;
  /** The folder name, e.g. `tiny-20261125-010539`. */
  readonly id: string;
  /** The watched runs folder that holds it. */
  readonly root: string;
  status?: RunStatus;
  config?: RunConfig;
  state: RunDisplayState;
  /** Absolute *.peft.json the run came from (status.configFile, else config.json sourceFile); undefined when neither says. */
  configFile?: string;
  /** Epoch ms (status.started; else the folder's modification time). */
  started: number;
  ended?: number;
  metrics: MetricsLog;
  /** Complete checkpoints and broken ones, ascending by step. */
  checkpoints: CheckpointRecord[];
  /** The step the `best` file (or status.bestCheckpoint) names. */
  bestStep?: number;
  /** Why the run (or one of its files) looks corrupt or half-written; empty when all is well. */
  problems: string[];
  /** Set when status says running but its process is gone (killed without a chance to write its end). */
  interrupted?: string;
  /** Set when a live process on another machine holds the run's lock: who, e.g. `pid 12 on gpu-7 (train) since ...`. */
  runningElsewhere?: string;
  /** No status.json or config.json yet, and the folder is new: a run still starting (not shown). */
  pending: boolean;
  /** The user's display name, star and note (annotations.json); {} when there are none. */
  annotations: RunAnnotations;
}

export interface RunGroup {
  /** Absolute config file, or '' for runs whose config is unknown. */
  readonly configFile: string;
  readonly runs: RunRecord[];
  /** The config file is one of the workspace's (it exists). */
  readonly known: boolean;
}

/** What an update changed: `structure` when runs appeared, went or moved between groups. */
export interface RunsDelta {
  structure: boolean;
  runs: Set<string>;
}

export interface RunsModelOptions {
  /** Whether a process is alive (default: `process.kill(pid, 0)`). */
  isAlive?: (pid: number) => boolean;
  /** Clock, for the age of folders that are still starting (default Date.now). */
  now?: () => number;
  /** A folder without status.json and config.json younger than this is taken as starting (default 2 minutes). */
  pendingMs?: number;
}
