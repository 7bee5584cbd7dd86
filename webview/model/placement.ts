/**
 * placement.json (+ AdaMix routing counts) -> the rows of the placement diagram: one row per encoder
 * layer, each with its two blocks in forward order (methods.md):
 *
 *   attention block: Q, K, V projections -> scaled dot-product attention -> output projection
 *                    -> [attention adapter] -> Add & LayerNorm
 *   feed-forward:    intermediate (GELU) -> output projection -> [ffn adapter] -> Add & LayerNorm
 *
 * A sequential adapter (Houlsby, Pfeiffer, AdaMix) sits after its block; a parallel one beside it,
 * reading the block's input; LoRA sits on the projections it targets. A layer in `leftOut` keeps an
 * empty slot where the other layers have adapters. No DOM here: the view draws what this returns.
 */
import type {
  DashboardArchitecture,
  DashboardPlacement as Placement,
  DashboardPlacementSite as PlacementSite,
  RoutingCounts,
} from '../../src/protocol/dashboard';
import { formatCount, formatCountCompact, formatPercent } from '../../src/protocol/format';
import { formatShape } from './format';

export type SiteName = PlacementSite['site'];
export type ProjectionId = 'query' | 'key' | 'value' | 'attention_output' | 'intermediate' | 'output';

export interface ExpertBar {
  readonly index: number;
  /** Times this expert was drawn (training passes). */
  readonly count: number;
  /** count / all draws at this site; undefined before any routing was recorded. */
  readonly share: number | undefined;
}

export interface ExpertsView {
  readonly down: readonly ExpertBar[];
  readonly up: readonly ExpertBar[];
  /** One projection serves every expert (AdaMix `share`). */
  readonly sharedDown: boolean;
  readonly sharedUp: boolean;
  /** Checkpoint step the counts come from; undefined when no counts exist yet. */
  readonly routedAtStep: number | undefined;
}

export interface WeightShape {
  readonly name: string;
  /** [in, out]. */
  readonly shape: readonly number[];
  /** How many copies train (AdaMix experts); 1 otherwise. */
  readonly copies: number;
  readonly shared: boolean;
}

export interface AdapterCard {
  /** "layer.site", as in routing counts. */
  readonly key: string;
  readonly layer: number;
  readonly site: SiteName;
  readonly kind: PlacementSite['kind'];
  /** e.g. "Houlsby adapter", "AdaMix · 4 experts", "LoRA". */
  readonly title: string;
  /** "m = 32" or "r = 8". */
  readonly sizeText: string;
  readonly bottleneck?: number;
  readonly rank?: number;
  readonly activation?: string;
  readonly weights: readonly WeightShape[];
  readonly experts?: ExpertsView;
  readonly trainableParams: number;
  readonly inferenceParams: number;
  /** AdaMix: inference uses one adapter, the experts' average. */
  readonly merged: boolean;
  /** Exact shapes and counts, one fact per line (the hover text). */
  readonly tooltip: string;
}

export interface SublayerBox {
  /** add_norm: post-LN's Add & LayerNorm; pre_norm: pre-LN's LayerNorm before a block; add: its residual Add. */
  readonly id: ProjectionId | 'attention' | 'add_norm' | 'pre_norm' | 'add';
  readonly label: string;
  /** Weight shape of a projection, "[in × out]". */
  readonly shape?: string;
  /** LoRA on this projection. */
  readonly lora?: AdapterCard;
  /** A LoRA target in a left-out layer: drawn as an empty slot. */
  readonly loraEmpty: boolean;
  /** This box's own weights train (full fine-tuning; the LayerNorms of adapter methods). */
  readonly trains: boolean;
}

export interface BlockView {
  readonly id: 'attention' | 'ffn';
  readonly label: string;
  readonly sublayers: readonly SublayerBox[];
  /** Sequential adapter after the block (before Add & LayerNorm). */
  readonly adapter?: AdapterCard;
  /** Parallel adapter beside the block. */
  readonly parallel?: AdapterCard;
  /** Left-out layer: where the other layers have an adapter, this one has an empty slot. */
  readonly emptySlot?: 'sequential' | 'parallel';
  /** Pre-LN: the LayerNorm the block's input goes through (none before ModernBERT's first attention). */
  readonly preNorm?: SublayerBox;
  /** After the block: Add & LayerNorm (post-LN) or the residual Add (pre-LN). */
  readonly norm: SublayerBox;
}

