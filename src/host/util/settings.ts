import * as vscode from 'vscode';
import type { BackendName, SlurmOptions } from '../../core/config/types';

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
  /** Where Train and Sweep run: here (worker processes) or on a Slurm cluster (sbatch). */
  executor: 'local' | 'slurm';
  /** `peftLab.slurm.*`: the defaults a config's `slurm` section overrides field by field. */
  slurm: SlurmOptions;
}

export function readSettings(scope?: vscode.Uri): Settings {
  const c = vscode.workspace.getConfiguration('peftLab', scope);
  return {
    runsDirectory: c.get<string>('runsDirectory', ''),
    backend: c.get<BackendName>('backend', 'auto'),
    maxConcurrentRuns: Math.max(1, c.get<number>('maxConcurrentRuns', 1)),
    nodePath: c.get<string>('nodePath', ''),
    stopTimeoutSeconds: Math.max(1, c.get<number>('stopTimeoutSeconds', 60)),
    executor: c.get<string>('executor', 'local') === 'slurm' ? 'slurm' : 'local',
    slurm: slurmSettings(c),
  };
}

/** The non-empty `peftLab.slurm.*` settings (an empty string or list means: the cluster's default). */
function slurmSettings(c: vscode.WorkspaceConfiguration): SlurmOptions {
  const text = (key: string) => c.get<string>(`slurm.${key}`, '').trim() || undefined;
  const cpus = c.get<number | null>('slurm.cpusPerTask', null);
  const extra = c
    .get<string[]>('slurm.extraDirectives', [])
    .map((l) => l.trim())
    .filter(Boolean);
  const options: SlurmOptions = {
    partition: text('partition'),
    time: text('time'),
    cpusPerTask: cpus && cpus >= 1 ? cpus : undefined,
    mem: text('mem'),
    gres: text('gres'),
    account: text('account'),
    qos: text('qos'),
    extraDirectives: extra.length ? extra : undefined,
    nodePath: text('nodePath'),
  };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SlurmOptions;
}
