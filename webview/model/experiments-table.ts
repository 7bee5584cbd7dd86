/**
 * The Experiments table's model, as plain functions of the rows (no DOM, no `vscode`): which
 * columns there are (the config parameters that differ between runs, the metrics the runs logged),
 * which are shown, how cells read as text, sorting and filtering, and the sweep chart's points.
 * test/unit/experiments.test.ts runs it as is; webview/experiments/ draws it.
 */
import type { CellValue, ExperimentRow, ExperimentsUiState, SortState } from '../../src/protocol/experiments';
import { formatCount, formatDuration, formatMetricValue } from '../../src/protocol/format';

export type ColumnKind = 'number' | 'text' | 'boolean';
export type ColumnGroup = 'run' | 'parameter' | 'metric' | 'training' | 'annotation';

export interface Column {
  /** Stable id: `name`, `param:training.learningRate`, `best:accuracy`, ... (kept in the webview state). */
  readonly id: string;
  readonly label: string;
  /** What the header's tooltip says. */
  readonly title: string;
  readonly group: ColumnGroup;
  readonly kind: ColumnKind;
  /** A parameter with the same value in every run (hidden unless asked for). */
  readonly constant: boolean;
  readonly shownByDefault: boolean;
  /** For metrics: a smaller value is better (the sweep chart and sorting by "best first" use it). */
  readonly lowerIsBetter?: boolean;
  value(row: ExperimentRow): CellValue | undefined;
  /** The cell as text (also what the filters match). */
  format(value: CellValue | undefined): string;
}

// ---- formatting ------------------------------------------------------------------------------------

export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

/** `2026-11-25 01:05` in local time: sorts and reads the same way. */
export function formatTime(ms: number): string {
  if (!ms) return '';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function plain(value: CellValue | undefined): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'number') return formatNumber(value);
  return String(value);
}

const isMissing = (v: CellValue | undefined): v is null | undefined => v === undefined || v === null || v === '';

// ---- columns -----------------------------------------------------------------------------------------

interface ColumnSpec {
  id: string;
  label: string;
  title?: string;
  group: ColumnGroup;
  kind: ColumnKind;
  shown?: boolean;
  constant?: boolean;
  lowerIsBetter?: boolean;
  value: (row: ExperimentRow) => CellValue | undefined;
  format?: (value: number) => string;
  text?: (value: CellValue | undefined) => string;
}

function column(spec: ColumnSpec): Column {
  const number = spec.format;
  return {
    id: spec.id,
    label: spec.label,
    title: spec.title ?? spec.label,
    group: spec.group,
    kind: spec.kind,
    constant: spec.constant ?? false,
    shownByDefault: spec.shown ?? true,
    lowerIsBetter: spec.lowerIsBetter,
    value: spec.value,
    format: spec.text ?? ((v) => (typeof v === 'number' && number ? number(v) : plain(v))),
  };
}

export interface ParameterInfo {
  readonly path: string;
  /** The same value (or absence) in every row. */
  readonly constant: boolean;
  /** Every present value is a number. */
  readonly numeric: boolean;
}

/**
 * The config parameters of the rows, in first-seen order, each marked constant when every run has
 * the same value (a run without the parameter counts as a different value: LoRA has no bottleneck).
 */
export function diffParameters(rows: readonly ExperimentRow[]): ParameterInfo[] {
  const seen = new Map<string, { first: CellValue | undefined; constant: boolean; numeric: boolean }>();
  rows.forEach((row, i) => {
    for (const [key, value] of Object.entries(row.params)) {
      let info = seen.get(key);
      if (!info) {
        // rows before this one lack the key: it differs unless this is the first row
        info = { first: value, constant: i === 0, numeric: true };
        seen.set(key, info);
      } else if (info.constant && info.first !== value) info.constant = false;
      if (value !== null && typeof value !== 'number') info.numeric = false;
    }
  });
  if (rows.length > 1) {
    // a key a later row lacks differs too
    for (const [key, info] of seen) if (info.constant && rows.some((r) => !(key in r.params))) info.constant = false;
  }
  return [...seen].map(([path, info]) => ({ path, constant: info.constant, numeric: info.numeric }));
}

