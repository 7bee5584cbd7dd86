/**
 * Sweeps in the editor: `peftLab.sweep` (the Sweep CodeLens) plans a config's sweep
 * (core/config/sweep.ts) and queues one run per point in the run manager, which starts them up to
 * `peftLab.maxConcurrentRuns` like any Train; the **Queue** view lists the runs waiting, with Pause,
 * Resume and Clear; when every point of a sweep has ended, a notification names its best point.
 * (The Runs view marks that run "best of sweep" from the run folders, see runs-model.ts.)
 *
 * Each point's resolved config goes to its worker over IPC, so nothing is written outside the run
 * folders and the whole sweep uses the config as it was when Sweep was pressed. The queue lives in
 * this window: after a reload, runs that were training are followed again, waiting points are gone.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../core/errors';
import { bestPoint, describePoint, planSweep, type SweepPlan, type SweepPoint } from '../../core/config/sweep';
import type { RunManager, RunOutcome, RunView } from '../training/run-manager';
import { describeState } from '../../core/slurm/job';
import type { SlurmRuns } from '../slurm/slurm-runs';
import { readSettings } from '../util/settings';
import { Disposable } from '../util/dispose';
import { formatMetricValue } from '../../protocol/format';

export const QUEUE_VIEW_ID = 'peftLab.queue';

export interface PointResult {
  point: SweepPoint;
  outcome: RunOutcome;
  /** The validation metrics of the run's best checkpoint, when it finished with one. */
  metrics?: Record<string, number>;
}

/** What `peftLab.sweep` resolves with once every point has ended (tests read it). */
export interface SweepOutcome {
  plan: SweepPlan;
  results: PointResult[];
  best?: PointResult & { runDir: string };
}

export interface SweepsDeps {
  runs: RunManager;
  log: vscode.LogOutputChannel;
  /** Where sweeps go when peftLab.executor is slurm. */
  slurm: SlurmRuns;
}

export class Sweeps extends Disposable {
  readonly queue: QueueTreeProvider;
  readonly queueView: vscode.TreeView<RunView>;

  constructor(private readonly deps: SweepsDeps) {
    super();
    this.queue = this._register(new QueueTreeProvider(deps.runs, deps.slurm));
    this.queueView = this._register(vscode.window.createTreeView(QUEUE_VIEW_ID, { treeDataProvider: this.queue }));
    for (const d of [
      deps.runs.onDidChangeQueue(() => this.onQueueChange()),
      deps.slurm.onDidChange(() => this.queue.refresh()),
      vscode.commands.registerCommand('peftLab.sweep', (uri?: vscode.Uri) => this.sweep(uri)),
      vscode.commands.registerCommand('peftLab.queue.pause', () => deps.runs.pauseQueue()),
      vscode.commands.registerCommand('peftLab.queue.resume', () => deps.runs.resumeQueue()),
      vscode.commands.registerCommand('peftLab.queue.clear', () => deps.runs.clearQueue()),
      vscode.commands.registerCommand('peftLab.queue.remove', (run?: RunView) => run && deps.runs.stopRun(run.id)),
      vscode.commands.registerCommand('peftLab.queue.stopJob', (run?: RunView) => {
        if (!run) return;
        deps.log.info(
          `Stop requested for ${run.point?.name ?? run.configFile} (Slurm job ${run.slurm?.jobId ?? '?'}${run.slurm?.taskId === undefined ? '' : `_${run.slurm.taskId}`})`,
        );
        deps.runs.stopRun(run.id);
      }),
      vscode.commands.registerCommand(
        'peftLab.queue.showJobLog',
        (run?: RunView) => run?.slurm && this.showJobLog(run.slurm.log),
      ),
    ])
      this._register(d);
    this.onQueueChange();
  }

  /** Runs the sweep of a config (the given one or the active editor's); resolves when all its points have ended. */
  async sweep(uri?: vscode.Uri): Promise<SweepOutcome | undefined> {
    const doc = await this.configDocument(uri);
    if (!doc) return undefined;
    if (doc.isDirty) await doc.save();
    if (this.sweepOf(doc.fileName)) {
      void vscode.window.showWarningMessage(
        `PEFT Lab: a sweep of ${path.basename(doc.fileName)} is already running; wait for it, or clear the queue and stop its runs.`,
      );
      return undefined;
    }
    const plan = this.plan(doc);
    if (!plan) return undefined;
    this.deps.log.info(
      `sweep ${plan.id}: ${plan.points.length} point(s) of ${plan.fields.join(', ')} (${plan.method}), ranked by ${plan.metric} (${plan.goal})`,
    );
    for (const warning of plan.warnings) this.deps.log.warn(`sweep ${plan.id}: ${warning.path}: ${warning.message}`);
    const done = await this.start(plan, doc.uri);
    if (!done) return undefined;
    const outcomes = await this.withProgress(plan, done);
    const outcome = summarise(plan, outcomes);
    this.report(outcome);
    return outcome;
  }