export interface LayerRow {
  readonly index: number;
  readonly leftOut: boolean;
  /** Attention over the whole sequence, or within a local window (ModernBERT). */
  readonly attention: 'global' | 'local';
  readonly blocks: readonly [BlockView, BlockView];
  /** Trainable parameters of this layer's adapters (training; AdaMix: all experts). */
  readonly adapterParams: number;
  readonly inferenceParams: number;
  /** adapterParams / the base model's parameters. */
  readonly share: number;
  readonly adapterCount: number;
}

export interface GroupTotal {
  readonly group: string;
  readonly label: string;
  readonly params: number;
  readonly share: number;
}

/** The encoder's architecture as the diagram shows it. */
export interface ArchitectureView {
  readonly modelType: string;
  readonly family: string;
  readonly norm: 'post' | 'pre';
  readonly feedForward: string;
  readonly biases: boolean;
  readonly positions: 'absolute' | 'rotary';
  /** The input row: what the embeddings add up. */
  readonly embeddingsText: string;
  /** ModernBERT's LayerNorm after the last layer. */
  readonly finalNorm: boolean;
  /** One line of facts: family, norm placement, feed-forward, positions, biases. */
  readonly summary: string;
}

export interface PlacementView {
  readonly method: string;
  readonly architecture: ArchitectureView;
  readonly methodLabel: string;
  /** One sentence: where this method puts its parameters. */
  readonly description: string;
  readonly layers: readonly LayerRow[];
  readonly hiddenSize: number;
  readonly heads: number;
  readonly intermediateSize: number;
  readonly baseParams: number;
  readonly trainableParams: number;
  /** trainable / base. */
  readonly trainableShare: number;
  readonly groups: readonly GroupTotal[];
  /** Sum over sites while training / at inference (differ for AdaMix). */
  readonly adapterParams: number;
  readonly inferenceParams: number;
  readonly leftOut: readonly number[];
  readonly headTrains: boolean;
  readonly poolerTrains: boolean;
  readonly encoderTrains: boolean;
  readonly layerNormsTrain: boolean;
  readonly routingStep: number | undefined;
}

const METHOD_LABELS: Record<string, string> = {
  houlsby: 'Houlsby adapters',
  pfeiffer: 'Pfeiffer adapters',
  parallel: 'Parallel adapters',
  adamix: 'AdaMix (mixture of adapters)',
  lora: 'LoRA',
  'head-only': 'Linear probe (head only)',
  full: 'Full fine-tuning',
};

const METHOD_DESCRIPTIONS: Record<string, string> = {
  houlsby:
    'A bottleneck adapter after the attention output projection and after the feed-forward block, before each residual Add & LayerNorm.',
  pfeiffer: 'One bottleneck adapter per layer, after the feed-forward block only.',
  parallel: 'Bottleneck adapters beside the sublayer: they read its input and their scaled output joins its output.',
  adamix:
    'Several adapter experts per site, one drawn at random per step while training; inference uses a single adapter, the experts averaged.',
  lora: 'A low-rank update B·A beside each targeted projection; B starts at zero.',
  'head-only': 'The encoder is frozen and carries no adapter; only the pooler and the classifier train.',
  full: 'Every weight of the encoder trains, and the head.',
};

const GROUP_LABELS: Record<string, string> = {
  adapter: 'adapters',
  adapters: 'adapters',
  lora: 'LoRA',
  layerNorm: 'LayerNorms',
  layerNorms: 'LayerNorms',
  pooler: 'pooler',
  head: 'classifier',
  encoder: 'encoder',
  embeddings: 'embeddings',
};

const SITE_TEXT: Record<SiteName, string> = {
  attention: 'after the attention output projection',
  ffn: 'after the feed-forward block',
  query: 'on the query projection',
  key: 'on the key projection',
  value: 'on the value projection',
  attention_output: 'on the attention output projection',
  intermediate: 'on the intermediate projection',
  output: 'on the feed-forward output projection',
};

