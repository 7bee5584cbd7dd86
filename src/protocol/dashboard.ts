/**
 * Messages between the extension host and the dashboard webview (one panel per run, or one per set
 * of compared runs). Both sides validate what arrives with the parsers below: a malformed message
 * is logged and ignored, never half-applied.
 *
 * Series travel as columns (parallel arrays, ascending step) so that a run with 100,000 logged steps
 * is a few arrays, not 100,000 objects. JSON has no NaN: a non-finite value arrives as `null`.
 */
import type { Placement as WorkerPlacement, PlacementArchitecture, PlacementSite } from './worker';
import {
  Invalid,
  arr,
  attempt,
  bool,
  fail,
  num,
  numbers,
  obj,
  oneOf,
  optStr,
  str,
  strings,
  type Parsed,
} from './validate';

/**
 * placement.json as the dashboard reads it: the worker's own types (./worker.ts, the same folder),
 * read-only all the way down because the dashboard never changes them.
 */
type DeepReadonly<T> = T extends readonly (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;
export type DashboardPlacementSite = DeepReadonly<PlacementSite>;
/** The encoder's architecture (absent in runs from before families: BERT). */
export type DashboardArchitecture = DeepReadonly<PlacementArchitecture>;
export type DashboardPlacement = DeepReadonly<WorkerPlacement>;

type Placement = DashboardPlacement;

export const DASHBOARD_VIEW_TYPE = 'peftLab.dashboard';

/** A run's state as status.json says; `unknown` when status.json is missing or unreadable. */
export type DashboardRunState = 'running' | 'finished' | 'failed' | 'stopped' | 'unknown';

export interface DashboardStatus {
  readonly state: DashboardRunState;
  /** TensorFlow.js backend description, e.g. "wasm (XNNPACK, SIMD, single thread)". */
  readonly backend?: string;
  readonly step: number;
  readonly totalSteps: number;
  readonly started?: string;
  readonly ended?: string;
  readonly bestCheckpoint?: string;
  readonly bestMetrics?: Readonly<Record<string, number>>;
  /** Why a run stopped early (`cancelled`, `early-stopping`). */
  readonly reason?: string;
  /** The error of a failed run. */
  readonly error?: string;
  /** True while this window's run manager receives the worker's messages for it (live, no polling delay). */
  readonly followed: boolean;
}

/** metrics.jsonl `train` lines as columns. */
export interface TrainColumns {
  readonly step: readonly number[];
  readonly epoch: readonly number[];
  readonly loss: readonly (number | null)[];
  readonly learningRate: readonly (number | null)[];
  readonly examplesPerSecond: readonly (number | null)[];
  readonly elapsedMs: readonly (number | null)[];
}

/** One metrics.jsonl `eval` line. */
export interface EvalPoint {
  readonly step: number;
  readonly split: 'validation' | 'test';
  /** accuracy/f1/mcc or pearson/spearman/mse, and loss. */
  readonly metrics: Readonly<Record<string, number | null>>;
  readonly isBest: boolean;
}

/** AdaMix: how often each expert was routed per site ("layer.site"), from the latest checkpoint. */
export interface RoutingCounts {
  /** The checkpoint step the counts come from. */
  readonly step: number;
  readonly sites: Readonly<Record<string, { readonly down: readonly number[]; readonly up: readonly number[] }>>;
}

/** The parts of the resolved config the summary shows (the whole config.json, as JSON). */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };

export interface RunSnapshot {
  /** Absolute run folder: the run's identity on both sides. */
  readonly dir: string;
  /** Folder name, e.g. "sst2-houlsby-20261125-010203". */
  readonly name: string;
  /** The *.peft.json the run came from (config.json `sourceFile`). */
  readonly configFile?: string;
  /** config.json as written by the worker. */
  readonly config?: { readonly [key: string]: JsonValue };
  readonly status: DashboardStatus;
  /** placement.json (written when the run starts, before its first step). */
  readonly placement?: Placement;
  readonly routing?: RoutingCounts;
  readonly train: TrainColumns;
  readonly evals: readonly EvalPoint[];
  /** Steps of the complete checkpoints on disk, ascending. */
  readonly checkpoints: readonly number[];
  /** Files that could not be read, with the reason (shown, never fatal). */
  readonly problems: readonly string[];
}