  /** Queues the points here, or submits them as one Slurm job array; undefined when the cluster refused (the user was told). */
  private async start(plan: SweepPlan, uri: vscode.Uri): Promise<Promise<RunOutcome>[] | undefined> {
    if (readSettings(uri).executor !== 'slurm')
      return plan.points.map((point) => this.deps.runs.train(plan.configFile, { point }));
    try {
      return await this.deps.slurm.submit({
        configFile: plan.configFile,
        kind: 'sweep',
        sweepId: plan.id,
        points: plan.points.map((point) => ({ point, config: point.config, name: point.name })),
      });
    } catch (err) {
      this.deps.log.error(`sweep ${plan.id}: Slurm did not take the job: ${(err as Error).message}`);
      void vscode.window
        .showErrorMessage(
          `PEFT Lab: cannot submit the sweep of ${plan.baseName} to Slurm: ${(err as Error).message}`,
          'Show Log',
        )
        .then((choice) => {
          if (choice) this.deps.log.show();
        });
      return undefined;
    }
  }

  /** Ends a sweep early: its waiting points leave the queue and its running points stop at a checkpoint. */
  stopSweep(sweepId: string): void {
    const mine = (run: RunView) => run.point?.sweep.sweepId === sweepId;
    for (const run of this.deps.runs.queued().filter(mine)) this.deps.runs.stopRun(run.id);
    for (const run of this.deps.runs.active().filter(mine)) this.deps.runs.stopRun(run.id);
  }

  /** The sweep a config has queued or training in this window, if any (its points would clash by name). */
  private sweepOf(configFile: string): string | undefined {
    const file = path.resolve(configFile);
    return this.deps.runs.active().find((r) => r.point && path.resolve(r.configFile) === file)?.point?.sweep.sweepId;
  }

  private plan(doc: vscode.TextDocument): SweepPlan | undefined {
    const name = path.basename(doc.fileName);
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage(
        `PEFT Lab: cannot sweep ${name}: training is disabled in an untrusted workspace.`,
      );
      return undefined;
    }
    const folder = vscode.workspace.getWorkspaceFolder(doc.uri)?.uri.fsPath;
    try {
      return planSweep(doc.fileName, { workspaceFolder: folder });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      void vscode.window.showWarningMessage(`PEFT Lab: cannot sweep ${name}: ${err.path || '/'}: ${err.detail}.`);
      return undefined;
    }
  }

  /** A notification counting the points that have ended; cancelling it stops the sweep. */
  private withProgress(plan: SweepPlan, done: Promise<RunOutcome>[]): Promise<RunOutcome[]> {
    const total = done.length;
    return Promise.resolve(
      vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `PEFT Lab: sweep of ${plan.baseName}`,
          cancellable: true,
        },
        (progress, token) => {
          token.onCancellationRequested(() => this.stopSweep(plan.id));
          let ended = 0;
          progress.report({ message: `0 of ${total} points done` });
          for (const d of done) {
            void d.then(() => {
              ended += 1;
              progress.report({ increment: 100 / total, message: `${ended} of ${total} points done` });
            });
          }
          return Promise.all(done);
        },
      ),
    );
  }

  private report(outcome: SweepOutcome): void {
    const { plan, results, best } = outcome;
    const ran = results.filter((r) => r.outcome.kind === 'finished').length;
    const failed = results.filter((r) => r.outcome.kind === 'failed' && r.outcome.error.name !== 'CancelledError');
    for (const r of failed)
      if (r.outcome.kind === 'failed')
        this.deps.log.error(`sweep ${plan.id}: ${r.point.name} failed: ${r.outcome.error.message}`);
    const counts = `${ran} of ${results.length} points ran${failed.length ? `, ${failed.length} failed` : ''}`;
    if (!best) {
      void vscode.window
        .showWarningMessage(
          `PEFT Lab: sweep of ${plan.baseName} ended without a ${plan.metric} to compare (${counts}).`,
          'Show Log',
        )
        .then((choice) => {
          if (choice) this.deps.log.show();
        });
      return;
    }
    const value = best.metrics![plan.metric]!;
    this.deps.log.info(`sweep ${plan.id}: best ${best.point.name} (${plan.metric} ${value}) in ${best.runDir}`);
    const runDirs = results.flatMap((r) => (r.outcome.kind === 'finished' ? [r.outcome.message.runDir] : []));
    void vscode.window
      .showInformationMessage(
        `PEFT Lab: sweep of ${plan.baseName} done (${counts}); best ${describePoint(best.point.values)}: ${plan.metric} ${formatMetricValue(value)}.`,
        'Open Dashboard',
        'Compare Runs',
      )
      .then((choice) => {
        if (choice === 'Open Dashboard') void vscode.commands.executeCommand('peftLab.openDashboard', best.runDir);
        else if (choice === 'Compare Runs') void vscode.commands.executeCommand('peftLab.compareRuns', runDirs);
      });
  }

  private onQueueChange(): void {
    const runs = this.deps.runs;
    const waiting = runs.queued().length;
    this.queue.refresh();
    this.queueView.description = runs.queuePaused
      ? `paused · ${waiting} waiting`
      : waiting
        ? `${waiting} waiting`
        : undefined;
    this.queueView.message = runs.queuePaused
      ? 'Paused: runs that are training go on; no queued run starts until Resume.'
      : undefined;
    // drives the view title's Pause/Resume buttons (package.json `when` clauses)
    void vscode.commands.executeCommand('setContext', 'peftLab.queuePaused', runs.queuePaused);
  }

  /** Opens a Slurm task's log; before the task has run there is none yet, and that is said. */
  private async showJobLog(log: string): Promise<void> {
    if (!fs.existsSync(log)) {
      void vscode.window.showInformationMessage(
        `PEFT Lab: the job has not written its log yet (${log}); it appears once the job runs.`,
      );
      return;
    }
    await vscode.window.showTextDocument(vscode.Uri.file(log), { preview: true });
  }

  private async configDocument(uri?: vscode.Uri): Promise<vscode.TextDocument | undefined> {
    const target = uri ?? vscode.window.activeTextEditor?.document.uri;
    if (!target || !target.fsPath.endsWith('.peft.json')) {
      void vscode.window.showWarningMessage(
        'PEFT Lab: open a *.peft.json config with a sweep section to run its sweep.',
      );
      return undefined;
    }
    return vscode.workspace.openTextDocument(target);
  }
}

