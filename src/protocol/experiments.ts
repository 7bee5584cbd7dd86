/**
 * Messages between the extension host and the Experiments table webview (one panel for the whole
 * workspace: one row per run). Both sides validate what arrives with the parsers below: a malformed
 * message is logged and ignored, never half-applied.
 *
 * A row carries everything the table can show as plain values (numbers, strings, booleans, null),
 * already read and derived on the host: the webview never reads files. The resolved config travels
 * flattened to dotted paths (`method.bottleneck`, `training.learningRate`), so the webview can tell
 * which parameters differ between runs without knowing the config's shape.
 *
 * This folder imports nothing outside itself.
 */
import { Invalid, arr, attempt, bool, fail, num, obj, oneOf, optNum, optStr, str, strings, type Parsed } from './validate';

export const EXPERIMENTS_VIEW_TYPE = 'peftLab.experiments';

/** A table cell's value; null where the run has none. */
export type CellValue = string | number | boolean | null;

export type ExperimentRunState = 'running' | 'finished' | 'failed' | 'stopped' | 'unknown';

/** Which sweep a run belongs to, and the point of the sweep it trains (its config.json `sweepPoint`). */
export interface SweepTag {
  /** The sweep's id (`<config name>-sweep-<UTC stamp>`), shared by all its points. */
  readonly id: string;
  /** 0-based position of the point in its sweep (earlier points win ties, as in the sweep's own ranking). */
  readonly index?: number;
  /** The swept parameters' values, by dotted config path (e.g. `training.learningRate`). */
  readonly point: Readonly<Record<string, CellValue>>;
  /** The metric the sweep ranks its points by (`accuracy`, `loss`), and in which direction. */
  readonly metric?: string;
  readonly goal?: 'maximize' | 'minimize';
}

export interface ExperimentRow {
  /** Absolute run folder: the row's identity on both sides. */
  readonly dir: string;
  /** The folder's name, e.g. `sst2-houlsby-20261125-010203`. */
  readonly folder: string;
  /** The name shown: the user's (annotations.json), else the folder's. */
  readonly name: string;
  readonly starred: boolean;
  /** The user's note ('' when none). */
  readonly note: string;
  readonly state: ExperimentRunState;
  /** `finished`, `stopped early`, `interrupted`, ... as the sidebar says it. */
  readonly stateText: string;
  /** The *.peft.json's file name, when known. */
  readonly config?: string;
  /** Epoch ms. */
  readonly started: number;
  readonly durationMs?: number;
  readonly step: number;
  readonly totalSteps?: number;
  /** Short backend name (`wasm`, `cpu`, `tensorflow`). */
  readonly backend?: string;
  /** Training speed at the last logged step. */
  readonly examplesPerSecond?: number;
  readonly trainableParams?: number;
  /** The task's metric (`accuracy`, `pearson`, ...). */
  readonly metric?: string;
  /** Whether a smaller value of `metric` is better (`mse`). */
  readonly lowerIsBetter: boolean;
  /** Validation metrics of the best checkpoint. */
  readonly best: Readonly<Record<string, number>>;
  /** Validation metrics of the last evaluation. */
  readonly final: Readonly<Record<string, number>>;
  /** The latest test-split evaluation. */
  readonly test: Readonly<Record<string, number>>;
  /** Training loss at the last logged step. */
  readonly trainLoss?: number;
  /** The resolved config, flattened to dotted paths (arrays as `[a, b]` text). */
  readonly params: Readonly<Record<string, CellValue>>;
  readonly sweep?: SweepTag;
  /** Why the run (or one of its files) looks broken; empty when all is well. */
  readonly problems: readonly string[];
}

// ---- host -> webview -----------------------------------------------------------------------------

/** Every row; sent when the webview says it is ready (first show, show after hide, reload). */
export interface RowsMessage {
  readonly type: 'rows';
  readonly rows: readonly ExperimentRow[];
}

/** Rows that changed or appeared, and run folders that went. */
export interface RowsChangedMessage {
  readonly type: 'rowsChanged';
  readonly rows: readonly ExperimentRow[];
  readonly removed: readonly string[];
}

export type HostToExperiments = RowsMessage | RowsChangedMessage;