/** A panel shows one run, several runs overlaid, or seed groups as their means with bands. */
export type DashboardMode = 'run' | 'compare' | 'groups';

/** Which runs form a group and what the legend calls it (the columns that define it). */
export interface DashboardGroupSpec {
  /** E.g. "method.type lora, training.learningRate 0.001"; "all runs" when nothing but the seed differs. */
  readonly label: string;
  readonly dirs: readonly string[];
}

/**
 * One series of a group, per step (ascending): mean, sample sd, min, max and N over the runs that
 * logged the step (src/core/analysis/bands.ts SeriesBand: aligned exactly, N drops where a run has
 * no value). Parallel arrays of one length.
 */
export interface DashboardBand {
  readonly step: readonly number[];
  readonly mean: readonly number[];
  readonly sd: readonly number[];
  readonly min: readonly number[];
  readonly max: readonly number[];
  readonly n: readonly number[];
}

/** A seed group's curves, computed by the host from its runs' metrics. */
export interface DashboardGroup extends DashboardGroupSpec {
  /** The metric its runs select their best checkpoint by (config task.metric), if they say. */
  readonly primaryMetric?: string;
  /** Bands by series: `loss` and `learningRate` (training steps), `validation:<metric>` (evaluations). */
  readonly bands: Readonly<Record<string, DashboardBand>>;
}

// ---- host -> webview -----------------------------------------------------------------------------

/** Everything the panel shows; sent when the webview says it is ready (after a show or a reload). */
export interface SnapshotMessage {
  readonly type: 'snapshot';
  readonly mode: DashboardMode;
  readonly runs: readonly RunSnapshot[];
  /** Mode `groups`: the groups whose means and bands the charts draw (their runs are in `runs`). */
  readonly groups?: readonly DashboardGroup[];
}

/** A group's runs changed (a live run logged steps): every group's curves again. */
export interface GroupsMessage {
  readonly type: 'groups';
  readonly groups: readonly DashboardGroup[];
}

/** New metrics.jsonl lines of one run. */
export interface AppendMessage {
  readonly type: 'append';
  readonly dir: string;
  readonly train: TrainColumns;
  readonly evals: readonly EvalPoint[];
}

/** Changed non-series parts of one run (status, placement once written, routing after a checkpoint). */
export interface RunUpdateMessage {
  readonly type: 'runUpdate';
  readonly dir: string;
  readonly status?: DashboardStatus;
  readonly placement?: Placement;
  readonly routing?: RoutingCounts;
  readonly checkpoints?: readonly number[];
  readonly config?: { readonly [key: string]: JsonValue };
  readonly configFile?: string;
}

/** One run replaced whole (its metrics.jsonl was rewritten, e.g. by a resume). */
export interface ResetRunMessage {
  readonly type: 'resetRun';
  readonly run: RunSnapshot;
}

export type HostToDashboard = SnapshotMessage | AppendMessage | RunUpdateMessage | ResetRunMessage | GroupsMessage;

// ---- webview -> host -----------------------------------------------------------------------------

/** The webview's script has loaded and wants the snapshot. */
export interface ReadyMessage {
  readonly type: 'ready';
}

export type DashboardAction = 'openConfig' | 'stop' | 'resume' | 'evaluate' | 'revealRun';

export interface ActionMessage {
  readonly type: 'action';
  readonly action: DashboardAction;
  readonly dir: string;
}

/** Something failed inside the webview; the host writes it to the PEFT Lab log. */
export interface WebviewErrorMessage {
  readonly type: 'webviewError';
  readonly message: string;
}

