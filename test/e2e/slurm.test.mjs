/**
 * A sweep on a real Slurm cluster from the editor (VS Code 1.100 workbench, PEFT Lab from its VSIX,
 * `peftLab.executor` = `slurm`), against the single-node cluster of scripts/slurm/local-cluster.sh:
 *
 *  1. the **Sweep** CodeLens submits one job array of 4 points, 2 at a time
 *     (`peftLab.maxConcurrentRuns`); the Queue view shows Slurm's view of each point: pending (and
 *     why: JobArrayTaskLimit), then running on this machine's node;
 *  2. Stop on a running point: scancel sends SIGTERM, the run checkpoints and the Queue view shows
 *     it cancelled at its checkpoint; clicking it opens the job's own log;
 *  3. the other three finish: the Experiments table shows them finished and the stopped one stopped.
 *
 * Skips (saying why) only without root or without apt-get to install Slurm. Screenshots:
 * .test-artifacts/slurm-{pending,running,cancelled,table}.png.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ARTIFACTS_DIR, REPO_ROOT, screenshot, writeUserSettings } from '../../scripts/vscode-test/code-server.mjs';
import {
  ExtensionUiTest,
  PEFT_LAB_VIEW,
  UI_TIMEOUT,
  codeLens,
  copyFixtureWorkspace,
  openFile,
  runCommand,
  showPeftLabView,
  webviewContent,
} from '../../scripts/vscode-test/workbench.mjs';

const CLUSTER = join(REPO_ROOT, 'scripts', 'slurm', 'local-cluster.sh');
const SWEEP_TIMEOUT = 300_000;

function skipReason() {
  if (process.platform !== 'linux') return 'the Slurm tests need Linux';
  if (process.getuid?.() !== 0) return 'the Slurm tests start slurmctld and slurmd, which needs root (CI runs as root)';
  const installed = spawnSync('dpkg', ['-s', 'slurm-wlm', 'munge'], { stdio: 'ignore' }).status === 0;
  if (!installed && !existsSync('/usr/bin/apt-get')) return 'no slurm-wlm/munge and no apt-get to install them';
  return undefined;
}

/** The fixture workspace with `grid.peft.json`: the tiny config, long enough to stop mid-run, and a 2x2 grid. */
function workspaceWithSweep(dir) {
  const folder = copyFixtureWorkspace(dir);
  const tiny = JSON.parse(readFileSync(join(folder, 'tiny.peft.json'), 'utf8'));
  const grid = {
    ...tiny,
    name: 'grid',
    training: { ...tiny.training, epochs: 100, evalEvery: 40, logEvery: 10 },
    sweep: {
      method: 'grid',
      parameters: { 'method.bottleneck': { values: [2, 4] }, 'training.learningRate': { values: [0.001, 0.0001] } },
      metric: 'accuracy',
      goal: 'maximize',
    },
  };
  writeFileSync(join(folder, 'grid.peft.json'), `${JSON.stringify(grid, null, 2)}\n`);
  return { folder, runs: join(folder, 'runs') };
}

function findFiles(dir, wanted) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const file = join(dir, name);
    return statSync(file).isDirectory() ? findFiles(file, wanted) : wanted(file) ? [file] : [];
  });
}

function pane(page, title) {
  return page.locator(`${PEFT_LAB_VIEW} .pane`, {
    has: page.locator('.pane-header h3.title', { hasText: new RegExp(`^${title}$`) }),
  });
}

