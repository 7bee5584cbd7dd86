/**
 * The Experiments table page: one row per run of the workspace, kept live by the host's
 * `rows`/`rowsChanged` messages. The rows go through the pure model (webview/model/experiments-table.ts:
 * columns, filter, sort) and are drawn by TableView; the sweep chart shows when runs carry a sweep.
 *
 * The user's choices (sort, filters, columns, sweep axes) are kept with setState: VS Code keeps them
 * while the tab is hidden and hands them to the panel serializer after a window reload. Redraws
 * are coalesced into one per animation frame.
 */
import {
  parseExperimentsState,
  parseHostToExperiments,
  type AnalysisMessage,
  type DiffMessage,
  type ExperimentRow,
  type TableExportFormat,
  type ValueChoice,
  type ExperimentsToHost,
  type ExperimentsUiState,
  type HostToExperiments,
} from '../../src/protocol/experiments';
import {
  buildColumns,
  chooseColumn,
  filterRows,
  nextSort,
  sortRows,
  sweepChart,
  sweepIds,
  sweepParameters,
  visibleColumns,
  type Column,
} from '../model/experiments-table';
import { clear, h } from '../view/dom';
import { FrameScheduler, PartTimings } from '../view/frame';
import { renderSweepChart } from './sweep-view';
import { brushRows, parallelAxes, type ParallelAxis } from '../model/parallel';
import { renderParallel } from './parallel-view';
import { renderDiff, renderGroups, renderImportance } from './analysis-view';
import { standaloneSvg, svgToPng } from './svg-export';
import { TableView, type EditField } from './table-view';

export interface ExperimentsVsCodeApi {
  postMessage(message: ExperimentsToHost): void;
  getState(): unknown;
  setState(state: unknown): void;
}

const GROUP_TITLES: Record<Column['group'], string> = {
  annotation: 'Name, star, note',
  run: 'Run',
  parameter: 'Config parameters',
  metric: 'Metrics',
  training: 'Training',
};

export class ExperimentsApp {
  private rows = new Map<string, ExperimentRow>();
  private ui: ExperimentsUiState;
  private columns: Column[] = [];
  private shown: Column[] = [];
  private view: ExperimentRow[] = [];
  private readonly selected = new Set<string>();
  private received = false;
  private columnsDirty = true;
  /** Bumped on every change of the rows; the sweep chart is drawn again only when it or the chart's choices change. */
  private version = 0;
  private sweepKey = '';
  private readonly frames = new FrameScheduler(() => this.render());
  /** Milliseconds per part of the last render (read by the benchmark). */
  lastTimings: Record<string, number> = {};
  /** Brushed ranges on the parallel coordinates' axes (positions 0..1), by axis id. */
  private readonly brushes = new Map<string, readonly [number, number]>();
  private axes: ParallelAxis[] = [];
  private analysis?: AnalysisMessage;
  private analysisRequest = 0;
  private analysisKey = '';
  private analysisTimer?: ReturnType<typeof setTimeout>;
  private parallelKey = '';
  private parallelFrame = 0;
  /** Milliseconds the last parallel-coordinates drawing took (read by the benchmark). */
  lastParallelMs = 0;
  private diff?: DiffMessage;
  private readonly expanded = new Set<string>();