/** Save a chart as SVG or CSV (text) or PNG (a base64 data URL); the host asks where. */
export interface DashboardExportMessage {
  readonly type: 'exportChart';
  readonly format: 'svg' | 'png' | 'csv';
  /** Suggested file name without extension. */
  readonly name: string;
  readonly data: string;
}

export type DashboardToHost = ReadyMessage | ActionMessage | WebviewErrorMessage | DashboardExportMessage;

/** What the webview stores with `setState`: enough for the serializer to reopen the panel after a reload. */
export interface DashboardWebviewState {
  readonly version: 1;
  readonly runDirs: readonly string[];
  readonly mode: DashboardMode;
  /** Mode `groups`: the groups, so the panel comes back grouped. */
  readonly groups?: readonly DashboardGroupSpec[];
  readonly ui?: DashboardUiState;
}

export interface DashboardUiState {
  /** EMA weight, 0 (off) to 0.999 (the moving average's window follows from it). */
  readonly smoothing: number;
  /** EMA (TensorBoard's, the default), a trailing moving average, or none. */
  readonly smoother?: 'ema' | 'moving' | 'none';
  readonly logScale: boolean;
  /** Zoomed step range, if zoomed. */
  readonly zoom?: readonly [number, number];
  /** Sections the user collapsed. */
  readonly collapsed?: readonly string[];
  /** Groups: the band around the mean, ±1 sample sd (the default) or the runs' min to max. */
  readonly band?: 'sd' | 'minmax';
}

// ---- validation ------------------------------------------------------------------------------------

const MODES: ReadonlySet<string> = new Set<DashboardMode>(['run', 'compare', 'groups']);
const BAND_KEYS = ['step', 'mean', 'sd', 'min', 'max', 'n'] as const;

function checkGroupSpec(v: unknown, path: string): DashboardGroupSpec {
  const o = obj(v, path);
  const label = str(o.label, `${path}.label`);
  const dirs = strings(o.dirs, `${path}.dirs`);
  if (dirs.length === 0) throw new Invalid(`${path}.dirs: expected at least one run folder`);
  return { label, dirs };
}

function checkGroup(v: unknown, path: string): DashboardGroup {
  const o = obj(v, path);
  checkGroupSpec(o, path);
  optStr(o.primaryMetric, `${path}.primaryMetric`);
  for (const [name, b] of Object.entries(obj(o.bands, `${path}.bands`))) {
    const p = `${path}.bands.${name}`;
    const band = obj(b, p);
    const length = numbers(band.step, `${p}.step`).length;
    for (const key of BAND_KEYS) {
      if (numbers(band[key], `${p}.${key}`).length !== length)
        throw new Invalid(
          `${p}.${key}: expected ${length} values (one per step), got ${(band[key] as unknown[]).length}`,
        );
    }
  }
  return o as unknown as DashboardGroup;
}

const EXPORT_FORMATS: ReadonlySet<string> = new Set(['svg', 'png', 'csv']);
const ACTIONS: ReadonlySet<string> = new Set<DashboardAction>([
  'openConfig',
  'stop',
  'resume',
  'evaluate',
  'revealRun',
]);
const STATES: ReadonlySet<string> = new Set<DashboardRunState>(['running', 'finished', 'failed', 'stopped', 'unknown']);
const SITES: ReadonlySet<string> = new Set([
  'attention',
  'ffn',
  'query',
  'key',
  'value',
  'attention_output',
  'intermediate',
  'output',
]);
const KINDS: ReadonlySet<string> = new Set(['bottleneck', 'parallel', 'adamix', 'lora']);

