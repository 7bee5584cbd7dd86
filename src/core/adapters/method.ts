/**
 * Turns a config's `method` into trainable parameters placed in the encoder, and the hooks the
 * encoder layer calls at each adapter site.
 */
import { tf, type Tensor, type Tensor2D } from '../tf';
import type { AdapterSite, LoraTarget, MethodConfig, MethodType } from '../config/types';
import type { BertConfig } from '../model/bert-config';
import { matmulTrainable } from '../model/ops';
import { intermediateOutputs } from '../model/families';
import type { ParamStore } from '../model/params';
import type { PlacementSite } from '../../protocol/worker';
import type { Rng } from '../random';
import { addProjection, bottleneckDelta, bottleneckParams, type Projection } from './bottleneck';
import {
  addMixture,
  drawExperts,
  mergeMixture,
  recordRoute,
  routedDelta,
  type ExpertChoice,
  type Mixture,
} from './adamix';
import { uniform } from './init';

export interface ForwardContext {
  training: boolean;
  /** AdaMix during training: the expert pair of each site for this pass. */
  routes?: Map<string, ExpertChoice>;
  /** AdaMix at inference: the merged adapter of each site. */
  merged?: MergedAdapters;
  /** A fresh dropout seed, or undefined when dropout is off (inference). */
  dropoutSeed(): number | undefined;
}

export type MergedAdapters = Map<string, { down: Projection; up: Projection }>;

export interface AdapterMethod {
  readonly type: MethodType;
  readonly sites: PlacementSite[];
  /** The sublayer's output with this site's adapter applied (sequential or parallel). */
  applyAtSite(layer: number, site: AdapterSite, output: Tensor2D, input: Tensor2D, ctx: ForwardContext): Tensor2D;
  /** LoRA's low-rank update of a projection's output for input x, if that projection is targeted. */
  loraDelta(layer: number, target: LoraTarget, x: Tensor2D): Tensor2D | undefined;
  /** AdaMix: draws an expert pair for every site (one training pass). */
  drawRoutes(rng: Rng): Map<string, ExpertChoice> | undefined;
  /** AdaMix: counts the routes of the pass that is being trained on. */
  recordRoutes(routes: Map<string, ExpertChoice>): void;
  /** AdaMix: averaged experts for inference; the caller disposes them. */
  mergeForInference(): MergedAdapters | undefined;
  routingCounts(): Record<string, { down: number[]; up: number[] }>;
}

export function siteKey(layer: number, site: AdapterSite): string {
  return `${layer}.${site}`;
}

export function adapterPrefix(layer: number, site: AdapterSite): string {
  return `bert.encoder.layer.${layer}.${site === 'attention' ? 'attention.output' : 'output'}.adapter`;
}

export const LORA_MODULES: Record<LoraTarget, string> = {
  query: 'attention.self.query',
  key: 'attention.self.key',
  value: 'attention.self.value',
  attention_output: 'attention.output.dense',
  intermediate: 'intermediate.dense',
  output: 'output.dense',
};

/** Bottleneck size from the config: `bottleneck`, else hidden / reductionFactor. */
export function bottleneckSize(method: { bottleneck?: number; reductionFactor: number }, hidden: number): number {
  return method.bottleneck ?? Math.max(1, Math.floor(hidden / method.reductionFactor));
}

export function buildMethod(method: MethodConfig, bert: BertConfig, store: ParamStore, rng: Rng): AdapterMethod {
  switch (method.type) {
    case 'houlsby':
      return new BottleneckMethod(method.type, method.sites, 'sequential', 1, method, bert, store, rng);
    case 'pfeiffer':
      return new BottleneckMethod(method.type, ['ffn'], 'sequential', 1, method, bert, store, rng);
    case 'parallel':
      return new BottleneckMethod(method.type, method.sites, 'parallel', method.scale, method, bert, store, rng);
    case 'adamix':
      return new AdaMixMethod(method, bert, store, rng);
    case 'lora':
      return new LoraMethod(method, bert, store, rng);
    case 'head-only':
    case 'full':
      return new NoAdapters(method.type);
  }
}