  private readonly table: TableView;
  private readonly filterField = h('vscode-textfield', {
    class: 'text-filter',
    placeholder: 'Filter runs (every word, any column)',
    'aria-label': 'Filter runs',
  });
  private readonly openButton = h(
    'vscode-button',
    {
      class: 'open-dashboard',
      icon: 'graph-line',
      disabled: true,
      title: 'Open the selected runs in the dashboard, overlaid (Ctrl+Enter)',
    },
    'Open in Dashboard',
  );
  private readonly clearButton = h(
    'vscode-button',
    { class: 'clear-selection', secondary: true, disabled: true },
    'Clear Selection',
  );
  private readonly columnsButton = h(
    'vscode-button',
    {
      class: 'columns-button',
      secondary: true,
      icon: 'list-selection',
      'aria-haspopup': 'true',
      'aria-expanded': 'false',
    },
    'Columns',
  );
  private readonly picker = h('div', {
    class: 'column-picker',
    role: 'dialog',
    'aria-label': 'Choose columns',
    hidden: true,
  });
  private readonly constantBox = h('vscode-checkbox', {
    class: 'show-constant',
    label: 'Constant parameters',
    title: 'Also show the config parameters that are the same in every run',
  });
  private readonly counts = h('span', { class: 'counts', 'aria-live': 'polite' });
  private readonly sweepPanel = h('details', { class: 'sweep-panel', hidden: true, open: true });
  private readonly groupBox = h('vscode-checkbox', {
    class: 'group-toggle',
    label: 'Group seeds',
    title: 'One row per group of runs that differ only in their seed: mean ± sd, N, min and max of each metric',
  });
  private readonly choiceSelect = h(
    'vscode-single-select',
    {
      class: 'value-choice',
      'aria-label': 'Value per run',
      title: "Which value of each run's validation evaluations the groups, importance and exports use",
    },
    ...(['best', 'last', 'min', 'max'] as ValueChoice[]).map((c) =>
      h(
        'vscode-option',
        { value: c },
        { best: 'best checkpoint', last: 'last evaluation', min: 'minimum', max: 'maximum' }[c],
      ),
    ),
  );
  private readonly diffButton = h(
    'vscode-button',
    {
      class: 'diff-button',
      icon: 'diff',
      secondary: true,
      disabled: true,
      title: "Show the selected runs' config differences and metrics side by side",
    },
    'Diff',
  );
  private readonly exportButtons = (['csv', 'markdown', 'latex'] as TableExportFormat[]).map((f) =>
    h(
      'vscode-button',
      {
        class: `export-table export-${f}`,
        secondary: true,
        icon: 'export',
        title: `Export the shown runs (or their groups, mean ± sd) as ${f === 'csv' ? 'CSV' : f === 'markdown' ? 'a Markdown table' : 'a LaTeX table'}`,
      },
      f === 'csv' ? 'CSV' : f === 'markdown' ? 'Markdown' : 'LaTeX',
    ),
  );
  private readonly analysisPanel = h('details', { class: 'analysis-panel', open: true });
  private readonly analysisBody = h('div', { class: 'analysis-body' });
  private readonly metricSelect = h('vscode-single-select', { class: 'analysis-metric', 'aria-label': 'Metric' });
  private readonly parallelHost = h('div', { class: 'parallel-host' });
  private readonly importanceHost = h('div', { class: 'importance-host' });
  private readonly groupView = h('div', { class: 'group-view', hidden: true });
  private readonly diffPanel = h('section', { class: 'diff-panel', hidden: true, 'aria-label': 'Run differences' });
  private readonly empty = h('p', { class: 'empty muted', hidden: true });

  constructor(
    private readonly root: HTMLElement,
    private readonly vscode: ExperimentsVsCodeApi,
  ) {
    this.ui = parseExperimentsState(vscode.getState()).ui;
    this.table = new TableView({
      onSort: (c) => this.update({ sort: nextSort(this.ui.sort, c) }),
      onColumnFilter: (id, text) => this.setColumnFilter(id, text),
      onSelect: (dirs, on) => this.select(dirs, on),
      onOpen: (dirs) => this.open(dirs),
      onOpenConfig: (dir) => this.post({ type: 'openConfig', dir }),
      onStar: (row) => this.annotate(row, { starred: !row.starred }),
      onEdit: (row, field, value) => this.edit(row, field, value),
    });
  }

  start(): void {
    this.layout();
    window.addEventListener('message', (event: MessageEvent) => this.receive(event.data));
    window.addEventListener('error', (event) => {
      if (/ResizeObserver loop/.test(event.message)) return; // a layout notice, not an error
      this.post({ type: 'webviewError', message: `${event.message} (${event.filename}:${event.lineno})` });
    });
    window.addEventListener('unhandledrejection', (event) =>
      this.post({ type: 'webviewError', message: String((event as PromiseRejectionEvent).reason) }),
    );
    this.post({ type: 'ready' });
  }

  /** Handles one host message; a malformed one is reported to the host's log and ignored. */
  receive(data: unknown): void {
    const parsed = parseHostToExperiments(data);
    if (!parsed.ok) {
      this.post({ type: 'webviewError', message: `ignored a malformed message from the host: ${parsed.error}` });
      return;
    }
    this.apply(parsed.value);
  }

