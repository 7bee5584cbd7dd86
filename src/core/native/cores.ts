/**
 * How many threads the native kernels should use by default: the physical cores this process may
 * run on. Hyperthreads add little to products that already run at the cores' full speed, and a
 * container's CPU quota (cgroup) counts for more than the host's CPUs that os.cpus() lists: spinning
 * helpers on more threads than the quota allows would stall every kernel.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

/** The smallest of the physical cores, the CPUs this process may be scheduled on and its cgroup quota; at least 1. */
export function usableCores(read: (file: string) => string | undefined = readText): number {
  const limits = [os.availableParallelism(), physicalCores(read('/proc/cpuinfo')), cgroupCpuQuota(read)];
  const known = limits.filter((n): n is number => n !== undefined && n >= 1);
  return Math.max(1, Math.min(...known));
}

/** Distinct (physical id, core id) pairs in /proc/cpuinfo; undefined when it does not list them (not Linux, some VMs). */
export function physicalCores(cpuinfo: string | undefined): number | undefined {
  if (!cpuinfo) return undefined;
  const cores = new Set<string>();
  for (const block of cpuinfo.split(/\n\s*\n/)) {
    const socket = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
    const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
    if (socket !== undefined && core !== undefined) cores.add(`${socket}:${core}`);
  }
  return cores.size > 0 ? cores.size : undefined;
}

/**
 * Whole CPUs of the cgroup's quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`),
 * rounded down; undefined without a quota.
 */
export function cgroupCpuQuota(read: (file: string) => string | undefined): number | undefined {
  const v2 = read('/sys/fs/cgroup/cpu.max')?.trim().split(/\s+/);
  if (v2 && v2.length === 2) return quota(Number(v2[0]), Number(v2[1]));
  const v1Quota = read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us');
  const v1Period = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us');
  if (v1Quota === undefined || v1Period === undefined) return undefined;
  return quota(Number(v1Quota), Number(v1Period));
}

/** "max" (NaN here) or a negative quota means none. */
function quota(microseconds: number, period: number): number | undefined {
  if (!(microseconds > 0) || !(period > 0)) return undefined;
  return Math.max(1, Math.floor(microseconds / period));
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