abstract class BaseMethod implements AdapterMethod {
  abstract readonly type: MethodType;
  readonly sites: PlacementSite[] = [];
  applyAtSite(_layer: number, _site: AdapterSite, output: Tensor2D, _input: Tensor2D, _ctx: ForwardContext): Tensor2D {
    return output;
  }
  loraDelta(_layer: number, _target: LoraTarget, _x: Tensor2D): Tensor2D | undefined {
    return undefined;
  }
  drawRoutes(_rng: Rng): Map<string, ExpertChoice> | undefined {
    return undefined;
  }
  recordRoutes(_routes: Map<string, ExpertChoice>): void {}
  mergeForInference(): MergedAdapters | undefined {
    return undefined;
  }
  routingCounts(): Record<string, { down: number[]; up: number[] }> {
    return {};
  }
}

class NoAdapters extends BaseMethod {
  constructor(readonly type: MethodType) {
    super();
  }
}

function layersWithAdapters(bert: BertConfig, leaveOut: number[]): number[] {
  return Array.from({ length: bert.num_hidden_layers }, (_, i) => i).filter((i) => !leaveOut.includes(i));
}

type BottleneckFields = {
  bottleneck?: number;
  reductionFactor: number;
  activation: 'gelu' | 'relu' | 'swish';
  initStd: number;
  leaveOut: number[];
};

class BottleneckMethod extends BaseMethod {
  private readonly adapters = new Map<string, { down: Projection; up: Projection }>();
  private readonly activation: BottleneckFields['activation'];

  constructor(
    readonly type: MethodType,
    siteNames: AdapterSite[],
    private readonly mode: 'sequential' | 'parallel',
    private readonly scale: number,
    fields: BottleneckFields,
    bert: BertConfig,
    store: ParamStore,
    rng: Rng,
  ) {
    super();
    this.activation = fields.activation;
    const d = bert.hidden_size;
    const m = bottleneckSize(fields, d);
    for (const layer of layersWithAdapters(bert, fields.leaveOut)) {
      for (const site of siteNames) {
        const prefix = adapterPrefix(layer, site);
        const down = addProjection(store, `${prefix}.down`, d, m, fields.initStd, rng);
        const up = addProjection(store, `${prefix}.up`, m, d, fields.initStd, rng);
        this.adapters.set(siteKey(layer, site), { down, up });
        const params = bottleneckParams(d, m);
        this.sites.push({
          layer,
          site,
          kind: mode === 'parallel' ? 'parallel' : 'bottleneck',
          shapes: { down: [d, m], up: [m, d] },
          bottleneck: m,
          activation: fields.activation,
          trainableParams: params,
          inferenceParams: params,
        });
      }
    }
  }

  applyAtSite(layer: number, site: AdapterSite, output: Tensor2D, input: Tensor2D): Tensor2D {
    const adapter = this.adapters.get(siteKey(layer, site));
    if (!adapter) return output;
    if (this.mode === 'sequential')
      return tf.add(output, bottleneckDelta(output, adapter.down, adapter.up, this.activation));
    // He et al.: the adapter reads the sublayer's input and its scaled output joins the sublayer's
    return tf.add(output, tf.mul(bottleneckDelta(input, adapter.down, adapter.up, this.activation), this.scale));
  }
}

class AdaMixMethod extends BaseMethod {
  readonly type = 'adamix' as const;
  private readonly mixtures = new Map<string, Mixture>();

  constructor(
    private readonly config: Extract<MethodConfig, { type: 'adamix' }>,
    bert: BertConfig,
    store: ParamStore,
    rng: Rng,
  ) {
    super();
    const d = bert.hidden_size;
    const m = bottleneckSize(config, d);
    for (const layer of layersWithAdapters(bert, config.leaveOut)) {
      for (const site of config.sites) {
        const mixture = addMixture(store, adapterPrefix(layer, site), d, m, config, rng);
        this.mixtures.set(siteKey(layer, site), mixture);
        const downs = mixture.downs.length;
        const ups = mixture.ups.length;
        this.sites.push({
          layer,
          site,
          kind: 'adamix',
          shapes: { down: [d, m], up: [m, d] },
          bottleneck: m,
          activation: config.activation,
          experts: { down: downs, up: ups },
          trainableParams: downs * (d * m + m) + ups * (m * d + d),
          inferenceParams: bottleneckParams(d, m),
        });
      }
    }
  }

