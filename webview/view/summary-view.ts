/** The run summary (one run) and the comparison table (several runs), with their buttons. */
import type { DashboardAction } from '../../src/protocol/dashboard';
import { formatCountCompact, formatMetricValue, formatPercent } from '../../src/protocol/format';
import type { RunModel } from '../model/store';
import { primaryMetric } from '../model/store';
import { summarize, type RunSummaryView } from '../model/summary';
import { h, icon } from './dom';

export type ActionHandler = (action: DashboardAction, dir: string) => void;

const STATE_ICONS: Record<string, string> = {
  running: 'sync',
  finished: 'pass',
  stopped: 'debug-pause',
  failed: 'error',
  unknown: 'question',
};

function button(
  label: string,
  iconName: string,
  onClick: () => void,
  opts: { secondary?: boolean; disabled?: boolean; title?: string; action: string },
): HTMLElement {
  const b = h(
    'vscode-button',
    {
      icon: iconName,
      secondary: opts.secondary,
      disabled: opts.disabled,
      title: opts.title,
      'data-action': opts.action,
    },
    label,
  );
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) onClick();
  });
  return b;
}

export function stateBadge(run: RunModel, text: string): HTMLElement {
  const state = run.status.state;
  const i = icon(STATE_ICONS[state] ?? 'question');
  if (state === 'running') i.setAttribute('spin', '');
  return h('span', { class: `state-badge state-${state}`, 'data-state': state }, i, ` ${text}`);
}

/** What the header's title, badge and buttons depend on: when it is unchanged only the live line is redrawn. */
export function runHeaderKey(run: RunModel): string {
  const s = summarize(run);
  return [run.dir, run.name, s.stateText, s.method, s.canStop, s.canResume, s.canEvaluate, run.configFile].join('\n');
}

export function renderRunHeader(run: RunModel, onAction: ActionHandler): HTMLElement {
  const s = summarize(run);
  return h(
    'header',
    { class: 'run-header' },
    h(
      'div',
      { class: 'run-title' },
      h('h1', { title: run.dir }, run.name),
      stateBadge(run, s.stateText),
      h('span', { class: 'method-chip' }, s.method),
    ),
    h('div', { class: 'header-live' }, renderHeaderLive(run)),
    renderButtons(run, s, onAction),
  );
}

/** The progress bar and the numbers that change with every step. */
export function renderHeaderLive(run: RunModel): HTMLElement[] {
  const s = summarize(run);
  const progress = h('div', { class: 'progress-fill' });
  progress.style.width = `${(100 * s.progress.fraction).toFixed(2)}%`;
  return [
    h(
      'div',
      {
        class: 'progress',
        title: `${s.progress.step} of ${s.progress.total} steps`,
        'data-step': s.progress.step,
        'data-total': s.progress.total,
      },
      progress,
    ),
    h(
      'div',
      { class: 'header-facts' },
      s.facts
        .filter(
          (f) => ['Progress', 'Speed', 'Backend', 'Best checkpoint', 'Elapsed'].includes(f.label) && f.value !== '–',
        )
        .map((f) => h('span', { title: f.title }, h('span', { class: 'muted' }, `${f.label}: `), f.value)),
    ),
  ];
}

function renderButtons(run: RunModel, s: RunSummaryView, onAction: ActionHandler): HTMLElement {
  return h(
    'div',
    { class: 'toolbar' },
    button('Open config', 'go-to-file', () => onAction('openConfig', run.dir), {
      secondary: true,
      action: 'openConfig',
      title: run.configFile ?? 'config.json of the run',
    }),
    button('Stop', 'debug-stop', () => onAction('stop', run.dir), {
      secondary: !s.canStop,
      disabled: !s.canStop,
      action: 'stop',
      title: 'Stop at the next step boundary, writing a checkpoint',
    }),
    button('Resume', 'debug-continue', () => onAction('resume', run.dir), {
      secondary: true,
      disabled: !s.canResume,
      action: 'resume',
      title: 'Continue from the last checkpoint',
    }),
    button('Evaluate', 'beaker', () => onAction('evaluate', run.dir), {
      secondary: true,
      disabled: !s.canEvaluate,
      action: 'evaluate',
      title: 'Evaluate the best checkpoint',
    }),
    button('Reveal', 'folder-opened', () => onAction('revealRun', run.dir), {
      secondary: true,
      action: 'revealRun',
      title: run.dir,
    }),
  );
}

