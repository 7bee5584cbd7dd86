/**
 * The extension's composition root: builds every feature once, wires them together and owns their
 * disposal. `activate` does nothing but create this; the features live in the folders beside it.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { ConfigDiagnostics, CONFIG_GLOB } from './editor/config-diagnostics';
import { TrainCodeLensProvider } from './editor/codelens';
import { RunManager } from './training/run-manager';
import { TrainCommands } from './training/train-commands';
import { TrainingStatusBar } from './training/status-bar';
import { SlowBackendNotice } from './training/backend-notice';
import { RunIndex } from './runs/run-index';
import { RunsSidebar } from './runs/runs-tree';
import { registerRunsActions } from './runs/runs-actions';
import { registerAnnotationCommands } from './runs/annotation-commands';
import { Dashboard } from './dashboard/dashboard';
import { Experiments } from './experiments/experiments-panel';
import { Sweeps } from './sweeps/sweeps';
import { SlurmRuns } from './slurm/slurm-runs';
import { Disposable } from './util/dispose';

export class PeftLab extends Disposable {
  readonly log = this._register(vscode.window.createOutputChannel('PEFT Lab', { log: true }));
  readonly diagnostics = this._register(new ConfigDiagnostics());
  readonly runs: RunManager;
  /** The Runs view: live model of the run folders (also behind `index`), tree provider and actions. */
  readonly sidebar: RunsSidebar;
  readonly index: RunIndex;
  readonly codeLens: TrainCodeLensProvider;
  /** Dashboard webview panels (`peftLab.openDashboard`, `peftLab.compareRuns`), revived after a reload. */
  readonly dashboard: Dashboard;
  /** The Experiments table (`peftLab.experiments.open`): one row per run, revived after a reload. */
  readonly experiments: Experiments;
  /** Train and Sweep on a Slurm cluster (peftLab.executor = slurm). */
  readonly slurm: SlurmRuns;
  /** Sweeps (`peftLab.sweep`) and the Queue view with its Pause / Resume / Clear. */
  readonly sweeps: Sweeps;
  /** Train, Stop, the progress notification and outcome message of a run, reattaching after a reload. */
  readonly training: TrainCommands;

  constructor(context: vscode.ExtensionContext) {
    super();
    const log = this.log;
    this.runs = this._register(new RunManager(context.asAbsolutePath(path.join('dist', 'worker.js')), log));
    // a run the sidebar starts (Resume) is followed like one started by Train
    this.sidebar = this._register(
      new RunsSidebar(
        context,
        this.runs,
        { onRunStarted: (file, done) => this.training.followStarted(file, done) },
        log,
      ),
    );
    this._registerAll(registerRunsActions(this.sidebar));
    this.index = this._register(new RunIndex(this.sidebar));
    this.codeLens = this._register(new TrainCodeLensProvider(this.diagnostics, this.runs, this.index));
    this._register(new TrainingStatusBar(this.runs));
    this.dashboard = this._register(new Dashboard({ extensionUri: context.extensionUri, runs: this.runs, log }));
    this._register(new SlowBackendNotice(this.runs.onDidReceiveMessage, log));
    this.experiments = this._register(new Experiments({ extensionUri: context.extensionUri, runs: this.sidebar, log }));
    this._registerAll(registerAnnotationCommands(this.sidebar));
    this.slurm = new SlurmRuns({
      runs: this.runs,
      log,
      cliScript: context.asAbsolutePath(path.join('dist', 'cli.js')),
    });
    this.sweeps = this._register(new Sweeps({ runs: this.runs, log, slurm: this.slurm }));
    this._register(this.slurm);
    this.training = this._register(
      new TrainCommands({ runs: this.runs, log, codeLens: this.codeLens, slurm: this.slurm }),
    );
    this._register(vscode.languages.registerCodeLensProvider({ scheme: 'file', pattern: CONFIG_GLOB }, this.codeLens));
    this._register(
      this.runs.onDidChange(() => {
        // drives the editor title bar's Train/Stop buttons (package.json `when` clauses)
        void vscode.commands.executeCommand(
          'setContext',
          'peftLab.runningConfigs',
          this.runs
            .active()
            .filter((r) => !r.point)
            .map((r) => r.configFile),
        );
      }),
    );
    void this.training.reattachRuns();
  }

  private _registerAll(disposables: vscode.Disposable[]): void {
    for (const d of disposables) this._register(d);
  }
}
