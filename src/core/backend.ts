import { tf } from './tf';
import type { BackendName } from './config/types';
import { BackendError } from './errors';
import { installNativeKernels, type NativeStatus } from './native/wasm-kernels';

/** Environment variable that forces a backend, overriding the config (e.g. for CI or a slow GPU). */
export const BACKEND_ENV = 'PEFT_LAB_BACKEND';

export interface BackendChoice {
  /** The TensorFlow.js backend name now active ('tensorflow', 'wasm', 'cpu'). */
  active: string;
  /** What the user sees: package and mode. */
  description: string;
  /** Backends tried before this one, with the reason each did not load. */
  skipped: { name: BackendName; reason: string }[];
  /** wasm only: the native OpenBLAS kernels (src/core/native), active or why not. */
  native?: NativeStatus;
}

const FASTEST_FIRST: Exclude<BackendName, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/**
 * Activates the fastest backend that loads, or the one asked for (config or PEFT_LAB_BACKEND).
 * A backend that was asked for explicitly and fails to load is an error, never a silent fallback.
 */
export async function selectBackend(requested: BackendName = 'auto'): Promise<BackendChoice> {
  const forced = (process.env[BACKEND_ENV] as BackendName | undefined) || requested;
  if (forced !== 'auto' && !FASTEST_FIRST.includes(forced)) {
    throw new BackendError(`unknown backend '${forced}' (expected one of auto, ${FASTEST_FIRST.join(', ')})`);
  }
  const candidates = forced === 'auto' ? FASTEST_FIRST : [forced];
  const skipped: BackendChoice['skipped'] = [];
  for (const name of candidates) {
    try {
      await activate(name);
      if (name === 'wasm') {
        // Native matmul on the wasm heap when the addon loads (PEFT_LAB_NATIVE=0 keeps plain wasm).
        const native = installNativeKernels();
        return { active: tf.getBackend(), description: describeWasm(native), skipped, native };
      }
      return { active: tf.getBackend(), description: describe(name), skipped };
    } catch (err) {
      skipped.push({ name, reason: firstLine(err) });
    }
  }
  const reasons = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  throw new BackendError(`no TensorFlow.js backend could be loaded (${reasons})`);
}

async function activate(name: Exclude<BackendName, 'auto'>): Promise<void> {
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    // Both packages register the 'tensorflow' backend on the shared tfjs-core when they load.
    loadOptional(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
    await setBackendOrThrow('tensorflow');
    return;
  }
  await setBackendOrThrow(name);
}

function loadOptional(pkg: string): void {
  // A computed name keeps bundlers from resolving the optional native package at build time.
  const load = require as (id: string) => unknown;
  load(pkg);
}

async function setBackendOrThrow(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new BackendError(`backend '${name}' failed to initialise`);
  await tf.ready();
}

function describe(name: Exclude<BackendName, 'auto'>): string {
  switch (name) {
    case 'tensorflow-gpu':
      return 'tfjs-node-gpu (native TensorFlow, CUDA)';
    case 'tensorflow':
      return 'tfjs-node (native TensorFlow, CPU)';
    case 'wasm':
      return `wasm (XNNPACK${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? ', SIMD' : ''}, single thread)`;
    case 'cpu':
      return 'cpu (pure JavaScript, slowest)';
  }
}

/** "wasm + native kernels (OpenBLAS, 2 threads)", or the plain wasm description and why the addon is not used. */
function describeWasm(native: NativeStatus): string {
  if (native.active) {
    const threads = native.threads ?? 1;
    return `wasm + native kernels (OpenBLAS, ${threads} thread${threads === 1 ? '' : 's'})`;
  }
  return `${describe('wasm')}; native kernels not loaded: ${native.reason ?? 'unknown reason'}`;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0];
}
