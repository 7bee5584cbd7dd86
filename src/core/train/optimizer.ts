/**
 * AdamW (Loshchilov & Hutter) as PyTorch implements it, written here because TensorFlow.js has no
 * AdamW and its Adam matches moment slots to variables by position: when an AdaMix expert gets
 * no gradient in a step, every later slot would shift onto the wrong variable. Here state is keyed
 * by parameter name, and a parameter without a gradient in a step is left untouched (no decay, no
 * moment update, no step count), as torch.optim.AdamW does for `grad is None`.
 */
import { tf, type Tensor, type Variable } from '../tf';
import type { Param } from '../model/params';
import { adamwInPlace, sumOfSquares, type AdamWUpdate } from '../native/kernels/optimizer';

export interface AdamWOptions {
  beta1?: number; // default 0.9
  beta2?: number; // default 0.999
  epsilon?: number; // default 1e-8
  weightDecay: number;
}

interface Slot {
  m: Variable;
  v: Variable;
  step: number;
}

export interface OptimizerState {
  steps: Record<string, number>;
  moments: Map<string, { m: Float32Array; v: Float32Array; shape: number[] }>;
}

export class AdamW {
  private readonly slots = new Map<string, Slot>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly epsilon: number;

  constructor(private readonly options: AdamWOptions) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
  }

  /**
   * One update of every parameter that has a gradient in `grads` (keyed by parameter name), each
   * gradient multiplied by `gradScale` first (global-norm clipping: see clipScale).
   */
  apply(params: Param[], grads: Map<string, Tensor>, learningRate: number, gradScale = 1): void {
    const updates = params.flatMap((param) => {
      const grad = grads.get(param.name);
      return grad ? [this.nextUpdate(param, grad, learningRate)] : [];
    });
    const { beta1, beta2, epsilon } = this;
    // Natively: one call updates every parameter and its moments in place, the same float32
    // operations in the same order as update() below (so the same numbers, bit for bit).
    if (adamwInPlace(updates, { beta1, beta2, epsilon, gradScale })) return;
    for (const u of updates) this.update(u, gradScale);
  }

  /** Counts the parameter's step and gives its update's operands and scalars. */
  private nextUpdate(param: Param, grad: Tensor, lr: number): AdamWUpdate {
    const slot = this.slotFor(param);
    slot.step += 1;
    const decay = decays(param) ? this.options.weightDecay : 0;
    return {
      param: param.value,
      grad,
      m: slot.m,
      v: slot.v,
      correction2: 1 - this.beta2 ** slot.step,
      decay: lr * decay,
      stepSize: lr / (1 - this.beta1 ** slot.step),
    };
  }

  private update(u: AdamWUpdate, gradScale: number): void {
    const { beta1, beta2, epsilon } = this;
    tf.tidy(() => {
      const grad = gradScale === 1 ? u.grad : tf.mul(u.grad, gradScale);
      const m = tf.add(tf.mul(u.m, beta1), tf.mul(grad, 1 - beta1));
      const v = tf.add(tf.mul(u.v, beta2), tf.mul(tf.square(grad), 1 - beta2));
      const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(u.correction2)), epsilon);
      const decayed = u.decay ? tf.mul(u.param, 1 - u.decay) : u.param;
      (u.m as Variable).assign(m);
      (u.v as Variable).assign(v);
      (u.param as Variable).assign(tf.sub(decayed, tf.mul(tf.div(m, denom), u.stepSize)));
    });
  }

  private slotFor(param: Param): Slot {
    let slot = this.slots.get(param.name);
    if (!slot) {
      slot = { m: ownVariable(tf.zerosLike(param.value)), v: ownVariable(tf.zerosLike(param.value)), step: 0 };
      this.slots.set(param.name, slot);
    }
    return slot;
  }

  /** Bytes of the moments made so far (each parameter gets two at its first update). */
  momentBytes(): number {
    let bytes = 0;
    for (const slot of this.slots.values()) bytes += 4 * (slot.m.size + slot.v.size);
    return bytes;
  }

  exportState(): OptimizerState {
    const steps: Record<string, number> = {};
    const moments: OptimizerState['moments'] = new Map();
    for (const [name, slot] of this.slots) {
      steps[name] = slot.step;
      moments.set(name, {
        m: slot.m.dataSync() as Float32Array,
        v: slot.v.dataSync() as Float32Array,
        shape: [...slot.m.shape],
      });
    }
    return { steps, moments };
  }

  importState(state: OptimizerState, params: Param[]): void {
    this.dispose();
    for (const param of params) {
      const saved = state.moments.get(param.name);
      if (!saved) continue;
      this.slots.set(param.name, {
        m: ownVariable(tf.tensor(saved.m, param.value.shape)),
        v: ownVariable(tf.tensor(saved.v, param.value.shape)),
        step: state.steps[param.name] ?? 0,
      });
    }
  }

  dispose(): void {
    for (const slot of this.slots.values()) {
      slot.m.dispose();
      slot.v.dispose();
    }
    this.slots.clear();
  }
}

/**
 * A non-trainable variable that is the only holder of its memory (the initial tensor is disposed),
 * so that the native AdamW may update it in place from the first step.
 */
function ownVariable(initial: Tensor): Variable {
  const v = tf.variable(initial, false);
  initial.dispose();
  return v;
}

/** Biases and LayerNorm weights take no weight decay (the BERT recipe). */
function decays(param: Param): boolean {
  return param.name.endsWith('.weight') && !param.name.includes('LayerNorm');
}

/**
 * Linear warm-up to the peak rate, then linear decay to zero at the last step. Steps count from 0;
 * warm-up uses (step + 1) so the first update already moves the weights.
 */
export function learningRateAt(
  step: number,
  totalSteps: number,
  warmupSteps: number,
  peak: number,
  decaySteps?: number,
): number {
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const decayStart = decaySteps === undefined ? warmupSteps : Math.max(warmupSteps, totalSteps - decaySteps);
  if (step < decayStart) return peak;
  const remaining = totalSteps - step;
  const span = Math.max(1, totalSteps - decayStart);
  return Math.max(0, (peak * remaining) / span);
}

/**
 * The factor that brings the gradients' global L2 norm down to maxNorm (1 when it is already at most
 * maxNorm, or not finite), and that norm before clipping. AdamW.apply takes the factor.
 */
export function clipScale(grads: Map<string, Tensor>, maxNorm: number): { scale: number; norm: number } {
  const norm = Math.sqrt(globalSquares([...grads.values()]));
  if (!(maxNorm > 0) || norm <= maxNorm || !Number.isFinite(norm)) return { scale: 1, norm };
  return { scale: maxNorm / (norm + 1e-6), norm };
}

function globalSquares(grads: Tensor[]): number {
  if (grads.length === 0) return 0;
  return sumOfSquares(grads) ?? tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))).dataSync()[0] ?? 0);
}
