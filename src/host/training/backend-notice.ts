/**
 * Says so, once per window, when a run trains on a slow fallback: plain WebAssembly because the
 * native OpenBLAS kernels did not load (about 10x slower), or pure JavaScript. The log names the
 * backend on every run; this makes the cause visible to someone who only sees a slow progress bar.
 */
import * as vscode from 'vscode';
import type { BackendInfo, WorkerMessage } from '../../protocol/worker';
import { slowBackendOf } from './slow-backend';
import { Disposable } from '../util/dispose';

export class SlowBackendNotice extends Disposable {
  private shown = false;

  constructor(
    onMessage: vscode.Event<{ configFile: string; message: WorkerMessage }>,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this._register(
      onMessage(({ message }) => {
        if (message.type === 'started') this.check(message.backend);
      }),
    );
  }

  private check(backend: BackendInfo): void {
    const slow = slowBackendOf(backend);
    if (!slow) return;
    this.log.warn(`training on ${slow.backend}: ${slow.reason}`);
    if (this.shown) return;
    this.shown = true;
    void vscode.window
      .showWarningMessage(
        `PEFT Lab is training on ${slow.backend}, several times slower than it can: ${slow.reason}.`,
        'Show Log',
      )
      .then((choice) => choice === 'Show Log' && this.log.show());
  }
}
