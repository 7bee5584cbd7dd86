/**
 * The native kernels' default thread count: physical cores, the CPUs the process may run on, and a
 * container's CPU quota, whichever is least. Parsed from fixture texts of /proc/cpuinfo and the cgroup
 * files, so every case runs on any machine.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { cgroupCpuQuota, physicalCores, usableCores } from '../../src/core/native/cores';

/** /proc/cpuinfo for `sockets` sockets of `cores` cores with `smt` hardware threads each. */
function cpuinfo(sockets: number, cores: number, smt: number): string {
  const blocks: string[] = [];
  let processor = 0;
  for (let t = 0; t < smt; t++) {
    for (let s = 0; s < sockets; s++) {
      for (let c = 0; c < cores; c++) {
        blocks.push(
          `processor\t: ${processor++}\nvendor_id\t: AuthenticAMD\nphysical id\t: ${s}\nsiblings\t: ${cores * smt}\ncore id\t\t: ${c}\ncpu cores\t: ${cores}\nflags\t\t: fpu avx2\n`,
        );
      }
    }
  }
  return blocks.join('\n');
}

const files = (map: Record<string, string>) => (file: string) => map[file];

describe('physicalCores', () => {
  test('counts distinct cores, not hardware threads, over every socket', () => {
    assert.equal(physicalCores(cpuinfo(1, 2, 1)), 2);
    assert.equal(physicalCores(cpuinfo(1, 8, 2)), 8);
    assert.equal(physicalCores(cpuinfo(2, 16, 2)), 32);
  });

  test('unknown without core ids (ARM boards, some VMs) or without the file', () => {
    assert.equal(physicalCores('processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\nBogoMIPS\t: 48.00\n'), undefined);
    assert.equal(physicalCores(undefined), undefined);
  });
});

describe('cgroupCpuQuota', () => {
  test('cgroup v2 cpu.max: whole CPUs of the quota, none for "max"', () => {
    assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': '200000 100000\n' })), 2);
    assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' })), 1);
    assert.equal(
      cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': '50000 100000\n' })),
      1,
      'half a CPU still gets one thread',
    );
    assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' })), undefined);
  });

  test('cgroup v1 cfs quota and period, -1 for none', () => {
    assert.equal(
      cgroupCpuQuota(
        files({
          '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '400000\n',
          '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
        }),
      ),
      4,
    );
    assert.equal(
      cgroupCpuQuota(
        files({
          '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '300000',
          '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000',
        }),
      ),
      3,
    );
    assert.equal(
      cgroupCpuQuota(
        files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }),
      ),
      undefined,
    );
    assert.equal(cgroupCpuQuota(files({})), undefined);
  });
});

describe('usableCores', () => {
  const cpus = os.availableParallelism();

  test('the least of physical cores, schedulable CPUs and the quota', () => {
    assert.equal(usableCores(files({ '/proc/cpuinfo': cpuinfo(1, 1, 2) })), 1, 'one core with two hardware threads');
    assert.equal(
      usableCores(files({ '/proc/cpuinfo': cpuinfo(2, 64, 2), '/sys/fs/cgroup/cpu.max': '100000 100000' })),
      1,
      'a 1-CPU container on a big host',
    );
    assert.equal(
      usableCores(files({ '/proc/cpuinfo': cpuinfo(2, 64, 2) })),
      Math.min(cpus, 128),
      'no quota: what the scheduler allows',
    );
  });

  test('without /proc/cpuinfo or cgroups: the schedulable CPUs; never below 1', () => {
    assert.equal(usableCores(files({})), cpus);
    assert.equal(usableCores(files({ '/sys/fs/cgroup/cpu.max': '1000 100000' })), 1);
  });

  test('this machine: at least 1 and at most its CPUs', () => {
    const n = usableCores();
    assert.ok(n >= 1 && n <= cpus, `${n} of ${cpus}`);
  });
});