export function methodLabel(method: string): string {
  return METHOD_LABELS[method] ?? method;
}

export function buildPlacementView(p: Placement, routing?: RoutingCounts): PlacementView {
  const bySite = new Map<string, PlacementSite>();
  for (const s of p.sites) bySite.set(`${s.layer}.${s.site}`, s);
  const leftOut = new Set(p.leftOut);
  // where any layer has an adapter (so a left-out layer shows an empty slot there)
  const adapterSites = new Map<SiteName, PlacementSite['kind']>();
  const loraTargets = new Set<SiteName>();
  for (const s of p.sites) {
    if (s.kind === 'lora') loraTargets.add(s.site);
    else adapterSites.set(s.site, s.kind);
  }
  const groups = p.trainableByGroup;
  const encoderTrains = (groups.encoder ?? 0) > 0 || p.method === 'full';
  const layerNormsTrain = (groups.layerNorm ?? groups.layerNorms ?? 0) > 0 || encoderTrains;
  const d = p.hiddenSize;
  const ff = p.intermediateSize;
  const arch = p.architecture ?? BERT_ARCHITECTURE(p.layers);
  const architecture = architectureView(arch);
  const gated = arch.feedForward.includes('GLU') || arch.feedForward.startsWith('gated');

  const card = (layer: number, site: SiteName): AdapterCard | undefined => {
    const s = bySite.get(`${layer}.${site}`);
    return s ? adapterCard(s, routing) : undefined;
  };

  const layers: LayerRow[] = [];
  for (let layer = 0; layer < p.layers; layer++) {
    const isLeftOut = leftOut.has(layer);
    const proj = (id: ProjectionId, label: string, shape: [number, number]): SublayerBox => ({
      id,
      label,
      shape: formatShape(shape),
      lora: card(layer, id),
      loraEmpty: isLeftOut && loraTargets.has(id),
      trains: encoderTrains,
    });
    const pre = arch.norm === 'pre';
    const norm: SublayerBox = pre
      ? { id: 'add', label: 'Add (residual)', loraEmpty: false, trains: false }
      : { id: 'add_norm', label: 'Add & LayerNorm', loraEmpty: false, trains: layerNormsTrain };
    const preNorm = (id: 'attention' | 'ffn'): SublayerBox | undefined =>
      pre && !(id === 'attention' && layer === 0)
        ? {
            id: 'pre_norm',
            label: arch.biases ? 'LayerNorm' : 'LayerNorm (no bias)',
            loraEmpty: false,
            trains: layerNormsTrain,
          }
        : undefined;
    const block = (id: 'attention' | 'ffn', label: string, sublayers: SublayerBox[]): BlockView => {
      const adapter = card(layer, id);
      const kind = adapterSites.get(id);
      return {
        id,
        label,
        sublayers,
        norm,
        preNorm: preNorm(id),
        adapter: adapter && adapter.kind !== 'parallel' ? adapter : undefined,
        parallel: adapter && adapter.kind === 'parallel' ? adapter : undefined,
        emptySlot: !adapter && isLeftOut && kind ? (kind === 'parallel' ? 'parallel' : 'sequential') : undefined,
      };
    };
    const local = arch.attention[layer] === 'local';
    const rotary = arch.positions === 'rotary' ? ', rotary Q, K' : '';
    const scope = local
      ? `, local: ±${Math.floor((arch.window ?? 0) / 2)} tokens`
      : arch.attention.includes('local')
        ? ', global'
        : '';
    const attention = block('attention', local ? 'Multi-head attention (local window)' : 'Multi-head attention', [
      proj('query', 'Q', [d, d]),
      proj('key', 'K', [d, d]),
      proj('value', 'V', [d, d]),
      {
        id: 'attention',
        label: `softmax(QKᵀ/√${d / Math.max(1, p.heads)})·V, ${p.heads} heads${rotary}${scope}`,
        loraEmpty: false,
        trains: false,
      },
      proj('attention_output', 'Output', [d, d]),
    ]);
    const ffn = block(
      'ffn',
      gated ? `Feed-forward, ${arch.feedForward}` : 'Feed-forward',
      gated
        ? [proj('intermediate', `Input ‖ gate, ${arch.feedForward}`, [d, 2 * ff]), proj('output', 'Output', [ff, d])]
        : [proj('intermediate', `Intermediate, ${arch.feedForward}`, [d, ff]), proj('output', 'Output', [ff, d])],
    );
    const sites = p.sites.filter((s) => s.layer === layer);
    const adapterParams = sum(sites.map((s) => s.trainableParams));
    layers.push({
      index: layer,
      leftOut: isLeftOut,
      attention: local ? 'local' : 'global',
      blocks: [attention, ffn],
      adapterParams,
      inferenceParams: sum(sites.map((s) => s.inferenceParams)),
      share: p.baseParams > 0 ? adapterParams / p.baseParams : 0,
      adapterCount: sites.length,
    });
  }

  const groupTotals: GroupTotal[] = Object.entries(groups)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([group, params]) => ({
      group,
      label: GROUP_LABELS[group] ?? group,
      params,
      share: p.baseParams > 0 ? params / p.baseParams : 0,
    }));

  return {
    method: p.method,
    architecture,
    methodLabel: methodLabel(p.method),
    // a pre-LN layer (ModernBERT) has no LayerNorm after its blocks, only the residual Add
    description:
      arch.norm === 'pre'
        ? (METHOD_DESCRIPTIONS[p.method] ?? '').replace('Add & LayerNorm', 'Add')
        : (METHOD_DESCRIPTIONS[p.method] ?? ''),
    layers,
    hiddenSize: d,
    heads: p.heads,
    intermediateSize: ff,
    baseParams: p.baseParams,
    trainableParams: p.trainableParams,
    trainableShare: p.baseParams > 0 ? p.trainableParams / p.baseParams : 0,
    groups: groupTotals,
    adapterParams: sum(p.sites.map((s) => s.trainableParams)),
    inferenceParams: sum(p.sites.map((s) => s.inferenceParams)),
    leftOut: [...p.leftOut].sort((a, b) => a - b),
    headTrains: (groups.head ?? 0) > 0,
    poolerTrains: (groups.pooler ?? 0) > 0 || encoderTrains,
    encoderTrains,
    layerNormsTrain,
    routingStep: routing && Object.keys(routing.sites).length ? routing.step : undefined,
  };
}