/** Metric names logged by the rows (best, final or test), the task metrics first and `loss` last. */
export function metricNames(rows: readonly ExperimentRow[]): {
  names: string[];
  primary: Set<string>;
  hasTest: boolean;
} {
  const names = new Set<string>();
  const primary = new Set<string>();
  let hasTest = false;
  for (const row of rows) {
    if (row.metric) primary.add(row.metric);
    for (const k of Object.keys(row.best)) names.add(k);
    for (const k of Object.keys(row.final)) names.add(k);
    for (const k of Object.keys(row.test)) {
      names.add(k);
      hasTest = true;
    }
  }
  const rank = (k: string) => (primary.has(k) ? 0 : k === 'loss' ? 2 : 1);
  return { names: [...names].sort((a, b) => rank(a) - rank(b)), primary, hasTest };
}

const LOWER_IS_BETTER = /loss|mse|mae|error/i;

/** Every column the rows can fill, in the table's order; `shownByDefault` says which show without a choice. */
export function buildColumns(rows: readonly ExperimentRow[]): Column[] {
  const columns: Column[] = [
    column({
      id: 'starred',
      label: '★',
      title: 'Starred',
      group: 'annotation',
      kind: 'boolean',
      value: (r) => r.starred,
      text: (v) => (v ? 'starred' : ''),
    }),
    column({
      id: 'name',
      label: 'Name',
      title: "The run's name (Rename… in the Runs view, or double-click)",
      group: 'annotation',
      kind: 'text',
      value: (r) => r.name,
    }),
    column({ id: 'state', label: 'State', group: 'run', kind: 'text', value: (r) => r.stateText }),
    column({
      id: 'config',
      label: 'Config',
      title: 'The *.peft.json the run was trained from',
      group: 'run',
      kind: 'text',
      value: (r) => r.config ?? null,
    }),
  ];
  if (rows.some((r) => r.sweep))
    columns.push(
      column({ id: 'sweep', label: 'Sweep', group: 'run', kind: 'text', value: (r) => r.sweep?.id ?? null }),
    );
  for (const p of diffParameters(rows)) {
    columns.push(
      column({
        id: `param:${p.path}`,
        label: p.path,
        title: `${p.path}${p.constant ? ' (the same in every run)' : ''}`,
        group: 'parameter',
        kind: p.numeric ? 'number' : 'text',
        constant: p.constant,
        shown: !p.constant,
        value: (r) => r.params[p.path],
      }),
    );
  }
  const metrics = metricNames(rows);
  const shownMetric = metrics.primary.size
    ? (m: string) => metrics.primary.has(m)
    : (m: string) => m === metrics.names[0];
  for (const m of metrics.names) {
    const lower = LOWER_IS_BETTER.test(m);
    columns.push(
      column({
        id: `best:${m}`,
        label: `best ${m}`,
        title: `Validation ${m} of the best checkpoint`,
        group: 'metric',
        kind: 'number',
        lowerIsBetter: lower,
        shown: shownMetric(m),
        value: (r) => r.best[m],
        format: formatMetricValue,
      }),
    );
    columns.push(
      column({
        id: `final:${m}`,
        label: `final ${m}`,
        title: `Validation ${m} at the last evaluation`,
        group: 'metric',
        kind: 'number',
        lowerIsBetter: lower,
        shown: shownMetric(m),
        value: (r) => r.final[m],
        format: formatMetricValue,
      }),
    );
  }
  if (metrics.hasTest) {
    for (const m of metrics.names) {
      columns.push(
        column({
          id: `test:${m}`,
          label: `test ${m}`,
          title: `Test-split ${m} (the latest test evaluation)`,
          group: 'metric',
          kind: 'number',
          lowerIsBetter: LOWER_IS_BETTER.test(m),
          shown: false,
          value: (r) => r.test[m],
          format: formatMetricValue,
        }),
      );
    }
  }
  columns.push(
    column({
      id: 'trainLoss',
      label: 'train loss',
      title: 'Training loss at the last logged step',
      group: 'metric',
      kind: 'number',
      lowerIsBetter: true,
      shown: false,
      value: (r) => r.trainLoss,
      format: formatMetricValue,
    }),
    column({
      id: 'trainableParams',
      label: 'Trainable params',
      group: 'training',
      kind: 'number',
      value: (r) => r.trainableParams,
      format: formatCount,
    }),
    column({
      id: 'duration',
      label: 'Duration',
      group: 'training',
      kind: 'number',
      value: (r) => r.durationMs,
      format: formatDuration,
    }),
    column({
      id: 'speed',
      label: 'Examples/s',
      title: 'Training examples per second at the last logged step',
      group: 'training',
      kind: 'number',
      value: (r) => r.examplesPerSecond,
      format: (v) => v.toFixed(1),
    }),
    column({ id: 'backend', label: 'Backend', group: 'training', kind: 'text', value: (r) => r.backend ?? null }),
    column({
      id: 'step',
      label: 'Step',
      group: 'training',
      kind: 'number',
      shown: false,
      value: (r) => r.step,
      text: stepText,
    }),
    column({
      id: 'started',
      label: 'Started',
      group: 'run',
      kind: 'number',
      value: (r) => r.started,
      format: formatTime,
    }),
    column({
      id: 'folder',
      label: 'Folder',
      title: "The run folder's name",
      group: 'run',
      kind: 'text',
      shown: false,
      value: (r) => r.folder,
    }),
    column({ id: 'note', label: 'Note', group: 'annotation', kind: 'text', value: (r) => r.note }),
  );
  return columns;
}

