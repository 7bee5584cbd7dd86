import assert from 'node:assert/strict';
import { test } from 'node:test';
import { slowBackendOf } from '../../src/host/training/slow-backend';
import { selectBackend } from '../../src/core/backend';

test('wasm with the native kernels, or a native TensorFlow backend, is not a slow fallback', () => {
  assert.equal(
    slowBackendOf({
      active: 'wasm',
      description: 'wasm + native kernels (OpenBLAS, 2 threads)',
      skipped: [],
      native: { active: true },
    }),
    undefined,
  );
  assert.equal(slowBackendOf({ active: 'tensorflow', description: 'tfjs-node', skipped: [] }), undefined);
});

test('plain wasm because the addon did not load says why', () => {
  const slow = slowBackendOf({
    active: 'wasm',
    description: 'wasm',
    skipped: [],
    native: { active: false, reason: 'peft_native.node not built' },
  });
  assert.deepEqual(slow, {
    backend: 'plain WebAssembly',
    reason: 'the native OpenBLAS kernels did not load (peft_native.node not built)',
  });
});

test('cpu asked for by name is no fallback and gets no notice', () => {
  assert.equal(slowBackendOf({ active: 'cpu', description: 'cpu', skipped: [] }), undefined);
});

test('the cpu backend names the faster backends that did not load', () => {
  const slow = slowBackendOf({
    active: 'cpu',
    description: 'cpu',
    skipped: [{ name: 'wasm', reason: 'no WebAssembly' }],
  });
  assert.match(slow!.reason, /wasm: no WebAssembly/);
});

test('the backend a run reports carries the native status the notice reads', async () => {
  const previous = process.env.PEFT_LAB_NATIVE;
  process.env.PEFT_LAB_NATIVE = '0';
  try {
    const choice = await selectBackend('wasm');
    assert.equal(choice.native?.active, false);
    const slow = slowBackendOf({
      active: choice.active,
      description: choice.description,
      skipped: choice.skipped,
      native: choice.native,
    });
    assert.match(slow!.reason, /disabled by PEFT_LAB_NATIVE=0/);
  } finally {
    if (previous === undefined) delete process.env.PEFT_LAB_NATIVE;
    else process.env.PEFT_LAB_NATIVE = previous;
    await selectBackend('wasm');
  }
});
