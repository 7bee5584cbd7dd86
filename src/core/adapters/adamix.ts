/**
 * AdaMix (Wang et al., 2022): a mixture of bottleneck experts at one adapter site.
 * Training sends the whole batch through one randomly drawn down- and up-projection per step;
 * inference uses a single adapter whose weights are the experts' average, so it costs one adapter.
 */
import { tf, type Tensor2D } from '../tf';
import type { Activation, AdaMixConfig } from '../config/types';
import type { ParamStore } from '../model/params';
import type { Rng } from '../random';
import { addProjection, bottleneckDelta, type Projection, type TrainableProjection } from './bottleneck';

export interface Mixture {
  downs: Projection[];
  ups: Projection[];
  /** How often each projection was routed to during training, for the dashboard. */
  routed: { down: number[]; up: number[] };
}

/** The expert pair chosen for one site in one step. */
export interface ExpertChoice {
  down: number;
  up: number;
}

/**
 * Creates the experts of one site. A shared projection (config.share) exists once. Experts start
 * identical, as in the reference code: routing noise, not init noise, makes them differ.
 */
export function addMixture(
  store: ParamStore,
  prefix: string,
  d: number,
  m: number,
  config: AdaMixConfig,
  rng: Rng,
): Mixture {
  const downCount = config.share === 'down' ? 1 : config.experts;
  const upCount = config.share === 'up' ? 1 : config.experts;
  const downs = expertProjections(store, `${prefix}.down`, downCount, d, m, config.initStd, rng);
  const ups = expertProjections(store, `${prefix}.up`, upCount, m, d, config.initStd, rng);
  return { downs, ups, routed: { down: new Array(downCount).fill(0), up: new Array(upCount).fill(0) } };
}

function expertProjections(
  store: ParamStore,
  base: string,
  count: number,
  inSize: number,
  outSize: number,
  initStd: number,
  rng: Rng,
): TrainableProjection[] {
  if (count === 1) return [addProjection(store, base, inSize, outSize, initStd, rng)];
  const first = addProjection(store, expertName(base, 0), inSize, outSize, initStd, rng);
  const rest = Array.from({ length: count - 1 }, (_, k) => {
    const p = addProjection(store, expertName(base, k + 1), inSize, outSize, initStd, rng);
    p.kernel.assign(first.kernel);
    return p;
  });
  return [first, ...rest];
}

/** `...adapter.down` + expert 2 -> `...adapter.experts.2.down`. */
function expertName(base: string, k: number): string {
  const dot = base.lastIndexOf('.');
  return `${base.slice(0, dot)}.experts.${k}${base.slice(dot)}`;
}

/** Draws one down- and one up-projection, uniformly and independently. */
export function drawExperts(mixture: Mixture, rng: Rng): ExpertChoice {
  return { down: rng.int(mixture.downs.length), up: rng.int(mixture.ups.length) };
}

export function recordRoute(mixture: Mixture, choice: ExpertChoice): void {
  mixture.routed.down[choice.down]++;
  mixture.routed.up[choice.up]++;
}

export function routedDelta(h: Tensor2D, mixture: Mixture, choice: ExpertChoice, act: Activation): Tensor2D {
  return bottleneckDelta(h, mixture.downs[choice.down], mixture.ups[choice.up], act);
}

/** The single adapter used for inference: mean of the experts' weights and biases (not of their outputs). */
export function mergeMixture(mixture: Mixture): { down: Projection; up: Projection } {
  return { down: averageProjections(mixture.downs), up: averageProjections(mixture.ups) };
}

function averageProjections(projections: Projection[]): Projection {
  if (projections.length === 1) return { kernel: tf.clone(projections[0].kernel), bias: tf.clone(projections[0].bias) };
  return tf.tidy(() => ({
    kernel: tf.mean(tf.stack(projections.map((p) => p.kernel)), 0),
    bias: tf.mean(tf.stack(projections.map((p) => p.bias)), 0),
  }));
}
