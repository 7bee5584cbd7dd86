/** Six finished fake runs: houlsby and lora, seeds 1..3, validation accuracy 0.5 then the run's value, test accuracy 0.05 below. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunsModel } from '../../../src/host/runs/runs-model';
import { experimentRow } from '../../../src/host/experiments/experiments-rows';
import type { AnalysisSource } from '../../../src/host/experiments/experiments-analysis';
import type { ExperimentRow } from '../../../src/protocol/experiments';
import { makeRun } from './run-folders';

export const ACCURACY: Record<string, number[]> = { houlsby: [0.8, 0.82, 0.84], lora: [0.7, 0.71, 0.75] };

/** Writes the runs under `<root>/runs` (a fresh temporary root: the caller removes it) and reads them as the Experiments table does. */
export function seedGrid(): { root: string; runs: string; source: AnalysisSource; rows: ExperimentRow[] } {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'peft-analysis-')));
  const runs = path.join(root, 'runs');
  let minute = 0;
  for (const method of ['houlsby', 'lora']) {
    ACCURACY[method]!.forEach((acc, i) => {
      const dir = makeRun(runs, {
        name: `${method}-s${i + 1}`,
        configFile: path.join(root, `${method}.peft.json`),
        method,
        minute: minute++,
        checkpoints: { 10: 0.5, 20: acc },
        testAccuracy: acc - 0.05,
      });
      const file = path.join(dir, 'config.json');
      const config = JSON.parse(fs.readFileSync(file, 'utf8'));
      config.training.seed = i + 1;
      if (method === 'lora') config.method = { type: 'lora', rank: 8, alpha: 16 };
      fs.writeFileSync(file, JSON.stringify(config));
    });
  }
  const model = new RunsModel({ isAlive: () => true });
  model.setRoots([runs]);
  const rows = model
    .runs()
    .sort((a, b) => a.started - b.started)
    .map((r) => experimentRow(r, model.placement(r.dir).value));
  return { root, runs, source: { rows, run: (dir) => model.run(dir) }, rows };
}
