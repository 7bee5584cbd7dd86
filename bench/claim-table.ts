/**
 * The claim bench's table from run folders (`bench/adapter-claim.ts --from-runs <runs folder>`):
 * the runs are read by the Runs model and grouped by the same code as the Experiments table's
 * "Group seeds" (src/host/experiments/experiments-analysis.ts over src/core/analysis/), so the bench and the
 * view print the same mean ± sd for the same runs.
 */
import * as path from 'node:path';
import { RunsModel } from '../src/host/runs/runs-model';
import { experimentRow } from '../src/host/experiments/experiments-rows';
import { analyze, metricLabel, type AnalysisSource } from '../src/host/experiments/experiments-analysis';
import { toMarkdown, type Table } from '../src/core/analysis/tables';
import type { AnalysisMessage } from '../src/protocol/experiments';

/** Every finished run under the runs folder, as the Experiments table sees them. */
export function runsSource(runsDir: string): AnalysisSource {
  const model = new RunsModel();
  model.setRoots([path.resolve(runsDir)]);
  const rows = model
    .runs()
    .filter((r) => !r.pending && r.state === 'finished')
    .sort((a, b) => a.started - b.started)
    .map((r) => experimentRow(r, model.placement(r.dir).value));
  return { rows, run: (dir) => model.run(dir) };
}

/** The groups (everything but the seed) of the runs, with their best-checkpoint and test metrics. */
export function claimAnalysis(runsDir: string): AnalysisMessage {
  return analyze(runsSource(runsDir), { request: 0, choice: 'best' });
}

/** The groups as a table: the grouping parameters, N, then each test metric (else validation) as mean ± sd. */
export function claimTable(a: AnalysisMessage): Table {
  const test = a.metrics.filter((m) => m.startsWith('test:'));
  const metrics = test.length ? test : a.metrics;
  return {
    caption: `Mean ± sample sd over seeds (grouped by ${a.groupBy.join(', ') || 'nothing'})`,
    columns: [
      ...a.groupBy.map((label) => ({ label })),
      { label: 'N' },
      ...metrics.map((m) => ({ label: metricLabel(m), digits: 4 })),
    ],
    rows: a.groups.map((g) => [...a.groupBy.map((p) => g.key[p]), g.dirs.length, ...metrics.map((m) => g.stats[m])]),
  };
}

export function claimMarkdown(runsDir: string): string {
  return toMarkdown(claimTable(claimAnalysis(runsDir)));
}
