import * as vscode from 'vscode';
import type { BackendName } from '../core/config/types';

/** The extension's settings (`peftLab.*` in package.json), read fresh on every use. */
export interface Settings {
  /** Overrides every config's output.runsDir when set (relative paths: against the workspace folder). */
  runsDirectory: string;
  backend: BackendName;
  maxConcurrentRuns: number;
  /** Node executable for the worker; empty: the editor's own runtime. */
  nodePath: string;
  /** How long Stop waits for the checkpoint boundary before killing the worker. */
  stopTimeoutSeconds: number;
}

export function readSettings(scope?: vscode.Uri): Settings {
  const c = vscode.workspace.getConfiguration('peftLab', scope);
  return {
    runsDirectory: c.get<string>('runsDirectory', ''),
    backend: c.get<BackendName>('backend', 'auto'),
    maxConcurrentRuns: Math.max(1, c.get<number>('maxConcurrentRuns', 1)),
    nodePath: c.get<string>('nodePath', ''),
    stopTimeoutSeconds: Math.max(1, c.get<number>('stopTimeoutSeconds', 60)),
  };
}
