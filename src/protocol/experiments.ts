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
import {
  Invalid,
  arr,
  attempt,
  bool,
  fail,
  num,
  obj,
  oneOf,
  optNum,
  optStr,
  str,
  strings,
  type Parsed,
} from './validate';

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

/** Which value of a run's validation evaluations the analysis reads per metric. */
export type ValueChoice = 'best' | 'last' | 'min' | 'max';
export const VALUE_CHOICE_IDS: readonly ValueChoice[] = ['best', 'last', 'min', 'max'];

/** A metric's summary over a group's runs (sample sd, n - 1). */
export interface MetricSummary {
  readonly n: number;
  readonly mean: number;
  readonly sd: number;
  readonly min: number;
  readonly max: number;
}

/** One seed group: runs that agree on `key` (every varying parameter but the seed, or the chosen ones). */
export interface GroupRow {
  readonly id: string;
  readonly key: Readonly<Record<string, CellValue>>;
  /** Member run folders. */
  readonly dirs: readonly string[];
  /** By metric id (`best:accuracy`, `final:loss`, `min:loss`, `test:accuracy`). */
  readonly stats: Readonly<Record<string, MetricSummary>>;
}

export interface ImportanceRow {
  readonly parameter: string;
  readonly pearson?: number;
  readonly spearman?: number;
  readonly permutation: number;
  readonly share: number;
}

/** The answer to an AnalyzeMessage: seed groups of the given runs and the importance of their parameters for a metric. */
export interface AnalysisMessage {
  readonly type: 'analysis';
  /** The request this answers (a newer request makes older answers stale). */
  readonly request: number;
  readonly groupBy: readonly string[];
  readonly choice: ValueChoice;
  /** Metric ids the groups have, the task metrics first. */
  readonly metrics: readonly string[];
  readonly groups: readonly GroupRow[];
  readonly importance?: {
    readonly metric: string;
    /** How importance was computed, as shown to the user. */
    readonly method: string;
    readonly runs: number;
    readonly parameters: readonly ImportanceRow[];
  };
}

/** Resolved configs of two or more runs with only the differences, and their final metrics. */
export interface DiffMessage {
  readonly type: 'diff';
  readonly runs: readonly { readonly dir: string; readonly name: string }[];
  readonly parameters: readonly { readonly path: string; readonly values: readonly CellValue[] }[];
  /** Parameters equal in every run (not listed). */
  readonly same: number;
  readonly metrics: readonly { readonly id: string; readonly values: readonly (number | null)[] }[];
}

export type HostToExperiments = RowsMessage | RowsChangedMessage | AnalysisMessage | DiffMessage;

// ---- webview -> host -----------------------------------------------------------------------------

export interface ExperimentsReadyMessage {
  readonly type: 'ready';
}

