/**
 * A seed group's curve: at each logged step, the mean, sample sd (stats.ts, the same rule as the
 * tables' "mean ± sd"), min, max and N over the group's runs, for the dashboard's mean-with-band
 * overlay.
 *
 * Steps are aligned exactly, without interpolation: at a step, the runs that logged it count and
 * the others do not, and N says how many did. The runs of a seed group share their config but the
 * seed, so they log the same steps and N stays the group's size; it drops only where a run ended
 * early (stopped, failed, still running) or skipped a non-finite value. Interpolating would invent
 * values a run never reached and hide that the band there stands on fewer runs.
 */
import { summarize } from './stats';

/** One run's series: ascending steps and a value per step (null or non-finite: no value). */
export interface StepSeries {
  readonly step: ArrayLike<number>;
  readonly value: ArrayLike<number | null>;
}

/** Per step (ascending, only steps where at least one run has a value): the group's summary. */
export interface SeriesBand {
  readonly step: number[];
  readonly mean: number[];
  readonly sd: number[];
  readonly min: number[];
  readonly max: number[];
  readonly n: number[];
}

export function bandOverRuns(runs: readonly StepSeries[]): SeriesBand {
  const byStep = new Map<number, number[]>();
  for (const run of runs) {
    const count = Math.min(run.step.length, run.value.length);
    for (let i = 0; i < count; i++) {
      const v = run.value[i];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      const step = run.step[i]!;
      const values = byStep.get(step);
      if (values) values.push(v);
      else byStep.set(step, [v]);
    }
  }
  const band: SeriesBand = { step: [], mean: [], sd: [], min: [], max: [], n: [] };
  for (const step of [...byStep.keys()].sort((a, b) => a - b)) {
    const s = summarize(byStep.get(step)!)!;
    band.step.push(step);
    band.mean.push(s.mean);
    band.sd.push(s.sd);
    band.min.push(s.min);
    band.max.push(s.max);
    band.n.push(s.n);
  }
  return band;
}
