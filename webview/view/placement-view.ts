/**
 * The placement diagram: one row per encoder layer, its sublayers in forward order, the adapters
 * where the method puts them, and the parameter counts. Built from buildPlacementView.
 */
import type { AdapterCard, BlockView, ExpertBar, LayerRow, PlacementView, SublayerBox } from '../model/placement';
import { formatCount, formatCountCompact, formatPercent } from '../../src/protocol/format';
import { h, icon } from './dom';

export function renderPlacement(view: PlacementView): HTMLElement {
  return h(
    'div',
    {
      class: 'placement',
      'data-method': view.method,
      'data-family': view.architecture.modelType,
      'data-norm': view.architecture.norm,
    },
    renderTotals(view),
    h(
      'div',
      { class: 'layers', role: 'list' },
      renderEmbeddings(view),
      view.layers.map((row) => renderLayer(row, view)),
      view.architecture.finalNorm ? renderFinalNorm(view) : null,
      renderHead(view),
    ),
    renderLegend(view),
  );
}

function renderTotals(v: PlacementView): HTMLElement {
  const adamix = v.method === 'adamix';
  return h(
    'div',
    { class: 'placement-totals' },
    h(
      'div',
      { class: 'total-main' },
      h(
        'span',
        {
          class: 'total-number',
          'data-total': v.trainableParams,
          title: `${formatCount(v.trainableParams)} trainable parameters`,
        },
        formatCountCompact(v.trainableParams),
      ),
      h('span', null, ' trainable of '),
      h(
        'span',
        { title: `${formatCount(v.baseParams)} parameters in the base encoder (embeddings, layers, pooler)` },
        formatCountCompact(v.baseParams),
      ),
      h('span', null, ' base parameters '),
      h('span', { class: 'share-badge', 'data-share': v.trainableShare }, formatPercent(v.trainableShare)),
    ),
    h(
      'div',
      { class: 'total-groups' },
      v.groups.map((g) =>
        h(
          'span',
          { class: 'group', title: `${formatCount(g.params)} (${formatPercent(g.share)} of base)` },
          h('b', null, g.label),
          ` ${formatCountCompact(g.params)}`,
        ),
      ),
    ),
    adamix
      ? h(
          'div',
          { class: 'total-merged' },
          icon('merge'),
          ` Adapters: ${formatCountCompact(v.adapterParams)} while training (all experts), ${formatCountCompact(v.inferenceParams)} at inference (one merged adapter per site).`,
        )
      : null,
    h(
      'p',
      { class: 'method-description' },
      h('b', null, v.methodLabel),
      ` — ${v.description}`,
      v.leftOut.length ? ` Layers left out: ${v.leftOut.join(', ')}.` : '',
    ),
    h(
      'div',
      { class: 'model-shape' },
      `${v.layers.length} layers · hidden ${v.hiddenSize} · ${v.heads} heads · feed-forward ${v.intermediateSize}`,
    ),
    h('div', { class: 'model-architecture', 'data-architecture': v.architecture.modelType }, v.architecture.summary),
  );
}

function renderEmbeddings(v: PlacementView): HTMLElement {
  return h(
    'div',
    { class: 'layer-row edge-row', role: 'listitem' },
    h('div', { class: 'layer-label' }, 'Input'),
    h(
      'div',
      { class: 'layer-blocks' },
      h(
        'div',
        { class: `box wide${v.encoderTrains ? ' trains' : ''}`, 'data-part': 'embeddings' },
        v.architecture.embeddingsText,
        v.encoderTrains ? '' : h('span', { class: 'frozen' }, ' · frozen'),
      ),
    ),
  );
}

/** ModernBERT's LayerNorm after the last layer (it trains with the layers' norms under adapter methods). */
function renderFinalNorm(v: PlacementView): HTMLElement {
  return h(
    'div',
    { class: 'layer-row edge-row', role: 'listitem' },
    h('div', { class: 'layer-label' }, 'Output'),
    h(
      'div',
      { class: 'layer-blocks' },
      h(
        'div',
        { class: `box wide norm${v.layerNormsTrain ? ' trains' : ''}`, 'data-part': 'final-norm' },
        v.architecture.biases ? 'Final LayerNorm' : 'Final LayerNorm (no bias)',
      ),
    ),
  );
}

function renderHead(v: PlacementView): HTMLElement {
  const trains = v.headTrains || v.poolerTrains;
  return h(
    'div',
    { class: 'layer-row edge-row', role: 'listitem' },
    h('div', { class: 'layer-label' }, 'Head'),
    h(
      'div',
      { class: 'layer-blocks' },
      h(
        'div',
        { class: `box wide${v.poolerTrains ? ' trains' : ''}`, 'data-part': 'pooler' },
        'Pooler (dense + tanh on [CLS])',
      ),
      h('div', { class: 'arrow' }, '→'),
      h('div', { class: `box wide${v.headTrains ? ' trains' : ''}`, 'data-part': 'classifier' }, 'Classifier'),
    ),
    h('div', { class: 'layer-total' }, trains ? h('span', { class: 'trains-note' }, 'trains') : null),
  );
}