export function renderSummary(run: RunModel): HTMLElement {
  const s = summarize(run);
  return h(
    'div',
    { class: 'summary' },
    h(
      'dl',
      { class: 'facts' },
      s.facts.map((f) => [h('dt', null, f.label), h('dd', { title: f.title }, f.value)]),
    ),
    s.metrics.length
      ? h(
          'div',
          { class: 'metric-cards' },
          s.metrics.map((m) =>
            h(
              'div',
              { class: 'metric-card' },
              h('div', { class: 'metric-card-title' }, `${m.label} · step ${m.step}`),
              h(
                'div',
                { class: 'metric-values' },
                m.metrics.map(([k, v]) =>
                  h(
                    'span',
                    { class: `metric${k === s.primaryMetric ? ' primary' : ''}` },
                    h('span', { class: 'metric-name' }, k),
                    h('span', { class: 'metric-value' }, v),
                  ),
                ),
              ),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No evaluation yet.'),
    s.config.length
      ? h(
          'details',
          { class: 'config' },
          h('summary', null, 'Resolved config'),
          h(
            'div',
            { class: 'config-sections' },
            s.config.map((c) =>
              h(
                'div',
                { class: 'config-section' },
                h('h4', null, c.section),
                h(
                  'dl',
                  null,
                  c.rows.map((r) => [h('dt', null, r.label), h('dd', { title: r.title }, r.value)]),
                ),
              ),
            ),
          ),
        )
      : null,
    run.problems.length ? h('div', { class: 'problems' }, icon('warning'), ` ${run.problems.join('; ')}`) : null,
  );
}

/** One row per run: what differs between them at a glance. */
export function renderComparison(
  runs: readonly RunModel[],
  colors: readonly string[],
  onAction: ActionHandler,
): HTMLElement {
  const rows = runs.map((run, i) => {
    const s = summarize(run);
    const metric = primaryMetric(run);
    const best = metric ? run.status.bestMetrics?.[metric] : undefined;
    const lastLoss = run.train.loss[run.train.loss.length - 1];
    const swatch = h('span', { class: 'run-swatch' });
    swatch.style.background = colors[i % colors.length] ?? '';
    const p = run.placement;
    return h(
      'tr',
      { 'data-run': run.dir },
      h('td', null, swatch, h('span', { title: run.dir }, run.name)),
      h('td', null, stateBadge(run, s.stateText)),
      h('td', null, s.method),
      h(
        'td',
        { class: 'num' },
        p
          ? `${formatCountCompact(p.trainableParams)} (${formatPercent(p.baseParams ? p.trainableParams / p.baseParams : 0)})`
          : '–',
      ),
      h('td', { class: 'num' }, metric ? `${metric} ${formatMetricValue(best)}` : '–'),
      h('td', { class: 'num' }, formatMetricValue(lastLoss ?? null)),
      h('td', { class: 'num' }, `${s.progress.step}/${s.progress.total}`),
      h(
        'td',
        null,
        h('vscode-button', {
          secondary: true,
          icon: 'go-to-file',
          title: 'Open config',
          'data-action': 'openConfig',
          onclick: () => onAction('openConfig', run.dir),
        }),
      ),
    );
  });
  return h(
    'table',
    { class: 'comparison' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        ['Run', 'State', 'Method', 'Trainable', 'Best', 'Last loss', 'Steps', ''].map((t) => h('th', null, t)),
      ),
    ),
    h('tbody', null, rows),
  );
}
