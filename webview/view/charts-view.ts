/**
 * The curves, drawn with uPlot (canvas; a linear path through 100,000 points is built in one pass
 * and uPlot already merges points that land on the same pixel column).
 *
 * - hover: a synced cursor across the three charts; each chart's legend reads out its values
 * - zoom: drag across a chart to zoom every chart to those steps; double-click to reset
 * - smoothing and log scale come from the controls (ChartOptions)
 * - live: `update` swaps the data in place (no rebuild) unless the set of series changed
 */
import uPlot from 'uplot';
import { bandPath, chartCsv, chartSvg } from '../model/chart-export';
import type { ChartBand, ChartModel, SeriesSpec } from '../model/charts';
import { formatCount, formatMetricValue } from '../../src/protocol/format';
import { formatTick } from '../model/format';
import { h } from './dom';
import { withAlpha, type Theme } from './theme';

const HEIGHT = 210;
/** How opaque a group's band is over the background (its mean line is drawn solid). */
const BAND_ALPHA = 0.22;
const SYNC_KEY = 'peft-lab-dashboard';

interface ChartEntry {
  model: ChartModel;
  wrapper: HTMLElement;
  target: HTMLElement;
  empty: HTMLElement;
  plot?: uPlot;
  signature: string;
}

export interface ChartsViewEvents {
  /** The user zoomed (steps) or reset the zoom (undefined). */
  onZoom(range: [number, number] | undefined): void;
  /** The user asked to save a chart: its file contents (SVG, CSV text or a PNG data URL). */
  onExport?(chart: string, format: 'svg' | 'png' | 'csv', data: string): void;
}

export class ChartsView {
  readonly element: HTMLElement;
  private readonly entries = new Map<string, ChartEntry>();
  private zoom: [number, number] | undefined;
  private syncing = false;
  private readonly resize: ResizeObserver;

  private compare = false;
  private fitFrame = 0;
  /** The charts' container width as the ResizeObserver last saw it (reading clientWidth would force a layout). */
  private width = 0;
  private xExtent: [number, number] | undefined;

  constructor(
    private theme: Theme,
    private logScale: boolean,
    private readonly events: ChartsViewEvents,
    zoom?: [number, number],
  ) {
    this.element = h('div', { class: 'charts' });
    this.zoom = zoom;
    // resizing a chart inside the observer's callback would re-trigger it: wait for the next frame
    this.resize = new ResizeObserver((entries) => {
      this.width = entries[0]?.contentRect.width ?? this.width;
      if (!this.fitFrame) this.fitFrame = requestAnimationFrame(() => ((this.fitFrame = 0), this.fit()));
    });
    this.resize.observe(this.element);
  }

  setTheme(theme: Theme): void {
    this.theme = theme;
    for (const e of this.entries.values()) this.rebuild(e);
  }

  /** Device pixels across one plot: how many min/max buckets are worth drawing. */
  plotPixels(): number {
    if (!this.width) this.width = this.element.clientWidth || 900;
    // up to three charts side by side (.charts grid, 300px minimum each)
    const columns = Math.max(1, Math.min(3, Math.floor((this.width + 20) / 320)));
    const css = (this.width - 20 * (columns - 1)) / columns - 60;
    return Math.max(200, Math.round(css * Math.min(2, window.devicePixelRatio || 1)));
  }

  get zoomRange(): [number, number] | undefined {
    return this.zoom;
  }

  resetZoom(): void {
    if (!this.zoom) return;
    this.zoom = undefined;
    for (const e of this.entries.values()) if (e.plot) this.setData(e);
    this.events.onZoom(undefined);
  }

