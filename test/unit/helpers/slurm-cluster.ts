/**
 * The real single-node Slurm the Slurm tests run against (scripts/slurm/local-cluster.sh): started
 * once per test file, stopped after it. Tests skip, saying why, only where it cannot run at all:
 * without root (the daemons run as root) or without Debian's packages or apt-get to install them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SCRIPT = path.resolve(__dirname, '..', '..', '..', 'scripts', 'slurm', 'local-cluster.sh');

/** Why the Slurm tests cannot run on this machine, or undefined when they can. */
export function slurmSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'the Slurm tests need Linux';
  if (process.getuid?.() !== 0) return 'the Slurm tests start slurmctld and slurmd, which needs root (CI runs as root)';
  const installed = spawnSync('dpkg', ['-s', 'slurm-wlm', 'munge'], { stdio: 'ignore' }).status === 0;
  if (!installed && !fs.existsSync('/usr/bin/apt-get')) return 'no slurm-wlm/munge and no apt-get to install them';
  return undefined;
}

/** Starts the cluster (installing it first when needed) and points this process's Slurm clients at it. */
export function startSlurm(): string {
  execFileSync('bash', [SCRIPT, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const conf = execFileSync('bash', [SCRIPT, 'conf'], { encoding: 'utf8' }).trim();
  process.env.SLURM_CONF = conf;
  return conf;
}

export function stopSlurm(): void {
  spawnSync('bash', [SCRIPT, 'stop'], { stdio: ['ignore', 'inherit', 'inherit'] });
}

/** A Slurm command's output (scontrol, squeue), throwing with its stderr when it fails. */
export function slurm(command: string, ...args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', env: process.env });
}
