/**
 * The analysis answers drawn as plain tables: seed groups (one row per group: the parameters it
 * shares, N, and per metric mean ± sd with min … max; a row expands to its runs), the parameter
 * importance for a metric with the method named, and the diff of selected runs (only the config
 * parameters that differ, then their metrics).
 */
import type { AnalysisMessage, DiffMessage, ExperimentRow, MetricSummary } from '../../src/protocol/experiments';
import { formatMetricValue } from '../../src/protocol/format';
import { h } from '../view/dom';
import { groupLabel, keyText as cellText } from '../model/group-label';

const label = (id: string) => id.replace(':', ' ');

/** `0.8200 ± 0.0200` with the digits the exports use (tables.ts formatSummary); one run: its value alone. */
export function summaryText(s: MetricSummary): string {
  return s.n > 1 ? `${s.mean.toFixed(4)} ± ${s.sd.toFixed(4)}` : s.mean.toFixed(4);
}

/** A run's value of a metric id as the row carries it (best, final, test); min/max exist only in the groups. */
function runValue(row: ExperimentRow | undefined, id: string): number | undefined {
  if (!row) return undefined;
  const [kind, name] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
  const source = kind === 'best' ? row.best : kind === 'final' ? row.final : kind === 'test' ? row.test : undefined;
  return source?.[name];
}

export function renderGroups(
  a: AnalysisMessage,
  rows: ReadonlyMap<string, ExperimentRow>,
  expanded: ReadonlySet<string>,
  onToggle: (id: string) => void,
  onOpen: (groups: readonly { label: string; dirs: readonly string[] }[]) => void,
): HTMLElement {
  const caption = a.groupBy.length
    ? `${a.groups.length} group${a.groups.length === 1 ? '' : 's'} by ${a.groupBy.join(', ')} (every parameter that varies, but the seed) · mean ± sample sd over each group's runs`
    : `One group: the shown runs differ only in their seed · mean ± sample sd`;
  // the key as one cell (the parameters a group has, `name value` each), so the metrics stay in view
  // however many parameters vary together (a method's type, rank, bottleneck, ...)
  const head = h(
    'tr',
    null,
    h('th', { class: 'expander' }),
    h('th', { class: 'group-key' }, 'Group'),
    h('th', { class: 'num' }, 'N'),
    ...a.metrics.map((m) => h('th', { class: 'num', 'data-metric': m }, label(m))),
  );
  const body = h('tbody');
  for (const g of a.groups) {
    const open = expanded.has(g.id);
    const toggle = h(
      'button',
      {
        class: 'group-expand',
        'aria-expanded': String(open),
        title: open ? 'Hide the runs' : 'Show the runs',
        'aria-label': open ? 'Collapse group' : 'Expand group',
      },
      h('span', { class: `codicon codicon-chevron-${open ? 'down' : 'right'}`, 'aria-hidden': 'true' }),
    );
    toggle.addEventListener('click', () => onToggle(g.id));
    const overlay = h(
      'button',
      {
        class: 'group-open',
        title: 'Show the group in the dashboard: its mean with a ±1 sd band',
        'aria-label': 'Open the group in the dashboard',
      },
      h('span', { class: 'codicon codicon-graph-line', 'aria-hidden': 'true' }),
    );
    overlay.addEventListener('click', () => onOpen([{ label: groupLabel(a, g), dirs: g.dirs }]));
    body.appendChild(
      h(
        'tr',
        { class: 'group-row', 'data-group': g.id },
        h('td', { class: 'expander' }, toggle, overlay),
        h(
          'td',
          { class: 'group-key' },
          ...a.groupBy
            .filter((p) => g.key[p] !== null && g.key[p] !== undefined)
            .map((p) =>
              h(
                'span',
                { class: 'key-part', 'data-param': p, title: `${p} = ${cellText(g.key[p])}` },
                h('span', { class: 'muted' }, `${p} `),
                cellText(g.key[p]),
              ),
            ),
        ),
        h('td', { class: 'num group-n' }, String(g.dirs.length)),
        ...a.metrics.map((m) => {
          const s = g.stats[m];
          return h(
            'td',
            {
              class: 'num group-stat',
              'data-metric': m,
              title: s ? `N ${s.n} · mean ${s.mean} · sd ${s.sd} · min ${s.min} · max ${s.max}` : undefined,
            },
            s
              ? [
                  h('span', { class: 'mean-sd' }, summaryText(s)),
                  h(
                    'span',
                    { class: 'min-max muted' },
                    s.n > 1 ? `${formatMetricValue(s.min)} … ${formatMetricValue(s.max)}` : '',
                  ),
                ]
              : '—',
          );
        }),
      ),
    );
    if (!open) continue;
    for (const dir of g.dirs) {
      const row = rows.get(dir);
      body.appendChild(
        h(
          'tr',
          { class: 'group-member', 'data-dir': dir },
          h('td', { class: 'expander' }),
          h('td', { class: 'member-name', colspan: 2, title: dir }, row?.name ?? dir),
          ...a.metrics.map((m) => {
            const v = runValue(row, m);
            return h('td', { class: 'num', 'data-metric': m }, v === undefined ? '' : formatMetricValue(v));
          }),
        ),
      );
    }
  }
  const all = h(
    'vscode-button',
    {
      secondary: true,
      icon: 'graph-line',
      class: 'open-groups',
      title: 'Every group in one dashboard: a mean line with its band per group',
    },
    'Overlay groups',
  );
  all.addEventListener('click', () => onOpen(a.groups.map((g) => ({ label: groupLabel(a, g), dirs: g.dirs }))));
  return h(
    'div',
    { class: 'groups' },
    h('div', { class: 'groups-header' }, h('p', { class: 'muted groups-caption' }, caption), all),
    h('table', { class: 'group-table' }, h('thead', null, head), body),
  );
}