function stepText(v: CellValue | undefined): string {
  return typeof v === 'number' ? String(v) : '';
}

/** The columns to draw: the user's choices (shown/hidden) over the defaults, constant parameters only when asked. */
export function visibleColumns(
  columns: readonly Column[],
  ui: Pick<ExperimentsUiState, 'shown' | 'hidden' | 'showConstant'>,
): Column[] {
  const shown = new Set(ui.shown);
  const hidden = new Set(ui.hidden);
  return columns.filter((c) => {
    if (hidden.has(c.id)) return false;
    if (shown.has(c.id)) return true;
    return c.constant ? ui.showConstant : c.shownByDefault;
  });
}

/** The UI state with one column shown or hidden by the user. */
export function chooseColumn<T extends Pick<ExperimentsUiState, 'shown' | 'hidden'>>(
  ui: T,
  id: string,
  show: boolean,
): T {
  const shown = ui.shown.filter((c) => c !== id);
  const hidden = ui.hidden.filter((c) => c !== id);
  return { ...ui, shown: show ? [...shown, id] : shown, hidden: show ? hidden : [...hidden, id] };
}

// ---- sorting -------------------------------------------------------------------------------------------

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
const TYPE_RANK: Record<string, number> = { number: 0, boolean: 1, string: 2 };

/** Ascending order of two present values: numbers by value, text naturally (`run-2` before `run-10`), false before true. */
export function compareValues(a: CellValue, b: CellValue): number {
  const ta = typeof a;
  const tb = typeof b;
  if (ta !== tb) return (TYPE_RANK[ta] ?? 3) - (TYPE_RANK[tb] ?? 3);
  if (ta === 'number') return (a as number) - (b as number);
  if (ta === 'boolean') return Number(a) - Number(b);
  return collator.compare(String(a), String(b));
}

/** Newest first: the order without a chosen sort, and the tie-break of every sort. */
export function defaultOrder(rows: readonly ExperimentRow[]): ExperimentRow[] {
  return [...rows].sort((a, b) => b.started - a.started || collator.compare(b.folder, a.folder));
}

