/**
 * The Train feature's UI: the Train / Stop / Open Run commands, the progress notification of a run
 * and the message with its outcome, and following runs that were training before a reload.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAnyConfig } from '../../core/config/load';
import { CONFIG_GLOB } from '../editor/config-diagnostics';
import type { TrainCodeLensProvider } from '../editor/codelens';
import { runsDirOf } from '../runs/run-index';
import type { SlurmRuns } from '../slurm/slurm-runs';
import { Disposable } from '../util/dispose';
import { readSettings } from '../util/settings';
import { findLiveRuns } from './run-follower';
import type { RunManager, RunOutcome } from './run-manager';
import { formatMetrics, formatMetricValue } from '../../protocol/format';

export interface TrainCommandsDeps {
  readonly runs: RunManager;
  readonly log: vscode.LogOutputChannel;
  readonly codeLens: TrainCodeLensProvider;
  readonly slurm: SlurmRuns;
}

export class TrainCommands extends Disposable {
  constructor(private readonly deps: TrainCommandsDeps) {
    super();
    this._register(vscode.commands.registerCommand('peftLab.train', (uri?: vscode.Uri) => this.train(uri)));
    this._register(vscode.commands.registerCommand('peftLab.stop', (uri?: vscode.Uri) => this.stop(uri)));
    this._register(vscode.commands.registerCommand('peftLab.showLog', () => deps.log.show()));
    this._register(vscode.commands.registerCommand('peftLab.openRun', (dir: string) => this.openRun(dir)));
    this._register(
      vscode.commands.registerCommand('peftLab.explainTrainBlocked', (uri: vscode.Uri, reason: string) =>
        this.explainBlocked(uri, reason),
      ),
    );
  }

  /** A run started elsewhere (the sidebar's Resume) gets the same progress notification and outcome message as Train. */
  followStarted(configFile: string, done: Promise<RunOutcome>): void {
    this.showProgress(configFile, done);
    void done.then((outcome) => this.report(configFile, outcome));
  }

  /** Follows runs still training from before a window reload (or started from the CLI). */
  async reattachRuns(): Promise<number> {
    const { runs, slurm, log } = this.deps;
    const configs = await vscode.workspace.findFiles(CONFIG_GLOB, '**/node_modules/**');
    const runDirs = new Set<string>();
    for (const config of configs) {
      const runsDir = runsDirOf(config.fsPath);
      if (!runsDir || !fs.existsSync(runsDir)) continue;
      for (const name of fs.readdirSync(runsDir)) runDirs.add(path.join(runsDir, name));
    }
    void slurm.followAgain(configs.flatMap((config) => runsDirOf(config.fsPath) ?? [])).then(
      (count) => count,
      (err: unknown) => {
        log.warn(`following Slurm jobs again: ${(err as Error).message}`);
        return 0;
      },
    );
    const live = findLiveRuns([...runDirs]);
    for (const run of live) {
      runs.reattach(run);
      void runs.whenDone(run.configFile)?.then((outcome) => this.report(run.configFile, outcome));
    }
    return live.length;
  }

  /** Trains a config: the given one, or the active editor's. Resolves when the run ends. */
  async train(uri?: vscode.Uri): Promise<RunOutcome | undefined> {
    const doc = await this.configDocument(uri);
    if (!doc) return undefined;
    const blocker = this.deps.codeLens.trainBlocker(doc);
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
        done = this.deps.runs.train(doc.fileName);
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
    const { slurm, log } = this.deps;
    try {
      const config = loadAnyConfig(configFile);
      const [done] = await slurm.submit({ configFile, kind: 'train', points: [{ config, name: config.name }] });
      return { done: done! };
    } catch (err) {
      log.error(`${path.basename(configFile)}: Slurm did not take the job: ${(err as Error).message}`);
      void vscode.window
        .showErrorMessage(
          `PEFT Lab: cannot submit ${path.basename(configFile)} to Slurm: ${(err as Error).message}`,
          'Show Log',
        )
        .then((choice) => {
          if (choice) log.show();
        });
      return undefined;
    }
  }

  stop(uri?: vscode.Uri): void {
    const file = uri?.fsPath ?? vscode.window.activeTextEditor?.document.fileName;
    if (file) this.deps.runs.stop(file);
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
    const { runs } = this.deps;
    const name = path.basename(configFile);
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `PEFT Lab: training ${name}`, cancellable: true },
      (progress, token) => {
        token.onCancellationRequested(() => runs.stop(configFile));
        let reported = 0;
        const subscription = runs.onDidReceiveMessage(({ configFile: file, point, message }) => {
          // a sweep point of the same config is another run, with the sweep's own notification
          if (file !== configFile || point || message.type !== 'progress') return;
          const percent = (100 * message.step) / message.totalSteps;
          progress.report({
            increment: percent - reported,
            message: `step ${message.step}/${message.totalSteps}, loss ${formatMetricValue(message.loss)}`,
          });
          reported = percent;
        });
        return done.finally(() => subscription.dispose());
      },
    );
  }

  private report(configFile: string, outcome: RunOutcome): void {
    const { log } = this.deps;
    const name = path.basename(configFile);
    if (outcome.kind === 'failed' && outcome.error.name === 'CancelledError') {
      // taken off the queue by the user (Stop, Clear queue): nothing went wrong
      log.info(`${name}: ${outcome.error.message}`);
      return;
    }
    if (outcome.kind === 'failed') {
      log.error(`${name}: ${outcome.error.message}`);
      void vscode.window
        .showErrorMessage(`PEFT Lab: training ${name} failed: ${outcome.error.message.split('\n')[0]}`, 'Show Log')
        .then((choice) => {
          if (choice) log.show();
        });
      return;
    }
    const m = outcome.message;
    const metrics = m.bestMetrics ? formatMetrics(m.bestMetrics, { omit: ['loss'] }) : 'no evaluation';
    const verb = m.state === 'stopped' ? (m.reason === 'cancelled' ? 'stopped' : 'stopped early') : 'finished';
    void vscode.window
      .showInformationMessage(`PEFT Lab: ${name} ${verb}; best ${metrics}.`, 'Open Run')
      .then((choice) => {
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
}