/** Runs from before placement.json described the architecture were all BERT. */
const BERT_ARCHITECTURE = (layers: number): DashboardArchitecture => ({
  modelType: 'bert',
  family: 'BERT',
  norm: 'post',
  feedForward: 'GELU',
  biases: true,
  positions: 'absolute',
  attention: Array.from({ length: layers }, () => 'global' as const),
  finalNorm: false,
});

const EMBEDDINGS_TEXT: Record<string, string> = {
  bert: 'Embeddings (token, position, type) + LayerNorm',
  roberta: 'Embeddings (token, position from padding_idx + 1) + LayerNorm',
  'xlm-roberta': 'Embeddings (token, position from padding_idx + 1) + LayerNorm',
  distilbert: 'Embeddings (token, position) + LayerNorm',
  electra: 'Embeddings (token, position, type) + LayerNorm',
  modernbert: 'Token embeddings + LayerNorm',
};

function architectureView(a: DashboardArchitecture): ArchitectureView {
  let embeddingsText = EMBEDDINGS_TEXT[a.modelType] ?? EMBEDDINGS_TEXT.bert!;
  if (a.embeddingSize !== undefined) embeddingsText += `, width ${a.embeddingSize} → projected to the hidden size`;
  if (!a.biases) embeddingsText += ' (no bias)';
  const locals = a.attention.filter((k) => k === 'local').length;
  const facts = [
    a.family,
    a.norm === 'pre' ? 'pre-LayerNorm' : 'post-LayerNorm',
    a.feedForward,
    a.positions === 'rotary' ? 'rotary positions' : 'absolute positions',
    locals ? `${a.attention.length - locals} global and ${locals} local attention layers (window ${a.window})` : '',
    a.biases ? '' : 'no biases',
  ].filter(Boolean);
  return {
    modelType: a.modelType,
    family: a.family,
    norm: a.norm,
    feedForward: a.feedForward,
    biases: a.biases,
    positions: a.positions,
    embeddingsText,
    finalNorm: a.finalNorm,
    summary: facts.join(' · '),
  };
}