function renderLayer(row: LayerRow, v: PlacementView): HTMLElement {
  return h(
    'div',
    {
      class: `layer-row${row.leftOut ? ' left-out' : ''}`,
      role: 'listitem',
      'data-layer': row.index,
      'data-attention': row.attention,
      'data-left-out': row.leftOut ? 'true' : undefined,
      'data-adapters': row.adapterCount,
    },
    h(
      'div',
      { class: 'layer-label' },
      `Layer ${row.index}`,
      row.leftOut ? h('span', { class: 'left-out-note' }, 'left out') : null,
    ),
    h(
      'div',
      { class: 'layer-blocks' },
      row.blocks.map((b) => renderBlock(b, row)),
    ),
    h(
      'div',
      {
        class: 'layer-total',
        'data-params': row.adapterParams,
        title: `${formatCount(row.adapterParams)} adapter parameters in layer ${row.index} (${formatPercent(row.share)} of the base model)${v.method === 'adamix' ? `; ${formatCount(row.inferenceParams)} at inference` : ''}`,
      },
      row.adapterParams ? h('b', null, formatCountCompact(row.adapterParams)) : h('span', { class: 'muted' }, '0'),
      h('span', { class: 'muted' }, row.adapterParams ? formatPercent(row.share) : ''),
    ),
  );
}

function renderBlock(b: BlockView, row: LayerRow): HTMLElement {
  const body = h(
    'div',
    { class: 'block-body' },
    h('div', { class: 'block-title' }, b.label),
    h(
      'div',
      { class: 'sublayers' },
      groupQkv(b.sublayers).map((part, i) => [
        i > 0 ? h('span', { class: 'arrow small' }, '→') : null,
        Array.isArray(part) ? h('div', { class: 'qkv' }, part.map(renderSublayer)) : renderSublayer(part),
      ]),
    ),
  );
  if (b.parallel || b.emptySlot === 'parallel') {
    body.appendChild(
      h(
        'div',
        { class: 'parallel-lane' },
        h(
          'span',
          { class: 'lane-note', title: 'reads the block input; its scaled output joins the block output' },
          '∥ beside:',
        ),
        b.parallel ? renderAdapter(b.parallel) : renderEmptySlot(row),
      ),
    );
  }
  return h(
    'div',
    { class: 'block', 'data-block': b.id },
    b.preNorm ? [renderPreNorm(b.preNorm), h('span', { class: 'arrow' }, '→')] : null,
    body,
    b.adapter || b.emptySlot === 'sequential'
      ? [h('span', { class: 'arrow' }, '→'), b.adapter ? renderAdapter(b.adapter) : renderEmptySlot(row)]
      : null,
    h('span', { class: 'arrow' }, '→'),
    renderNorm(b.norm),
  );
}

/** Q, K and V stacked in one column (they read the same input), the other sublayers one by one. */
function groupQkv(subs: readonly SublayerBox[]): (SublayerBox | SublayerBox[])[] {
  const qkv = subs.filter((s) => s.id === 'query' || s.id === 'key' || s.id === 'value');
  const rest = subs.filter((s) => !qkv.includes(s));
  return qkv.length ? [qkv, ...rest] : rest;
}

function renderSublayer(s: SublayerBox): HTMLElement {
  const projection = s.id !== 'attention' && s.id !== 'add_norm';
  return h(
    'div',
    {
      class: `box sublayer${projection ? ' projection' : ''}${s.trains ? ' trains' : ''}${s.lora ? ' has-lora' : ''}`,
      'data-sublayer': s.id,
      title: s.shape ? `${s.label} projection, weight [${s.shape}]${s.trains ? ', trains' : ', frozen'}` : s.label,
    },
    h('span', { class: 'box-label' }, s.id === 'attention' ? 'Attention' : s.label),
    s.lora
      ? renderLora(s.lora)
      : s.loraEmpty
        ? h('div', { class: 'lora empty-slot', title: 'layer left out: no LoRA here' }, 'LoRA —')
        : null,
  );
}

function renderNorm(s: SublayerBox): HTMLElement {
  if (s.id === 'add')
    return h(
      'div',
      {
        class: 'box norm residual',
        'data-sublayer': 'add',
        title: 'Residual Add: the block output joins its input (no LayerNorm after the block in a pre-LN layer)',
      },
      'Add',
    );
  return h(
    'div',
    {
      class: `box norm${s.trains ? ' trains' : ''}`,
      'data-sublayer': 'add_norm',
      title: `${s.label}${s.trains ? ' (its scale and bias train)' : ' (frozen)'}`,
    },
    'Add &',
    h('br'),
    'Norm',
  );
}