  applyAtSite(layer: number, site: AdapterSite, output: Tensor2D, _input: Tensor2D, ctx: ForwardContext): Tensor2D {
    const key = siteKey(layer, site);
    const mixture = this.mixtures.get(key);
    if (!mixture) return output;
    const merged = ctx.merged?.get(key);
    if (merged) return tf.add(output, bottleneckDelta(output, merged.down, merged.up, this.config.activation));
    const choice = ctx.routes?.get(key);
    if (!choice) throw new Error(`AdaMix site ${key} has neither a route (training) nor merged weights (inference)`);
    return tf.add(output, routedDelta(output, mixture, choice, this.config.activation));
  }

  drawRoutes(rng: Rng): Map<string, ExpertChoice> {
    return new Map([...this.mixtures].map(([key, mixture]) => [key, drawExperts(mixture, rng)]));
  }

  recordRoutes(routes: Map<string, ExpertChoice>): void {
    for (const [key, choice] of routes) recordRoute(this.mixtures.get(key)!, choice);
  }

  mergeForInference(): MergedAdapters {
    return new Map([...this.mixtures].map(([key, mixture]) => [key, mergeMixture(mixture)]));
  }

  routingCounts(): Record<string, { down: number[]; up: number[] }> {
    return Object.fromEntries(
      [...this.mixtures].map(([key, m]) => [key, { down: [...m.routed.down], up: [...m.routed.up] }]),
    );
  }

  /** Restores counts saved in a checkpoint, so a resumed run reports the whole run's routing. */
  restoreRoutingCounts(counts: Record<string, { down: number[]; up: number[] }>): void {
    for (const [key, c] of Object.entries(counts)) {
      const mixture = this.mixtures.get(key);
      if (mixture && c.down.length === mixture.routed.down.length && c.up.length === mixture.routed.up.length) {
        mixture.routed = { down: [...c.down], up: [...c.up] };
      }
    }
  }
}

class LoraMethod extends BaseMethod {
  readonly type = 'lora' as const;
  private readonly pairs = new Map<string, { a: Tensor; b: Tensor }>();
  private readonly scaling: number;

  constructor(config: Extract<MethodConfig, { type: 'lora' }>, bert: BertConfig, store: ParamStore, rng: Rng) {
    super();
    this.scaling = config.alpha / config.rank;
    const r = config.rank;
    for (const layer of layersWithAdapters(bert, config.leaveOut)) {
      for (const target of config.targets) {
        const [inSize, outSize] = loraShape(target, bert);
        const prefix = `bert.encoder.layer.${layer}.${LORA_MODULES[target]}`;
        // A random, B zero: W + (alpha / r) B A equals W at the start of training
        const a = store.add(`${prefix}.lora_A.weight`, [r, inSize], uniform(r * inSize, 1 / Math.sqrt(inSize), rng), {
          trainable: true,
          group: 'lora',
          linear: true,
        });
        const b = store.add(`${prefix}.lora_B.weight`, [outSize, r], new Float32Array(outSize * r), {
          trainable: true,
          group: 'lora',
          linear: true,
        });
        this.pairs.set(`${layer}.${target}`, { a: a.value, b: b.value });
        const params = r * (inSize + outSize);
        this.sites.push({
          layer,
          site: target,
          kind: 'lora',
          shapes: { A: [inSize, r], B: [r, outSize] },
          rank: r,
          trainableParams: params,
          inferenceParams: params,
        });
      }
    }
  }

  loraDelta(layer: number, target: LoraTarget, x: Tensor2D): Tensor2D | undefined {
    const pair = this.pairs.get(`${layer}.${target}`);
    if (!pair) return undefined;
    return tf.mul(matmulTrainable(matmulTrainable(x, pair.a), pair.b), this.scaling) as Tensor2D; // [N, out]
  }
}

function loraShape(target: LoraTarget, bert: BertConfig): [number, number] {
  const d = bert.hidden_size;
  if (target === 'intermediate') return [d, intermediateOutputs(bert)]; // ModernBERT's Wi: GeGLU input and gate
  if (target === 'output') return [bert.intermediate_size, d];
  return [d, d];
}