/** Rows sorted by a column; runs without a value come last in either direction; ties keep the default order. */
export function sortRows(
  rows: readonly ExperimentRow[],
  columns: readonly Column[],
  sort: SortState | undefined,
): ExperimentRow[] {
  const base = defaultOrder(rows);
  const col = sort && columns.find((c) => c.id === sort.column);
  if (!col || !sort) return base;
  const sign = sort.descending ? -1 : 1;
  const keyed = base.map((row, index) => ({ row, index, value: col.value(row) }));
  keyed.sort((x, y) => {
    const mx = isMissing(x.value);
    const my = isMissing(y.value);
    if (mx || my) return mx && my ? x.index - y.index : mx ? 1 : -1;
    return sign * compareValues(x.value as CellValue, y.value as CellValue) || x.index - y.index;
  });
  return keyed.map((k) => k.row);
}

/** A header click: a new column sorts ascending (metrics: best first), the same column again reverses. */
export function nextSort(current: SortState | undefined, column: Column): SortState {
  if (current?.column === column.id) return { column: column.id, descending: !current.descending };
  const bestFirst = column.group === 'metric' ? !column.lowerIsBetter : column.kind === 'boolean';
  return { column: column.id, descending: bestFirst };
}

// ---- filtering -------------------------------------------------------------------------------------------

export type CellTest = (value: CellValue | undefined, text: string) => boolean;