/** Every point's outcome, and the best finished point by the sweep's metric. */
export function summarise(plan: SweepPlan, outcomes: RunOutcome[]): SweepOutcome {
  const results = plan.points.map((point, i): PointResult => {
    const outcome = outcomes[i]!;
    return { point, outcome, metrics: outcome.kind === 'finished' ? outcome.message.bestMetrics : undefined };
  });
  const best = bestPoint(results, plan.metric, plan.goal);
  return {
    plan,
    results,
    best: best?.outcome.kind === 'finished' ? { ...best, runDir: best.outcome.message.runDir } : undefined,
  };
}

/** The Queue view: the runs waiting for a free slot (sweep points and Train beyond the limit), next first. */
export class QueueTreeProvider implements vscode.TreeDataProvider<RunView>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(
    private readonly runs: RunManager,
    private readonly slurm?: Pick<SlurmRuns, 'ended'>,
  ) {}

  refresh(): void {
    this.changed.fire();
  }

  /** Runs waiting here, then the runs Slurm has (pending, running, stopping), with Slurm's view of each. */
  getChildren(element?: RunView): RunView[] {
    if (element) return [];
    const onSlurm = [...this.runs.active().filter((r) => r.slurm), ...(this.slurm?.ended() ?? [])];
    onSlurm.sort((a, b) =>
      a.slurm!.jobId === b.slurm!.jobId
        ? (a.slurm!.taskId ?? 0) - (b.slurm!.taskId ?? 0)
        : Number(a.slurm!.jobId) - Number(b.slurm!.jobId),
    );
    return [...this.runs.queued(), ...onSlurm];
  }

  getTreeItem(run: RunView): vscode.TreeItem {
    if (run.slurm) return this.slurmItem(run, run.slurm);
    const item = new vscode.TreeItem(
      run.point?.name ?? path.basename(run.configFile),
      vscode.TreeItemCollapsibleState.None,
    );
    item.id = run.id;
    const sweep = run.point?.sweep;
    item.description = sweep ? `point ${sweep.index + 1} of ${sweep.total} · ${describePoint(sweep.values)}` : 'Train';
    item.tooltip = `${run.configFile}${sweep ? `\nsweep ${sweep.sweepId}` : ''}`;
    item.iconPath = new vscode.ThemeIcon(this.runs.queuePaused ? 'debug-pause' : 'clock');
    item.contextValue = 'peftQueued';
    return item;
  }

  private slurmItem(run: RunView, slurm: NonNullable<RunView['slurm']>): vscode.TreeItem {
    const item = new vscode.TreeItem(
      run.point?.name ?? path.basename(run.configFile),
      vscode.TreeItemCollapsibleState.None,
    );
    item.id = run.id;
    const job = slurm.taskId === undefined ? slurm.jobId : `${slurm.jobId}_${slurm.taskId}`;
    const state = slurm.ended ?? (run.phase === 'stopping' ? 'stopping (checkpointing)' : describeState(slurm));
    item.description = `${state} · Slurm job ${job}`;
    item.tooltip = `${run.configFile}\nSlurm job ${job}: ${slurm.state}${slurm.reason ? ` (${slurm.reason})` : ''}${slurm.node ? ` on ${slurm.node}` : ''}\nlog: ${slurm.log}`;
    item.iconPath = new vscode.ThemeIcon(
      slurm.ended
        ? slurm.ended === 'completed'
          ? 'pass'
          : slurm.ended.startsWith('cancelled')
            ? 'circle-slash'
            : 'error'
        : run.phase === 'stopping'
          ? 'debug-stop'
          : slurm.state === 'RUNNING'
            ? 'sync~spin'
            : 'clock',
    );
    item.contextValue = slurm.ended ? 'peftSlurmJobEnded' : 'peftSlurmJob';
    // the job's own log, one click away
    item.command = { command: 'peftLab.queue.showJobLog', title: 'Show Job Log', arguments: [run] };
    return item;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