// ---- webview -> host -----------------------------------------------------------------------------

export interface ExperimentsReadyMessage {
  readonly type: 'ready';
}

/** Open these runs in the dashboard: one run's own dashboard, or several overlaid. */
export interface OpenDashboardMessage {
  readonly type: 'openDashboard';
  readonly dirs: readonly string[];
}

/** Change a run's name, star or note (absent fields stay as they are; '' clears a name or note). */
export interface AnnotateMessage {
  readonly type: 'annotate';
  readonly dir: string;
  readonly name?: string;
  readonly starred?: boolean;
  readonly note?: string;
}

/** Open the config the run was trained from. */
export interface OpenConfigMessage {
  readonly type: 'openConfig';
  readonly dir: string;
}

export interface ExperimentsErrorMessage {
  readonly type: 'webviewError';
  readonly message: string;
}

export type ExperimentsToHost = ExperimentsReadyMessage | OpenDashboardMessage | AnnotateMessage | OpenConfigMessage | ExperimentsErrorMessage;

// ---- webview state (kept across hide/show, handed to the serializer after a reload) ---------------

export interface SortState {
  readonly column: string;
  readonly descending: boolean;
}

export interface ExperimentsUiState {
  readonly sort?: SortState;
  /** The text filter across every shown column. */
  readonly filter: string;
  /** Per-column filters by column id (`>0.8`, `lora`, ...). */
  readonly columnFilters: Readonly<Record<string, string>>;
  /** Columns the user showed or hid, on top of the defaults (so new differing parameters still appear). */
  readonly shown: readonly string[];
  readonly hidden: readonly string[];
  /** Show the parameters that are the same in every run (hidden by default). */
  readonly showConstant: boolean;
  /** The sweep chart: which sweep, which parameter against which metric, and whether it is folded away. */
  readonly sweep?: { readonly id: string; readonly x?: string; readonly y?: string; readonly closed?: boolean };
}

export interface ExperimentsWebviewState {
  readonly version: 1;
  readonly ui: ExperimentsUiState;
}

export const DEFAULT_EXPERIMENTS_UI: ExperimentsUiState = { filter: '', columnFilters: {}, shown: [], hidden: [], showConstant: false };

// ---- validation ------------------------------------------------------------------------------------

const STATES: ReadonlySet<string> = new Set<ExperimentRunState>(['running', 'finished', 'failed', 'stopped', 'unknown']);
/** A runaway note or name from a broken webview is cut, not trusted. */
const MAX_TEXT = 10_000;

function numberRecord(v: unknown, path: string): Record<string, number> {
  const o = obj(v, path);
  for (const [k, x] of Object.entries(o)) num(x, `${path}.${k}`);
  return o as Record<string, number>;
}
function cellRecord(v: unknown, path: string): Record<string, CellValue> {
  const o = obj(v, path);
  for (const [k, x] of Object.entries(o)) {
    if (x !== null && typeof x !== 'string' && typeof x !== 'boolean' && (typeof x !== 'number' || !Number.isFinite(x))) fail(`${path}.${k}`, 'a string, finite number, boolean or null', x);
  }
  return o as Record<string, CellValue>;
}

function checkRow(v: unknown, path: string): ExperimentRow {
  const o = obj(v, path);
  for (const key of ['dir', 'folder', 'name', 'note', 'stateText']) str(o[key], `${path}.${key}`);
  for (const key of ['starred', 'lowerIsBetter']) bool(o[key], `${path}.${key}`);
  oneOf(o.state, STATES, `${path}.state`);
  for (const key of ['config', 'backend', 'metric']) optStr(o[key], `${path}.${key}`);
  num(o.started, `${path}.started`);
  num(o.step, `${path}.step`);
  for (const key of ['durationMs', 'totalSteps', 'examplesPerSecond', 'trainableParams', 'trainLoss']) optNum(o[key], `${path}.${key}`);
  for (const key of ['best', 'final', 'test']) numberRecord(o[key], `${path}.${key}`);
  cellRecord(o.params, `${path}.params`);
  if (o.sweep !== undefined) {
    const s = obj(o.sweep, `${path}.sweep`);
    str(s.id, `${path}.sweep.id`);
    cellRecord(s.point, `${path}.sweep.point`);
    optNum(s.index, `${path}.sweep.index`);
    optStr(s.metric, `${path}.sweep.metric`);
    if (s.goal !== undefined && s.goal !== 'maximize' && s.goal !== 'minimize') fail(`${path}.sweep.goal`, 'maximize or minimize', s.goal);
  }
  strings(o.problems, `${path}.problems`);
  return o as unknown as ExperimentRow;
}