const COMPARISON = /^(>=|<=|!=|>|<|=)\s*(-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i;
const RANGE = /^(-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*\.\.\s*(-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i;

/**
 * A per-column filter: `>0.8`, `<=16`, `=1e-3`, `!=4`, `0.7..0.9` compare numbers; `!text` keeps
 * cells without the text; anything else keeps cells containing it (case-insensitive).
 */
export function parseColumnFilter(filter: string): CellTest | undefined {
  const f = filter.trim();
  if (!f) return undefined;
  const cmp = COMPARISON.exec(f);
  if (cmp) {
    const [, op, raw] = cmp;
    const n = Number(raw);
    const test = {
      '>': (v: number) => v > n,
      '>=': (v: number) => v >= n,
      '<': (v: number) => v < n,
      '<=': (v: number) => v <= n,
      '=': (v: number) => v === n,
      '!=': (v: number) => v !== n,
    }[op!]!;
    return (value) => typeof value === 'number' && test(value);
  }
  const range = RANGE.exec(f);
  if (range) {
    const lo = Math.min(Number(range[1]), Number(range[2]));
    const hi = Math.max(Number(range[1]), Number(range[2]));
    return (value) => typeof value === 'number' && value >= lo && value <= hi;
  }
  if (f.startsWith('!') && f.length > 1) {
    const needle = f.slice(1).toLowerCase();
    return (_value, text) => !text.toLowerCase().includes(needle);
  }
  const needle = f.toLowerCase();
  return (_value, text) => text.toLowerCase().includes(needle);
}

/**
 * Rows that pass the text filter (every word appears in some shown cell, the folder name or the
 * note) and every column filter.
 */
export function filterRows(
  rows: readonly ExperimentRow[],
  columns: readonly Column[],
  filter: string,
  columnFilters: Readonly<Record<string, string>>,
): ExperimentRow[] {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const tests: { col: Column; test: CellTest }[] = [];
  for (const [id, text] of Object.entries(columnFilters)) {
    const col = columns.find((c) => c.id === id);
    const test = parseColumnFilter(text);
    if (col && test) tests.push({ col, test });
  }
  if (!words.length && !tests.length) return [...rows];
  return rows.filter((row) => {
    for (const { col, test } of tests) {
      const value = col.value(row);
      if (!test(value, col.format(value))) return false;
    }
    if (!words.length) return true;
    const haystack = [row.folder, row.note, ...columns.map((c) => c.format(c.value(row)))].join('\n').toLowerCase();
    return words.every((w) => haystack.includes(w));
  });
}

// ---- sweeps ------------------------------------------------------------------------------------------------

export interface SweepPoint {
  readonly dir: string;
  readonly name: string;
  /** The parameter's value: a number, or for text values its category's index. */
  readonly x: number;
  readonly y: number;
  readonly xText: string;
}

export interface SweepChart {
  readonly points: SweepPoint[];
  /** Text values of the parameter in order, when it is not numeric. */
  readonly categories?: string[];
  /** Runs of the sweep without a value for the metric (still training, failed). */
  readonly missing: number;
  /** The best point (index into `points`), in the sweep's own direction when the metric is the one it ranks by. */
  readonly best?: number;
}

export function sweepIds(rows: readonly ExperimentRow[]): string[] {
  return [...new Set(rows.map((r) => r.sweep?.id).filter((id): id is string => id !== undefined))].sort(
    collator.compare,
  );
}

/** The parameters worth plotting for a sweep: its swept ones first, then any other that differs within it. */
export function sweepParameters(rows: readonly ExperimentRow[], sweepId: string): string[] {
  const members = rows.filter((r) => r.sweep?.id === sweepId);
  const swept = new Set(members.flatMap((r) => Object.keys(r.sweep?.point ?? {})));
  const differing = diffParameters(members)
    .filter((p) => !p.constant)
    .map((p) => p.path);
  return [...new Set([...swept, ...differing])];
}

/** The points of one parameter (x) against one column (y) for the runs of a sweep. */
export function sweepChart(rows: readonly ExperimentRow[], sweepId: string, parameter: string, y: Column): SweepChart {
  const members = rows.filter((r) => r.sweep?.id === sweepId);
  const xOf = (r: ExperimentRow): CellValue | undefined =>
    r.sweep?.point && parameter in r.sweep.point ? r.sweep.point[parameter] : r.params[parameter];
  const present = members.filter((r) => !isMissing(xOf(r)));
  const numeric = present.every((r) => typeof xOf(r) === 'number');
  const categories = numeric ? undefined : [...new Set(present.map((r) => plain(xOf(r))))].sort(collator.compare);
  const points: SweepPoint[] = [];
  const order: number[] = [];
  let missing = 0;
  for (const r of members) {
    const xv = xOf(r);
    const yv = y.value(r);
    if (isMissing(xv) || typeof yv !== 'number') {
      missing++;
      continue;
    }
    const xText = plain(xv);
    points.push({ dir: r.dir, name: r.name, x: numeric ? (xv as number) : categories!.indexOf(xText), y: yv, xText });
    order.push(r.sweep?.index ?? Infinity);
  }
  return { points, categories, missing, best: bestOf(points, order, sweepLowerIsBetter(members, y)) };
}

/** The sweep's own direction (its `goal`) for a column of the metric it ranks by, else the column's. */
export function sweepLowerIsBetter(members: readonly ExperimentRow[], y: Column): boolean {
  const ranking = members.find((r) => r.sweep?.metric && r.sweep.goal)?.sweep;
  const metric = y.id.slice(y.id.indexOf(':') + 1);
  if (ranking && y.group === 'metric' && y.id.includes(':') && metric === ranking.metric)
    return ranking.goal === 'minimize';
  return y.lowerIsBetter === true;
}

/** The best y; a tie goes to the earlier point of the sweep, as in the sweep's own ranking. */
function bestOf(points: readonly SweepPoint[], order: readonly number[], lowerIsBetter: boolean): number | undefined {
  let best: number | undefined;
  points.forEach((p, i) => {
    if (best === undefined) best = i;
    else {
      const b = points[best]!.y;
      if (lowerIsBetter ? p.y < b : p.y > b) best = i;
      else if (p.y === b && order[i]! < order[best]!) best = i;
    }
  });
  return best;
}
