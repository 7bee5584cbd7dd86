/** The Runs sidebar's model, presentation and watcher, on run folders laid out as RunFolder writes them. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunsModel, isTempPath } from '../../src/host/runs/runs-model';
import type { RunRecord } from '../../src/host/runs/runs-types';
import { RunMetricsLog } from '../../src/host/runs/metrics-log';
import { checkpointItem, configItem, runItem, runTooltip, dataSizesOf } from '../../src/host/runs/runs-present';
import { RunsWatcher, isIgnoredRunPath, type WatchBatch } from '../../src/host/runs/runs-watcher';
import { exportCheckpoint } from '../../src/host/runs/checkpoint-export';
import { appendMetric, makeRun, writeJson } from './helpers/run-folders';
import { until } from './helpers/until';

const DEAD_PID = 2 ** 22 + 4321;

const temporary: string[] = [];
after(() => {
  for (const dir of temporary) fs.rmSync(dir, { recursive: true, force: true });
});

function tmp(label: string): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `peft-runs-${label}-`)));
  temporary.push(dir);
  return dir;
}

function workspace(): { root: string; runs: string; configA: string; configB: string } {
  const root = tmp('ws');
  const configA = path.join(root, 'a.peft.json');
  const configB = path.join(root, 'nested', 'b.peft.json');
  fs.mkdirSync(path.dirname(configB), { recursive: true });
  fs.writeFileSync(configA, '{}');
  fs.writeFileSync(configB, '{}');
  return { root, runs: path.join(root, 'runs'), configA, configB };
}

function model(runs: string, configs: string[] = []): RunsModel {
  const m = new RunsModel({ isAlive: (pid) => pid === process.pid });
  m.setKnownConfigs(configs);
  m.setRoots([runs]);
  return m;
}

const ids = (runs: RunRecord[]) => runs.map((r) => r.id);

test('each state gets its icon, and a run shows method, backend, best metric and duration', () => {
  const ws = workspace();
  makeRun(ws.runs, { name: 'finished', configFile: ws.configA, state: 'finished', minute: 1, durationMs: 72_000 });
  makeRun(ws.runs, {
    name: 'running',
    configFile: ws.configA,
    state: 'running',
    minute: 2,
    step: 10,
    totalSteps: 20,
    trainLines: 10,
  });
  makeRun(ws.runs, { name: 'failed', configFile: ws.configA, state: 'failed', minute: 3, error: 'out of memory' });
  makeRun(ws.runs, {
    name: 'stopped',
    configFile: ws.configA,
    state: 'stopped',
    minute: 4,
    reason: 'cancelled',
    method: 'adamix',
  });
  makeRun(ws.runs, { name: 'killed', configFile: ws.configA, state: 'running', minute: 5, pid: DEAD_PID });
  const m = model(ws.runs, [ws.configA]);
  const item = (name: string) => runItem(m.run(path.join(ws.runs, name))!, Date.parse('2026-11-25T00:03:00Z'));

  assert.equal(item('finished').icon.id, 'pass');
  assert.equal(item('running').icon.id, 'sync~spin');
  assert.equal(item('failed').icon.id, 'error');
  assert.equal(item('stopped').icon.id, 'debug-stop');
  assert.equal(item('finished').description, 'houlsby · cpu · accuracy 0.7500 · 1m 12s');
  // running: progress from the log's tail, loss, elapsed time since start
  assert.equal(item('running').description, 'step 10/20 · loss 0.6900 · houlsby · cpu · accuracy 0.7500 · 1m 00s');
  assert.match(item('stopped').description, /^stopped · adamix · cpu · accuracy 0\.7500/);
  // status says running but its process is gone: a failure, said so
  const killed = m.run(path.join(ws.runs, 'killed'))!;
  assert.equal(killed.state, 'failed');
  assert.match(killed.interrupted ?? '', /is gone/);
  assert.equal(item('killed').icon.id, 'error');
  assert.match(item('killed').description, /^interrupted · /);
  // context values drive the menus: a running run cannot be deleted; stopped and failed ones can resume
  assert.doesNotMatch(item('running').contextValue, /\bdeletable\b/);
  assert.match(item('stopped').contextValue, /\bresumable\b.*|\bdeletable\b/);
  assert.match(item('stopped').contextValue, /\bresumable\b/);
  assert.doesNotMatch(item('finished').contextValue, /\bresumable\b/);
  assert.match(item('killed').contextValue, /\bresumable\b/);
});

test('checkpoints show step, metrics, size and a star on the best one', () => {
  const ws = workspace();
  const dir = makeRun(ws.runs, {
    name: 'r',
    configFile: ws.configA,
    checkpoints: { 10: 0.8, 20: 0.7 },
    weightsBytes: 1000,
  });
  writeJson(path.join(dir, 'checkpoints', 'step-20', 'eval-test.json'), {
    split: 'test',
    metrics: { accuracy: 0.66, loss: 0.6 },
    examples: 40,
  });
  const m = model(ws.runs);
  const run = m.run(dir)!;
  assert.deepEqual(
    run.checkpoints.map((c) => c.step),
    [10, 20],
  );
  assert.equal(run.bestStep, 10);
  const best = checkpointItem(run.checkpoints[0]!, run);
  assert.equal(best.label, 'step 10 ★ best');
  assert.equal(best.icon.id, 'star-full');
  assert.match(best.contextValue, /\bbest\b/);
  const size = fs
    .readdirSync(path.join(dir, 'checkpoints', 'step-10'))
    .reduce((n, f) => n + fs.statSync(path.join(dir, 'checkpoints', 'step-10', f)).size, 0);
  assert.equal(run.checkpoints[0]!.sizeBytes, size);
  assert.match(best.description, /^accuracy 0\.8000 · loss 0\.5000 · [\d.]+ kB$/);
  const other = checkpointItem(run.checkpoints[1]!, run);
  assert.equal(other.label, 'step 20');
  assert.equal(other.icon.id, 'package');
  assert.match(other.description, /test: accuracy 0\.6600 · loss 0\.6000/);
  assert.match(other.contextValue, /\bcomplete\b/);
});

test('the tooltip summarises method, placement, parameters and their share, data sizes and final metrics', () => {
  const ws = workspace();
  const data = path.join(ws.root, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'train.jsonl'), '{"text":"a","label":"x"}\n'.repeat(120));
  fs.writeFileSync(path.join(data, 'dev.csv'), 'text,label\n' + 'a,x\n'.repeat(30));
  const dir = makeRun(ws.runs, {
    name: 'r',
    configFile: ws.configA,
    method: 'adamix',
    testAccuracy: 0.71,
    data: { train: path.join(data, 'train.jsonl'), validation: path.join(data, 'dev.csv') },
  });
  const m = model(ws.runs);
  const run = m.run(dir)!;
  const text = runTooltip(run, { placement: m.placement(dir), dataSizes: dataSizesOf(m, run) });
  assert.match(text, /\*\*r\*\* — finished/);
  assert.match(text, /AdaMix, bottleneck 32, 4 experts \(shared up-projection\)/);
  assert.match(text, /100,738 \(2\.30% of the base model's 4,385,920\): adapter 82,944/);
  assert.match(text, /train 120 \(train\\\.jsonl\) · validation 30 \(dev\\\.csv\)/);
  assert.match(text, /Best validation \| accuracy 0\.7500 · loss 0\.5000 \(step 20\)/);
  assert.match(text, /Test \| accuracy 0\.7100 · loss 0\.4500 \(step 20\)/);
});

test('runs are grouped by config, newest first or best metric first; filters by config and state', () => {
  const ws = workspace();
  makeRun(ws.runs, { name: 'a-old-good', configFile: ws.configA, minute: 1, checkpoints: { 10: 0.9 } });
  makeRun(ws.runs, { name: 'a-new-bad', configFile: ws.configA, minute: 3, checkpoints: { 10: 0.5 } });
  makeRun(ws.runs, { name: 'a-mid-failed', configFile: ws.configA, minute: 2, state: 'failed', checkpoints: {} });
  makeRun(ws.runs, { name: 'b-run', configFile: ws.configB, minute: 4, state: 'stopped' });
  makeRun(ws.runs, { name: 'gone-config', configFile: path.join(ws.root, 'deleted.peft.json'), minute: 5 });
  const m = model(ws.runs, [ws.configA, ws.configB, path.join(ws.root, 'empty.peft.json')]);

  const groups = m.groups({ sort: 'date' });
  assert.deepEqual(
    groups.map((g) => path.basename(g.configFile)),
    ['a.peft.json', 'b.peft.json', 'empty.peft.json', 'deleted.peft.json'],
  );
  assert.deepEqual(ids(groups[0]!.runs), ['a-new-bad', 'a-mid-failed', 'a-old-good']);
  const relative = (f: string) => path.relative(ws.root, f);
  assert.equal(configItem(groups[0]!, relative).description, '3 runs');
  assert.equal(configItem(groups[1]!, relative).description, 'nested · 1 run');
  assert.equal(configItem(groups[2]!, relative).description, 'no runs');
  assert.equal(configItem(groups[2]!, relative).collapsible, 'none');
  assert.notEqual(
    configItem(groups[2]!, relative).id,
    `config:${groups[2]!.configFile}`,
    'an empty group has its own id, so it opens expanded once it has runs',
  );
  assert.match(configItem(groups[3]!).description, /config not in the workspace/);

  const byMetric = m.groups({ sort: 'metric' });
  assert.deepEqual(
    ids(byMetric[0]!.runs),
    ['a-old-good', 'a-new-bad', 'a-mid-failed'],
    'runs without a metric go last',
  );

  const onlyB = m.groups({ sort: 'date', configs: [ws.configB] });
  assert.deepEqual(
    onlyB.map((g) => ids(g.runs)),
    [['b-run']],
  );
  const failedOrStopped = m.groups({ sort: 'date', states: ['failed', 'stopped'] });
  assert.deepEqual(
    failedOrStopped.map((g) => ids(g.runs)),
    [['a-mid-failed'], ['b-run']],
    'groups without a match are left out',
  );
  assert.deepEqual(ids(m.runsOfConfig(ws.configA)), ['a-new-bad', 'a-mid-failed', 'a-old-good']);
});

test('corrupt and half-written folders show with the reason and never break the model', () => {
  const ws = workspace();
  const noStatus = makeRun(ws.runs, { name: 'no-status', configFile: ws.configA, minute: 1 });
  fs.rmSync(path.join(noStatus, 'status.json'));
  const badStatus = makeRun(ws.runs, { name: 'bad-status', configFile: ws.configA, minute: 2 });
  fs.writeFileSync(path.join(badStatus, 'status.json'), '{"state": "finished", "step": ');
  const badLine = makeRun(ws.runs, { name: 'bad-line', configFile: ws.configA, minute: 3 });
  fs.appendFileSync(
    path.join(badLine, 'metrics.jsonl'),
    '{"kind":"train", oops}\n' + JSON.stringify({ kind: 'train', step: 21, epoch: 1, loss: 0.1 }) + '\n',
  );
  const noWeights = makeRun(ws.runs, { name: 'no-weights', configFile: ws.configA, minute: 4 });
  fs.rmSync(path.join(noWeights, 'checkpoints', 'step-20', 'weights.safetensors'));
  const noInfo = makeRun(ws.runs, { name: 'no-info', configFile: ws.configA, minute: 5 });
  fs.rmSync(path.join(noInfo, 'checkpoints', 'step-10', 'checkpoint.json'));
  const truncated = makeRun(ws.runs, { name: 'truncated', configFile: ws.configA, minute: 6, state: 'failed' });
  fs.appendFileSync(path.join(truncated, 'metrics.jsonl'), '{"kind":"train","st');
  const badState = makeRun(ws.runs, { name: 'bad-state', configFile: ws.configA, minute: 7 });
  writeJson(path.join(badState, 'status.json'), { state: 'exploded' });
  fs.mkdirSync(path.join(ws.runs, 'junk', 'stuff'), { recursive: true });
  fs.writeFileSync(path.join(ws.runs, 'junk', 'stuff', 'x.txt'), 'x');
  fs.writeFileSync(path.join(ws.runs, 'not-a-folder.txt'), 'x');

  const m = model(ws.runs, [ws.configA]);
  const problems = (name: string) => m.run(path.join(ws.runs, name))!.problems;
  assert.deepEqual(problems('no-status'), ['status.json is missing']);
  assert.match(problems('bad-status')[0]!, /^status\.json is not valid JSON/);
  assert.match(
    problems('bad-line')[0]!,
    /^metrics\.jsonl line 23: not valid JSON/,
    '20 train lines and 2 evaluations come first',
  );
  assert.equal(m.run(badLine)!.metrics.lastTrain?.step, 21, 'lines after a broken one still count');
  assert.deepEqual(problems('no-weights'), ['checkpoint step-20: no weights.safetensors']);
  assert.deepEqual(problems('no-info'), ['checkpoint step-10: incomplete: no checkpoint.json']);
  assert.deepEqual(problems('truncated'), ['metrics.jsonl ends in a half-written line (an interrupted write)']);
  assert.match(problems('bad-state')[0]!, /status\.json has no valid "state"/);
  assert.equal(m.run(path.join(ws.runs, 'junk')), undefined, "a folder with none of a run's files is not a run");
  // without a status, a run is dated by the stamp in its folder name, not by when the folder was touched
  const stamped = makeRun(ws.runs, { name: 'tiny-20250102-030405', configFile: ws.configA });
  fs.rmSync(path.join(stamped, 'status.json'));
  m.applyChanges([stamped]);
  assert.equal(m.run(stamped)!.started, Date.UTC(2025, 0, 2, 3, 4, 5));
  assert.equal(m.run(path.join(ws.runs, 'not-a-folder.txt')), undefined);

  // the runs without a status still group by their config.json
  const groups = m.groups({ sort: 'date' });
  assert.deepEqual(
    groups.map((g) => g.configFile),
    [ws.configA],
  );
  assert.equal(groups[0]!.runs.length, 8);
  for (const run of groups[0]!.runs) {
    const item = runItem(run);
    assert.equal(item.icon.id, 'warning', `${run.id} has the warning icon`);
    assert.ok(
      item.description.includes(run.problems[0]!),
      `${run.id}: the reason is in the description: ${item.description}`,
    );
    assert.match(runTooltip(run, { placement: m.placement(run.dir) }), /Problems/);
  }
  const broken = m.run(noWeights)!.checkpoints.find((c) => c.step === 20)!;
  const ck = checkpointItem(broken, m.run(noWeights));
  assert.equal(ck.icon.id, 'warning');
  assert.doesNotMatch(ck.contextValue, /\bcomplete\b/, 'no Evaluate or Export for a checkpoint without weights');
  assert.equal(m.groups({ sort: 'date', states: ['problem'] }).flatMap((g) => g.runs).length, 8, 'the problem filter');
});

test('a folder a run is still starting in is hidden until its status appears; an old empty one is reported', () => {
  const ws = workspace();
  let now = Date.now();
  const m = new RunsModel({ isAlive: () => true, now: () => now, pendingMs: 60_000 });
  m.setRoots([ws.runs]);
  const starting = path.join(ws.runs, 'tiny-20261125-000000');
  fs.mkdirSync(path.join(starting, 'checkpoints'), { recursive: true });
  m.applyChanges([starting]);
  assert.equal(m.run(starting)?.pending, true);
  assert.deepEqual(m.groups({ sort: 'date' }), []);
  now += 120_000;
  const delta = m.recheckLiveness();
  assert.ok(delta.structure);
  assert.equal(m.run(starting)?.pending, false);
  assert.deepEqual(m.run(starting)!.problems, ['no status.json or config.json: the run never got going']);
  assert.deepEqual(
    m.groups({ sort: 'date' }).map((g) => g.configFile),
    [''],
    'shown under Unknown config',
  );
});

test('metrics.jsonl is followed from its last offset: an append costs only its own bytes', () => {
  const ws = workspace();
  const dir = makeRun(ws.runs, {
    name: 'r',
    configFile: ws.configA,
    state: 'running',
    trainLines: 200,
    totalSteps: 200,
    step: 100,
  });
  const m = model(ws.runs);
  const file = path.join(dir, 'metrics.jsonl');
  const initial = fs.statSync(file).size;
  assert.equal(m.metricsBytesRead(), initial);
  const line =
    JSON.stringify({
      kind: 'train',
      step: 101,
      epoch: 0,
      loss: 0.123,
      learningRate: 1e-3,
      examplesPerSecond: 50,
      elapsedMs: 1,
    }) + '\n';
  fs.appendFileSync(file, line);
  const delta = m.applyChanges([file]);
  assert.deepEqual([...delta.runs], [dir]);
  assert.equal(delta.structure, false, 'a metrics line does not restructure the tree');
  assert.equal(m.metricsBytesRead(), initial + Buffer.byteLength(line));
  assert.equal(m.run(dir)!.metrics.lastTrain?.step, 101);
  assert.match(runItem(m.run(dir)!).description, /^step 101\/200 · loss 0\.1230/);

  // half a line waits for the rest; nothing is read twice
  const next =
    JSON.stringify({
      kind: 'eval',
      split: 'validation',
      step: 101,
      epoch: 0,
      accuracy: 0.99,
      loss: 0.1,
      isBest: true,
    }) + '\n';
  fs.appendFileSync(file, next.slice(0, 25));
  m.applyChanges([file]);
  assert.equal(m.run(dir)!.metrics.evals.at(-1)?.step !== 101, true);
  assert.equal(m.run(dir)!.problems.length, 0, 'a partial last line of a running run is not a problem');
  fs.appendFileSync(file, next.slice(25));
  m.applyChanges([file]);
  assert.equal(m.run(dir)!.metrics.evals.at(-1)?.metrics.accuracy, 0.99);
  assert.equal(m.metricsBytesRead(), initial + Buffer.byteLength(line) + Buffer.byteLength(next));

  // a resume rewrites the file (renamed into place, shorter): read again from the start
  const kept = fs.readFileSync(file, 'utf8').split('\n').slice(0, 5).join('\n') + '\n';
  fs.writeFileSync(`${file}.tmp-123`, kept);
  fs.renameSync(`${file}.tmp-123`, file);
  m.applyChanges([`${file}.tmp-123`, file]);
  assert.equal(m.run(dir)!.metrics.lines, 5);
});

test('the metrics log holds back a multi-byte character split across reads', () => {
  const dir = tmp('tail');
  const file = path.join(dir, 'metrics.jsonl');
  const line = Buffer.from(
    JSON.stringify({ kind: 'eval', split: 'validation', step: 1, note: 'naïve ✓', accuracy: 1 }) + '\n',
  );
  const cut = line.indexOf(Buffer.from('✓')) + 1;
  fs.writeFileSync(file, line.subarray(0, cut));
  const tail = new RunMetricsLog(dir);
  tail.update();
  assert.equal(tail.log.evals.length, 0);
  fs.appendFileSync(file, line.subarray(cut));
  tail.update();
  assert.equal(tail.log.evals.length, 1);
  assert.equal(tail.log.broken.length, 0);
});

test('temporary files and staged checkpoint folders are invisible', () => {
  const ws = workspace();
  const dir = makeRun(ws.runs, { name: 'r', configFile: ws.configA, checkpoints: { 10: 0.5 } });
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-20.tmp-4242'));
  fs.writeFileSync(path.join(dir, 'checkpoints', 'step-20.tmp-4242', 'checkpoint.json'), '{');
  fs.writeFileSync(path.join(dir, 'status.json.tmp-4242-0badc0de'), '{"state":');
  fs.mkdirSync(path.join(ws.runs, 'other.tmp-77'));
  const m = model(ws.runs);
  assert.deepEqual(
    m.runs().map((r) => r.id),
    ['r'],
  );
  assert.deepEqual(
    m.run(dir)!.checkpoints.map((c) => c.step),
    [10],
  );
  assert.deepEqual(m.run(dir)!.problems, []);
  const delta = m.applyChanges([
    path.join(dir, 'checkpoints', 'step-20.tmp-4242', 'checkpoint.json'),
    path.join(dir, 'status.json.tmp-4242-0badc0de'),
  ]);
  assert.equal(delta.runs.size, 0);
  assert.ok(isTempPath('/x/metrics.jsonl.tmp-12'));
  assert.ok(isTempPath('/x/status.json.tmp-12-0123abcd'));
  assert.ok(!isTempPath('/x/step-12/status.json'));
  assert.ok(isIgnoredRunPath(ws.runs, path.join(dir, 'checkpoints', 'step-10', 'weights.safetensors')));
  assert.ok(isIgnoredRunPath(ws.runs, path.join(dir, 'worker.log')));
  assert.ok(!isIgnoredRunPath(ws.runs, path.join(dir, 'checkpoints', 'step-10', 'eval-test.json')));
});

test('changes are applied part by part: a new run, a new checkpoint, a deleted run, a deleted runs folder', () => {
  const ws = workspace();
  const first = makeRun(ws.runs, { name: 'first', configFile: ws.configA, minute: 1 });
  const m = model(ws.runs, [ws.configA]);
  const second = makeRun(ws.runs, {
    name: 'second',
    configFile: ws.configA,
    minute: 2,
    state: 'running',
    checkpoints: {},
  });
  let delta = m.applyChanges([second, path.join(second, 'status.json')]);
  assert.ok(delta.structure);
  assert.deepEqual(ids(m.runsOfConfig(ws.configA)), ['second', 'first']);

  const ck = path.join(second, 'checkpoints', 'step-5');
  fs.mkdirSync(ck);
  fs.writeFileSync(path.join(ck, 'weights.safetensors'), 'w');
  writeJson(path.join(ck, 'checkpoint.json'), { step: 5, metrics: { accuracy: 0.6 } });
  appendMetric(second, {
    kind: 'eval',
    split: 'validation',
    step: 5,
    epoch: 0,
    accuracy: 0.6,
    loss: 0.4,
    isBest: true,
  });
  delta = m.applyChanges([ck, path.join(ck, 'checkpoint.json'), path.join(second, 'metrics.jsonl')]);
  assert.equal(delta.structure, false);
  assert.deepEqual(
    m.run(second)!.checkpoints.map((c) => c.step),
    [5],
  );
  assert.equal(runItem(m.run(second)!).collapsible, 'collapsed');

  fs.rmSync(first, { recursive: true });
  delta = m.applyChanges([path.join(first, 'status.json'), first]);
  assert.ok(delta.structure);
  assert.equal(m.run(first), undefined);

  fs.rmSync(ws.runs, { recursive: true });
  m.applyChanges([ws.runs]);
  assert.deepEqual(m.runs(), []);
  fs.mkdirSync(ws.runs);
  makeRun(ws.runs, { name: 'third', configFile: ws.configA });
  m.applyChanges([ws.runs]);
  assert.deepEqual(ids(m.runs()), ['third']);
});

test('the watcher batches changes, ignores temporary files, and follows a runs folder that is created and deleted', async () => {
  const ws = workspace();
  const batches: WatchBatch[] = [];
  const watcher = new RunsWatcher((b) => batches.push(b), { debounceMs: 100 });
  try {
    watcher.setRoots([ws.runs]);
    await watcher.ready();
    assert.deepEqual(watcher.modes(), { [ws.runs]: 'waiting' });

    fs.mkdirSync(ws.runs);
    await until(() => watcher.modes()[ws.runs] === 'watching', 'the runs folder to be watched');
    await watcher.ready();
    await until(() => batches.some((b) => b.roots.has(ws.runs)), 'a batch naming the new runs folder');

    batches.length = 0;
    const dir = makeRun(ws.runs, { name: 'r', configFile: ws.configA });
    fs.writeFileSync(path.join(dir, 'status.json.tmp-1-0123abcd'), '{');
    await until(() => batches.some((b) => b.paths.has(path.join(dir, 'status.json'))), "the new run's status");
    const all = batches.flatMap((b) => [...b.paths]);
    assert.ok(!all.some((p) => isTempPath(p)), `no temporary file reported: ${all.join(', ')}`);
    assert.ok(!all.some((p) => p.endsWith('.safetensors')), 'weights are not watched');
    assert.ok(
      batches.length < new Set(all).size,
      `debounced: ${new Set(all).size} paths came in ${batches.length} batch(es)`,
    );

    batches.length = 0;
    fs.rmSync(ws.runs, { recursive: true });
    await until(() => watcher.modes()[ws.runs] === 'waiting', 'the watcher to wait for the folder again');
    await until(() => batches.some((b) => b.roots.has(ws.runs)), 'a batch naming the deleted runs folder');
    await watcher.ready();

    batches.length = 0;
    fs.mkdirSync(ws.runs);
    await until(() => watcher.modes()[ws.runs] === 'watching', 'the recreated folder to be watched');
    await watcher.ready();
    const again = makeRun(ws.runs, { name: 'again', configFile: ws.configA });
    await until(
      () => batches.some((b) => b.paths.has(path.join(again, 'status.json')) || b.roots.has(ws.runs)),
      'the run in the recreated folder',
    );
  } finally {
    await watcher.dispose();
  }
});

test('export copies weights, checkpoint.json and the run config into a new folder, with a README', () => {
  const ws = workspace();
  const dir = makeRun(ws.runs, { name: 'r', configFile: ws.configA, checkpoints: { 10: 0.5 } });
  const out = tmp('export');
  const folder = exportCheckpoint(path.join(dir, 'checkpoints', 'step-10'), out);
  assert.equal(folder, path.join(out, 'r-step-10'));
  assert.deepEqual(fs.readdirSync(folder).sort(), [
    'README.md',
    'checkpoint.json',
    'config.json',
    'weights.safetensors',
  ]);
  assert.deepEqual(
    fs.readFileSync(path.join(folder, 'weights.safetensors')),
    fs.readFileSync(path.join(dir, 'checkpoints', 'step-10', 'weights.safetensors')),
  );
  assert.match(
    fs.readFileSync(path.join(folder, 'README.md'), 'utf8'),
    /PEFT Lab's own format\*\*, not the AdapterHub layout/,
  );
  assert.equal(
    exportCheckpoint(path.join(dir, 'checkpoints', 'step-10'), out),
    path.join(out, 'r-step-10-2'),
    'an existing export is not overwritten',
  );
  fs.rmSync(path.join(dir, 'checkpoints', 'step-10', 'weights.safetensors'));
  assert.throws(
    () => exportCheckpoint(path.join(dir, 'checkpoints', 'step-10'), out),
    /weights\.safetensors is missing/,
  );
});

test("the sidebar's plain modules import no vscode", () => {
  for (const file of [
    'runs-model.ts',
    'runs-types.ts',
    'runs-queries.ts',
    'metrics-log.ts',
    'runs-present.ts',
    'runs-watcher.ts',
    'checkpoint-export.ts',
  ]) {
    const text = fs.readFileSync(path.join(__dirname, '..', '..', 'src', 'host', 'runs', file), 'utf8');
    assert.doesNotMatch(text, /from 'vscode'|require\('vscode'\)/, file);
  }
});

test('run.lock decides liveness (the rule inspect uses): a live holder on another machine is running elsewhere; a silent or dead one is interrupted', () => {
  const ws = workspace();
  const lock = (dir: string, holder: Record<string, unknown>) =>
    writeJson(path.join(dir, 'run.lock'), {
      pid: 4242,
      host: 'gpu-node-7',
      since: '2026-12-07T10:00:00Z',
      heartbeat: new Date().toISOString(),
      purpose: 'train',
      token: 'abcdefabcdefabcd',
      ...holder,
    });
  lock(makeRun(ws.runs, { name: 'remote', configFile: ws.configA, state: 'running', minute: 1, pid: 4242 }), {});
  lock(makeRun(ws.runs, { name: 'silent', configFile: ws.configA, state: 'running', minute: 2, pid: 4242 }), {
    heartbeat: '2026-12-07T10:05:00Z',
  });
  // status names a live pid (ours), but the lock's holder on this machine is dead
  lock(makeRun(ws.runs, { name: 'dead-holder', configFile: ws.configA, state: 'running', minute: 3 }), {
    pid: DEAD_PID,
    host: os.hostname(),
  });
  const m = model(ws.runs, [ws.configA]);
  const remote = m.run(path.join(ws.runs, 'remote'))!;
  assert.equal(remote.state, 'running');
  assert.equal(remote.interrupted, undefined);
  assert.match(remote.runningElsewhere ?? '', /^pid 4242 on gpu-node-7 \(train\) since 2026-12-07 10:00:00 UTC$/);
  assert.match(runItem(remote).description, /^running elsewhere · step /);
  assert.match(runTooltip(remote), /Running elsewhere: pid 4242 on gpu\\-node\\-7/);
  const silent = m.run(path.join(ws.runs, 'silent'))!;
  assert.equal(silent.state, 'failed');
  assert.match(silent.interrupted ?? '', /no heartbeat since 2026-12-07 10:05:00 UTC/);
  assert.match(runItem(silent).description, /^interrupted · /);
  const dead = m.run(path.join(ws.runs, 'dead-holder'))!;
  assert.equal(dead.state, 'failed');
  assert.match(dead.interrupted ?? '', new RegExp(`\\(${DEAD_PID}\\) is gone`));
});