export function renderImportance(imp: NonNullable<AnalysisMessage['importance']>, metricLabel: string): HTMLElement {
  const fmt = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(2));
  const rows = imp.parameters.map((p) =>
    h(
      'tr',
      { 'data-param': p.parameter },
      h('td', null, p.parameter),
      h(
        'td',
        { class: 'num' },
        h(
          'span',
          { class: 'share-bar', 'data-share': p.share.toFixed(3) },
          h('meter', { min: 0, max: 1, value: p.share }),
        ),
        ` ${(100 * p.share).toFixed(0)}%`,
      ),
      h('td', { class: 'num' }, fmt(p.pearson)),
      h('td', { class: 'num' }, fmt(p.spearman)),
    ),
  );
  return h(
    'div',
    { class: 'importance' },
    h('h3', null, `Parameter importance for ${metricLabel}`),
    h(
      'p',
      { class: 'muted importance-method' },
      `Method: ${imp.method}, and Pearson / Spearman correlation (— for text parameters with more than two values), over ${imp.runs} run${imp.runs === 1 ? '' : 's'}.${imp.runs < 10 ? ' Few runs: read it as a hint.' : ''}`,
    ),
    imp.parameters.length
      ? h(
          'table',
          { class: 'importance-table' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', null, 'Parameter'),
              h('th', { class: 'num' }, 'Importance'),
              h('th', { class: 'num' }, 'Pearson r'),
              h('th', { class: 'num' }, 'Spearman ρ'),
            ),
          ),
          h('tbody', null, rows),
        )
      : h('p', { class: 'muted' }, 'No parameter but the seed varies among the shown runs.'),
  );
}

export function renderDiff(d: DiffMessage, onClose: () => void): HTMLElement {
  const close = h('vscode-button', { class: 'close-diff', secondary: true, icon: 'close' }, 'Close');
  close.addEventListener('click', onClose);
  const head = h('tr', null, h('th', null, 'Parameter'), ...d.runs.map((r) => h('th', { title: r.dir }, r.name)));
  const params = d.parameters.map((p) =>
    h(
      'tr',
      { class: 'diff-param', 'data-param': p.path },
      h('td', null, p.path),
      ...p.values.map((v) => h('td', null, cellText(v))),
    ),
  );
  const metrics = d.metrics.map((m) =>
    h(
      'tr',
      { class: 'diff-metric', 'data-metric': m.id },
      h('td', null, label(m.id)),
      ...m.values.map((v) => h('td', { class: 'num' }, v === null ? '—' : formatMetricValue(v))),
    ),
  );
  return h(
    'div',
    { class: 'diff' },
    h(
      'header',
      { class: 'diff-header' },
      h('h2', null, `Differences between ${d.runs.length} runs`),
      h(
        'span',
        { class: 'muted' },
        `${d.parameters.length} parameter${d.parameters.length === 1 ? '' : 's'} differ, ${d.same} are the same (not shown)`,
      ),
      close,
    ),
    h(
      'table',
      { class: 'diff-table' },
      h('thead', null, head),
      h(
        'tbody',
        null,
        ...params,
        h(
          'tr',
          { class: 'diff-separator' },
          h('th', { colspan: d.runs.length + 1 }, 'Metrics (validation: best checkpoint and last evaluation; test)'),
        ),
        ...metrics,
      ),
    ),
  );
}