  private apply(message: HostToExperiments): void {
    if (message.type === 'analysis') {
      if (message.request !== this.analysisRequest) return; // a newer request is on its way
      this.analysis = message;
      this.renderAnalysis();
      return;
    }
    if (message.type === 'diff') {
      this.diff = message;
      this.renderDiffPanel();
      return;
    }
    if (message.type === 'rows') {
      this.rows = new Map(message.rows.map((r) => [r.dir, r]));
      this.received = true;
    } else {
      for (const dir of message.removed) {
        this.rows.delete(dir);
        this.selected.delete(dir);
      }
      for (const r of message.rows) this.rows.set(r.dir, r);
    }
    this.columnsDirty = true;
    this.version++;
    this.frames.schedule();
  }

  // ---- layout and drawing ---------------------------------------------------------------------------

  private layout(): void {
    clear(this.root);
    this.root.removeAttribute('aria-busy');
    this.filterField.value = this.ui.filter;
    this.filterField.prepend(
      h('span', { slot: 'content-before', class: 'codicon codicon-filter', 'aria-hidden': 'true' }),
    );
    this.filterField.addEventListener('input', () => this.update({ filter: this.filterField.value }));
    this.openButton.addEventListener('click', () => this.open([...this.selected]));
    this.clearButton.addEventListener('click', () => this.select([...this.selected], false));
    this.columnsButton.addEventListener('click', () => this.togglePicker());
    this.constantBox.checked = this.ui.showConstant;
    this.constantBox.addEventListener('change', () => this.update({ showConstant: this.constantBox.checked }));
    this.sweepPanel.addEventListener('toggle', () => {
      const open = (this.sweepPanel as HTMLDetailsElement).open;
      if (this.ui.sweep && this.ui.sweep.closed === !open) return;
      this.update({ sweep: { id: this.ui.sweep?.id ?? '', ...this.ui.sweep, closed: !open } });
    });
    this.picker.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.togglePicker(false);
    });
    this.groupBox.checked = this.ui.grouped === true;
    this.groupBox.addEventListener('change', () => this.update({ grouped: this.groupBox.checked }));
    this.choiceSelect.value = this.ui.choice ?? 'best';
    this.choiceSelect.addEventListener('change', () => this.update({ choice: this.choiceSelect.value as ValueChoice }));
    this.diffButton.addEventListener('click', () => {
      const dirs = this.view.map((r) => r.dir).filter((d) => this.selected.has(d));
      if (dirs.length >= 2) this.post({ type: 'diff', dirs });
    });
    this.exportButtons.forEach((button, i) =>
      button.addEventListener('click', () => this.exportTable((['csv', 'markdown', 'latex'] as const)[i]!)),
    );
    this.metricSelect.addEventListener('change', () =>
      this.update({ analysis: { ...this.ui.analysis, metric: this.metricSelect.value } }),
    );
    this.analysisPanel.addEventListener('toggle', () => {
      const closed = !(this.analysisPanel as HTMLDetailsElement).open;
      if (this.analysisClosed() !== closed) {
        this.parallelKey = ''; // drawn when opened
        this.update({ analysis: { ...this.ui.analysis, closed } });
      }
    });
    (this.analysisPanel as HTMLDetailsElement).open = !this.analysisClosed();
    const clearBrushes = h(
      'vscode-button',
      { class: 'clear-brushes', secondary: true, icon: 'clear-all', title: 'Show every run again' },
      'Clear Brushes',
    );
    clearBrushes.addEventListener('click', () => {
      this.brushes.clear();
      this.parallelKey = '';
      this.frames.schedule();
    });
    const svgButton = h(
      'vscode-button',
      { class: 'export-svg', secondary: true, icon: 'file-media', title: 'Save the parallel coordinates as SVG' },
      'SVG',
    );
    svgButton.addEventListener('click', () => this.exportChart('svg'));
    const pngButton = h(
      'vscode-button',
      { class: 'export-png', secondary: true, icon: 'file-media', title: 'Save the parallel coordinates as PNG' },
      'PNG',
    );
    pngButton.addEventListener('click', () => void this.exportChart('png'));
    this.analysisPanel.append(
      h(
        'summary',
        null,
        h('span', { class: 'codicon codicon-graph', 'aria-hidden': 'true' }),
        h('h2', null, 'Analysis'),
        h(
          'span',
          { class: 'muted' },
          'parallel coordinates of the shown runs (drag an axis to filter the table) and parameter importance',
        ),
      ),
      h(
        'div',
        { class: 'analysis-controls' },
        h('label', { class: 'sweep-choice' }, h('span', { class: 'muted' }, 'Metric'), this.metricSelect),
        clearBrushes,
        svgButton,
        pngButton,
      ),
      this.analysisBody,
    );
    this.analysisBody.append(this.parallelHost, this.importanceHost);
    const toolbar = h(
      'header',
      { class: 'toolbar' },
      this.filterField,
      this.openButton,
      this.diffButton,
      this.clearButton,
      h('div', { class: 'picker-anchor' }, this.columnsButton, this.picker),
      this.constantBox,
      this.groupBox,
      h('label', { class: 'sweep-choice' }, h('span', { class: 'muted' }, 'Value'), this.choiceSelect),
      h('span', { class: 'export-group' }, ...this.exportButtons),
      this.counts,
    );
    const hint = h(
      'footer',
      { class: 'hint muted' },
      '↑ ↓ move · Space select · Enter open · Ctrl+Enter open the selection overlaid · S star · N note · F2 rename · click a header to sort, again to reverse',
    );
    this.root.append(
      toolbar,
      this.diffPanel,
      this.sweepPanel,
      this.analysisPanel,
      this.empty,
      this.groupView,
      this.table.element,
      hint,
    );
  }

  /** Draws now (also used by the benchmark to time a render without waiting for a frame). */
  render(): void {
    this.frames.cancel();
    const parts = new PartTimings();
    const rows = [...this.rows.values()];
    if (this.columnsDirty) parts.time('columns', () => (this.columns = buildColumns(rows)));
    this.columnsDirty = false;
    this.shown = visibleColumns(this.columns, this.ui);
    let filtered: ExperimentRow[] = [];
    parts.time(
      'filterSort',
      () =>
        (filtered = sortRows(
          filterRows(rows, this.shown, this.ui.filter, this.ui.columnFilters),
          this.columns,
          this.ui.sort,
        )),
    );
    parts.time('parallel', () => {
      this.axes = parallelAxes(filtered, this.analysisMetric());
      for (const id of [...this.brushes.keys()]) if (!this.axes.some((a) => a.id === id)) this.brushes.delete(id);
      this.view = brushRows(filtered, this.axes, this.brushes);
      this.renderParallel(filtered);
    });
    const grouped = this.ui.grouped === true;
    this.groupView.hidden = !grouped;
    this.table.element.hidden = grouped;
    parts.time('table', () => {
      this.table.setColumns(this.shown, this.ui.sort, this.ui.columnFilters);
      this.table.setRows(this.view, this.selected);
    });
    parts.time('sweep', () => this.renderSweep(rows));
    this.requestAnalysis();
    this.renderCounts(rows.length);
    if (!this.picker.hidden) this.renderPicker();
    this.lastTimings = parts.ms;
    document.body.dataset.ready = String(this.received);
    document.body.dataset.rows = String(this.view.length);
  }

  private renderCounts(total: number): void {
    const selected = this.selected.size;
    this.counts.textContent = `${this.view.length === total ? `${total}` : `${this.view.length} of ${total}`} run${total === 1 ? '' : 's'} · ${selected} selected`;
    this.openButton.toggleAttribute('disabled', selected === 0);
    this.clearButton.toggleAttribute('disabled', selected === 0);
    this.openButton.textContent = selected > 1 ? `Open ${selected} in Dashboard` : 'Open in Dashboard';
    this.diffButton.toggleAttribute('disabled', selected < 2);
    this.empty.hidden = total > 0 && this.view.length > 0;
    this.empty.textContent = !this.received
      ? 'Reading the runs…'
      : total === 0
        ? 'No runs in this workspace yet: train a *.peft.json config and its runs appear here, live.'
        : 'No run matches the filters.';
  }

  // ---- analysis: parallel coordinates, groups, importance, diff, exports --------------------------------

  /** The metric column the parallel coordinates and importance use: the user's, else the task metric's best. */
  private analysisMetric(): Column | undefined {
    const metrics = this.columns.filter((c) => c.group === 'metric');
    return (
      metrics.find((c) => c.id === this.ui.analysis?.metric) ?? metrics.find((c) => c.shownByDefault) ?? metrics[0]
    );
  }

  /**
   * Draws the parallel coordinates in the next frame, after the table: a thousand lines cost more
   * than the table's rows in view, and the table must not wait for them. Skipped when neither the
   * runs shown (in any order: sorting does not redraw it), the metric nor the brushes changed.
   */
  /** Folded until the user opens it once (the table keeps the room); then as the user left it. */
  private analysisClosed(): boolean {
    return this.ui.analysis?.closed !== false;
  }

  private renderParallel(filtered: ExperimentRow[]): void {
    if (this.analysisClosed()) return;
    const metric = this.analysisMetric();
    const key = `${this.version}|${filtered
      .map((r) => r.dir)
      .sort()
      .join('\n')}|${metric?.id}|${JSON.stringify([...this.brushes])}`;
    if (key === this.parallelKey) return;
    this.parallelKey = key;
    cancelAnimationFrame(this.parallelFrame);
    this.parallelFrame = requestAnimationFrame(() => this.drawParallel(filtered, metric));
  }

  private drawParallel(filtered: ExperimentRow[], metric: Column | undefined): void {
    const started = performance.now();
    const metrics = this.columns.filter((c) => c.group === 'metric');
    clear(this.metricSelect);
    for (const c of metrics)
      this.metricSelect.appendChild(h('vscode-option', { value: c.id, selected: c.id === metric?.id }, c.label));
    clear(this.parallelHost);
    if (this.axes.length < 2) {
      this.parallelHost.appendChild(
        h('p', { class: 'muted' }, 'The shown runs do not differ in any parameter but the seed.'),
      );
      this.lastParallelMs = performance.now() - started;
      return;
    }
    const kept = new Set(this.view.map((r) => r.dir));
    this.parallelHost.appendChild(
      renderParallel(filtered, this.axes, {
        brushes: this.brushes,
        kept,
        onBrush: (axis, range) => {
          if (range) this.brushes.set(axis, range);
          else this.brushes.delete(axis);
          this.frames.schedule();
        },
      }),
    );
    const brushed = this.axes
      .filter((a) => this.brushes.has(a.id))
      .map((a) => {
        const [lo, hi] = this.brushes.get(a.id)!;
        return `${a.label} ${a.describe(lo, hi)}`;
      });
    if (brushed.length)
      this.parallelHost.appendChild(
        h(
          'p',
          { class: 'brush-summary muted' },
          `${this.view.length} of ${filtered.length} runs inside: ${brushed.join('; ')}`,
        ),
      );
    this.lastParallelMs = performance.now() - started;
  }

  /** Asks the host for the groups and importance of the shown runs when they or the choices changed. */
  private requestAnalysis(): void {
    const dirs = this.view.map((r) => r.dir);
    const metric = this.analysisMetric()?.id;
    const choice = this.ui.choice ?? 'best';
    const key = `${this.version}|${[...dirs].sort().join('\n')}|${JSON.stringify(this.ui.groupBy ?? null)}|${choice}|${metric}`;
    if (key === this.analysisKey) return;
    this.analysisKey = key;
    clearTimeout(this.analysisTimer);
    // a burst of changes (typing in a filter, a live run) asks once
    this.analysisTimer = setTimeout(
      () =>
        this.post({ type: 'analyze', request: ++this.analysisRequest, dirs, groupBy: this.ui.groupBy, choice, metric }),
      60,
    );
  }

  private renderAnalysis(): void {
    const a = this.analysis;
    if (!a) return;
    clear(this.groupView);
    this.groupView.appendChild(
      renderGroups(
        a,
        this.rows,
        this.expanded,
        (id) => {
          if (this.expanded.has(id)) this.expanded.delete(id);
          else this.expanded.add(id);
          this.renderAnalysis();
        },
        (groups) => this.openGroups(groups),
      ),
    );
    clear(this.importanceHost);
    if (a.importance)
      this.importanceHost.appendChild(
        renderImportance(
          a.importance,
          this.columns.find((c) => c.id === a.importance!.metric)?.label ?? a.importance.metric,
        ),
      );
    document.body.dataset.groups = String(a.groups.length);
  }

  private renderDiffPanel(): void {
    clear(this.diffPanel);
    if (!this.diff) {
      this.diffPanel.hidden = true;
      return;
    }
    this.diffPanel.hidden = false;
    this.diffPanel.appendChild(
      renderDiff(this.diff, () => {
        this.diff = undefined;
        this.renderDiffPanel();
      }),
    );
  }

  private exportTable(format: TableExportFormat): void {
    const grouped = this.ui.grouped === true;
    const columns = grouped ? [...(this.analysis?.metrics ?? [])] : this.shown.map((c) => c.id);
    this.post({
      type: 'exportTable',
      format,
      dirs: this.view.map((r) => r.dir),
      columns,
      grouped,
      groupBy: this.ui.groupBy,
      choice: this.ui.choice ?? 'best',
    });
  }

  private async exportChart(format: 'svg' | 'png'): Promise<void> {
    const svg = this.parallelHost.querySelector('svg');
    if (!(svg instanceof SVGSVGElement)) return;
    const data = format === 'svg' ? standaloneSvg(svg) : await svgToPng(svg);
    this.post({ type: 'exportChart', format, name: 'parallel-coordinates', data });
  }

  // ---- sweep chart -----------------------------------------------------------------------------------

  private renderSweep(rows: ExperimentRow[]): void {
    const key = `${this.version}|${JSON.stringify(this.ui.sweep ?? null)}`;
    if (key === this.sweepKey) return;
    this.sweepKey = key;
    const ids = sweepIds(rows);
    this.sweepPanel.hidden = ids.length === 0;
    clear(this.sweepPanel);
    if (!ids.length) return;
    const id = this.ui.sweep && ids.includes(this.ui.sweep.id) ? this.ui.sweep.id : ids[0]!;
    const params = sweepParameters(rows, id);
    const metrics = this.columns.filter((c) => c.group === 'metric');
    const x = this.ui.sweep?.x && params.includes(this.ui.sweep.x) ? this.ui.sweep.x : params[0];
    // the sweep's own ranking metric, else the task metric
    const ranked = rows.find((r) => r.sweep?.id === id && r.sweep.metric)?.sweep?.metric;
    const y =
      metrics.find((c) => c.id === this.ui.sweep?.y) ??
      metrics.find((c) => c.id === `best:${ranked}`) ??
      metrics.find((c) => c.shownByDefault) ??
      metrics[0];
    const choose = (
      label: string,
      value: string | undefined,
      options: [string, string][],
      change: (v: string) => void,
    ) => {
      const select = h(
        'vscode-single-select',
        { class: `sweep-${label.toLowerCase()}`, 'aria-label': label },
        options.map(([v, text]) => h('vscode-option', { value: v, selected: v === value }, text)),
      );
      select.addEventListener('change', () => change(select.value));
      return h('label', { class: 'sweep-choice' }, h('span', { class: 'muted' }, label), select);
    };
    const closed = this.ui.sweep?.closed === true;
    const set = (change: Partial<NonNullable<ExperimentsUiState['sweep']>>) =>
      this.update({ sweep: { id, x, y: y?.id, closed, ...change } });
    (this.sweepPanel as HTMLDetailsElement).open = !closed;
    this.sweepPanel.append(
      h(
        'summary',
        null,
        h('span', { class: 'codicon codicon-graph-scatter', 'aria-hidden': 'true' }),
        h('h2', null, 'Sweep'),
        h(
          'span',
          { class: 'muted' },
          `${ids.length} sweep${ids.length === 1 ? '' : 's'}: a swept parameter against a metric`,
        ),
      ),
    );
    this.sweepPanel.append(
      h(
        'div',
        { class: 'sweep-controls' },
        choose(
          'Sweep',
          id,
          ids.map((s) => [s, s]),
          (v) => this.update({ sweep: { id: v, closed } }),
        ),
        choose(
          'Parameter',
          x,
          params.map((p) => [p, p]),
          (v) => set({ x: v }),
        ),
        choose(
          'Metric',
          y?.id,
          metrics.map((c) => [c.id, c.label]),
          (v) => set({ y: v }),
        ),
      ),
    );
    if (!x || !y) {
      this.sweepPanel.appendChild(
        h('p', { class: 'muted' }, 'The runs of this sweep do not differ in any parameter yet.'),
      );
      return;
    }
    const chart = sweepChart(rows, id, x, y);
    this.sweepPanel.appendChild(
      renderSweepChart(chart, { xLabel: x, yLabel: y.label, onPick: (dir) => this.select([dir], true) }),
    );
    if (chart.missing)
      this.sweepPanel.appendChild(
        h(
          'p',
          { class: 'muted' },
          `${chart.missing} run${chart.missing === 1 ? '' : 's'} of the sweep without a value yet.`,
        ),
      );
  }

  // ---- column picker ----------------------------------------------------------------------------------

  private togglePicker(open = this.picker.hidden): void {
    this.picker.hidden = !open;
    this.columnsButton.setAttribute('aria-expanded', String(open));
    if (open) {
      this.renderPicker();
      this.picker.querySelector<HTMLElement>('vscode-checkbox')?.focus();
    } else this.columnsButton.focus();
  }

  private renderPicker(): void {
    clear(this.picker);
    const visible = new Set(this.shown.map((c) => c.id));
    const groups = new Map<Column['group'], Column[]>();
    for (const c of this.columns) groups.set(c.group, [...(groups.get(c.group) ?? []), c]);
    for (const [group, columns] of groups) {
      const boxes = columns.map((c) => {
        const box = h('vscode-checkbox', {
          label: c.constant ? `${c.label} (constant)` : c.label,
          checked: visible.has(c.id),
          'data-column': c.id,
          title: c.title,
        });
        box.addEventListener('change', () => this.update(chooseColumn(this.ui, c.id, box.checked)));
        return box;
      });
      this.picker.appendChild(
        h('fieldset', { class: 'picker-group' }, h('legend', null, GROUP_TITLES[group]), ...boxes),
      );
    }
    const reset = h('vscode-button', { secondary: true, class: 'reset-columns' }, 'Default Columns');
    reset.addEventListener('click', () => this.update({ shown: [], hidden: [], showConstant: false }));
    const done = h('vscode-button', { class: 'close-picker' }, 'Done');
    done.addEventListener('click', () => this.togglePicker(false));
    this.picker.appendChild(h('div', { class: 'picker-actions' }, reset, done));
  }

  // ---- actions -----------------------------------------------------------------------------------------

  private update(change: Partial<ExperimentsUiState>): void {
    this.ui = { ...this.ui, ...change };
    if (change.showConstant !== undefined) this.constantBox.checked = this.ui.showConstant;
    this.vscode.setState({ version: 1, ui: this.ui });
    this.frames.schedule();
  }

  private setColumnFilter(id: string, text: string): void {
    const filters = { ...this.ui.columnFilters };
    if (text.trim()) filters[id] = text;
    else delete filters[id];
    this.update({ columnFilters: filters });
  }

  private select(dirs: readonly string[], on: boolean): void {
    for (const dir of dirs) {
      if (on && this.rows.has(dir)) this.selected.add(dir);
      else this.selected.delete(dir);
    }
    this.frames.schedule();
  }

  private openGroups(groups: readonly { label: string; dirs: readonly string[] }[]): void {
    const known = groups
      .map((g) => ({ label: g.label, dirs: g.dirs.filter((d) => this.rows.has(d)) }))
      .filter((g) => g.dirs.length);
    if (known.length) this.post({ type: 'openDashboard', dirs: known.flatMap((g) => g.dirs), groups: known });
  }

  private open(dirs: readonly string[]): void {
    const known = dirs.filter((d) => this.rows.has(d));
    if (known.length) this.post({ type: 'openDashboard', dirs: known });
  }

  private edit(row: ExperimentRow, field: EditField, value: string): void {
    const current = field === 'name' ? (row.name === row.folder ? '' : row.name) : row.note;
    const next = value.trim();
    if (next === current.trim() || (field === 'name' && next === row.folder && row.name === row.folder)) return;
    this.annotate(row, field === 'name' ? { name: next } : { note: next });
  }

  /** Shows the change at once (the host's row follows when the file is written) and asks the host to write it. */
  private annotate(stale: ExperimentRow, change: { name?: string; starred?: boolean; note?: string }): void {
    // the row may have been replaced by a host update while an editor was open
    const row = this.rows.get(stale.dir) ?? stale;
    const optimistic: ExperimentRow = {
      ...row,
      ...(change.starred !== undefined ? { starred: change.starred } : {}),
      ...(change.note !== undefined ? { note: change.note } : {}),
      ...(change.name !== undefined ? { name: change.name || row.folder } : {}),
    };
    this.rows.set(row.dir, optimistic);
    this.columnsDirty = true;
    this.version++;
    this.frames.schedule();
    this.post({ type: 'annotate', dir: row.dir, ...change });
  }

  private post(message: ExperimentsToHost): void {
    this.vscode.postMessage(message);
  }
}
