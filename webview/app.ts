/**
 * The dashboard page: receives validated host messages into a RunStore and draws the header,
 * the summary, the curves and the placement diagram. Re-renders are coalesced into one per
 * animation frame, and a live append only swaps the charts' data and the header.
 *
 * UI state (smoothing, log scale, zoom, the runs shown) goes to the webview state with setState:
 * VS Code keeps it while the panel is hidden (the page itself is discarded: no
 * retainContextWhenHidden) and hands it to the panel serializer after a window reload.
 */
import {
  parseDashboardState,
  parseHostToDashboard,
  type DashboardAction,
  type DashboardToHost,
  type DashboardUiState,
  type HostToDashboard,
} from '../src/protocol/dashboard';
import { buildCharts, buildGroupCharts } from './model/charts';
import { buildPlacementView, trainableSummary } from './model/placement';
import { SmoothingCache, windowForWeight } from './model/series';
import { RunStore } from './model/store';
import { ChartsView } from './view/charts-view';
import { append, clear, h, icon } from './view/dom';
import { FrameScheduler, PartTimings } from './view/frame';
import { renderPlacement } from './view/placement-view';
import {
  renderComparison,
  renderHeaderLive,
  renderRunHeader,
  renderSummary,
  runHeaderKey,
  stateBadge,
} from './view/summary-view';
import { onThemeChange, readTheme, type Theme } from './view/theme';

export interface VsCodeApi {
  postMessage(message: DashboardToHost): void;
  getState(): unknown;
  setState(state: unknown): void;
}

const DEFAULT_UI: DashboardUiState = { smoothing: 0.6, logScale: false };

export class App {
  private readonly store = new RunStore();
  private readonly cache = new SmoothingCache();
  private ui: DashboardUiState;
  private theme: Theme;
  private charts?: ChartsView;
  private readonly frames = new FrameScheduler(() => this.render());
  private dirty = { charts: false, header: false, summary: false, placement: false, layout: false };
  private placementRun = 0;
  private renders = 0;
  private placementKey = '';
  private runDirs: string[] = [];
  /** Milliseconds per part of the last render (read by the benchmark). */
  lastTimings: Record<string, number> = {};
  private chartBuildMs = 0;
  private headerKey = '';

  private readonly headerEl = h('div', { class: 'header-slot' });
  private readonly summaryEl = h('div', { class: 'summary-slot' });
  private readonly placementEl = h('div', { class: 'placement-slot' });
  private readonly chartsSlot = h('div', { class: 'charts-slot' });
  private readonly smoothingValue = h('span', { class: 'smoothing-value' });

  constructor(
    private readonly root: HTMLElement,
    private readonly vscode: VsCodeApi,
  ) {
    const saved = parseDashboardState(vscode.getState());
    this.ui = saved.ok && saved.value.ui ? saved.value.ui : DEFAULT_UI;
    if (saved.ok) {
      this.runDirs = [...saved.value.runDirs];
      this.store.mode = saved.value.mode;
    }
    this.theme = readTheme();
  }

  start(): void {
    window.addEventListener('message', (event: MessageEvent) => this.receive(event.data));
    window.addEventListener('error', (event) => {
      // a layout notice, not an error (Chromium reports it through window.onerror)
      if (/ResizeObserver loop/.test(event.message)) return;
      this.reportError(`${event.message} (${event.filename}:${event.lineno})`);
    });
    window.addEventListener('unhandledrejection', (event) =>
      this.reportError(String((event as PromiseRejectionEvent).reason)),
    );
    onThemeChange(() => {
      this.theme = readTheme();
      this.charts?.setTheme(this.theme);
    });
    this.post({ type: 'ready' });
  }

  /** Handles one message from the host; a malformed one is logged (here and in the host's log) and ignored. */
  receive(data: unknown): void {
    const parsed = parseHostToDashboard(data);
    if (!parsed.ok) {
      console.warn(`PEFT Lab dashboard: ignoring a malformed message: ${parsed.error}`);
      this.post({ type: 'webviewError', message: `ignored a malformed message from the host: ${parsed.error}` });
      return;
    }
    this.apply(parsed.value);
  }

