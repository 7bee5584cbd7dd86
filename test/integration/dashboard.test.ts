/**
 * The dashboard panels inside a real VS Code extension host: the commands open one panel per run
 * (asking again reveals it) and one per set of compared runs, with the webview locked down
 * (scripts on, local resources from media/ only); a run folder that grows is followed from the host
 * by its appended bytes; a folder that is not a run opens nothing.
 * (What the webview shows is checked in test/e2e/dashboard.test.mjs.)
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { DashboardPanel } from '../../src/host/dashboard/dashboard-panel';
import { lab, until } from './helpers';

function workspaceDir(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the fixture workspace is open');
  return folder.uri.fsPath;
}

const ROOT = () => path.join(workspaceDir(), 'dashboard-test-runs');

const placement = {
  method: 'houlsby',
  layers: 1,
  hiddenSize: 16,
  heads: 2,
  intermediateSize: 32,
  baseParams: 5000,
  trainableParams: 600,
  trainableByGroup: { adapter: 292, layerNorm: 64, pooler: 272, head: 34 },
  leftOut: [],
  sites: ['attention', 'ffn'].map((site) => ({
    layer: 0,
    site,
    kind: 'bottleneck',
    shapes: { down: [16, 4], up: [4, 16] },
    bottleneck: 4,
    activation: 'gelu',
    trainableParams: 148,
    inferenceParams: 148,
  })),
};

function trainLine(step: number): string {
  return `${JSON.stringify({ kind: 'train', step, epoch: 0, loss: 1 / step, learningRate: 1e-3, examplesPerSecond: 50, elapsedMs: step * 10 })}\n`;
}

function makeRun(name: string, state: string, steps: number): string {
  const dir = path.join(ROOT(), name);
  fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  const source = path.join(workspaceDir(), 'tiny.peft.json');
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      name,
      sourceFile: source,
      task: { type: 'classification', metric: 'accuracy' },
      method: { type: 'houlsby', bottleneck: 4 },
    }),
  );
  fs.writeFileSync(
    path.join(dir, 'status.json'),
    JSON.stringify({
      state,
      name,
      method: 'houlsby',
      configFile: source,
      pid: 0,
      started: new Date().toISOString(),
      step: steps,
      totalSteps: 100,
    }),
  );
  fs.writeFileSync(path.join(dir, 'placement.json'), JSON.stringify(placement));
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), Array.from({ length: steps }, (_, i) => trainLine(i + 1)).join(''));
  return dir;
}

suite('PEFT Lab dashboard panels', () => {
  let runA: string;
  let runB: string;

  suiteSetup(() => {
    fs.rmSync(ROOT(), { recursive: true, force: true });
    runA = makeRun('alpha-20261125-010203', 'finished', 5);
    runB = makeRun('beta-20261125-010204', 'running', 3);
  });

  suiteTeardown(async () => {
    for (const panel of (await lab()).dashboard.openPanels) panel.dispose();
    fs.rmSync(ROOT(), { recursive: true, force: true });
  });

  test('peftLab.openDashboard opens one locked-down panel per run; asking again reveals it', async () => {
    const peft = await lab();
    const panel = await vscode.commands.executeCommand<DashboardPanel>('peftLab.openDashboard', runA);
    assert.ok(panel, 'the command returns the panel');
    assert.equal(panel.panel.title, 'Dashboard: alpha-20261125-010203');
    assert.equal(panel.panel.viewType, 'peftLab.dashboard');
    const options = panel.panel.webview.options;
    assert.equal(options.enableScripts, true);
    assert.deepEqual(
      options.localResourceRoots?.map((u) => path.basename(u.fsPath)),
      ['media'],
    );
    assert.match(panel.panel.webview.html, /Content-Security-Policy" content="default-src 'none'/);
    assert.match(panel.panel.webview.html, /script-src 'nonce-[A-Za-z0-9]+'/);
    assert.doesNotMatch(panel.panel.webview.html, /unsafe-inline|unsafe-eval/);
    // the only origin named is the webview's own resource origin (webview.cspSource, asWebviewUri)
    const origins = [...panel.panel.webview.html.matchAll(/https?:\/\/[^/"' ;]+/g)].map((m) => m[0]);
    assert.ok(
      origins.every((o) => /vscode-cdn\.net$/.test(o)),
      `origins: ${[...new Set(origins)].join(', ')}`,
    );
    assert.ok(panel.panel.webview.html.includes(panel.panel.webview.cspSource));
    const again = await vscode.commands.executeCommand<DashboardPanel>('peftLab.openDashboard', runA);
    assert.equal(again, panel, 'the same panel');
    assert.equal(peft.dashboard.openPanels.filter((p) => p.mode === 'run').length, 1);
    // the snapshot it would send: placement and every logged step
    const [snapshot] = panel.snapshots();
    assert.equal(snapshot!.placement?.sites.length, 2);
    assert.equal(snapshot!.train.step.length, 5);
    assert.equal(snapshot!.status.state, 'finished');
  });

  test('a running run is followed from the host: appended lines are read, not the whole file again', async () => {
    const panel = await vscode.commands.executeCommand<DashboardPanel>('peftLab.openDashboard', runB);
    assert.ok(panel);
    const run = panel.runs[0]!;
    assert.equal(run.trainCount, 3);
    fs.appendFileSync(path.join(runB, 'metrics.jsonl'), trainLine(4) + trainLine(5));
    await until(() => run.trainCount === 5, 'the appended steps');
    fs.writeFileSync(
      path.join(runB, 'status.json'),
      JSON.stringify({ state: 'finished', step: 5, totalSteps: 5, started: new Date().toISOString() }),
    );
    await until(() => run.state === 'finished', 'the finished status');
  });

  test('peftLab.compareRuns takes the list the Runs view passes (and a tree-item selection); one run opens its own dashboard', async () => {
    const compare = await vscode.commands.executeCommand<DashboardPanel>('peftLab.compareRuns', [runA, runB]);
    assert.ok(compare);
    assert.equal(compare.mode, 'compare');
    assert.equal(compare.panel.title, 'Compare 2 runs');
    assert.deepEqual(
      compare.runs.map((r) => path.basename(r.dir)),
      ['alpha-20261125-010203', 'beta-20261125-010204'],
    );
    const same = await vscode.commands.executeCommand<DashboardPanel>('peftLab.compareRuns', { runDir: runB }, [
      { dir: runB },
      { dir: runA },
    ]);
    assert.equal(same, compare, 'the same set of runs, in any order, is the same panel');
    const single = await vscode.commands.executeCommand<DashboardPanel>('peftLab.compareRuns', [runA]);
    assert.equal(single?.mode, 'run');
  });

  test('a run that has not logged a step yet shows its placement (written when the run starts)', async () => {
    const fresh = makeRun('gamma-20261125-010205', 'running', 0);
    const panel = await vscode.commands.executeCommand<DashboardPanel>('peftLab.openDashboard', fresh);
    const [snapshot] = panel!.snapshots();
    assert.equal(snapshot!.train.step.length, 0);
    assert.equal(snapshot!.placement?.method, 'houlsby');
    assert.equal(snapshot!.placement?.sites.length, 2);
  });

  test('a folder that is not a run opens nothing', async () => {
    const peft = await lab();
    const before = peft.dashboard.openPanels.length;
    const result = await vscode.commands.executeCommand('peftLab.openDashboard', path.join(workspaceDir(), 'data'));
    assert.equal(result, undefined);
    assert.equal(peft.dashboard.openPanels.length, before);
  });

  test('closing a panel forgets it; opening the run again makes a new one', async () => {
    const peft = await lab();
    const panel = await vscode.commands.executeCommand<DashboardPanel>('peftLab.openDashboard', runA);
    panel!.panel.dispose();
    await until(() => !peft.dashboard.openPanels.includes(panel!), 'the panel to be forgotten');
    const fresh = await vscode.commands.executeCommand<DashboardPanel>('peftLab.openDashboard', runA);
    assert.notEqual(fresh, panel);
  });
});