  /** Shows these charts: new data in place, or a new uPlot where the series changed. */
  update(models: readonly ChartModel[], options: { logScale: boolean; compare: boolean }): void {
    this.logScale = options.logScale;
    this.compare = options.compare;
    // every chart spans the same steps (the metric chart's few evaluations too), so they line up
    const firsts = models.filter((m) => m.x.length).map((m) => m.x[0]!);
    const lasts = models.filter((m) => m.x.length).map((m) => m.x[m.x.length - 1]!);
    this.xExtent = firsts.length ? [Math.min(...firsts), Math.max(...lasts)] : undefined;
    for (const model of models) {
      let entry = this.entries.get(model.id);
      if (!entry) {
        const target = h('div', { class: 'chart-canvas' });
        const empty = h(
          'div',
          { class: 'chart-empty' },
          model.id === 'metric'
            ? 'No validation yet: metrics appear after the first evaluation.'
            : 'No steps logged yet.',
        );
        const id = model.id;
        const buttons = (['svg', 'png', 'csv'] as const).map((format) => {
          const b = h(
            'button',
            {
              class: `chart-export export-${format}`,
              title: `Save the ${model.title.toLowerCase()} chart as ${format.toUpperCase()}`,
              'data-format': format,
            },
            format.toUpperCase(),
          );
          b.addEventListener('click', () => {
            const data = this.exportData(id, format);
            if (data) this.events.onExport?.(id, format, data);
          });
          return b;
        });
        const wrapper = h(
          'section',
          { class: 'chart', 'data-chart': model.id, 'aria-label': model.title },
          h('h3', null, model.title, h('span', { class: 'chart-exports' }, ...buttons)),
          target,
          empty,
        );
        this.element.appendChild(wrapper);
        entry = { model, wrapper, target, empty, signature: '' };
        this.entries.set(model.id, entry);
      }
      entry.model = model;
      entry.wrapper.dataset.points = String(model.points);
      entry.wrapper.dataset.steps = String(model.x.length);
      entry.wrapper.dataset.series = String(model.series.length);
      entry.wrapper.classList.toggle('is-empty', model.x.length === 0);
      const signature = this.signatureOf(model);
      if (!entry.plot || signature !== entry.signature) this.rebuild(entry);
      else this.setData(entry);
    }
  }