export function adapterCard(s: PlacementSite, routing?: RoutingCounts): AdapterCard {
  const key = `${s.layer}.${s.site}`;
  const weights: WeightShape[] = [];
  let experts: ExpertsView | undefined;
  if (s.kind === 'adamix') {
    const downs = s.experts?.down ?? 1;
    const ups = s.experts?.up ?? 1;
    const counts = routing?.sites[key];
    const many = Math.max(downs, ups);
    experts = {
      down: bars(downs, counts?.down),
      up: bars(ups, counts?.up),
      sharedDown: downs === 1 && many > 1,
      sharedUp: ups === 1 && many > 1,
      routedAtStep: counts ? routing?.step : undefined,
    };
    for (const [name, shape] of Object.entries(s.shapes)) {
      const copies = name === 'down' ? downs : name === 'up' ? ups : 1;
      weights.push({ name, shape, copies, shared: copies === 1 && many > 1 });
    }
  } else {
    for (const [name, shape] of Object.entries(s.shapes)) weights.push({ name, shape, copies: 1, shared: false });
  }
  const m = s.bottleneck;
  const r = s.rank;
  const expertCount = experts ? Math.max(experts.down.length, experts.up.length) : 0;
  const title =
    s.kind === 'lora'
      ? 'LoRA'
      : s.kind === 'adamix'
        ? `AdaMix · ${expertCount} experts`
        : s.kind === 'parallel'
          ? 'Parallel adapter'
          : 'Bottleneck adapter';
  const sizeText = r !== undefined ? `r = ${r}` : m !== undefined ? `m = ${m}` : '';
  const lines = [
    `${title}, layer ${s.layer}, ${SITE_TEXT[s.site]}${s.kind === 'parallel' ? ' (beside the sublayer, reading its input)' : ''}`,
    ...weights.map((w) => {
      const biasNote = s.kind === 'lora' ? '' : ` + bias [${w.shape[w.shape.length - 1]}]`;
      const copies = w.copies > 1 ? ` × ${w.copies} experts` : w.shared ? ' (shared by every expert)' : '';
      return `  ${w.name}: [${formatShape(w.shape)}]${biasNote}${copies}`;
    }),
    s.activation ? `  activation: ${s.activation}` : '',
    `  trainable: ${formatCount(s.trainableParams)} parameters`,
    s.kind === 'adamix'
      ? `  inference: ${formatCount(s.inferenceParams)} parameters (one merged adapter: the experts' weights averaged)`
      : '',
  ].filter(Boolean);
  if (experts?.routedAtStep !== undefined) {
    const fmt = (b: readonly ExpertBar[]) =>
      b.map((e) => `${e.count} (${e.share === undefined ? '–' : formatPercent(e.share)})`).join(', ');
    lines.push(`  routed up to step ${experts.routedAtStep}: down ${fmt(experts.down)}; up ${fmt(experts.up)}`);
  }
  return {
    key,
    layer: s.layer,
    site: s.site,
    kind: s.kind,
    title,
    sizeText,
    bottleneck: m,
    rank: r,
    activation: s.activation,
    weights,
    experts,
    trainableParams: s.trainableParams,
    inferenceParams: s.inferenceParams,
    merged: s.kind === 'adamix',
    tooltip: lines.join('\n'),
  };
}

function bars(n: number, counts?: readonly number[]): ExpertBar[] {
  const valid = counts && counts.length === n ? counts : undefined;
  const total = valid ? sum(valid) : 0;
  return Array.from({ length: n }, (_, index) => {
    const count = valid?.[index] ?? 0;
    return { index, count, share: total > 0 ? count / total : undefined };
  });
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/** One-line parameter summary, e.g. "100.7K trainable (2.30% of 4.39M)". */
export function trainableSummary(v: PlacementView): string {
  return `${formatCountCompact(v.trainableParams)} trainable (${formatPercent(v.trainableShare)} of ${formatCountCompact(v.baseParams)})`;
}
