/**
 * The extension's composition root: builds every feature once, registers its commands, and owns
 * their disposal. `activate` does nothing but create this.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { ConfigDiagnostics, CONFIG_GLOB } from './config-diagnostics';
import { TrainCodeLensProvider } from './codelens';
import { RunManager, type RunOutcome } from './run-manager';
import { RunIndex, runsDirOf } from './run-index';
import { findLiveRuns } from './run-follower';
import * as fs from 'node:fs';
import { TrainingStatusBar } from './status-bar';
import { RunsSidebar } from './runs-tree';
import { Dashboard } from './dashboard';
import { SlowBackendNotice } from './backend-notice';
import { Experiments } from './experiments-panel';
import { registerAnnotationCommands } from './annotation-commands';
import { Sweeps } from './sweeps';
import { SlurmRuns } from './slurm-runs';
import { readSettings } from './settings';
import { loadAnyConfig } from '../core/config/load';
import { formatMetrics, formatMetricValue } from '../protocol/format';

export class PeftLab implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  readonly log = vscode.window.createOutputChannel('PEFT Lab', { log: true });
  readonly diagnostics = new ConfigDiagnostics();
  readonly index: RunIndex;
  /** The Runs view: live model of the run folders (also behind `index`), tree provider and actions. */
  readonly sidebar: RunsSidebar;
  readonly runs: RunManager;
  readonly codeLens: TrainCodeLensProvider;
  /** Dashboard webview panels (`peftLab.openDashboard`, `peftLab.compareRuns`), revived after a reload. */
  readonly dashboard: Dashboard;
  /** The Experiments table (`peftLab.experiments.open`): one row per run, revived after a reload. */
  readonly experiments: Experiments;
  /** Sweeps (`peftLab.sweep`) and the Queue view with its Pause / Resume / Clear. */
  readonly sweeps: Sweeps;
  /** Train and Sweep on a Slurm cluster (peftLab.executor = slurm). */
  readonly slurm: SlurmRuns;

  constructor(context: vscode.ExtensionContext) {
    this.runs = new RunManager(context.asAbsolutePath(path.join('dist', 'worker.js')), this.log);
    // a run the sidebar starts (Resume) gets the same progress notification and outcome message as Train
    const onRunStarted = (file: string, done: Promise<RunOutcome>) => {
      this.showProgress(file, done);
      void done.then((outcome) => this.report(file, outcome));
    };
    this.sidebar = new RunsSidebar(context, this.runs, { onRunStarted }, this.log);
    this.index = new RunIndex(this.sidebar);
    this.codeLens = new TrainCodeLensProvider(this.diagnostics, this.runs, this.index);
    this.dashboard = new Dashboard({ extensionUri: context.extensionUri, runs: this.runs, log: this.log });
    this.experiments = new Experiments({ extensionUri: context.extensionUri, runs: this.sidebar, log: this.log });
    this.slurm = new SlurmRuns({ runs: this.runs, log: this.log, cliScript: context.asAbsolutePath(path.join('dist', 'cli.js')) });
    this.sweeps = new Sweeps({ runs: this.runs, log: this.log, slurm: this.slurm });
    this.disposables.push(
      this.log, this.diagnostics, this.runs, this.sidebar, this.index, this.codeLens, new TrainingStatusBar(this.runs), this.dashboard,
      new SlowBackendNotice(this.runs.onDidReceiveMessage, this.log),
      this.experiments, ...registerAnnotationCommands(this.sidebar),
      this.sweeps, this.slurm,
      vscode.languages.registerCodeLensProvider({ scheme: 'file', pattern: CONFIG_GLOB }, this.codeLens),
      this.runs.onDidChange(() => {
        // drives the editor title bar's Train/Stop buttons (package.json `when` clauses)
        void vscode.commands.executeCommand('setContext', 'peftLab.runningConfigs', this.runs.active().filter((r) => !r.point).map((r) => r.configFile));
      }),
      ...this.registerCommands(),
    );
    void this.reattachRuns();
  }

  /** Follows runs still training from before a window reload (or started from the CLI). */
  async reattachRuns(): Promise<number> {
    const configs = await vscode.workspace.findFiles(CONFIG_GLOB, '**/node_modules/**');
    const runDirs = new Set<string>();
    for (const config of configs) {
      const runsDir = runsDirOf(config.fsPath);
      if (!runsDir || !fs.existsSync(runsDir)) continue;
      for (const name of fs.readdirSync(runsDir)) runDirs.add(path.join(runsDir, name));
    }
    void this.slurm.followAgain(configs.flatMap((config) => runsDirOf(config.fsPath) ?? [])).then((count) => count, (err: unknown) => {
      this.log.warn(`following Slurm jobs again: ${(err as Error).message}`);
      return 0;
    });
    const live = findLiveRuns([...runDirs]);
    for (const run of live) {
      this.runs.reattach(run);
      void this.runs.whenDone(run.configFile)?.then((outcome) => this.report(run.configFile, outcome));
    }
    return live.length;
  }

  private registerCommands(): vscode.Disposable[] {
    const command = (id: string, run: (...args: any[]) => unknown) => vscode.commands.registerCommand(id, run);
    return [
      command('peftLab.train', (uri?: vscode.Uri) => this.train(uri)),
      command('peftLab.stop', (uri?: vscode.Uri) => this.stop(uri)),
      command('peftLab.showLog', () => this.log.show()),
      command('peftLab.openRun', (dir: string) => this.openRun(dir)),
      command('peftLab.explainTrainBlocked', (uri: vscode.Uri, reason: string) => this.explainBlocked(uri, reason)),
    ];
  }

  /** Trains a config: the given one, or the active editor's. Resolves when the run ends. */
  async train(uri?: vscode.Uri): Promise<RunOutcome | undefined> {
    const doc = await this.configDocument(uri);
    if (!doc) return undefined;
    const blocker = this.codeLens.trainBlocker(doc);
    if (blocker) {
      void vscode.window.showWarningMessage(`PEFT Lab: cannot train ${path.basename(doc.fileName)}: ${blocker}.`);
      return undefined;
    }
    if (doc.isDirty) await doc.save();
    let done: Promise<RunOutcome>;
    if (readSettings(doc.uri).executor === 'slurm') {
      const submitted = await this.submitToSlurm(doc.fileName);
      if (!submitted) return undefined;
      done = submitted.done;
    } else {
      try {
        done = this.runs.train(doc.fileName);
      } catch (err) {
        void vscode.window.showWarningMessage(`PEFT Lab: ${(err as Error).message}.`);
        return undefined;
      }
    }
    this.showProgress(doc.fileName, done);
    const outcome = await done;
    this.report(doc.fileName, outcome);
    return outcome;
  }

  /** Train as one Slurm job; undefined when the cluster refused it (the user was told why). */
  private async submitToSlurm(configFile: string): Promise<{ done: Promise<RunOutcome> } | undefined> {
    try {
      const config = loadAnyConfig(configFile);
      const [done] = await this.slurm.submit({ configFile, kind: 'train', points: [{ config, name: config.name }] });
      return { done: done! };
    } catch (err) {
      this.log.error(`${path.basename(configFile)}: Slurm did not take the job: ${(err as Error).message}`);
      void vscode.window.showErrorMessage(`PEFT Lab: cannot submit ${path.basename(configFile)} to Slurm: ${(err as Error).message}`, 'Show Log').then((choice) => {
        if (choice) this.log.show();
      });
      return undefined;
    }
  }

  stop(uri?: vscode.Uri): void {
    const file = uri?.fsPath ?? vscode.window.activeTextEditor?.document.fileName;
    if (file) this.runs.stop(file);
  }

  private async configDocument(uri?: vscode.Uri): Promise<vscode.TextDocument | undefined> {
    const target = uri ?? vscode.window.activeTextEditor?.document.uri;
    if (!target || !target.fsPath.endsWith('.peft.json')) {
      void vscode.window.showWarningMessage('PEFT Lab: open a *.peft.json config to train it.');
      return undefined;
    }
    return vscode.workspace.openTextDocument(target);
  }

  private showProgress(configFile: string, done: Promise<RunOutcome>): void {
    const name = path.basename(configFile);
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `PEFT Lab: training ${name}`, cancellable: true },
      (progress, token) => {
        token.onCancellationRequested(() => this.runs.stop(configFile));
        let reported = 0;
        const subscription = this.runs.onDidReceiveMessage(({ configFile: file, point, message }) => {
          // a sweep point of the same config is another run, with the sweep's own notification
          if (file !== configFile || point || message.type !== 'progress') return;
          const percent = (100 * message.step) / message.totalSteps;
          progress.report({ increment: percent - reported, message: `step ${message.step}/${message.totalSteps}, loss ${formatMetricValue(message.loss)}` });
          reported = percent;
        });
        return done.finally(() => subscription.dispose());
      },
    );
  }

  private report(configFile: string, outcome: RunOutcome): void {
    const name = path.basename(configFile);
    if (outcome.kind === 'failed' && outcome.error.name === 'CancelledError') {
      // taken off the queue by the user (Stop, Clear queue): nothing went wrong
      this.log.info(`${name}: ${outcome.error.message}`);
      return;
    }
    if (outcome.kind === 'failed') {
      this.log.error(`${name}: ${outcome.error.message}`);
      void vscode.window.showErrorMessage(`PEFT Lab: training ${name} failed: ${outcome.error.message.split('\n')[0]}`, 'Show Log').then((choice) => {
        if (choice) this.log.show();
      });
      return;
    }
    const m = outcome.message;
    const metrics = m.bestMetrics ? formatMetrics(m.bestMetrics, { omit: ['loss'] }) : 'no evaluation';
    const verb = m.state === 'stopped' ? (m.reason === 'cancelled' ? 'stopped' : 'stopped early') : 'finished';
    void vscode.window.showInformationMessage(`PEFT Lab: ${name} ${verb}; best ${metrics}.`, 'Open Run').then((choice) => {
      if (choice) void this.openRun(m.runDir);
    });
  }

  private async openRun(dir: string): Promise<void> {
    await vscode.window.showTextDocument(vscode.Uri.file(path.join(dir, 'status.json')), { preview: true });
  }

  private async explainBlocked(uri: vscode.Uri, reason: string): Promise<void> {
    if (!vscode.workspace.isTrusted) {
      await vscode.commands.executeCommand('workbench.trust.manage');
      return;
    }
    await vscode.window.showTextDocument(uri);
    await vscode.commands.executeCommand('workbench.actions.view.problems');
    void vscode.window.showWarningMessage(`PEFT Lab: ${reason}`);
  }

  dispose(): void {
    for (const d of this.disposables.reverse()) d.dispose();
  }
}
