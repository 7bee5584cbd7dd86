/** The attention's per-head products q · kᵀ and probs · v and their gradients, on strided views of the fused QKV projection. */
import type { NativeAddon } from '../addon';
import { FUSED, type KernelFunc, offsetOf, requireFloat32, type TensorInfo, type WasmBackend } from './shared';

/**
 * The attention's layout: qkv [B·T, 3·d] holds, for token (b, t), q, k and v each as H heads of dh;
 * scores and probs are [B, H, T, T]; the context [B·T, d] holds head h at columns h·dh. Every
 * per-head matrix is a strided view of these, so one sgemmStrided call covers all B·H heads.
 */
interface AttnLayout {
  batch: number;
  heads: number;
  seq: number;
  d: number;
  dh: number;
}

function attnLayout(qkv: TensorInfo, attrs: unknown): AttnLayout {
  const { batch, heads } = attrs as { batch: number; heads: number };
  const [rows, width] = qkv.shape as [number, number];
  if (qkv.shape.length !== 2 || width % (3 * heads) !== 0 || rows % batch !== 0) {
    throw new Error(`attention: qkv [${qkv.shape}] is not [B·T, 3·d] for ${batch} sequences and ${heads} heads`);
  }
  const d = width / 3;
  return { batch, heads, seq: rows / batch, d, dh: d / heads };
}

/** A per-head view: its base (byte offset), row stride, and element strides between sequences and heads. */
interface View {
  offset: number;
  ld: number;
  perSeq: number;
  perHead: number;
}

/** Head views of q (part 0), k (1) or v (2) in qkv, of a [B·T, d] context, and of [B, H, T, T] scores. */
function qkvView(backend: WasmBackend, qkv: TensorInfo, part: number, l: AttnLayout): View {
  return { offset: offsetOf(backend, qkv) + 4 * part * l.d, ld: 3 * l.d, perSeq: l.seq * 3 * l.d, perHead: l.dh };
}
function contextView(backend: WasmBackend, t: TensorInfo, l: AttnLayout): View {
  return { offset: offsetOf(backend, t), ld: l.d, perSeq: l.seq * l.d, perHead: l.dh };
}
function scoresView(backend: WasmBackend, t: TensorInfo, l: AttnLayout): View {
  return { offset: offsetOf(backend, t), ld: l.seq, perSeq: l.heads * l.seq * l.seq, perHead: l.seq * l.seq };
}

/** C = op(A) · op(B) for every head, [m, k] · [k, n] after the transposes. */
function headProducts(addon: NativeAddon, backend: WasmBackend, l: AttnLayout, m: number, n: number, k: number, a: View, ta: boolean, b: View, tb: boolean, c: View): void {
  addon.sgemmStrided(
    backend.wasm.HEAPF32,
    a.offset,
    b.offset,
    c.offset,
    m,
    n,
    k,
    ta ? 1 : 0,
    tb ? 1 : 0,
    a.ld,
    b.ld,
    c.ld,
    1,
    0,
    l.batch,
    a.perSeq,
    b.perSeq,
    c.perSeq,
    l.heads,
    a.perHead,
    b.perHead,
    c.perHead,
  );
}

/** scores [B, H, T, T] = q · kᵀ per head (unscaled: PeftSoftmax scales). */
export function attnScoresKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { qkv } = args.inputs as { qkv: TensorInfo };
    requireFloat32(FUSED.attnScores, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const scores = backend.makeOutput([l.batch, l.heads, l.seq, l.seq], 'float32');
    if (l.batch * l.seq * l.dh === 0) return scores;
    headProducts(addon, backend, l, l.seq, l.seq, l.dh, qkvView(backend, qkv, 0, l), false, qkvView(backend, qkv, 1, l), true, scoresView(backend, scores, l));
    return scores;
  };
}

/** context [B·T, d] = probs · v per head. */
export function attnContextKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { probs, qkv } = args.inputs as { probs: TensorInfo; qkv: TensorInfo };
    requireFloat32(FUSED.attnContext, probs, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const context = backend.makeOutput([l.batch * l.seq, l.d], 'float32');
    if (l.batch * l.seq * l.d === 0) return context;
    headProducts(addon, backend, l, l.seq, l.dh, l.seq, scoresView(backend, probs, l), false, qkvView(backend, qkv, 2, l), false, contextView(backend, context, l));
    return context;
  };
}

/** d(probs) [B, H, T, T] = d(context) · vᵀ per head. */
export function attnProbsGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { dcontext, qkv } = args.inputs as { dcontext: TensorInfo; qkv: TensorInfo };
    requireFloat32(FUSED.attnProbsGrad, dcontext, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const dprobs = backend.makeOutput([l.batch, l.heads, l.seq, l.seq], 'float32');
    if (l.batch * l.seq * l.dh === 0) return dprobs;
    headProducts(addon, backend, l, l.seq, l.seq, l.dh, contextView(backend, dcontext, l), false, qkvView(backend, qkv, 2, l), true, scoresView(backend, dprobs, l));
    return dprobs;
  };
}

/**
 * d(qkv) [B·T, 3·d] in one tensor: dq = dscores · k, dk = dscoresᵀ · q, dv = probsᵀ · d(context)
 * per head (dscores with respect to the unscaled scores, probs after dropout).
 */
export function attnQkvGradKernel(addon: NativeAddon): KernelFunc {
  return (args) => {
    const { dscores, probs, dcontext, qkv } = args.inputs as Record<'dscores' | 'probs' | 'dcontext' | 'qkv', TensorInfo>;
    requireFloat32(FUSED.attnQkvGrad, dscores, probs, dcontext, qkv);
    const l = attnLayout(qkv, args.attrs);
    const backend = args.backend as WasmBackend;
    const dqkv = backend.makeOutput(qkv.shape, 'float32');
    if (l.batch * l.seq * l.dh === 0) return dqkv;
    const [t, dh] = [l.seq, l.dh];
    const ds = scoresView(backend, dscores, l);
    headProducts(addon, backend, l, t, dh, t, ds, false, qkvView(backend, qkv, 1, l), false, qkvView(backend, dqkv, 0, l));
    headProducts(addon, backend, l, t, dh, t, ds, true, qkvView(backend, qkv, 0, l), false, qkvView(backend, dqkv, 1, l));
    headProducts(addon, backend, l, t, dh, t, scoresView(backend, probs, l), true, contextView(backend, dcontext, l), false, qkvView(backend, dqkv, 2, l));
    return dqkv;
  };
}