/** Validates a message the webview received from the host. */
export function parseHostToExperiments(value: unknown): Parsed<HostToExperiments> {
  return attempt(() => {
    const o = obj(value, 'message');
    switch (o.type) {
      case 'rows':
        arr(o.rows, 'rows.rows').forEach((r, i) => checkRow(r, `rows.rows[${i}]`));
        return o as unknown as RowsMessage;
      case 'rowsChanged':
        arr(o.rows, 'rowsChanged.rows').forEach((r, i) => checkRow(r, `rowsChanged.rows[${i}]`));
        strings(o.removed, 'rowsChanged.removed');
        return o as unknown as RowsChangedMessage;
      default:
        throw new Invalid(`message.type: expected rows or rowsChanged, got ${JSON.stringify(o.type)}`);
    }
  });
}

/** Validates a message the host received from the webview; returns a fresh object with only the known fields. */
export function parseExperimentsToHost(value: unknown): Parsed<ExperimentsToHost> {
  return attempt((): ExperimentsToHost => {
    const o = obj(value, 'message');
    switch (o.type) {
      case 'ready':
        return { type: 'ready' };
      case 'openDashboard': {
        const dirs = strings(o.dirs, 'openDashboard.dirs');
        if (dirs.length === 0) throw new Invalid('openDashboard.dirs: expected at least one run folder');
        return { type: 'openDashboard', dirs };
      }
      case 'annotate': {
        const dir = str(o.dir, 'annotate.dir');
        const name = optStr(o.name, 'annotate.name')?.slice(0, MAX_TEXT);
        const note = optStr(o.note, 'annotate.note')?.slice(0, MAX_TEXT);
        const starred = o.starred === undefined ? undefined : bool(o.starred, 'annotate.starred');
        if (name === undefined && note === undefined && starred === undefined) throw new Invalid('annotate: expected a name, starred or note');
        return { type: 'annotate', dir, name, starred, note };
      }
      case 'openConfig':
        return { type: 'openConfig', dir: str(o.dir, 'openConfig.dir') };
      case 'webviewError':
        return { type: 'webviewError', message: str(o.message, 'webviewError.message').slice(0, 2000) };
      default:
        throw new Invalid(`message.type: expected ready, openDashboard, annotate, openConfig or webviewError, got ${JSON.stringify(o.type)}`);
    }
  });
}

/** Validates state saved by the webview; anything unusable falls back to the defaults, field by field. */
export function parseExperimentsState(value: unknown): ExperimentsWebviewState {
  const o = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const u = o.version === 1 && typeof o.ui === 'object' && o.ui !== null ? (o.ui as Record<string, unknown>) : {};
  const textList = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const sort = u.sort as Record<string, unknown> | undefined;
  const sweep = u.sweep as Record<string, unknown> | undefined;
  const columnFilters: Record<string, string> = {};
  if (typeof u.columnFilters === 'object' && u.columnFilters !== null) {
    for (const [k, v] of Object.entries(u.columnFilters)) if (typeof v === 'string' && v) columnFilters[k] = v;
  }
  return {
    version: 1,
    ui: {
      sort: sort && typeof sort.column === 'string' ? { column: sort.column, descending: sort.descending === true } : undefined,
      filter: typeof u.filter === 'string' ? u.filter : '',
      columnFilters,
      shown: textList(u.shown),
      hidden: textList(u.hidden),
      showConstant: u.showConstant === true,
      sweep: sweep && typeof sweep.id === 'string'
        ? { id: sweep.id, x: typeof sweep.x === 'string' ? sweep.x : undefined, y: typeof sweep.y === 'string' ? sweep.y : undefined, closed: sweep.closed === true }
        : undefined,
    },
  };
}