function nullableNumbers(v: unknown, path: string, length: number): (number | null)[] {
  const a = arr(v, path);
  if (a.length !== length) throw new Invalid(`${path}: expected ${length} values (one per step), got ${a.length}`);
  for (let i = 0; i < a.length; i++)
    if (a[i] !== null && typeof a[i] !== 'number') fail(`${path}[${i}]`, 'a number or null', a[i]);
  return a as (number | null)[];
}
function numberRecord(v: unknown, path: string, nullable: boolean): Record<string, number> {
  const o = obj(v, path);
  for (const [k, x] of Object.entries(o))
    if (!(nullable && x === null) && typeof x !== 'number') fail(`${path}.${k}`, 'a number', x);
  return o as Record<string, number>;
}

function checkTrain(v: unknown, path: string): TrainColumns {
  const o = obj(v, path);
  const step = numbers(o.step, `${path}.step`);
  const n = step.length;
  for (let i = 1; i < n; i++)
    if (step[i]! < step[i - 1]!)
      throw new Invalid(`${path}.step[${i}]: steps must ascend (${step[i - 1]} then ${step[i]})`);
  nullableNumbers(o.epoch, `${path}.epoch`, n);
  for (const key of ['loss', 'learningRate', 'examplesPerSecond', 'elapsedMs'])
    nullableNumbers(o[key], `${path}.${key}`, n);
  return o as unknown as TrainColumns;
}

function checkEvals(v: unknown, path: string): EvalPoint[] {
  return arr(v, path).map((e, i) => {
    const o = obj(e, `${path}[${i}]`);
    num(o.step, `${path}[${i}].step`);
    oneOf(o.split, new Set(['validation', 'test']), `${path}[${i}].split`);
    numberRecord(o.metrics, `${path}[${i}].metrics`, true);
    bool(o.isBest, `${path}[${i}].isBest`);
    return o as unknown as EvalPoint;
  });
}

function checkStatus(v: unknown, path: string): DashboardStatus {
  const o = obj(v, path);
  oneOf(o.state, STATES, `${path}.state`);
  num(o.step, `${path}.step`);
  num(o.totalSteps, `${path}.totalSteps`);
  bool(o.followed, `${path}.followed`);
  for (const key of ['backend', 'started', 'ended', 'bestCheckpoint', 'reason', 'error'])
    optStr(o[key], `${path}.${key}`);
  if (o.bestMetrics !== undefined) numberRecord(o.bestMetrics, `${path}.bestMetrics`, false);
  return o as unknown as DashboardStatus;
}

/** placement.json as the worker writes it (src/protocol/worker.ts `Placement`). */
export function checkPlacement(v: unknown, path = 'placement'): Placement {
  const o = obj(v, path);
  str(o.method, `${path}.method`);
  if (o.architecture !== undefined) checkArchitecture(o.architecture, `${path}.architecture`);
  for (const key of ['layers', 'hiddenSize', 'heads', 'intermediateSize', 'baseParams', 'trainableParams'])
    num(o[key], `${path}.${key}`);
  numberRecord(o.trainableByGroup, `${path}.trainableByGroup`, false);
  numbers(o.leftOut, `${path}.leftOut`);
  arr(o.sites, `${path}.sites`).forEach((s, i) => {
    const p = `${path}.sites[${i}]`;
    const site = obj(s, p);
    num(site.layer, `${p}.layer`);
    oneOf(site.site, SITES, `${p}.site`);
    oneOf(site.kind, KINDS, `${p}.kind`);
    const shapes = obj(site.shapes, `${p}.shapes`);
    for (const [k, shape] of Object.entries(shapes)) numbers(shape, `${p}.shapes.${k}`);
    for (const key of ['bottleneck', 'rank']) if (site[key] !== undefined) num(site[key], `${p}.${key}`);
    optStr(site.activation, `${p}.activation`);
    if (site.experts !== undefined) {
      const e = obj(site.experts, `${p}.experts`);
      num(e.down, `${p}.experts.down`);
      num(e.up, `${p}.experts.up`);
    }
    num(site.trainableParams, `${p}.trainableParams`);
    num(site.inferenceParams, `${p}.inferenceParams`);
  });
  return o as unknown as Placement;
}

