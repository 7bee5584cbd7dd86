/**
 * The family reference suite (families.test.ts: every family and method within 1e-4 of PyTorch)
 * run again with the native OpenBLAS kernels registered for the wasm backend, so its wasm tests go
 * through them. Skipped (and says so) without a built addon; PEFT_LAB_NATIVE_REQUIRED=1 makes that
 * a failure.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNativeAddon } from '../../src/core/native/addon';
import { installNativeKernels, nativeCallCounts, uninstallNativeKernels } from '../../src/core/native/wasm-kernels';

const load = loadNativeAddon();
if (!load.ok) {
  if (process.env.PEFT_LAB_NATIVE_REQUIRED === '1')
    throw new Error(`PEFT_LAB_NATIVE_REQUIRED=1 but the native addon is not available (${load.reason})`);
  test(
    'the family reference suite with the native kernels',
    { skip: `native addon not available (${load.reason})` },
    () => {},
  );
} else {
  const status = installNativeKernels();
  assert.ok(status.active, status.reason);
  require('./families.test');

  test('the family suite ran its wasm tests through the native kernels', () => {
    const calls = nativeCallCounts();
    assert.ok((calls.BatchMatMul ?? 0) > 0, `native BatchMatMul calls: ${JSON.stringify(calls)}`);
    assert.ok(
      (calls._FusedMatMul ?? calls.MatMul ?? calls.BatchMatMul ?? 0) > 0,
      `native products: ${JSON.stringify(calls)}`,
    );
  });

  after(() => uninstallNativeKernels());
}
