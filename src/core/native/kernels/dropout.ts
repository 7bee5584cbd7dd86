/** tf.dropout bit for bit: seedrandom's Alea generator in C, the mask and the product in one pass. */
import { tf } from '../../tf';
import type { NativeAddon } from '../addon';
import { FUSED, type KernelFunc, offsetOf, requireFloat32, type TensorInfo, type WasmBackend } from './shared';

/** seedrandom's Alea state right after seeding with `seed` (what tf.randomUniform(…, seed) starts from). */
export function aleaState(seed: string): { s0: number; s1: number; s2: number; c: number } {
  // Baagøe's Mash hash, as seedrandom's lib/alea.js writes it (double arithmetic, >>> 0 truncations).
  let n = 0xefc8249d;
  const mash = (data: string): number => {
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000;
    }
    return (n >>> 0) * 2.3283064365386963e-10;
  };
  let s0 = mash(' ');
  let s1 = mash(' ');
  let s2 = mash(' ');
  s0 -= mash(seed);
  if (s0 < 0) s0 += 1;
  s1 -= mash(seed);
  if (s1 < 0) s1 += 1;
  s2 -= mash(seed);
  if (s2 < 0) s2 += 1;
  return { s0, s1, s2, c: 1 };
}

/** Outputs y and the mask (both x's shape); attrs: keep = 1 - rate and the Alea state. */
export function dropoutKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { keep, s0, s1, s2, c } = args.attrs as { keep: number; s0: number; s1: number; s2: number; c: number };
    requireFloat32(FUSED.dropout, x);
    const backend = args.backend as WasmBackend;
    const outs = [backend.makeOutput(x.shape, 'float32'), backend.makeOutput(x.shape, 'float32')];
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) addon.dropout(backend.wasm.HEAPF32, offsetOf(backend, x), offsetOf(backend, outs[0]!), offsetOf(backend, outs[1]!), n, keep, s0, s1, s2, c);
    return outs;
  };
}