function checkArchitecture(v: unknown, path: string): void {
  const a = obj(v, path);
  str(a.modelType, `${path}.modelType`);
  str(a.family, `${path}.family`);
  oneOf(a.norm, new Set(['post', 'pre']), `${path}.norm`);
  str(a.feedForward, `${path}.feedForward`);
  bool(a.biases, `${path}.biases`);
  oneOf(a.positions, new Set(['absolute', 'rotary']), `${path}.positions`);
  arr(a.attention, `${path}.attention`).forEach((kind, i) =>
    oneOf(kind, new Set(['global', 'local']), `${path}.attention[${i}]`),
  );
  for (const key of ['window', 'embeddingSize']) if (a[key] !== undefined) num(a[key], `${path}.${key}`);
  bool(a.finalNorm, `${path}.finalNorm`);
}

function checkRouting(v: unknown, path: string): RoutingCounts {
  const o = obj(v, path);
  num(o.step, `${path}.step`);
  for (const [key, counts] of Object.entries(obj(o.sites, `${path}.sites`))) {
    const c = obj(counts, `${path}.sites.${key}`);
    numbers(c.down, `${path}.sites.${key}.down`);
    numbers(c.up, `${path}.sites.${key}.up`);
  }
  return o as unknown as RoutingCounts;
}

function checkConfig(v: unknown, path: string): { [key: string]: JsonValue } {
  return obj(v, path) as { [key: string]: JsonValue };
}

function checkSnapshot(v: unknown, path: string): RunSnapshot {
  const o = obj(v, path);
  str(o.dir, `${path}.dir`);
  str(o.name, `${path}.name`);
  optStr(o.configFile, `${path}.configFile`);
  if (o.config !== undefined) checkConfig(o.config, `${path}.config`);
  checkStatus(o.status, `${path}.status`);
  if (o.placement !== undefined) checkPlacement(o.placement, `${path}.placement`);
  if (o.routing !== undefined) checkRouting(o.routing, `${path}.routing`);
  checkTrain(o.train, `${path}.train`);
  checkEvals(o.evals, `${path}.evals`);
  numbers(o.checkpoints, `${path}.checkpoints`);
  strings(o.problems, `${path}.problems`);
  return o as unknown as RunSnapshot;
}

/** Validates a message the webview received from the host. */
export function parseHostToDashboard(value: unknown): Parsed<HostToDashboard> {
  return attempt(() => {
    const o = obj(value, 'message');
    switch (o.type) {
      case 'snapshot':
        oneOf(o.mode, MODES, 'snapshot.mode');
        arr(o.runs, 'snapshot.runs').forEach((r, i) => checkSnapshot(r, `snapshot.runs[${i}]`));
        if (o.groups !== undefined)
          arr(o.groups, 'snapshot.groups').forEach((g, i) => checkGroup(g, `snapshot.groups[${i}]`));
        return o as unknown as SnapshotMessage;
      case 'groups':
        arr(o.groups, 'groups.groups').forEach((g, i) => checkGroup(g, `groups.groups[${i}]`));
        return o as unknown as GroupsMessage;
      case 'append':
        str(o.dir, 'append.dir');
        checkTrain(o.train, 'append.train');
        checkEvals(o.evals, 'append.evals');
        return o as unknown as AppendMessage;
      case 'runUpdate':
        str(o.dir, 'runUpdate.dir');
        if (o.status !== undefined) checkStatus(o.status, 'runUpdate.status');
        if (o.placement !== undefined) checkPlacement(o.placement, 'runUpdate.placement');
        if (o.routing !== undefined) checkRouting(o.routing, 'runUpdate.routing');
        if (o.checkpoints !== undefined) numbers(o.checkpoints, 'runUpdate.checkpoints');
        if (o.config !== undefined) checkConfig(o.config, 'runUpdate.config');
        optStr(o.configFile, 'runUpdate.configFile');
        return o as unknown as RunUpdateMessage;
      case 'resetRun':
        checkSnapshot(o.run, 'resetRun.run');
        return o as unknown as ResetRunMessage;
      default:
        throw new Invalid(
          `message.type: expected snapshot, append, runUpdate, resetRun or groups, got ${JSON.stringify(o.type)}`,
        );
    }
  });
}

