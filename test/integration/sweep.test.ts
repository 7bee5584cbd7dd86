/**
 * Sweeps inside a real VS Code extension host, on the fixture workspace: the Sweep CodeLens, a bad
 * sweep value as a diagnostic on the value, a 4-point sweep run to the end (four run folders, the
 * best one marked in the Runs view), and the Queue view's Pause, Resume and Clear.
 * The configs and runs this suite writes are removed at the end.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ResolvedConfig } from '../../src/core/config/types';
import type { SweepOutcome } from '../../src/host/sweeps/sweeps';
import { lab, until } from './helpers';

const SWEEP_TIMEOUT_MS = 240_000;

function workspaceFile(name: string): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the fixture workspace is open');
  return path.join(folder.uri.fsPath, name);
}

const RUNS = workspaceFile('runs-sweep');
const GRID = workspaceFile('sweep-grid.peft.json');
const QUEUE = workspaceFile('sweep-queue.peft.json');
const BAD = workspaceFile('sweep-bad.peft.json');

/** The fixture's tiny config (hidden size 16) with a sweep, writing its runs to runs-sweep/. */
function writeConfig(file: string, name: string, sweep: unknown, training: Record<string, unknown> = {}): void {
  const config = {
    name,
    model: {
      scratch: { vocab: 'vocab.txt', layers: 1, hiddenSize: 16, heads: 2, intermediateSize: 32, maxPositions: 64 },
    },
    task: { type: 'classification' },
    data: { train: 'data/train.jsonl', validation: 'data/validation.jsonl', maxLength: 32 },
    method: { type: 'houlsby', bottleneck: 4 },
    training: { epochs: 2, batchSize: 16, logEvery: 1, backend: 'cpu', ...training },
    output: { runsDir: 'runs-sweep' },
    sweep,
  };
  fs.writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
}

async function lensTitles(file: string): Promise<string[]> {
  const uri = vscode.Uri.file(file);
  await vscode.workspace.openTextDocument(uri);
  const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri);
  return lenses.map((l) => l.command?.title ?? '');
}

function runFoldersOf(name: string): string[] {
  return fs.existsSync(RUNS)
    ? fs
        .readdirSync(RUNS)
        .filter((d) => d.startsWith(`${name}-`))
        .sort()
    : [];
}