  private apply(message: HostToDashboard): void {
    switch (message.type) {
      case 'snapshot':
        this.store.applySnapshot(message);
        this.cache.clear();
        this.runDirs = this.store.runs.map((r) => r.dir);
        this.saveState();
        this.markAll();
        this.dirty.layout = true;
        break;
      case 'append':
        if (!this.store.applyAppend(message)) return;
        this.dirty.charts = true;
        this.dirty.header = true;
        if (message.evals.length) this.dirty.summary = true;
        break;
      case 'runUpdate':
        if (!this.store.applyUpdate(message)) return;
        this.dirty.header = true;
        this.dirty.summary = true;
        if (message.placement || message.routing) this.dirty.placement = true;
        break;
      case 'resetRun':
        if (!this.store.applyReset(message.run)) return;
        this.cache.clear();
        this.markAll();
        break;
      case 'groups':
        if (this.store.mode !== 'groups') return;
        this.store.groups = message.groups;
        // the bands are new arrays: the EMA starts again (a group is a few runs: cheap)
        this.cache.clear();
        this.dirty.charts = true;
        break;
    }
    this.frames.schedule();
  }

  private markAll(): void {
    this.dirty = { ...this.dirty, charts: true, header: true, summary: true, placement: true };
  }

  /** Draws what changed now (also used by the benchmark to time a render without waiting for a frame). */
  render(): void {
    this.frames.cancel();
    const d = this.dirty;
    this.dirty = { charts: false, header: false, summary: false, placement: false, layout: false };
    const parts = new PartTimings();
    if (d.layout) parts.time('layout', () => this.layout());
    if (d.header) parts.time('header', () => this.renderHeader());
    if (d.summary) parts.time('summary', () => this.renderSummary());
    if (d.charts) {
      parts.time('charts', () => this.renderCharts());
      parts.ms.chartData = this.chartBuildMs;
    }
    if (d.placement) parts.time('placement', () => this.renderPlacementSection());
    this.lastTimings = parts.ms;
    this.renders++;
    document.body.dataset.renders = String(this.renders);
  }

  private layout(): void {
    this.headerKey = '';
    clear(this.headerEl);
    clear(this.root);
    this.root.removeAttribute('aria-busy');
    this.root.classList.toggle('compare', this.store.mode !== 'run');
    document.body.dataset.ready = 'true';
    document.body.dataset.mode = this.store.mode;
    if (!this.store.runs.length) {
      this.root.appendChild(h('p', { class: 'muted' }, 'No run to show.'));
      return;
    }
    this.charts?.dispose();
    this.charts = new ChartsView(
      this.theme,
      this.ui.logScale,
      {
        onZoom: (range) => this.onZoom(range),
        onExport: (chart, format, data) =>
          this.post({ type: 'exportChart', format, name: `${this.exportName()}-${chart}`, data }),
      },
      this.ui.zoom ? [this.ui.zoom[0], this.ui.zoom[1]] : undefined,
    );
    clear(this.chartsSlot);
    this.chartsSlot.appendChild(this.charts.element);
    const compare = this.store.mode !== 'run';
    const summary = this.section('summary', 'info', compare ? 'Runs' : 'Run summary', this.summaryEl);
    this.root.append(
      this.headerEl,
      // in a comparison the runs table comes first: it is the legend of every chart
      ...(compare ? [summary] : []),
      this.section('curves', 'graph-line', 'Curves', this.controls(), this.chartsSlot),
      this.section('placement', 'layers', 'Adapter placement', this.placementEl),
      ...(compare ? [] : [summary]),
    );
  }

  private section(id: string, iconName: string, title: string, ...content: HTMLElement[]): HTMLElement {
    const collapsed = this.ui.collapsed?.includes(id) ?? false;
    const details = h(
      'details',
      { class: `section section-${id}`, 'data-section': id, open: !collapsed },
      h('summary', null, icon(iconName), h('h2', null, title)),
      ...content,
    );
    details.addEventListener('toggle', () => {
      const set = new Set(this.ui.collapsed ?? []);
      if ((details as HTMLDetailsElement).open) set.delete(id);
      else set.add(id);
      this.ui = { ...this.ui, collapsed: [...set] };
      this.saveState();
    });
    return details;
  }