/** Open these runs in the dashboard: one run's own dashboard, or several overlaid. */
export interface OpenDashboardMessage {
  readonly type: 'openDashboard';
  readonly dirs: readonly string[];
  /** Seed groups instead: each drawn as its mean with a band; `label` names the columns that define it. */
  readonly groups?: readonly { readonly label: string; readonly dirs: readonly string[] }[];
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

/** Group the shown runs and rank their parameters for a metric; answered with an AnalysisMessage. */
export interface AnalyzeMessage {
  readonly type: 'analyze';
  readonly request: number;
  /** The runs shown (after the filters and the brushing). */
  readonly dirs: readonly string[];
  /** Group by exactly these parameters; absent: every varying parameter but the seed. */
  readonly groupBy?: readonly string[];
  readonly choice: ValueChoice;
  /** The metric id importance is computed for; absent: none. */
  readonly metric?: string;
}

/** Show the differences between these runs (two or more). */
export interface DiffRequestMessage {
  readonly type: 'diff';
  readonly dirs: readonly string[];
}

export type TableExportFormat = 'csv' | 'markdown' | 'latex';

/** Save the shown runs (or their seed groups) as a table file; the host asks where. */
export interface ExportTableMessage {
  readonly type: 'exportTable';
  readonly format: TableExportFormat;
  readonly dirs: readonly string[];
  /** Column ids in order (`name`, `param:method.type`, `best:accuracy`, ...). */
  readonly columns: readonly string[];
  /** One row per seed group (mean ± sd) instead of per run. */
  readonly grouped: boolean;
  readonly groupBy?: readonly string[];
  readonly choice: ValueChoice;
}

/** Save a chart the webview drew: SVG text, or PNG bytes in base64. */
export interface ExportChartMessage {
  readonly type: 'exportChart';
  readonly format: 'svg' | 'png' | 'csv';
  /** Suggested file name without extension, e.g. `parallel-coordinates`. */
  readonly name: string;
  readonly data: string;
}

export type ExperimentsToHost =
  | ExperimentsReadyMessage
  | OpenDashboardMessage
  | AnnotateMessage
  | OpenConfigMessage
  | ExperimentsErrorMessage
  | AnalyzeMessage
  | DiffRequestMessage
  | ExportTableMessage
  | ExportChartMessage;

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
  /** One row per seed group (mean ± sd) instead of per run. */
  readonly grouped?: boolean;
  /** Group by these parameters instead of everything but the seed. */
  readonly groupBy?: readonly string[];
  readonly choice?: ValueChoice;
  /** The analysis panel (parallel coordinates, importance): its metric and whether it is folded (brushed ranges live only as long as the page). */
  readonly analysis?: { readonly metric?: string; readonly closed?: boolean };
}

export interface ExperimentsWebviewState {
  readonly version: 1;
  readonly ui: ExperimentsUiState;
}

// ---- validation ------------------------------------------------------------------------------------

const STATES: ReadonlySet<string> = new Set<ExperimentRunState>([
  'running',
  'finished',
  'failed',
  'stopped',
  'unknown',
]);
/** A runaway note or name from a broken webview is cut, not trusted. */
const MAX_TEXT = 10_000;
/** A chart export larger than this (a PNG of a huge canvas) is refused rather than written. */
const MAX_CHART = 50_000_000;
const CHOICES: ReadonlySet<string> = new Set<ValueChoice>(VALUE_CHOICE_IDS);
const TABLE_FORMATS: ReadonlySet<string> = new Set<TableExportFormat>(['csv', 'markdown', 'latex']);
const CHART_FORMATS: ReadonlySet<string> = new Set(['svg', 'png', 'csv']);

function checkSummary(v: unknown, path: string): MetricSummary {
  const o = obj(v, path);
  for (const key of ['n', 'mean', 'sd', 'min', 'max']) num(o[key], `${path}.${key}`);
  return o as unknown as MetricSummary;
}

function checkAnalysis(o: Record<string, unknown>): AnalysisMessage {
  num(o.request, 'analysis.request');
  strings(o.groupBy, 'analysis.groupBy');
  oneOf(o.choice, CHOICES, 'analysis.choice');
  strings(o.metrics, 'analysis.metrics');
  arr(o.groups, 'analysis.groups').forEach((g, i) => {
    const p = `analysis.groups[${i}]`;
    const group = obj(g, p);
    str(group.id, `${p}.id`);
    cellRecord(group.key, `${p}.key`);
    strings(group.dirs, `${p}.dirs`);
    for (const [k, s] of Object.entries(obj(group.stats, `${p}.stats`))) checkSummary(s, `${p}.stats.${k}`);
  });
  if (o.importance !== undefined) {
    const imp = obj(o.importance, 'analysis.importance');
    str(imp.metric, 'analysis.importance.metric');
    str(imp.method, 'analysis.importance.method');
    num(imp.runs, 'analysis.importance.runs');
    arr(imp.parameters, 'analysis.importance.parameters').forEach((x, i) => {
      const p = `analysis.importance.parameters[${i}]`;
      const row = obj(x, p);
      str(row.parameter, `${p}.parameter`);
      optNum(row.pearson, `${p}.pearson`);
      optNum(row.spearman, `${p}.spearman`);
      num(row.permutation, `${p}.permutation`);
      num(row.share, `${p}.share`);
    });
  }
  return o as unknown as AnalysisMessage;
}

