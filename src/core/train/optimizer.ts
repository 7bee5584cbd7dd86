/**
 * AdamW (Loshchilov & Hutter) as PyTorch implements it, written here because TensorFlow.js has no
 * AdamW and its Adam matches moment slots to variables by position: when an AdaMix expert gets
 * no gradient in a step, every later slot would shift onto the wrong variable. Here state is keyed
 * by parameter name, and a parameter without a gradient in a step is left untouched (no decay, no
 * moment update, no step count), as torch.optim.AdamW does for `grad is None`.
 */
import { tf, type Tensor, type Variable } from '../tf';
import type { Param } from '../model/params';
import { adamwInPlace } from '../native/wasm-kernels';

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

  /** One update of every parameter that has a gradient in `grads` (keyed by parameter name). */
  apply(params: Param[], grads: Map<string, Tensor>, learningRate: number): void {
    for (const param of params) {
      const grad = grads.get(param.name);
      if (grad) this.update(param, grad, learningRate);
    }
  }

  private update(param: Param, grad: Tensor, lr: number): void {
    const slot = this.slotFor(param);
    slot.step += 1;
    const { beta1, beta2, epsilon } = this;
    const correction1 = 1 - beta1 ** slot.step;
    const correction2 = 1 - beta2 ** slot.step;
    const decay = decays(param) ? this.options.weightDecay : 0;
    // Natively: one kernel updates the parameter and its moments in place, the same float32
    // operations in the same order as below (so the same numbers, bit for bit).
    const scalars = { beta1, beta2, epsilon, correction2, decay: lr * decay, stepSize: lr / correction1 };
    if (adamwInPlace(param.value, grad, slot.m, slot.v, scalars)) return;
    tf.tidy(() => {
      const m = tf.add(tf.mul(slot.m, beta1), tf.mul(grad, 1 - beta1));
      const v = tf.add(tf.mul(slot.v, beta2), tf.mul(tf.square(grad), 1 - beta2));
      const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(correction2)), epsilon);
      const decayed = decay ? tf.mul(param.value, 1 - lr * decay) : param.value;
      slot.m.assign(m);
      slot.v.assign(v);
      param.value.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / correction1)));
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

  exportState(): OptimizerState {
    const steps: Record<string, number> = {};
    const moments: OptimizerState['moments'] = new Map();
    for (const [name, slot] of this.slots) {
      steps[name] = slot.step;
      moments.set(name, { m: slot.m.dataSync() as Float32Array, v: slot.v.dataSync() as Float32Array, shape: [...slot.m.shape] });
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
export function learningRateAt(step: number, totalSteps: number, warmupSteps: number, peak: number): number {
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const remaining = totalSteps - step;
  const span = Math.max(1, totalSteps - warmupSteps);
  return Math.max(0, (peak * remaining) / span);
}

/** Scales gradients in place of a new map so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipByGlobalNorm(grads: Map<string, Tensor>, maxNorm: number): { grads: Map<string, Tensor>; norm: number } {
  const norm = Math.sqrt(
    tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0] ?? 0),
  );
  if (!(maxNorm > 0) || norm <= maxNorm || !Number.isFinite(norm)) return { grads, norm };
  const scale = maxNorm / (norm + 1e-6);
  const clipped = new Map([...grads].map(([name, g]) => [name, tf.mul(g, scale)] as [string, Tensor]));
  for (const g of grads.values()) g.dispose();
  return { grads: clipped, norm };
}
