/**
 * The host side of the dashboard without VS Code: a run folder read into a snapshot and kept
 * current by reading only appended bytes (partial lines, rewrites, routing from the latest
 * checkpoint, a placement that appears when the run starts), and the webview page's CSP.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunData, hasChanges } from '../../src/host/dashboard/dashboard-data';
import { dashboardHtml } from '../../src/host/dashboard/dashboard-html';
import { contentSecurityPolicy, makeNonce } from '../../src/host/webview/webview-page';
import { parseHostToDashboard } from '../../src/protocol/dashboard';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-dashboard-data-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const placement = {
  method: 'adamix',
  layers: 1,
  hiddenSize: 16,
  heads: 2,
  intermediateSize: 32,
  baseParams: 10_000,
  trainableParams: 900,
  trainableByGroup: { adapter: 800, head: 100 },
  leftOut: [],
  sites: [
    {
      layer: 0,
      site: 'ffn',
      kind: 'adamix',
      shapes: { down: [16, 4], up: [4, 16] },
      bottleneck: 4,
      activation: 'gelu',
      experts: { down: 4, up: 1 },
      trainableParams: 800,
      inferenceParams: 148,
    },
  ],
};

function runFolder(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ name, sourceFile: '/work/x.peft.json', task: { metric: 'accuracy' } }),
  );
  fs.writeFileSync(
    path.join(dir, 'status.json'),
    JSON.stringify({
      state: 'running',
      step: 0,
      totalSteps: 100,
      backend: 'cpu',
      started: '2026-11-25T00:00:00Z',
      configFile: '/work/x.peft.json',
    }),
  );
  return dir;
}

const train = (step: number, loss: number | string = 1 / step) =>
  `{"kind":"train","step":${step},"epoch":0,"loss":${loss},"learningRate":0.001,"examplesPerSecond":50,"elapsedMs":${step * 10}}\n`;

describe('RunData', () => {
  test('before the first step: config and status, placement once written, no series yet', () => {
    const dir = runFolder('fresh');
    const run = new RunData(dir);
    let snap = run.snapshot(true);
    assert.equal(snap.placement, undefined);
    assert.equal(snap.train.step.length, 0);
    assert.equal(snap.status.state, 'running');
    assert.equal(snap.status.followed, true);
    assert.equal(run.configFile, '/work/x.peft.json');
    fs.writeFileSync(path.join(dir, 'placement.json'), JSON.stringify(placement));
    const changes = run.refresh();
    assert.equal(changes.placement?.method, 'adamix');
    snap = run.snapshot(false);
    assert.equal(snap.placement?.sites.length, 1);
    assert.ok(
      parseHostToDashboard({ type: 'snapshot', mode: 'run', runs: [snap] }).ok,
      'the snapshot is a valid message',
    );
    assert.equal(hasChanges(run.refresh()), false, 'nothing new, nothing to send');
  });

  test('reads only appended bytes, holds a partial line until it is complete, and survives a broken line', () => {
    const dir = runFolder('tail');
    const file = path.join(dir, 'metrics.jsonl');
    fs.writeFileSync(file, train(1) + train(2));
    const run = new RunData(dir);
    assert.deepEqual(run.snapshot(false).train.step, [1, 2]);
    const line = train(3);
    fs.appendFileSync(file, line.slice(0, 20));
    assert.equal(run.refresh().train, undefined, 'half a line is not a point');
    fs.appendFileSync(
      file,
      line.slice(20) +
        'not json\n' +
        train(4, 'NaN'.replace('NaN', 'null')) +
        '{"kind":"eval","split":"validation","step":4,"epoch":0,"accuracy":0.5,"loss":0.7,"isBest":true}\n',
    );
    const changes = run.refresh();
    assert.deepEqual(changes.train?.step, [3, 4]);
    assert.deepEqual(changes.train?.loss, [1 / 3, null]);
    assert.deepEqual(changes.evals, [
      { step: 4, split: 'validation', metrics: { accuracy: 0.5, loss: 0.7 }, isBest: true },
    ]);
    assert.match(run.snapshot(false).problems.join('\n'), /metrics.jsonl line 4: not valid JSON/);
  });

  test('a rewritten metrics file (a resume drops lines after its checkpoint) resets the run', () => {
    const dir = runFolder('rewrite');
    const file = path.join(dir, 'metrics.jsonl');
    fs.writeFileSync(file, train(1) + train(2) + train(3));
    const run = new RunData(dir);
    // as the trainer does: write aside, rename into place (a new file, same or larger size)
    fs.writeFileSync(`${file}.tmp`, train(1) + train(2) + train(3).replace('"epoch":0', '"epoch":10'));
    fs.renameSync(`${file}.tmp`, file);
    const changes = run.refresh();
    assert.equal(changes.reset, true);
    assert.deepEqual(run.snapshot(false).train.step, [1, 2, 3]);
    fs.writeFileSync(file, train(1));
    assert.equal(run.refresh().reset, true, 'a shorter file too');
    assert.deepEqual(run.snapshot(false).train.step, [1]);
  });

  test('AdaMix routing counts come from the latest complete checkpoint; status changes are reported', () => {
    const dir = runFolder('routing');
    const checkpoint = (step: number, down: number[]) => {
      const c = path.join(dir, 'checkpoints', `step-${step}`);
      fs.mkdirSync(c, { recursive: true });
      fs.writeFileSync(
        path.join(c, 'checkpoint.json'),
        JSON.stringify({ step, trainer: { routing: { '0.ffn': { down, up: [down.reduce((a, b) => a + b, 0)] } } } }),
      );
    };
    checkpoint(10, [1, 2, 3, 4]);
    fs.mkdirSync(path.join(dir, 'checkpoints', 'step-30.tmp-1'));
    const run = new RunData(dir);
    assert.deepEqual(run.snapshot(false).routing, { step: 10, sites: { '0.ffn': { down: [1, 2, 3, 4], up: [10] } } });
    fs.mkdirSync(path.join(dir, 'checkpoints', 'step-20'));
    assert.equal(run.refresh().routing, undefined, 'a checkpoint without checkpoint.json is incomplete');
    checkpoint(20, [5, 5, 5, 5]);
    const changes = run.refresh();
    assert.deepEqual(changes.checkpoints, [10, 20]);
    assert.equal(changes.routing?.step, 20);
    assert.equal(run.bestCheckpoint, path.join(dir, 'checkpoints', 'step-20'));
    fs.writeFileSync(
      path.join(dir, 'status.json'),
      JSON.stringify({
        state: 'finished',
        step: 20,
        totalSteps: 20,
        bestCheckpoint: path.join(dir, 'checkpoints', 'step-10'),
        bestMetrics: { accuracy: 0.75 },
      }),
    );
    const done = run.refresh();
    assert.equal(done.status?.state, 'finished');
    assert.deepEqual(done.status?.bestMetrics, { accuracy: 0.75 });
    assert.equal(run.bestCheckpoint, path.join(dir, 'checkpoints', 'step-10'));
  });

  test('a folder with nothing readable is still a (empty) run, not an exception', () => {
    const dir = path.join(root, 'empty');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'status.json'), '{ broken');
    const snap = new RunData(dir).snapshot(false);
    assert.equal(snap.status.state, 'unknown');
    assert.match(snap.problems.join('\n'), /status\.json/);
  });

  // how fast is bench/dashboard-render.mjs's question; here, that a long run loads whole
  test('100,000 logged steps load, every one of them', () => {
    const dir = runFolder('long');
    const lines: string[] = [];
    for (let s = 1; s <= 100_000; s++) lines.push(train(s).trimEnd());
    fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
    const run = new RunData(dir);
    assert.equal(run.trainCount, 100_000);
  });
});

describe('the webview page', () => {
  test('strict CSP: nothing by default, scripts only with the nonce, no inline styles, no remote origins', () => {
    const csp = contentSecurityPolicy('https://file+.vscode-resource.vscode-cdn.net', 'abc123');
    assert.match(csp, /^default-src 'none'/);
    assert.match(csp, /script-src 'nonce-abc123'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    const html = dashboardHtml(
      {
        cspSource: 'vscode-resource:',
        script: 'vscode-resource:/media/dashboard.js',
        style: 'vscode-resource:/media/dashboard.css',
        codicons: 'vscode-resource:/media/codicons/codicon.css',
      },
      'n0nce',
      'Dashboard: <run>',
    );
    assert.match(html, /<script nonce="n0nce" src="vscode-resource:\/media\/dashboard\.js"><\/script>/);
    assert.match(html, /id="vscode-codicon-stylesheet"/);
    assert.match(html, /Dashboard: &#60;run&#62;/);
    assert.doesNotMatch(html, /<style|style="|https?:/);
    assert.notEqual(makeNonce(), makeNonce());
    assert.match(makeNonce(), /^[A-Za-z0-9]{20,}$/);
  });
});

describe('webview assets', () => {
  test('media/codicons is the font and stylesheet of the pinned @vscode/codicons (refresh: copy them from node_modules/@vscode/codicons/dist)', () => {
    const repo = path.join(__dirname, '..', '..');
    for (const file of ['codicon.css', 'codicon.ttf']) {
      const shipped = fs.readFileSync(path.join(repo, 'media', 'codicons', file));
      const pinned = fs.readFileSync(path.join(repo, 'node_modules', '@vscode', 'codicons', 'dist', file));
      assert.ok(shipped.equals(pinned), `media/codicons/${file} differs from @vscode/codicons`);
    }
  });
});

test('a running run whose training process is gone (run.lock names a dead pid) shows as failed, interrupted, and why', () => {
  const dir = runFolder('killed');
  const deadPid = 2 ** 22 + 4321;
  fs.writeFileSync(
    path.join(dir, 'run.lock'),
    JSON.stringify({
      pid: deadPid,
      host: os.hostname(),
      since: '2026-11-25T00:00:00Z',
      heartbeat: '2026-11-25T00:00:00Z',
      purpose: 'train',
      token: 'abcdefabcdefabcd',
    }),
  );
  const run = new RunData(dir);
  const status = run.snapshot(false).status;
  assert.equal(status.state, 'failed');
  assert.match(status.error ?? '', new RegExp(`^interrupted: its training process \\(${deadPid}\\) is gone`));
  assert.equal(hasChanges(run.refresh()), false, 'said once');
});