function checkDiff(o: Record<string, unknown>): DiffMessage {
  const runs = arr(o.runs, 'diff.runs');
  runs.forEach((r, i) => {
    const run = obj(r, `diff.runs[${i}]`);
    str(run.dir, `diff.runs[${i}].dir`);
    str(run.name, `diff.runs[${i}].name`);
  });
  arr(o.parameters, 'diff.parameters').forEach((x, i) => {
    const row = obj(x, `diff.parameters[${i}]`);
    str(row.path, `diff.parameters[${i}].path`);
    const values = arr(row.values, `diff.parameters[${i}].values`);
    if (values.length !== runs.length)
      throw new Invalid(`diff.parameters[${i}].values: expected ${runs.length} values, got ${values.length}`);
    cellRecord({ ...values }, `diff.parameters[${i}].values`);
  });
  num(o.same, 'diff.same');
  arr(o.metrics, 'diff.metrics').forEach((x, i) => {
    const row = obj(x, `diff.metrics[${i}]`);
    str(row.id, `diff.metrics[${i}].id`);
    arr(row.values, `diff.metrics[${i}].values`).forEach((v, k) => {
      if (v !== null) num(v, `diff.metrics[${i}].values[${k}]`);
    });
  });
  return o as unknown as DiffMessage;
}

