/** One status-bar item summarising the runs in progress: step, loss and speed of the latest update. */
import * as vscode from 'vscode';
import * as path from 'node:path';
import type { RunManager } from './run-manager';
import { Disposable } from '../util/dispose';
import { formatMetricValue } from '../../protocol/format';

export class TrainingStatusBar extends Disposable {
  private readonly item = this._register(
    vscode.window.createStatusBarItem('peftLab.training', vscode.StatusBarAlignment.Left, 10),
  );

  constructor(private readonly runs: RunManager) {
    super();
    this.item.name = 'PEFT Lab training';
    this.item.command = 'peftLab.showLog';
    this._register(runs.onDidChange(() => this.render()));
  }

  private render(): void {
    const active = this.runs.active().filter((r) => r.phase !== 'queued');
    if (!active.length) {
      this.item.hide();
      return;
    }
    const run = active[0]!;
    const name = run.point?.name ?? path.basename(run.configFile, '.peft.json');
    const p = run.progress;
    const detail =
      run.phase === 'stopping'
        ? 'stopping…'
        : p
          ? `step ${p.step}/${p.totalSteps} · loss ${formatMetricValue(p.loss)} · ${p.examplesPerSecond.toFixed(1)} ex/s`
          : 'starting…';
    this.item.text = `$(sync~spin) ${name}: ${detail}${active.length > 1 ? ` (+${active.length - 1} more)` : ''}`;
    this.item.tooltip = `PEFT Lab is training ${active.map((r) => r.point?.name ?? path.basename(r.configFile)).join(', ')}. Click for the log.`;
    this.item.show();
  }
}
