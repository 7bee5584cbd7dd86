/**
 * Disposal done once, in one place (as VS Code's markdown extension does in its util/dispose.ts):
 * a class that holds disposables extends `Disposable` and registers each where it creates it.
 * Only `vscode`'s types are imported, so plain modules and unit tests can use it too.
 */
import type * as vscode from 'vscode';

/**
 * Disposes every item, the last registered first (it may depend on the earlier ones). The array is
 * emptied before anything is disposed, so a second call, or a dispose() that re-enters, disposes
 * nothing again. One item throwing does not keep the others alive; the errors are thrown after.
 */
export function disposeAll(disposables: vscode.Disposable[]): void {
  const items = disposables.splice(0, disposables.length).reverse();
  const errors: unknown[] = [];
  for (const item of items) {
    try {
      item.dispose();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} disposables failed to dispose`);
}

/** A disposable built from a function (a timer to clear, a watcher to close); the function runs once. */
export function toDisposable(dispose: () => void): vscode.Disposable {
  let done = false;
  return {
    dispose: () => {
      if (done) return;
      done = true;
      dispose();
    },
  };
}

/** Base class of everything that owns disposables: `_register` them, and `dispose()` is idempotent. */
export abstract class Disposable implements vscode.Disposable {
  private disposed = false;
  private readonly disposables: vscode.Disposable[] = [];

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeAll(this.disposables);
  }

  protected get isDisposed(): boolean {
    return this.disposed;
  }

  /** Keeps `value` to dispose with this object (at once if this object is already disposed); returns it. */
  protected _register<T extends vscode.Disposable>(value: T): T {
    if (this.disposed) value.dispose();
    else this.disposables.push(value);
    return value;
  }
}
