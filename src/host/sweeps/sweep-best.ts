/**
 * Which run is the best point of its sweep, read from the run folders alone (config.json
 * `sweepPoint`, status.json `bestMetrics`), so the Runs view marks it the same way for a sweep run
 * from this window, from another one, or from `peftLab sweep` on the command line. No `vscode` import.
 */
import { bestPoint } from '../../core/config/sweep';
import type { SweepPointInfo } from '../../core/config/types';
import type { RunRecord } from '../runs/runs-types';
import type { ItemData } from '../runs/runs-present';

export const BEST_OF_SWEEP_ICON = { id: 'verified-filled', color: 'charts.yellow' };

/** The sweep point a run trained (its config.json `sweepPoint`), or undefined for a run outside a sweep. */
export function sweepPointOf(run: RunRecord): SweepPointInfo | undefined {
  const info = run.config?.sweepPoint as Partial<SweepPointInfo> | undefined;
  const valid =
    typeof info === 'object' &&
    info !== null &&
    typeof info.sweepId === 'string' &&
    typeof info.index === 'number' &&
    typeof info.total === 'number' &&
    typeof info.metric === 'string' &&
    (info.goal === 'maximize' || info.goal === 'minimize');
  return valid ? (info as SweepPointInfo) : undefined;
}

/**
 * Run folders that are the best point of a finished sweep: every point has a run folder and none is
 * still training (a sweep cut short, e.g. by Clear queue, has no winner to show).
 */
export function bestOfFinishedSweeps(runs: readonly RunRecord[]): Set<string> {
  const sweeps = new Map<string, { info: SweepPointInfo; runs: RunRecord[] }>();
  for (const run of runs) {
    const info = sweepPointOf(run);
    if (!info) continue;
    const sweep = sweeps.get(info.sweepId) ?? { info, runs: [] };
    sweep.runs.push(run);
    sweeps.set(info.sweepId, sweep);
  }
  const best = new Set<string>();
  for (const { info, runs: points } of sweeps.values()) {
    const indices = new Set(points.map((r) => sweepPointOf(r)!.index));
    const training = points.some((r) => r.state === 'running' && !r.interrupted);
    if (indices.size < info.total || training) continue;
    // in point order, so a tie goes to the earlier point, as in the sweep's own notification and the CLI
    const ordered = [...points].sort((a, b) => sweepPointOf(a)!.index - sweepPointOf(b)!.index);
    const winner = bestPoint(
      ordered.map((r) => ({ dir: r.dir, metrics: r.status?.bestMetrics })),
      info.metric,
      info.goal,
    );
    if (winner) best.add(winner.dir);
  }
  return best;
}

/** A run item marked as its sweep's best: an icon of its own and a word in front of the description. */
export function markBestOfSweep(item: ItemData): ItemData {
  return {
    ...item,
    icon: BEST_OF_SWEEP_ICON,
    description: `best of sweep · ${item.description}`,
    contextValue: `${item.contextValue} bestOfSweep`,
  };
}
