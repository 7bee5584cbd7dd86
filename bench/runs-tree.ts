/**
 * How fast the Runs sidebar opens and follows a big workspace: 1,000 run folders (10 configs,
 * 2 checkpoints each) with 50,000 metric lines in all, written to a temp folder.
 *
 *   node --import tsx bench/runs-tree.ts [--runs 1000] [--lines 50] [--reps 5]
 *
 * Measures (median of --reps, each with a fresh model):
 *   - open_ms:        read every run folder (status, config, metrics.jsonl, best, checkpoints) and
 *                     build the whole tree as plain items (every config, run and checkpoint row);
 *                     the target is under 1,000 ms
 *   - scan_ms / project_ms: the two halves of open_ms
 *   - sort_by_metric_ms: the top level re-sorted by best metric
 *   - incremental_ms: one watcher batch: 10 lines appended to one run, a checkpoint added to
 *                     another, a new run, a deleted run (and the bytes it read: the appended ones only)
 *   - watcher_ready_ms: chokidar set up on the whole runs folder
 *   - live_update_ms: a line appended on disk until the model shows it (includes the 200 ms debounce)
 * Prints one JSON object. Measures only: no thresholds, no pass/fail.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { RunsModel } from '../src/host/runs/runs-model';
import { checkpointItem, configItem, runItem } from '../src/host/runs/runs-present';
import { RunsWatcher } from '../src/host/runs/runs-watcher';
import { appendMetric, makeRun, writeJson } from '../test/unit/helpers/run-folders';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000' },
    lines: { type: 'string', default: '50' },
    reps: { type: 'string', default: '5' },
  },
});
const RUNS = Number(values.runs);
const LINES_PER_RUN = Number(values.lines);
const REPS = Number(values.reps);
const CONFIGS = 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const round = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bench-runs-')));
  const runsDir = path.join(base, 'runs');
  try {
    const configs = Array.from({ length: CONFIGS }, (_, i) => path.join(base, `config-${i}.peft.json`));
    for (const c of configs) fs.writeFileSync(c, '{}');
    const t0 = performance.now();
    for (let i = 0; i < RUNS; i++) {
      // 2 evaluation lines per run (one per checkpoint), the rest training lines
      makeRun(runsDir, {
        name: `run-${String(i).padStart(4, '0')}`,
        configFile: configs[i % CONFIGS]!,
        minute: i,
        trainLines: LINES_PER_RUN - 2,
        totalSteps: 100,
        checkpoints: { 50: 0.5 + (i % 37) / 100, 100: 0.5 + (i % 41) / 100 },
        weightsBytes: 256,
        state: i % 50 === 0 ? 'running' : i % 7 === 0 ? 'stopped' : 'finished',
      });
    }
    const createMs = performance.now() - t0;
    let metricLines = 0;
    for (const name of fs.readdirSync(runsDir))
      metricLines += fs
        .readFileSync(path.join(runsDir, name, 'metrics.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean).length;

    const scan: number[] = [];
    const project: number[] = [];
    const open: number[] = [];
    const sortByMetric: number[] = [];
    let rows = 0;
    let model!: RunsModel;
    for (let rep = 0; rep < REPS; rep++) {
      const start = performance.now();
      model = new RunsModel({ isAlive: () => true });
      model.setKnownConfigs(configs);
      model.setRoots([runsDir]);
      const scanned = performance.now();
      rows = 0;
      const now = Date.now();
      for (const group of model.groups({ sort: 'date' })) {
        configItem(group);
        rows++;
        for (const run of group.runs) {
          runItem(run, now);
          rows++;
          for (const c of run.checkpoints) {
            checkpointItem(c, run);
            rows++;
          }
        }
      }
      const projected = performance.now();
      model.groups({ sort: 'metric' });
      sortByMetric.push(performance.now() - projected);
      scan.push(scanned - start);
      project.push(projected - scanned);
      open.push(projected - start);
    }

    // one watcher batch's worth of changes
    const appendTo = path.join(runsDir, 'run-0000');
    const checkpointTo = path.join(runsDir, 'run-0001');
    const deleted = path.join(runsDir, 'run-0002');
    const bytesBefore = model.metricsBytesRead(appendTo);
    let appended = 0;
    for (let i = 0; i < 10; i++) {
      const record = {
        kind: 'train',
        step: 101 + i,
        epoch: 1,
        loss: 0.3,
        learningRate: 1e-4,
        examplesPerSecond: 60,
        elapsedMs: 9000 + i,
      };
      appended += Buffer.byteLength(JSON.stringify(record)) + 1;
      appendMetric(appendTo, record);
    }
    const ck = path.join(checkpointTo, 'checkpoints', 'step-150');
    fs.mkdirSync(ck);
    fs.writeFileSync(path.join(ck, 'weights.safetensors'), Buffer.alloc(256));
    writeJson(path.join(ck, 'checkpoint.json'), { step: 150, metrics: { accuracy: 0.9 } });
    const fresh = makeRun(runsDir, { name: 'run-new', configFile: configs[0]!, minute: RUNS + 1, state: 'running' });
    fs.rmSync(deleted, { recursive: true });
    const changed = [
      path.join(appendTo, 'metrics.jsonl'),
      ck,
      path.join(ck, 'checkpoint.json'),
      fresh,
      path.join(fresh, 'status.json'),
      deleted,
    ];
    const incStart = performance.now();
    const delta = model.applyChanges(changed);
    const projectRuns = [...delta.runs].map((d) => model.run(d)).filter((r) => r !== undefined);
    for (const r of projectRuns) runItem(r);
    const incrementalMs = performance.now() - incStart;
    const incrementalBytes = model.metricsBytesRead(appendTo) - bytesBefore;

    // the watcher on the whole folder, and the delay from an append to the model
    const wStart = performance.now();
    let resolveBatch: (() => void) | undefined;
    const watcher = new RunsWatcher((batch) => {
      model.applyChanges([...batch.paths, ...batch.roots]);
      resolveBatch?.();
    });
    watcher.setRoots([runsDir]);
    await watcher.ready();
    const watcherReadyMs = performance.now() - wStart;
    await new Promise((r) => setTimeout(r, 500)); // let the ready-time rescan settle
    const live: number[] = [];
    for (let i = 0; i < 3; i++) {
      const step = 500 + i;
      const seen = new Promise<void>((resolve) => {
        resolveBatch = () => {
          if (model.run(appendTo)?.metrics.lastTrain?.step === step) resolve();
        };
      });
      const t = performance.now();
      appendMetric(appendTo, {
        kind: 'train',
        step,
        epoch: 2,
        loss: 0.2,
        learningRate: 1e-4,
        examplesPerSecond: 60,
        elapsedMs: 1,
      });
      await seen;
      live.push(performance.now() - t);
    }
    await watcher.dispose();

    console.log(
      JSON.stringify({
        bench: 'runs-tree',
        runs: RUNS,
        configs: CONFIGS,
        checkpoints: RUNS * 2,
        metric_lines: metricLines,
        tree_rows: rows,
        reps: REPS,
        open_ms: round(median(open)),
        open_ms_min: round(Math.min(...open)),
        scan_ms: round(median(scan)),
        project_ms: round(median(project)),
        sort_by_metric_ms: round(median(sortByMetric)),
        target_open_ms: 1000,
        incremental_ms: round(incrementalMs),
        incremental_runs_changed: delta.runs.size,
        incremental_metrics_bytes_read: incrementalBytes, // of the run that got 10 lines
        incremental_metrics_bytes_appended: appended,
        watcher_ready_ms: round(watcherReadyMs),
        live_update_ms: round(median(live)),
        setup_write_ms: round(createMs),
        node: process.version,
        platform: `${os.platform()} ${os.arch()}, ${os.cpus().length} cpus`,
      }),
    );
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

void main();