test(
  'VS Code UI: a Slurm sweep from the CodeLens, pending then running in the Queue view, one stopped at a checkpoint, the others finished',
  { timeout: 900_000, skip: skipReason() },
  async () => {
    execFileSync('bash', [CLUSTER, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
    process.env.SLURM_CONF = execFileSync('bash', [CLUSTER, 'conf'], { encoding: 'utf8' }).trim();
    const ui = new ExtensionUiTest('ui-slurm', 'peft-lab-slurm-test.vsix');
    ui.atEnd(() => spawnSync('bash', [CLUSTER, 'stop'], { stdio: ['ignore', 'inherit', 'inherit'] }));
    // the extension's own log (submissions, Slurm states, stops) and the jobs' logs, kept for a failure's post-mortem
    ui.atEnd(() => {
      const keep = (from, name) => cpSync(from, join(ARTIFACTS_DIR, name), { recursive: true });
      for (const file of findFiles(ui.userDataDir, (f) => f.endsWith('PEFT Lab.log'))) keep(file, 'slurm-peft-lab.log');
      const jobs = join(ws.runs, '.slurm');
      if (existsSync(jobs)) keep(jobs, 'slurm-jobs');
    });
    const ws = workspaceWithSweep(ui.dir);
    writeUserSettings(ui.userDataDir, { 'peftLab.executor': 'slurm', 'peftLab.maxConcurrentRuns': 2 });
    const node = hostname();
    await ui.run({ folder: ws.folder, file: 'grid.peft.json', failureShot: 'slurm-failure.png' }, async (page) => {
      // ---- 1. the Sweep lens submits a job array; the Queue view shows pending, then running --------------
      await showPeftLabView(page);
      const queue = pane(page, 'Queue');
      await queue.waitFor({ timeout: 60_000 });
      await openFile(page, 'grid.peft.json');
      const sweepLens = codeLens(page, 'Sweep');
      await sweepLens.waitFor({ timeout: 60_000 });
      await sweepLens.click();
      const rows = queue.locator('.monaco-list-row');
      const pending = rows.filter({ hasText: /pending \(JobArrayTaskLimit\)/ });
      await pending.first().waitFor({ timeout: 60_000 });
      assert.match(
        await rows.filter({ hasText: 'grid-bottleneck=4-lr=1e-4' }).innerText(),
        /pending.*Slurm job \d+_3/s,
        'the last point waits in the array',
      );
      await screenshot(page, 'slurm-pending.png');
      const running = rows.filter({ hasText: new RegExp(`running on ${node}`) });
      await running.first().waitFor({ timeout: 120_000 });
      // progress from the run folder on the shared file system, in the status bar
      await page.locator('.statusbar', { hasText: /grid-bottleneck=.*: step \d+\/400/ }).waitFor({ timeout: 60_000 });
      await screenshot(page, 'slurm-running.png');

      // ---- 2. Stop one running point: it checkpoints and shows cancelled; its log is one click away -------------
      // the last point: it waited in the array, so it is still early in its run when it shows progress
      const victimName = 'grid-bottleneck=4-lr=1e-4';
      const victim = rows.filter({ hasText: victimName }).filter({ hasText: new RegExp(`running on ${node}`) });
      await victim.waitFor({ timeout: SWEEP_TIMEOUT });
      // training, not starting up: its run folder has logged steps (a stop checkpoints at the next one)
      for (const end = Date.now() + 120_000; ; await page.waitForTimeout(200)) {
        const folder = existsSync(ws.runs) && readdirSync(ws.runs).find((d) => d.startsWith(`${victimName}-`));
        if (folder && existsSync(join(ws.runs, folder, 'metrics.jsonl'))) break;
        if (Date.now() > end) throw new Error(`${victimName} never logged a step`);
      }
      // the row's inline Stop button (it shows on hover)
      await victim.hover();
      await victim.locator('a.action-label[aria-label^="Stop Slurm Job"]').click();
      const stopped = rows.filter({ hasText: victimName }).filter({ hasText: /cancelled \(checkpoint at step \d+\)/ });
      await stopped.waitFor({ timeout: 120_000 });
      await screenshot(page, 'slurm-cancelled.png');
      await stopped.click();
      const logTab = page.locator('.tab.active', { hasText: /\d+_\d\.out/ });
      await logTab.waitFor({ timeout: UI_TIMEOUT });
      await page
        .locator('.monaco-editor .view-lines', {
          hasText: 'SIGTERM: stopping at the next step boundary after a checkpoint',
        })
        .first()
        .waitFor({ timeout: UI_TIMEOUT });

      // ---- 3. the other three finish; the Experiments table shows them --------------------------------------------
      await rows.first().waitFor({ state: 'detached', timeout: SWEEP_TIMEOUT });
      await runCommand(page, 'PEFT Lab: Open Experiments');
      await page.locator('.tab.active', { hasText: 'Experiments' }).waitFor({ timeout: UI_TIMEOUT });
      const view = webviewContent(page);
      await view.locator('body[data-ready="true"][data-rows="4"]').waitFor({ timeout: 60_000 });
      const states = await view.locator('tbody tr.row td[data-column="state"]').allInnerTexts();
      assert.deepEqual(states.map((s) => s.trim()).sort(), ['finished', 'finished', 'finished', 'stopped']);
      const stoppedRow = view.locator('tbody tr.row', { hasText: victimName });
      assert.match(await stoppedRow.locator('td[data-column="state"]').innerText(), /stopped/);
      await screenshot(page, 'slurm-table.png');

      // the run folders are the contract: each names its Slurm job, the stopped one resumable from its checkpoint
      const folders = readdirSync(ws.runs).filter((d) => d.startsWith('grid-'));
      assert.equal(folders.length, 4);
      for (const folder of folders) {
        const status = JSON.parse(readFileSync(join(ws.runs, folder, 'status.json'), 'utf8'));
        const slurm = JSON.parse(readFileSync(join(ws.runs, folder, 'slurm.json'), 'utf8'));
        assert.ok(slurm.jobId && slurm.log, `${folder} names its Slurm job`);
        if (folder.startsWith(`${victimName}-`)) {
          assert.deepEqual([status.state, status.reason], ['stopped', 'cancelled']);
          assert.ok(
            readdirSync(join(ws.runs, folder, 'checkpoints')).some((c) => c === `step-${status.step}`),
            'checkpointed where it stopped',
          );
        } else {
          assert.equal(status.state, 'finished', folder);
          assert.equal(status.step, 400);
        }
      }
    });
  },
);