function numberRecord(v: unknown, path: string): Record<string, number> {
  const o = obj(v, path);
  for (const [k, x] of Object.entries(o)) num(x, `${path}.${k}`);
  return o as Record<string, number>;
}
function cellRecord(v: unknown, path: string): Record<string, CellValue> {
  const o = obj(v, path);
  for (const [k, x] of Object.entries(o)) {
    if (x !== null && typeof x !== 'string' && typeof x !== 'boolean' && (typeof x !== 'number' || !Number.isFinite(x)))
      fail(`${path}.${k}`, 'a string, finite number, boolean or null', x);
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
  for (const key of ['durationMs', 'totalSteps', 'examplesPerSecond', 'trainableParams', 'trainLoss'])
    optNum(o[key], `${path}.${key}`);
  for (const key of ['best', 'final', 'test']) numberRecord(o[key], `${path}.${key}`);
  cellRecord(o.params, `${path}.params`);
  if (o.sweep !== undefined) {
    const s = obj(o.sweep, `${path}.sweep`);
    str(s.id, `${path}.sweep.id`);
    cellRecord(s.point, `${path}.sweep.point`);
    optNum(s.index, `${path}.sweep.index`);
    optStr(s.metric, `${path}.sweep.metric`);
    if (s.goal !== undefined && s.goal !== 'maximize' && s.goal !== 'minimize')
      fail(`${path}.sweep.goal`, 'maximize or minimize', s.goal);
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
      case 'analysis':
        return checkAnalysis(o);
      case 'diff':
        return checkDiff(o);
      default:
        throw new Invalid(`message.type: expected rows, rowsChanged, analysis or diff, got ${JSON.stringify(o.type)}`);
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
        if (o.groups === undefined) return { type: 'openDashboard', dirs };
        const groups = arr(o.groups, 'openDashboard.groups').map((g, i) => {
          const group = obj(g, `openDashboard.groups[${i}]`);
          const members = strings(group.dirs, `openDashboard.groups[${i}].dirs`);
          if (members.length === 0)
            throw new Invalid(`openDashboard.groups[${i}].dirs: expected at least one run folder`);
          return { label: str(group.label, `openDashboard.groups[${i}].label`), dirs: members };
        });
        return { type: 'openDashboard', dirs, groups };
      }
      case 'annotate': {
        const dir = str(o.dir, 'annotate.dir');
        const name = optStr(o.name, 'annotate.name')?.slice(0, MAX_TEXT);
        const note = optStr(o.note, 'annotate.note')?.slice(0, MAX_TEXT);
        const starred = o.starred === undefined ? undefined : bool(o.starred, 'annotate.starred');
        if (name === undefined && note === undefined && starred === undefined)
          throw new Invalid('annotate: expected a name, starred or note');
        return { type: 'annotate', dir, name, starred, note };
      }
      case 'openConfig':
        return { type: 'openConfig', dir: str(o.dir, 'openConfig.dir') };
      case 'webviewError':
        return { type: 'webviewError', message: str(o.message, 'webviewError.message').slice(0, 2000) };
      case 'analyze': {
        const groupBy = o.groupBy === undefined ? undefined : strings(o.groupBy, 'analyze.groupBy');
        return {
          type: 'analyze',
          request: num(o.request, 'analyze.request'),
          dirs: strings(o.dirs, 'analyze.dirs'),
          groupBy,
          choice: oneOf<ValueChoice>(o.choice, CHOICES, 'analyze.choice'),
          metric: optStr(o.metric, 'analyze.metric'),
        };
      }
      case 'diff': {
        const dirs = strings(o.dirs, 'diff.dirs');
        if (dirs.length < 2) throw new Invalid('diff.dirs: expected at least two run folders');
        return { type: 'diff', dirs };
      }
      case 'exportTable': {
        const groupBy = o.groupBy === undefined ? undefined : strings(o.groupBy, 'exportTable.groupBy');
        return {
          type: 'exportTable',
          format: oneOf<TableExportFormat>(o.format, TABLE_FORMATS, 'exportTable.format'),
          dirs: strings(o.dirs, 'exportTable.dirs'),
          columns: strings(o.columns, 'exportTable.columns'),
          grouped: bool(o.grouped, 'exportTable.grouped'),
          groupBy,
          choice: oneOf<ValueChoice>(o.choice, CHOICES, 'exportTable.choice'),
        };
      }
      case 'exportChart': {
        const data = str(o.data, 'exportChart.data');
        if (data.length > MAX_CHART)
          throw new Invalid(`exportChart.data: expected at most ${MAX_CHART} characters, got ${data.length}`);
        const name =
          str(o.name, 'exportChart.name')
            .replace(/[^A-Za-z0-9_.-]+/g, '-')
            .slice(0, 100) || 'chart';
        return {
          type: 'exportChart',
          format: oneOf<'svg' | 'png' | 'csv'>(o.format, CHART_FORMATS, 'exportChart.format'),
          name,
          data,
        };
      }
      default:
        throw new Invalid(
          `message.type: expected ready, openDashboard, annotate, openConfig, webviewError, analyze, diff, exportTable or exportChart, got ${JSON.stringify(o.type)}`,
        );
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
  const analysis =
    typeof u.analysis === 'object' && u.analysis !== null ? (u.analysis as Record<string, unknown>) : undefined;
  const columnFilters: Record<string, string> = {};
  if (typeof u.columnFilters === 'object' && u.columnFilters !== null) {
    for (const [k, v] of Object.entries(u.columnFilters)) if (typeof v === 'string' && v) columnFilters[k] = v;
  }
  return {
    version: 1,
    ui: {
      sort:
        sort && typeof sort.column === 'string'
          ? { column: sort.column, descending: sort.descending === true }
          : undefined,
      filter: typeof u.filter === 'string' ? u.filter : '',
      columnFilters,
      shown: textList(u.shown),
      hidden: textList(u.hidden),
      showConstant: u.showConstant === true,
      sweep:
        sweep && typeof sweep.id === 'string'
          ? {
              id: sweep.id,
              x: typeof sweep.x === 'string' ? sweep.x : undefined,
              y: typeof sweep.y === 'string' ? sweep.y : undefined,
              closed: sweep.closed === true,
            }
          : undefined,
      // the analysis fields only when set, so a state from before them reads back unchanged
      ...(u.grouped === true ? { grouped: true } : {}),
      ...(Array.isArray(u.groupBy) && textList(u.groupBy).length ? { groupBy: textList(u.groupBy) } : {}),
      ...(typeof u.choice === 'string' && CHOICES.has(u.choice) ? { choice: u.choice as ValueChoice } : {}),
      ...(analysis
        ? {
            analysis: {
              metric: typeof analysis.metric === 'string' ? analysis.metric : undefined,
              closed: analysis.closed === true,
            },
          }
        : {}),
    },
  };
}
