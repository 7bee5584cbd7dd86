/**
 * The Experiments table's questions answered on the host, from the runs model: seed groups with
 * mean ± sd (core/analysis/groups.ts), parameter importance, run diffs and the table exports. The
 * claim bench (bench/adapter-claim.ts --from-runs) reads run folders through the same functions, so
 * its table and the view agree on the same runs. No `vscode` import.
 */
import type {
  AnalysisMessage,
  CellValue,
  DiffMessage,
  ExperimentRow,
  ExportTableMessage,
  GroupRow,
  ValueChoice,
} from '../../protocol/experiments';
import { chooseValue } from '../../core/analysis/stats';
import {
  groupRuns,
  groupingParameters,
  varyingParameters,
  isSeedParameter,
  type AnalysisRun,
  type RunGroup,
} from '../../core/analysis/groups';
import { parameterImportance } from '../../core/analysis/importance';
import { diffRuns } from '../../core/analysis/diff';
import { TABLE_FORMATS, type Table, type TableCell, type TableColumn } from '../../core/analysis/tables';
import { lowerIsBetter } from '../runs/runs-queries';
import type { RunRecord } from '../runs/runs-types';

/** The column id prefix of a value choice's validation metrics: `best:accuracy`, `final:accuracy`, `min:loss`. */
export function choicePrefix(choice: ValueChoice): string {
  return choice === 'last' ? 'final' : choice;
}

/**
 * A run as the analysis reads it: its flattened config (the table's parameters) and its metrics,
 * validation ones by the chosen value (best: the best checkpoint's metrics, as the table's `best`
 * columns; last: the last evaluation; min/max: over every validation evaluation), and test ones.
 */
export function analysisRun(row: ExperimentRow, run: RunRecord | undefined, choice: ValueChoice): AnalysisRun {
  const metrics: Record<string, number> = {};
  const prefix = choicePrefix(choice);
  if (choice === 'best') Object.assign(metrics, prefixed('best', row.best));
  else if (choice === 'last') Object.assign(metrics, prefixed('final', row.final));
  else if (run) {
    const series = new Map<string, number[]>();
    for (const e of run.metrics.evals) {
      if (e.split !== 'validation') continue;
      for (const [k, v] of Object.entries(e.metrics)) series.set(k, [...(series.get(k) ?? []), v]);
    }
    for (const [k, values] of series) {
      const v = chooseValue(values, choice, lowerIsBetter(k));
      if (v !== undefined) metrics[`${prefix}:${k}`] = v;
    }
  }
  Object.assign(metrics, prefixed('test', row.test));
  return { id: row.dir, params: row.params, metrics };
}