function renderPreNorm(s: SublayerBox): HTMLElement {
  return h(
    'div',
    {
      class: `box norm${s.trains ? ' trains' : ''}`,
      'data-sublayer': 'pre_norm',
      title: `${s.label} before the block (pre-LN)${s.trains ? ', its scale trains' : ' (frozen)'}`,
    },
    s.label.replace(' (no bias)', ''),
    h('br'),
    s.label.includes('no bias') ? h('span', { class: 'muted' }, 'no bias') : null,
  );
}

function renderLora(a: AdapterCard): HTMLElement {
  return h(
    'div',
    {
      class: 'lora adapter',
      'data-kind': 'lora',
      'data-site': a.site,
      'data-params': a.trainableParams,
      title: a.tooltip,
    },
    `LoRA ${a.sizeText}`,
    h('span', { class: 'muted' }, ` ${formatCountCompact(a.trainableParams)}`),
  );
}

function renderEmptySlot(row: LayerRow): HTMLElement {
  return h(
    'div',
    { class: 'adapter empty-slot', 'data-kind': 'empty', title: `Layer ${row.index} is left out: no adapter here` },
    'no adapter',
  );
}

function renderAdapter(a: AdapterCard): HTMLElement {
  return h(
    'div',
    {
      class: 'adapter',
      'data-kind': a.kind,
      'data-site': a.site,
      'data-params': a.trainableParams,
      title: a.tooltip,
      tabindex: 0,
    },
    h(
      'div',
      { class: 'adapter-title' },
      icon(a.kind === 'adamix' ? 'layers' : a.kind === 'parallel' ? 'split-horizontal' : 'symbol-interface'),
      ` ${a.title}`,
    ),
    h(
      'div',
      { class: 'adapter-size' },
      [a.sizeText, a.activation, `${formatCountCompact(a.trainableParams)} params`].filter(Boolean).join(' · '),
    ),
    a.experts ? renderExperts(a) : null,
    a.merged
      ? h(
          'div',
          { class: 'merged', title: 'Inference uses one adapter: the experts\u2019 weights averaged' },
          icon('merge'),
          ` merged: ${formatCountCompact(a.inferenceParams)}`,
        )
      : null,
  );
}

function renderExperts(a: AdapterCard): HTMLElement {
  const e = a.experts!;
  const row = (name: string, bars: readonly ExpertBar[], shared: boolean, max: number) =>
    h(
      'div',
      { class: 'expert-row', 'data-projection': name },
      h('span', { class: 'expert-name' }, name),
      h(
        'div',
        { class: 'expert-bars' },
        bars.map((b) => renderBar(b, name, shared, max)),
      ),
      shared
        ? h('span', { class: 'shared-badge', title: `one ${name}-projection shared by every expert` }, 'shared')
        : null,
    );
  // bars are scaled to the most-routed expert of their row (the labels give the shares)
  const max = (bars: readonly ExpertBar[]) => Math.max(0, ...bars.map((b) => b.share ?? 0));
  return h(
    'div',
    { class: 'experts', 'data-routed-at': e.routedAtStep },
    row('down', e.down, e.sharedDown, max(e.down)),
    row('up', e.up, e.sharedUp, max(e.up)),
  );
}

function renderBar(b: ExpertBar, name: string, shared: boolean, max: number): HTMLElement {
  const share = b.share;
  const bar = h('span', { class: 'bar-fill' });
  // height through the CSSOM (allowed by the CSP, unlike a style attribute)
  bar.style.height = `${share === undefined || max <= 0 ? 0 : Math.max(6, Math.round((100 * share) / max))}%`;
  const label = share === undefined ? '–' : shared ? '' : formatPercent(share).replace(/\.\d+%$/, '%');
  return h(
    'span',
    {
      class: 'expert-bar',
      'data-expert': b.index,
      'data-count': b.count,
      title: `${name} expert ${b.index + 1}${shared ? ' (shared)' : ''}: routed ${formatCount(b.count)} times${share !== undefined ? ` (${formatPercent(share)})` : ' (no routing recorded yet)'}`,
    },
    h('span', { class: 'bar-track' }, bar),
    h('span', { class: 'bar-label' }, label),
  );
}

function renderLegend(v: PlacementView): HTMLElement {
  return h(
    'div',
    { class: 'placement-legend' },
    h('span', null, h('span', { class: 'swatch adapter-swatch' }), ' adapter / LoRA'),
    h('span', null, h('span', { class: 'swatch trains-swatch' }), ' trains'),
    h('span', null, h('span', { class: 'swatch frozen-swatch' }), ' frozen'),
    v.leftOut.length ? h('span', null, h('span', { class: 'swatch empty-swatch' }), ' left out (empty)') : null,
    v.method === 'adamix'
      ? h(
          'span',
          null,
          'bars: how often each expert was routed',
          v.routingStep !== undefined ? ` (up to step ${v.routingStep})` : ' (after the first checkpoint)',
        )
      : null,
    v.method === 'adamix'
      ? h('span', null, icon('merge'), ' merged: the one averaged adapter used for inference')
      : null,
    h('span', { class: 'muted' }, 'Hover a box for exact shapes.'),
  );
}