  private controls(): HTMLElement {
    const slider = h('input', {
      type: 'range',
      min: 0,
      max: 0.99,
      step: 0.01,
      value: this.ui.smoothing,
      'aria-label': 'Smoothing',
      class: 'smoothing-slider',
    }) as HTMLInputElement;
    this.smoothingValue.textContent = this.ui.smoothing.toFixed(2);
    slider.addEventListener('input', () => {
      const value = Math.min(0.99, Math.max(0, Number(slider.value)));
      this.smoothingValue.textContent = value.toFixed(2);
      this.ui = { ...this.ui, smoothing: value };
      this.saveState();
      this.dirty.charts = true;
      this.frames.schedule();
    });
    const kinds: [string, string][] = [
      ['ema', 'EMA (TensorBoard)'],
      ['moving', 'Moving average'],
      ['none', 'None'],
    ];
    const smoother = h(
      'vscode-single-select',
      {
        class: 'smoother-select',
        'aria-label': 'Smoothing method',
        title:
          "EMA: TensorBoard's debiased exponential moving average. Moving average: a trailing window of 2 / (1 - w) - 1 steps. The raw curve stays drawn, faint.",
      },
      kinds.map(([v, text]) => h('vscode-option', { value: v, selected: v === (this.ui.smoother ?? 'ema') }, text)),
    );
    const describe = () => {
      const w = this.ui.smoothing;
      this.smoothingValue.textContent =
        this.ui.smoother === 'moving' ? `${w.toFixed(2)} (window ${windowForWeight(w)})` : w.toFixed(2);
    };
    smoother.addEventListener('change', () => {
      this.ui = { ...this.ui, smoother: (smoother as unknown as { value: string }).value as 'ema' | 'moving' | 'none' };
      describe();
      this.saveState();
      this.dirty.charts = true;
      this.frames.schedule();
    });
    describe();
    slider.addEventListener('input', describe);
    const log = h('vscode-checkbox', {
      label: 'Log scale',
      checked: this.ui.logScale,
      class: 'log-toggle',
      title: 'Logarithmic y axis for loss and learning rate',
    });
    log.addEventListener('change', () => {
      const on = (log as unknown as { checked: boolean }).checked;
      this.ui = { ...this.ui, logScale: on };
      this.saveState();
      this.dirty.charts = true;
      this.frames.schedule();
    });
    const bandKinds: [string, string][] = [
      ['sd', 'Band: ±1 sd'],
      ['minmax', 'Band: min–max'],
    ];
    const band = h(
      'vscode-single-select',
      {
        class: 'band-select',
        'aria-label': "Band around each group's mean",
        title:
          "Around each group's mean: ±1 sample sd over its runs, or their min to max, at each step (over the runs that logged it: hover for N)",
      },
      bandKinds.map(([v, text]) => h('vscode-option', { value: v, selected: v === (this.ui.band ?? 'sd') }, text)),
    );
    band.addEventListener('change', () => {
      this.ui = { ...this.ui, band: (band as unknown as { value: string }).value === 'minmax' ? 'minmax' : 'sd' };
      this.saveState();
      this.dirty.charts = true;
      this.frames.schedule();
    });
    const reset = h(
      'vscode-button',
      { secondary: true, icon: 'zoom-out', class: 'reset-zoom', title: 'Show every step (or double-click a chart)' },
      'Reset zoom',
    );
    reset.addEventListener('click', () => this.charts?.resetZoom());
    return h(
      'div',
      { class: 'chart-controls' },
      h('label', { class: 'smoothing' }, h('span', null, 'Smoothing'), smoother, slider, this.smoothingValue),
      this.store.mode === 'groups' ? band : null,
      log,
      reset,
      h('span', { class: 'muted hint' }, 'Drag across a chart to zoom; hover for values.'),
    );
  }

  private renderHeader(): void {
    const runs = this.store.runs;
    if (this.store.mode !== 'run' || runs.length > 1) {
      this.headerKey = '';
      clear(this.headerEl);
      const groups = this.store.groups.length;
      const title =
        this.store.mode === 'groups'
          ? `${groups === 1 ? this.store.groups[0]!.label : `${groups} groups`}: mean of ${runs.length} runs with a band`
          : `Comparing ${runs.length} runs`;
      this.headerEl.appendChild(
        h(
          'header',
          { class: 'run-header' },
          h(
            'div',
            { class: 'run-title' },
            h('h1', null, title),
            runs.some((r) => r.status.state === 'running')
              ? stateBadge(
                  runs.find((r) => r.status.state === 'running')!,
                  'training',
                )
              : null,
          ),
        ),
      );
      return;
    }
    const run = runs[0];
    if (!run) return;
    const key = runHeaderKey(run);
    const live = this.headerEl.querySelector('.header-live');
    if (key === this.headerKey && live) {
      // a new step: the progress and the numbers only (no new buttons to lay out)
      clear(live);
      append(live, renderHeaderLive(run));
      return;
    }
    this.headerKey = key;
    clear(this.headerEl);
    this.headerEl.appendChild(renderRunHeader(run, (a, d) => this.action(a, d)));
  }