  /** A chart's file: SVG from its data in the chart's colours, CSV of every series, PNG of the drawn canvas on the editor's background. */
  exportData(id: string, format: 'svg' | 'png' | 'csv'): string | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (format === 'csv') return chartCsv(e.model);
    const t = this.theme;
    if (format === 'svg') {
      const colors = e.model.series.map((s) => t.palette[(this.compare ? s.run : s.metric) % t.palette.length]!);
      return chartSvg(e.model, {
        colors,
        background: t.background,
        foreground: t.foreground,
        grid: t.grid,
        font: t.font,
        logScale: this.logScale && e.model.logCapable,
        bandAlpha: BAND_ALPHA,
      });
    }
    const source = e.plot?.ctx.canvas;
    if (!source) return undefined;
    const canvas = document.createElement('canvas');
    canvas.width = source.width;
    canvas.height = source.height;
    const ctx = canvas.getContext('2d')!;
    ctx.fillStyle = t.background;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    // the bands are an SVG layer, not on uPlot's canvas: paint their paths first, the lines over them
    const bands = e.plot?.under.querySelectorAll<SVGPathElement>('svg.band-layer path.band') ?? [];
    if (bands.length && e.plot) {
      ctx.save();
      ctx.translate(e.plot.bbox.left, e.plot.bbox.top);
      ctx.scale(uPlot.pxRatio, uPlot.pxRatio);
      for (const b of bands) {
        ctx.fillStyle = b.getAttribute('fill') ?? t.foreground;
        ctx.fill(new Path2D(b.getAttribute('d') ?? ''));
      }
      ctx.restore();
    }
    ctx.drawImage(source, 0, 0);
    return canvas.toDataURL('image/png');
  }

  private setData(e: ChartEntry): void {
    const plot = e.plot!;
    const data = [e.model.x, ...e.model.ys] as uPlot.AlignedData;
    const range = this.xRange();
    plot.batch(() => {
      plot.setData(data, true);
      if (range) plot.setScale('x', range);
    });
  }

  /** The zoom, else the steps of all charts together (so a chart with one evaluation lines up with the others). */
  private xRange(): { min: number; max: number } | undefined {
    if (this.zoom) return { min: this.zoom[0], max: this.zoom[1] };
    const e = this.xExtent;
    if (!e) return undefined;
    return e[0] === e[1] ? { min: e[0] - 1, max: e[1] + 1 } : { min: e[0], max: e[1] };
  }

  private rebuild(e: ChartEntry): void {
    e.plot?.destroy();
    e.signature = this.signatureOf(e.model);
    const width = Math.max(240, e.target.clientWidth || this.element.clientWidth || 600);
    const plot = new uPlot(this.options(e.model, width), [e.model.x, ...e.model.ys] as uPlot.AlignedData, e.target);
    e.plot = plot;
    // in a comparison the raw lines stay out of the legend (the smoothed line's row toggles both)
    const rows = plot.root.querySelectorAll('.u-legend .u-series');
    e.model.series.forEach((s, i) => {
      rows[i + 1]?.classList.toggle('raw-row', s.role === 'raw');
      rows[i + 1]?.classList.toggle('edge-row', s.role === 'edge');
      rows[i + 1]?.classList.toggle(
        'mean-row',
        s.role === 'mean' || (s.role === 'eval' && e.model.bands?.some((b) => b.series === i) === true),
      );
    });
    const range = this.xRange();
    if (range) plot.setScale('x', range);
  }

  private options(model: ChartModel, width: number): uPlot.Options {
    const t = this.theme;
    const log = this.logScale && model.logCapable;
    const axis = (scale: string): uPlot.Axis => ({
      scale,
      stroke: t.muted,
      font: t.font,
      grid: { stroke: t.grid, width: 1 },
      ticks: { stroke: t.grid, width: 1, size: 4 },
      values: (_u, splits) => splits.map((v) => (v === null || v === undefined ? '' : formatTick(v))),
      size: scale === 'y' ? 58 : 34,
    });
    return {
      width,
      height: HEIGHT,
      pxAlign: false,
      scales: {
        x: { time: false },
        y: log ? { distr: 3, log: 10 } : { distr: 1 },
      },
      series: [
        { label: 'step', value: (_u, v) => (v === null || v === undefined ? '–' : formatCount(v)) },
        ...model.series.map((s, i) =>
          this.seriesOptions(
            s,
            model.bands?.some((b) => b.series === i)
              ? () => this.entries.get(model.id)?.model.bands?.find((b) => b.series === i)
              : undefined,
          ),
        ),
      ],
      axes: [axis('x'), axis('y')],
      legend: { live: true },
      cursor: {
        sync: { key: SYNC_KEY, setSeries: false },
        drag: { x: true, y: false, setScale: false },
        points: { size: 7 },
        bind: {
          dblclick: () => () => {
            this.resetZoom();
            return null;
          },
        },
      },
      hooks: {
        setSelect: [(u) => this.onSelect(u)],
        setSeries: [(u, index, opts) => this.onSeriesToggle(model, u, index, opts)],
        ...(model.bands?.length ? { draw: [(u: uPlot) => this.drawBands(u, model.id)] } : {}),
      },
    };
  }

  /** `bandOf`: a group's mean series reads its band from the chart's current model (appends and the band kind change it in place). */
  private seriesOptions(s: SeriesSpec, bandOf?: () => ChartBand | undefined): uPlot.Series {
    const t = this.theme;
    const base = t.palette[(this.compare ? s.run : s.metric) % t.palette.length]!;
    // a group's mean reads out its spread and how many runs it stands on at the hovered step
    const value = bandOf
      ? (_u: uPlot, v: number | null, _s: number, i: number | null) => {
          const band = bandOf();
          if (!band || v === null || i === null || i === undefined) return formatMetricValue(v);
          const spread =
            band.kind === 'minmax'
              ? ` [${formatMetricValue(band.min[i])}, ${formatMetricValue(band.max[i])}]`
              : ` ± ${formatMetricValue(band.sd[i])}`;
          return band.n[i] === null ? formatMetricValue(v) : `${formatMetricValue(v)}${spread} (N = ${band.n[i]})`;
        }
      : (_u: uPlot, v: number | null) => formatMetricValue(v);
    switch (s.role) {
      case 'edge':
        // drawn as the band (drawBands); a series only so the y axis spans it
        return { label: s.label, stroke: 'transparent', width: 0, points: { show: false }, spanGaps: true };
      case 'mean':
        return { label: s.label, stroke: base, width: t.lineWidth + 0.5, points: { show: false }, value };
      case 'raw':
        return { label: s.label, stroke: withAlpha(base, t.rawAlpha), width: 1, points: { show: false }, value };
      case 'smoothed':
      case 'line':
        return { label: s.label, stroke: base, width: t.lineWidth, points: { show: false }, value };
      case 'eval':
        return {
          label: s.label,
          stroke: base,
          width: t.lineWidth,
          dash: [5, 4],
          spanGaps: true,
          points: { show: true, size: 6, fill: base, stroke: base },
          value,
        };
    }
  }

  /**
   * A group's band as an SVG path under the plot's lines (in uPlot's under-layer, so it zooms and
   * resizes with the plot): the upper edge left to right, the lower edge back, in the group's colour.
   */
  private drawBands(u: uPlot, id: string): void {
    const entry = this.entries.get(id);
    const bands = entry?.model.bands ?? [];
    let layer = u.under.querySelector<SVGSVGElement>('svg.band-layer');
    if (!layer) {
      layer = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      layer.setAttribute('class', 'band-layer');
      u.under.appendChild(layer);
    }
    layer.setAttribute('width', String(u.over.clientWidth || u.bbox.width / uPlot.pxRatio));
    layer.setAttribute('height', String(u.over.clientHeight || u.bbox.height / uPlot.pxRatio));
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    const model = entry!.model;
    for (const band of bands) {
      if (u.series[band.series + 1]?.show === false) continue;
      const d = bandPath(
        model,
        band,
        (v) => u.valToPos(v, 'x'),
        (v) => u.valToPos(v, 'y'),
      );
      if (!d) continue;
      const color = this.theme.palette[model.series[band.series]!.run % this.theme.palette.length]!;
      const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
      path.setAttribute('class', 'band');
      path.setAttribute('d', d);
      path.setAttribute('fill', withAlpha(color, BAND_ALPHA));
      path.setAttribute('data-series', model.series[band.series]!.label);
      path.setAttribute('data-kind', band.kind);
      layer.appendChild(path);
    }
  }

  private onSelect(u: uPlot): void {
    const sel = u.select;
    if (sel.width < 4) return;
    const min = u.posToVal(sel.left, 'x');
    const max = u.posToVal(sel.left + sel.width, 'x');
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (!(max > min)) return;
    this.zoom = [min, max];
    for (const e of this.entries.values()) e.plot?.setScale('x', { min, max });
    this.events.onZoom(this.zoom);
  }

  /** Toggling a run's smoothed line in a legend toggles its raw line too. */
  private onSeriesToggle(model: ChartModel, u: uPlot, index: number | null, opts: uPlot.Series): void {
    if (this.syncing || index === null || opts.show === undefined) return;
    const spec = model.series[index - 1];
    if (!spec || (spec.role !== 'smoothed' && spec.role !== 'mean')) return;
    const raw = model.series.findIndex((s) => s.run === spec.run && s.role === 'raw');
    if (raw < 0) return;
    this.syncing = true;
    try {
      u.setSeries(raw + 1, { show: opts.show });
    } finally {
      this.syncing = false;
    }
  }

  /** What needs a new uPlot when it changes: the series, the axis type, the colouring. */
  private signatureOf(model: ChartModel): string {
    const log = this.logScale && model.logCapable;
    return `${log}:${this.compare}:${model.series.map((s) => `${s.role}:${s.run}:${s.metric}:${s.label}`).join('|')}`;
  }

  private fit(): void {
    for (const e of this.entries.values()) {
      const width = Math.max(240, e.target.clientWidth);
      if (e.plot && Math.abs(e.plot.width - width) > 1) e.plot.setSize({ width, height: HEIGHT });
    }
  }

  dispose(): void {
    this.resize.disconnect();
    for (const e of this.entries.values()) e.plot?.destroy();
    this.entries.clear();
  }
}