function prefixed(prefix: string, values: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}:${k}`, v]));
}

/** Metric ids in the table's order: the rows' task metrics first, validation before test, loss last. */
export function metricOrder(ids: Iterable<string>, rows: readonly ExperimentRow[]): string[] {
  const primary = new Set(rows.map((r) => r.metric).filter(Boolean));
  const rank = (id: string) => {
    const [kind, name] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
    return (kind === 'test' ? 10 : 0) + (primary.has(name) ? 0 : name === 'loss' ? 2 : 1);
  };
  return [...new Set(ids)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export interface AnalysisSource {
  readonly rows: readonly ExperimentRow[];
  /** The run behind a row (for min/max over its evaluations). */
  run(dir: string): RunRecord | undefined;
}

/** Groups and importance for an `analyze` request. */
export function analyze(
  source: AnalysisSource,
  request: { request: number; groupBy?: readonly string[]; choice: ValueChoice; metric?: string },
): AnalysisMessage {
  const runs = source.rows.map((r) => analysisRun(r, source.run(r.dir), request.choice));
  const groupBy = groupingParameters(runs, { by: request.groupBy });
  const groups = groupRuns(runs, { by: groupBy }).map(groupRow);
  const metrics = metricOrder(
    runs.flatMap((r) => Object.keys(r.metrics)),
    source.rows,
  );
  let importance: AnalysisMessage['importance'];
  const every = source.rows.map((r) => {
    // importance may be asked for any metric column the table shows (best, final, test), whatever the choice
    const run = source.run(r.dir);
    return {
      ...analysisRun(r, run, request.choice),
      metrics: {
        ...analysisRun(r, run, 'best').metrics,
        ...analysisRun(r, run, 'last').metrics,
        ...analysisRun(r, run, request.choice).metrics,
      },
    };
  });
  const metric = request.metric && every.some((r) => request.metric! in r.metrics) ? request.metric : undefined;
  if (metric) {
    const parameters = varyingParameters(runs).filter((p) => !isSeedParameter(p));
    const result = parameterImportance(every, parameters, metric);
    importance = {
      metric,
      method: result.method,
      runs: result.runs,
      parameters: result.parameters.map((p) => ({ ...p })),
    };
  }
  return { type: 'analysis', request: request.request, groupBy, choice: request.choice, metrics, groups, importance };
}

function groupRow(g: RunGroup): GroupRow {
  return { id: g.id, key: g.key, dirs: g.runs, stats: g.stats };
}

/** The diff of two or more rows, in the order given. */
export function diffMessage(rows: readonly ExperimentRow[]): DiffMessage {
  const d = diffRuns(rows.map((r) => analysisRun(r, undefined, 'last')));
  const best = diffRuns(rows.map((r) => analysisRun(r, undefined, 'best')));
  const metrics = [...best.metrics.filter((m) => m.id.startsWith('best:')), ...d.metrics];
  return {
    type: 'diff',
    runs: rows.map((r) => ({ dir: r.dir, name: r.name })),
    parameters: d.parameters.map((p) => ({ path: p.path, values: p.values.map((v) => (v === undefined ? null : v)) })),
    same: d.same,
    metrics: metrics.map((m) => ({ id: m.id, values: m.values.map((v) => (v === undefined ? null : v)) })),
  };
}

/** A metric id as a column label: `best:accuracy` -> `best accuracy`. */
export function metricLabel(id: string): string {
  return id.replace(':', ' ');
}

const METRIC_ID = /^(best|final|min|max|test):/;

/** The table an `exportTable` request describes: one row per run, or per seed group with mean ± sd. */
export function exportTable(
  source: AnalysisSource,
  request: Omit<ExportTableMessage, 'type' | 'format' | 'dirs'>,
): Table {
  const runs = source.rows.map((r) => analysisRun(r, source.run(r.dir), request.choice));
  const metricIds = request.columns.filter((c) => METRIC_ID.test(c));
  const metricColumn = (id: string): TableColumn => ({ label: metricLabel(id), digits: 4 });
  if (request.grouped) {
    const groupBy = groupingParameters(runs, { by: request.groupBy });
    const groups = groupRuns(runs, { by: groupBy });
    const columns: TableColumn[] = [
      ...groupBy.map((p) => ({ label: p })),
      { label: 'N' },
      ...metricIds.map(metricColumn),
    ];
    const rows = groups.map((g): TableCell[] => [
      ...groupBy.map((p) => g.key[p]),
      g.runs.length,
      ...metricIds.map((m) => g.stats[m]),
    ]);
    return {
      columns,
      rows,
      caption: `Mean ± sample sd over the runs of each group (grouped by ${groupBy.length ? groupBy.join(', ') : 'nothing'})`,
    };
  }
  // a run's row can show best and final columns whatever the choice
  const byDir = new Map(
    source.rows.map((r) => {
      const run = source.run(r.dir);
      return [
        r.dir,
        {
          ...analysisRun(r, run, 'best').metrics,
          ...analysisRun(r, run, 'last').metrics,
          ...analysisRun(r, run, request.choice).metrics,
        },
      ];
    }),
  );
  const columns: TableColumn[] = [];
  const getters: ((row: ExperimentRow) => CellValue | undefined)[] = [];
  for (const id of request.columns) {
    if (id === 'name') {
      columns.push({ label: 'run' });
      getters.push((r) => r.name);
    } else if (id.startsWith('param:')) {
      const p = id.slice('param:'.length);
      columns.push({ label: p });
      getters.push((r) => r.params[p]);
    } else if (METRIC_ID.test(id)) {
      columns.push(metricColumn(id));
      getters.push((r) => byDir.get(r.dir)?.[id]);
    }
  }
  return { columns, rows: source.rows.map((r) => getters.map((g) => g(r) ?? null)) };
}

export function writeTable(table: Table, format: keyof typeof TABLE_FORMATS): string {
  return TABLE_FORMATS[format].write(table);
}
