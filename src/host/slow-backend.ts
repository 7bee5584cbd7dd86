/** Which backends are slow fallbacks (no vscode import, so it is unit-tested on its own). */
import type { BackendInfo } from '../protocol/worker';

export interface SlowBackend {
  backend: string;
  reason: string;
}

/** Why this backend is a slow fallback, or undefined when it is not one. */
export function slowBackendOf(backend: BackendInfo): SlowBackend | undefined {
  if (backend.active === 'wasm' && backend.native && !backend.native.active) {
    return { backend: 'plain WebAssembly', reason: `the native OpenBLAS kernels did not load (${backend.native.reason ?? 'no reason given'})` };
  }
  if (backend.active === 'cpu') {
    const skipped = backend.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
    return { backend: 'pure JavaScript (cpu)', reason: skipped ? `faster backends did not load (${skipped})` : 'it was asked for' };
  }
  return undefined;
}
