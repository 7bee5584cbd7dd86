/**
 * The memory plan's arithmetic (src/core/train/memory-plan.ts): rows per pass from what a run holds
 * and what a pass adds, and the limit it plans for. The plan measured on real models is tested in
 * trainer.test.ts ("the memory plan").
 */
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { ConfigError } from '../../src/core/errors';
import {
  HEAP_SHARE,
  MEMORY_LIMIT_ENV,
  WASM_HEAP_BYTES,
  memoryLimit,
  planRows,
  type MemoryNeeds,
} from '../../src/core/train/memory-plan';

const MIB = 2 ** 20;
const GIB = 2 ** 30;
const where = { configFile: '/work/exp/big.peft.json', field: '/data/maxLength', tokens: 128 };
const heap = { bytes: WASM_HEAP_BYTES, why: 'the WebAssembly heap' };

afterEach(() => {
  delete process.env[MEMORY_LIMIT_ENV];
});

describe('planRows', () => {
  // BERT-base, Houlsby: 440 MiB of weights, 3 M trainable parameters, 132 MiB a sequence of 128
  const houlsby: MemoryNeeds = {
    resident: 440 * MIB,
    trainable: 12 * MIB,
    moments: 0,
    passFixed: 40 * MIB,
    passPerRow: 132 * MIB,
  };

  test('the whole batch when it fits', () => {
    assert.equal(planRows({ ...houlsby, passPerRow: 10 * MIB }, 32, heap, where).rows, 32);
  });

  test('otherwise the most rows whose pass fits 80% of the limit beside the weights, the moments and the summed gradients', () => {
    const plan = planRows(houlsby, 32, heap, where);
    const steady = houlsby.resident + 2 * houlsby.trainable + houlsby.trainable;
    assert.equal(plan.steady, steady);
    assert.equal(
      plan.rows,
      Math.floor((WASM_HEAP_BYTES * HEAP_SHARE - steady - houlsby.passFixed) / houlsby.passPerRow),
    );
    assert.ok(plan.rows > 1 && plan.rows < 32, String(plan.rows));
  });

  test('moments that exist already (a resumed run) are not counted twice', () => {
    const fresh = planRows(houlsby, 32, heap, where);
    const resumed = planRows(
      { ...houlsby, resident: houlsby.resident + 2 * houlsby.trainable, moments: 2 * houlsby.trainable },
      32,
      heap,
      where,
    );
    assert.equal(resumed.steady, fresh.steady);
    assert.equal(resumed.rows, fresh.rows);
  });

  test('when not one row fits: a ConfigError on the length field with the bytes needed and available', () => {
    // full fine-tuning of 400 M parameters: 1.5 GiB of weights, 4.5 GiB of moments and gradients
    const huge: MemoryNeeds = {
      resident: 1.5 * GIB,
      trainable: 1.5 * GIB,
      moments: 0,
      passFixed: 100 * MIB,
      passPerRow: 300 * MIB,
    };
    assert.throws(
      () => planRows(huge, 32, heap, where),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.file === where.configFile &&
        err.path === '/data/maxLength' &&
        /one sequence of 128 tokens needs 6\.39 GiB \(weights and model 1\.50 GiB, optimizer state and gradients 4\.50 GiB, the pass 400 MiB\), and the WebAssembly heap leaves 3\.20 GiB of its 4\.00 GiB/.test(
          err.detail,
        ),
    );
  });
});

describe('memoryLimit', () => {
  test("the wasm heap's 4 GiB, or less: the machine, a container's cgroup limit, PEFT_LAB_MEMORY_LIMIT_MIB", () => {
    const none = () => undefined;
    assert.deepEqual(
      memoryLimit(none),
      os.totalmem() < WASM_HEAP_BYTES ? { bytes: os.totalmem(), why: "this machine's memory" } : heap,
    );
    const cgroupV2 = (file: string) => (file === '/sys/fs/cgroup/memory.max' ? `${2 * GIB}\n` : undefined);
    assert.deepEqual(memoryLimit(cgroupV2), { bytes: 2 * GIB, why: "the container's memory limit" });
    const unlimited = (file: string) => (file === '/sys/fs/cgroup/memory.max' ? 'max\n' : undefined);
    assert.equal(memoryLimit(unlimited).why, memoryLimit(none).why);
    const cgroupV1 = (file: string) =>
      file === '/sys/fs/cgroup/memory/memory.limit_in_bytes' ? `${3 * GIB}` : undefined;
    assert.equal(memoryLimit(cgroupV1).bytes, Math.min(3 * GIB, os.totalmem()));
    process.env[MEMORY_LIMIT_ENV] = '512';
    assert.deepEqual(memoryLimit(cgroupV2), { bytes: 512 * MIB, why: MEMORY_LIMIT_ENV });
  });
});