  private renderSummary(): void {
    clear(this.summaryEl);
    const runs = this.store.runs;
    // a group's runs wear their group's colour (the curves are the groups', not the runs')
    const palette = this.theme.palette;
    const colors =
      this.store.mode === 'groups'
        ? runs.map(
            (r) =>
              palette[
                Math.max(
                  0,
                  this.store.groups.findIndex((g) => g.dirs.includes(r.dir)),
                ) % palette.length
              ]!,
          )
        : palette;
    if (this.store.mode !== 'run' || runs.length > 1)
      this.summaryEl.appendChild(renderComparison(runs, colors, (a, d) => this.action(a, d)));
    else if (runs[0]) this.summaryEl.appendChild(renderSummary(runs[0]));
  }

  private renderCharts(): void {
    if (!this.charts) return;
    const t0 = performance.now();
    const options = {
      smoothing: this.ui.smoothing,
      smoother: this.ui.smoother,
      logScale: this.ui.logScale,
      buckets: this.charts.plotPixels(),
      zoom: this.ui.zoom,
      band: this.ui.band,
    };
    const groups = this.store.mode === 'groups';
    const models = groups
      ? buildGroupCharts(this.store.groups, options, this.cache)
      : buildCharts(this.store.runs, options, this.cache);
    this.chartBuildMs = performance.now() - t0;
    this.charts.update(models, { logScale: this.ui.logScale, compare: groups || this.store.runs.length > 1 });
  }

  private renderPlacementSection(): void {
    const runs = this.store.runs;
    const index = Math.min(this.placementRun, runs.length - 1);
    const run = runs[index];
    const key = run
      ? `${run.dir}\n${run.placement ? 'p' : '-'}\n${run.routing?.step ?? '-'}\n${runs.length}\n${index}`
      : '';
    if (key === this.placementKey) return;
    this.placementKey = key;
    clear(this.placementEl);
    if (runs.length > 1) {
      const select = h(
        'vscode-single-select',
        { class: 'placement-run', 'aria-label': 'Run whose placement is shown' },
        runs.map((r, i) => h('vscode-option', { value: String(i), selected: i === index }, r.name)),
      );
      select.addEventListener('change', () => {
        this.placementRun = Number((select as unknown as { value: string }).value) || 0;
        this.renderPlacementSection();
      });
      this.placementEl.appendChild(h('div', { class: 'placement-picker' }, h('span', null, 'Placement of '), select));
    }
    if (!run) return;
    if (!run.placement) {
      this.placementEl.appendChild(
        h('p', { class: 'muted' }, 'placement.json is not written yet: it appears when the run starts.'),
      );
      return;
    }
    const view = buildPlacementView(run.placement, run.routing);
    this.placementEl.dataset.summary = trainableSummary(view);
    this.placementEl.appendChild(renderPlacement(view));
  }

  private onZoom(range: [number, number] | undefined): void {
    this.ui = { ...this.ui, zoom: range };
    this.saveState();
    // decimation follows the zoom: full detail inside the new range
    this.dirty.charts = true;
    this.frames.schedule();
  }

  private action(action: DashboardAction, dir: string): void {
    this.post({ type: 'action', action, dir });
  }

  private saveState(): void {
    if (!this.runDirs.length) return;
    const groups =
      this.store.mode === 'groups' ? { groups: this.store.groups.map((g) => ({ label: g.label, dirs: g.dirs })) } : {};
    this.vscode.setState({ version: 1, runDirs: this.runDirs, mode: this.store.mode, ...groups, ui: this.ui });
  }

  private reportError(message: string): void {
    this.post({ type: 'webviewError', message });
  }

  /** The exported file's name: the run's, or `comparison` for several. */
  private exportName(): string {
    const runs = this.store.runs;
    if (this.store.mode === 'groups') return this.store.groups.length === 1 ? 'group' : 'groups';
    return runs.length === 1 ? runs[0]!.name : 'comparison';
  }

  private post(message: DashboardToHost): void {
    this.vscode.postMessage(message);
  }
}
