/**
 * The PyTorch reference suite (model-reference.test.ts: hidden states, logits, loss and every
 * trainable gradient within 1e-4 of an independent PyTorch implementation) run again with the
 * native OpenBLAS kernels registered for the wasm backend, so its wasm tests go through them.
 *
 * The native kernels are installed before the suite is loaded: its `tf.setBackend('wasm')` then
 * finds them in tfjs-core's kernel registry. Skipped (and says so) without a built addon;
 * PEFT_LAB_NATIVE_REQUIRED=1 makes that a failure.
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
    'the PyTorch reference suite with the native kernels',
    { skip: `native addon not available (${load.reason})` },
    () => {},
  );
} else {
  const status = installNativeKernels();
  assert.ok(status.active, status.reason);
  // Registers the reference suite's tests in this file, now with the native kernels in place.
  require('./model-reference.test');

  test('the reference suite ran its wasm tests through the native kernels', () => {
    const calls = nativeCallCounts();
    assert.ok((calls.BatchMatMul ?? 0) > 0, `native BatchMatMul calls: ${JSON.stringify(calls)}`);
    assert.ok((calls.Transpose ?? 0) > 0, `native Transpose calls: ${JSON.stringify(calls)}`);
    assert.ok((calls.Sum ?? 0) > 0, `native Sum calls: ${JSON.stringify(calls)}`);
  });

  after(() => uninstallNativeKernels());
}