suite('Sweeps in VS Code', () => {
  suiteSetup(() => {
    writeConfig(GRID, 'grid', {
      method: 'grid',
      parameters: { 'method.bottleneck': { values: [2, 4] }, 'training.learningRate': { values: [0.001, 0.0001] } },
    });
    // long enough per point (200 steps) that a point is still training when the test pauses the queue
    writeConfig(
      QUEUE,
      'queue',
      { parameters: { 'training.seed': { values: [1, 2, 3, 4] } } },
      { epochs: 50, logEvery: 10, evalEvery: 1000 },
    );
    writeConfig(BAD, 'bad', { parameters: { 'method.bottleneck': { values: [2, 16] } } });
  });

  suiteTeardown(async () => {
    const peft = await lab();
    peft.runs.resumeQueue();
    peft.runs.clearQueue();
    for (const run of peft.runs.active()) peft.runs.stopRun(run.id);
    for (const file of [GRID, QUEUE, BAD]) fs.rmSync(file, { force: true });
    fs.rmSync(RUNS, { recursive: true, force: true });
    await vscode.workspace
      .getConfiguration('peftLab')
      .update('maxConcurrentRuns', undefined, vscode.ConfigurationTarget.Workspace);
  });

  test('a config with a sweep section gets a Sweep lens beside Train', async () => {
    await lab();
    let titles: string[] = [];
    // the diagnostics of a config just written arrive shortly after it is opened
    for (let tries = 0; tries < 50 && !titles.includes('$(list-tree) Sweep'); tries++) {
      titles = await lensTitles(GRID);
      if (!titles.includes('$(list-tree) Sweep')) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(titles.includes('$(list-tree) Sweep'), `lenses: ${titles.join(' | ')}`);
    assert.ok(titles.includes('$(play) Train'), `lenses: ${titles.join(' | ')}`);
  });

  test('a bad sweep value is a diagnostic on that value; it blocks Sweep but not Train', async () => {
    await lab();
    const uri = vscode.Uri.file(BAD);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    const pointer = '/sweep/parameters/method.bottleneck/values/1';
    const diagnostic = await until(
      () => vscode.languages.getDiagnostics(uri).find((d) => d.code === pointer),
      'the sweep diagnostic',
    );
    assert.equal(doc.getText(diagnostic.range), '16');
    assert.match(
      diagnostic.message,
      /method\.bottleneck = 16: bottleneck 16 must be smaller than the model's hidden size 16/,
    );
    const titles = await lensTitles(BAD);
    assert.ok(titles.includes('$(play) Train'), `Train still offered: ${titles.join(' | ')}`);
    assert.ok(
      titles.some((t) => t.startsWith('$(circle-slash) Sweep: fix 1 problem first')),
      `Sweep blocked: ${titles.join(' | ')}`,
    );
    assert.equal(await vscode.commands.executeCommand('peftLab.sweep', uri), undefined, 'the command refuses it too');
  });

  test('Sweep runs all four points of a 2x2 grid to four run folders and marks the best in the Runs view', async function () {
    this.timeout(SWEEP_TIMEOUT_MS);
    const peft = await lab();
    const outcome = await vscode.commands.executeCommand<SweepOutcome | undefined>(
      'peftLab.sweep',
      vscode.Uri.file(GRID),
    );
    assert.ok(outcome, 'the sweep ran');
    assert.deepEqual(
      outcome.results.map((r) => r.outcome.kind),
      ['finished', 'finished', 'finished', 'finished'],
      JSON.stringify(outcome.results.map((r) => r.outcome)),
    );
    const names = [
      'grid-bottleneck=2-lr=1e-3',
      'grid-bottleneck=2-lr=1e-4',
      'grid-bottleneck=4-lr=1e-3',
      'grid-bottleneck=4-lr=1e-4',
    ];
    assert.deepEqual(
      outcome.results.map((r) => r.point.name),
      names,
    );
    const folders = runFoldersOf('grid');
    assert.equal(folders.length, 4, folders.join(', '));
    for (const [index, name] of names.entries()) {
      const folder = folders.find((f) => f.startsWith(`${name}-`));
      assert.ok(folder, `a folder for ${name}`);
      const config = JSON.parse(fs.readFileSync(path.join(RUNS, folder, 'config.json'), 'utf8')) as ResolvedConfig;
      assert.equal(config.sweepPoint?.sweepId, outcome.plan.id);
      assert.equal(config.sweepPoint?.index, index);
      assert.equal(config.sourceFile, GRID);
      const status = JSON.parse(fs.readFileSync(path.join(RUNS, folder, 'status.json'), 'utf8'));
      assert.equal(status.state, 'finished');
      assert.notEqual(status.pid, process.pid, 'a worker trained it, not the extension host');
    }
    assert.ok(outcome.best, 'a best point');
    const bestAccuracy = Math.max(...outcome.results.map((r) => r.metrics?.accuracy ?? -1));
    assert.equal(outcome.best.metrics?.accuracy, bestAccuracy);

    // the Runs view marks that run, and only it
    const provider = peft.sidebar.provider;
    const item = await until(() => {
      peft.sidebar.rescanNow();
      const data = provider.itemData(provider.node('run', outcome.best!.runDir));
      return data?.description.startsWith('best of sweep') && data;
    }, 'the best run marked in the Runs view');
    assert.equal(item.icon.id, 'verified-filled');
    const others = outcome.results.filter(
      (r) => r.point.index !== outcome.best!.point.index && r.outcome.kind === 'finished',
    );
    for (const r of others) {
      const dir = r.outcome.kind === 'finished' ? r.outcome.message.runDir : '';
      assert.doesNotMatch(provider.itemData(provider.node('run', dir))?.description ?? '', /best of sweep/);
    }
  });

  test('the Queue: Pause lets the running point finish and starts no other, Resume starts the next, Clear drops the rest', async function () {
    this.timeout(SWEEP_TIMEOUT_MS);
    const peft = await lab();
    await vscode.workspace
      .getConfiguration('peftLab')
      .update('maxConcurrentRuns', 1, vscode.ConfigurationTarget.Workspace);
    const training = () => peft.runs.active().filter((r) => r.point && r.phase !== 'queued');
    const queueItems = () => peft.sweeps.queue.getChildren();

    const done = vscode.commands.executeCommand<SweepOutcome | undefined>('peftLab.sweep', vscode.Uri.file(QUEUE));
    const first = await until(() => training().find((r) => r.progress), 'the first point to train');
    assert.equal(first.point?.name, 'queue-seed=1');
    assert.deepEqual(
      queueItems().map((r) => r.point?.name),
      ['queue-seed=2', 'queue-seed=3', 'queue-seed=4'],
      'the waiting points are listed',
    );
    assert.ok((await lensTitles(QUEUE)).includes('$(list-tree) Sweep: 1 running, 3 queued'));

    await vscode.commands.executeCommand('peftLab.queue.pause');
    assert.equal(peft.runs.queuePaused, true);
    assert.match(peft.sweeps.queueView.description ?? '', /^paused · 3 waiting$/);
    await until(() => training().length === 0, 'the running point to finish while paused', 120_000);
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal(training().length, 0, 'no point started while paused');
    assert.equal(queueItems().length, 3);
    assert.equal(runFoldersOf('queue').length, 1);

    await vscode.commands.executeCommand('peftLab.queue.resume');
    const second = await until(() => training()[0], 'the next point to start after Resume');
    assert.equal(second.point?.name, 'queue-seed=2');
    assert.equal(queueItems().length, 2);

    await vscode.commands.executeCommand('peftLab.queue.clear');
    assert.equal(queueItems().length, 0, 'Clear empties the queue');
    assert.equal(training().length, 1, 'the running point goes on');

    const outcome = await done;
    assert.ok(outcome);
    assert.deepEqual(
      outcome.results.map((r) => r.outcome.kind),
      ['finished', 'finished', 'failed', 'failed'],
    );
    for (const r of outcome.results.slice(2))
      assert.equal(r.outcome.kind === 'failed' && r.outcome.error.name, 'CancelledError');
    assert.equal(runFoldersOf('queue').length, 2, 'the cleared points never made a run folder');
  });
});
