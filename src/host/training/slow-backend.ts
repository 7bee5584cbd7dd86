/** Which backends are slow fallbacks (no vscode import, so it is unit-tested on its own). */
import type { BackendInfo } from '../../protocol/worker';

export interface SlowBackend {
  backend: string;
  reason: string;
}

/** Why this backend is a slow fallback, or undefined when it is not one. */
export function slowBackendOf(backend: BackendInfo): SlowBackend | undefined {
  if (backend.active === 'wasm' && backend.native && !backend.native.active) {
    return {
      backend: 'plain WebAssembly',
      reason: `the native OpenBLAS kernels did not load (${backend.native.reason ?? 'no reason given'})`,
    };
  }
  // cpu asked for by name (config, setting or PEFT_LAB_BACKEND) is a choice, not a fallback
  if (backend.active === 'cpu' && backend.skipped.length > 0) {
    const skipped = backend.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
    return { backend: 'pure JavaScript (cpu)', reason: `faster backends did not load (${skipped})` };
  }
  return undefined;
}