/** Validates a message the host received from the webview. */
export function parseDashboardToHost(value: unknown): Parsed<DashboardToHost> {
  return attempt(() => {
    const o = obj(value, 'message');
    switch (o.type) {
      case 'ready':
        return { type: 'ready' };
      case 'action':
        return {
          type: 'action',
          action: oneOf<DashboardAction>(o.action, ACTIONS, 'action.action'),
          dir: str(o.dir, 'action.dir'),
        };
      case 'webviewError':
        return { type: 'webviewError', message: str(o.message, 'webviewError.message').slice(0, 2000) };
      case 'exportChart': {
        const data = str(o.data, 'exportChart.data');
        if (data.length > 50_000_000)
          throw new Invalid(`exportChart.data: expected at most 50000000 characters, got ${data.length}`);
        const format = oneOf<'svg' | 'png' | 'csv'>(o.format, EXPORT_FORMATS, 'exportChart.format');
        return {
          type: 'exportChart',
          format,
          name:
            str(o.name, 'exportChart.name')
              .replace(/[^A-Za-z0-9_.-]+/g, '-')
              .slice(0, 100) || 'chart',
          data,
        };
      }
      default:
        throw new Invalid(
          `message.type: expected ready, action, webviewError or exportChart, got ${JSON.stringify(o.type)}`,
        );
    }
  });
}

/** Validates state saved by the webview (the serializer's input after a window reload). */
export function parseDashboardState(value: unknown): Parsed<DashboardWebviewState> {
  return attempt(() => {
    const o = obj(value, 'state');
    if (o.version !== 1) throw new Invalid(`state.version: expected 1, got ${JSON.stringify(o.version)}`);
    const runDirs = strings(o.runDirs, 'state.runDirs');
    if (runDirs.length === 0) throw new Invalid('state.runDirs: expected at least one run folder');
    const mode = oneOf<DashboardMode>(o.mode, MODES, 'state.mode');
    const groups =
      o.groups === undefined
        ? undefined
        : arr(o.groups, 'state.groups').map((g, i) => checkGroupSpec(g, `state.groups[${i}]`));
    if (mode === 'groups' && !groups?.length)
      throw new Invalid('state.groups: expected at least one group in mode groups');
    let ui: DashboardUiState | undefined;
    if (o.ui !== undefined) {
      const u = obj(o.ui, 'state.ui');
      const zoom = u.zoom === undefined ? undefined : numbers(u.zoom, 'state.ui.zoom');
      if (zoom && zoom.length !== 2) throw new Invalid('state.ui.zoom: expected [from, to]');
      ui = {
        smoothing: Math.min(0.999, Math.max(0, num(u.smoothing, 'state.ui.smoothing'))),
        ...(u.smoother === 'ema' || u.smoother === 'moving' || u.smoother === 'none' ? { smoother: u.smoother } : {}),
        logScale: bool(u.logScale, 'state.ui.logScale'),
        zoom: zoom as [number, number] | undefined,
        collapsed: u.collapsed === undefined ? undefined : strings(u.collapsed, 'state.ui.collapsed'),
        ...(u.band === 'sd' || u.band === 'minmax' ? { band: u.band } : {}),
      };
    }
    return { version: 1, runDirs, mode, ...(groups ? { groups } : {}), ui };
  });
}

/** Empty train columns. */
export function emptyTrainColumns(): TrainColumns {
  return { step: [], epoch: [], loss: [], learningRate: [], examplesPerSecond: [], elapsedMs: [] };
}
