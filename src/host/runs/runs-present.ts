/**
 * How the Runs sidebar shows the model: labels, descriptions, icons, context values and Markdown
 * tooltips as plain data. runs-tree.ts turns these into TreeItems; tests and the benchmark use them
 * without VS Code. No `vscode` import.
 */
import * as path from 'node:path';
import type { Placement } from '../../protocol/worker';
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatMetrics,
  formatMetricValue,
  formatPercent,
} from '../../protocol/format';
import {
  bestMetric,
  checkpointMetrics,
  currentStep,
  latestCompleteCheckpoint,
  metricName,
  testMetrics,
} from './runs-queries';
import type { CheckpointRecord, RunGroup, RunRecord } from './runs-types';
import type { RunsModel } from './runs-model';

/** A codicon id and an optional theme color id. */
export interface IconData {
  id: string;
  color?: string;
}

/** Everything a TreeItem needs, as plain data. */
export interface ItemData {
  id: string;
  label: string;
  description: string;
  icon: IconData;
  /** Space-separated words the package.json menus match with `viewItem =~ /\bword\b/`. */
  contextValue: string;
  collapsible: 'none' | 'collapsed' | 'expanded';
  /** The file or folder the item stands for. */
  path: string;
}

export const STATE_ICONS: Record<string, IconData> = {
  running: { id: 'sync~spin', color: 'charts.blue' },
  finished: { id: 'pass', color: 'testing.iconPassed' },
  failed: { id: 'error', color: 'testing.iconFailed' },
  stopped: { id: 'debug-stop', color: 'charts.yellow' },
  unknown: { id: 'question' },
};
export const WARNING_ICON: IconData = { id: 'warning', color: 'problemsWarningIcon.foreground' };
export const BEST_ICON: IconData = { id: 'star-full', color: 'charts.yellow' };
export const CHECKPOINT_ICON: IconData = { id: 'package' };

const METHOD_NAMES: Record<string, string> = {
  houlsby: 'Houlsby adapters',
  pfeiffer: 'Pfeiffer adapters',
  parallel: 'parallel adapters',
  adamix: 'AdaMix',
  lora: 'LoRA',
  'head-only': 'linear probe (head only)',
  full: 'full fine-tuning',
};

// ---- config groups -------------------------------------------------------------------------------------

export function configItem(group: RunGroup, relative: (file: string) => string = (f) => f): ItemData {
  const count = group.runs.length;
  const running = group.runs.filter((r) => r.state === 'running').length;
  const runs =
    count === 0 ? 'no runs' : `${count} run${count === 1 ? '' : 's'}${running ? `, ${running} running` : ''}`;
  if (group.configFile === '') {
    return {
      id: 'config:',
      label: 'Unknown config',
      description: runs,
      icon: WARNING_ICON,
      contextValue: 'peftConfig unknown',
      collapsible: count ? 'collapsed' : 'none',
      path: '',
    };
  }
  const folder = path.dirname(relative(group.configFile));
  return {
    // a group without runs has its own id: VS Code keeps an element's collapsed state by id, and one
    // that was not expandable would stay collapsed when its first run appears
    id: `${count ? 'config' : 'config-empty'}:${group.configFile}`,
    label: path.basename(group.configFile),
    description: `${folder === '.' ? '' : `${folder} · `}${runs}${group.known ? '' : ' · config not in the workspace'}`,
    icon: { id: 'json' },
    contextValue: `peftConfig${group.known ? ' exists' : ''}`,
    collapsible: count ? 'expanded' : 'none',
    path: group.configFile,
  };
}

// ---- runs ---------------------------------------------------------------------------------------------

export function stateWord(run: RunRecord): string {
  if (run.interrupted) return 'interrupted';
  if (run.state === 'stopped' && run.status?.reason === 'early-stopping') return 'stopped early';
  return run.state === 'unknown' ? 'state unknown' : run.state;
}

export function runIcon(run: RunRecord): IconData {
  if (run.problems.length) return WARNING_ICON;
  return STATE_ICONS[run.state] ?? STATE_ICONS.unknown!;
}

/** The name the user gave the run (annotations.json), else its folder's name. */
export function displayName(run: RunRecord): string {
  return run.annotations.name ?? run.id;
}

/**
 * e.g. `houlsby · cpu · accuracy 0.8125 · 1m 12s`, or while training `step 40/120 · loss 0.6931 · houlsby · cpu · 12s`;
 * a starred run starts with ★, a renamed one with its folder's name (the label shows the new name).
 */
export function runDescription(run: RunRecord, now: number = Date.now()): string {
  const parts: string[] = [];
  const marks = [run.annotations.starred ? '★' : '', run.annotations.name ? run.id : ''].filter(Boolean).join(' ');
  if (marks) parts.push(marks);
  if (run.problems.length)
    parts.push(
      `${stateWord(run)}: ${run.problems[0]}${run.problems.length > 1 ? ` (+${run.problems.length - 1})` : ''}`,
    );
  else if (run.interrupted || (run.state !== 'finished' && run.state !== 'running')) parts.push(stateWord(run));
  if (run.state === 'running' && !run.interrupted) {
    if (run.runningElsewhere) parts.push('running elsewhere');
    const total = run.status?.totalSteps;
    parts.push(`step ${currentStep(run)}${total ? `/${total}` : ''}`);
    const loss = run.metrics.lastTrain?.loss;
    if (loss !== undefined && Number.isFinite(loss)) parts.push(`loss ${formatMetricValue(loss)}`);
  }
  const method = run.status?.method ?? run.config?.method?.type;
  if (method) parts.push(method);
  const backend = shortBackend(run.status?.backend);
  if (backend) parts.push(backend);
  const best = bestMetric(run);
  if (best) parts.push(`${best.name} ${formatMetricValue(best.value)}`);
  const duration = runDuration(run, now);
  if (duration !== undefined) parts.push(formatDuration(duration));
  return parts.join(' · ');
}

export function runDuration(run: RunRecord, now: number = Date.now()): number | undefined {
  if (!run.status) return undefined;
  const end = run.ended ?? (run.state === 'running' && !run.interrupted ? now : undefined);
  return end !== undefined && run.started ? Math.max(0, end - run.started) : undefined;
}

/** Context words: `peftRun`, the state, `problem`, `resumable` (stopped or failed with a complete checkpoint), `deletable` (not running). */
export function runContextValue(run: RunRecord): string {
  const words = ['peftRun', run.interrupted ? 'failed' : run.state];
  if (run.problems.length) words.push('problem');
  const live = run.state === 'running' && !run.interrupted;
  if (!live) words.push('deletable');
  if (!live && run.state !== 'finished' && run.configFile && latestCompleteCheckpoint(run)) words.push('resumable');
  if (run.configFile) words.push('hasConfig');
  // the Star and Unstar menu items match these words (a `when` clause cannot negate a regex match)
  words.push(run.annotations.starred ? 'starred' : 'unstarred');
  return words.join(' ');
}

export function runItem(run: RunRecord, now: number = Date.now()): ItemData {
  return {
    id: `run:${run.dir}`,
    label: displayName(run),
    description: runDescription(run, now),
    icon: runIcon(run),
    contextValue: runContextValue(run),
    collapsible: run.checkpoints.length ? 'collapsed' : 'none',
    path: run.dir,
  };
}

export interface RunTooltipExtras {
  placement?: { value?: Placement; error?: string };
  /** Examples per split, when the data files could be counted. */
  dataSizes?: Partial<Record<'train' | 'validation' | 'test', number>>;
}

/** The run's Markdown summary: method, placement and parameters, data sizes, progress, metrics, problems. */
export function runTooltip(run: RunRecord, extras: RunTooltipExtras = {}, now: number = Date.now()): string {
  const lines: string[] = [];
  const star = run.annotations.starred ? '$(star-full) ' : '';
  lines.push(`${star}**${md(displayName(run))}** — ${stateWord(run)}`, '');
  if (run.annotations.name) lines.push(`Folder: ${md(run.id)}`, '');
  if (run.annotations.note) lines.push(...noteLines(run.annotations.note), '');
  if (run.problems.length) {
    lines.push('$(warning) **Problems**', '');
    for (const p of run.problems) lines.push(`- ${md(p)}`);
    lines.push('');
  }
  if (run.interrupted) lines.push(`$(error) ${md(run.interrupted)}`, '');
  if (run.runningElsewhere) lines.push(`$(remote) Running elsewhere: ${md(run.runningElsewhere)}`, '');
  if (run.status?.error)
    lines.push(`$(error) ${md(run.status.error.name)}: ${md(run.status.error.message.split('\n')[0] ?? '')}`, '');
  const rows: [string, string][] = [];
  rows.push(['Method', methodSummary(run, extras.placement?.value)]);
  const params = parameterSummary(extras.placement?.value);
  if (params) rows.push(['Trainable parameters', params]);
  else if (extras.placement?.error) rows.push(['Trainable parameters', md(extras.placement.error)]);
  const data = dataSummary(run, extras.dataSizes);
  if (data) rows.push(['Data', data]);
  if (run.status?.backend) rows.push(['Backend', md(run.status.backend)]);
  if (run.status) {
    const total = run.status.totalSteps;
    rows.push(['Progress', `step ${currentStep(run)}${total ? ` of ${total}` : ''}`]);
    rows.push(['Started', new Date(run.started).toLocaleString()]);
    const duration = runDuration(run, now);
    if (duration !== undefined) rows.push([run.ended ? 'Duration' : 'Running for', formatDuration(duration)]);
    if (run.status.reason) rows.push(['Reason', md(run.status.reason)]);
  }
  const best = bestMetric(run);
  if (best) {
    const at = best.step !== undefined ? ` (step ${best.step})` : '';
    const all = run.status?.bestMetrics ?? run.checkpoints.find((c) => c.step === best.step)?.metrics;
    rows.push(['Best validation', `${formatMetrics(all ?? { [best.name]: best.value })}${at}`]);
  }
  const test = testMetrics(run);
  if (test) rows.push(['Test', `${formatMetrics(test.metrics)} (step ${test.step})`]);
  const last = run.metrics.lastTrain;
  if (last && Number.isFinite(last.loss))
    rows.push(['Last training loss', `${formatMetricValue(last.loss)} (step ${last.step})`]);
  rows.push([
    'Checkpoints',
    run.checkpoints.length
      ? run.checkpoints.map((c) => `${c.step}${c.step === run.bestStep ? ' ★' : ''}`).join(', ')
      : 'none yet',
  ]);
  if (run.configFile) rows.push(['Config', md(run.configFile)]);
  rows.push(['Folder', md(run.dir)]);
  lines.push('| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`));
  return lines.join('\n');
}

/** The note as a Markdown quote, line by line (escaped: it is the user's text, not Markdown). */
function noteLines(note: string): string[] {
  // two trailing spaces: a line break inside the quote, as the user typed it
  return note.split(/\r?\n/).map((line, i) => `> ${i === 0 ? '$(note) ' : ''}${md(line)}  `);
}

export function methodSummary(run: RunRecord, placement?: Placement): string {
  const m = run.config?.method;
  const type = m?.type ?? run.status?.method;
  if (!type) return 'unknown';
  const parts = [METHOD_NAMES[type] ?? type];
  const site = placement?.sites[0];
  const bottleneck = m?.bottleneck ?? site?.bottleneck;
  if (bottleneck !== undefined && type !== 'lora') parts.push(`bottleneck ${bottleneck}`);
  else if (m?.reductionFactor !== undefined && ['houlsby', 'pfeiffer', 'parallel', 'adamix'].includes(type))
    parts.push(`reduction factor ${m.reductionFactor}`);
  if (type === 'adamix') {
    const experts = m?.experts ?? site?.experts?.down;
    if (experts !== undefined) parts.push(`${experts} experts${m?.share ? ` (shared ${m.share}-projection)` : ''}`);
  }
  if (type === 'lora') {
    const rank = m?.rank ?? site?.rank;
    if (rank !== undefined) parts.push(`rank ${rank}${m?.alpha !== undefined ? `, alpha ${m.alpha}` : ''}`);
    if (m?.targets?.length) parts.push(m.targets.join('/'));
  }
  if (m?.sites?.length && type !== 'lora') parts.push(`sites ${m.sites.join(' + ')}`);
  if (m?.activation && type !== 'lora') parts.push(m.activation);
  if (placement?.sites.length)
    parts.push(
      `${placement.sites.length} site${placement.sites.length === 1 ? '' : 's'} in ${placement.layers} layer${placement.layers === 1 ? '' : 's'}`,
    );
  return parts.join(', ');
}

export function parameterSummary(placement?: Placement): string | undefined {
  if (!placement || typeof placement.trainableParams !== 'number') return undefined;
  const share =
    placement.baseParams > 0
      ? ` (${formatPercent(placement.trainableParams / placement.baseParams)} of the base model's ${formatCount(placement.baseParams)})`
      : '';
  const groups = Object.entries(placement.trainableByGroup ?? {})
    .map(([k, v]) => `${k} ${formatCount(v)}`)
    .join(', ');
  return `${formatCount(placement.trainableParams)}${share}${groups ? `: ${groups}` : ''}`;
}

function dataSummary(run: RunRecord, sizes: RunTooltipExtras['dataSizes']): string | undefined {
  const d = run.config?.data;
  if (!d) return undefined;
  const parts: string[] = [];
  const size = (n: number | undefined) => (n === undefined ? '?' : formatCount(n));
  if (d.train) {
    let train = sizes?.train;
    if (train !== undefined && d.maxTrainExamples !== undefined) train = Math.min(train, d.maxTrainExamples);
    parts.push(`train ${size(train)} (${md(path.basename(d.train))})`);
  }
  if (d.validation) parts.push(`validation ${size(sizes?.validation)} (${md(path.basename(d.validation))})`);
  else if (d.validationSplit) parts.push(`validation ${formatPercent(d.validationSplit)} of train held out`);
  if (d.test) parts.push(`test ${size(sizes?.test)} (${md(path.basename(d.test))})`);
  return parts.join(' · ');
}

// ---- checkpoints ----------------------------------------------------------------------------------------

export function checkpointItem(c: CheckpointRecord, run: RunRecord | undefined): ItemData {
  const best = run?.bestStep === c.step;
  const parts: string[] = [];
  if (c.problems.length) parts.push(c.problems.join('; '));
  const main = run ? metricName(run) : undefined;
  const metrics = checkpointMetrics(run, c);
  if (metrics) parts.push(formatMetrics(metrics, { main, short: true }));
  if (c.evals.validation)
    parts.push(`evaluated on validation: ${formatMetrics(c.evals.validation.metrics, { main, short: true })}`);
  if (c.evals.test) parts.push(`test: ${formatMetrics(c.evals.test.metrics, { main, short: true })}`);
  parts.push(formatBytes(c.sizeBytes));
  const words = ['peftCheckpoint'];
  if (c.hasWeights && !c.problems.length) words.push('complete');
  if (best) words.push('best');
  const live = run?.state === 'running' && !run.interrupted;
  // the last checkpoint continues the run; an older one rewinds it (the action asks first)
  if (run && !live && run.state !== 'finished' && run.configFile && c.hasWeights && !c.problems.length)
    words.push('resumable');
  return {
    id: `checkpoint:${c.dir}`,
    label: `step ${c.step}${best ? ' ★ best' : ''}`,
    description: parts.join(' · '),
    icon: c.problems.length ? WARNING_ICON : best ? BEST_ICON : CHECKPOINT_ICON,
    contextValue: words.join(' '),
    collapsible: 'none',
    path: c.dir,
  };
}

export function checkpointTooltip(c: CheckpointRecord, run: RunRecord | undefined): string {
  const lines = [
    `**${md(run?.id ?? path.basename(c.runDir))} / ${c.name}**${run?.bestStep === c.step ? ' — best' : ''}`,
    '',
  ];
  if (c.problems.length) {
    lines.push('$(warning) **Problems**', '', ...c.problems.map((p) => `- ${md(p)}`), '');
  }
  const rows: [string, string][] = [['Step', String(c.step)]];
  if (c.epoch !== undefined) rows.push(['Epoch', String(c.epoch + 1)]);
  const metrics = checkpointMetrics(run, c);
  if (metrics) rows.push(['Validation (at this step)', formatMetrics(metrics)]);
  for (const split of ['validation', 'test'] as const) {
    const e = c.evals[split];
    if (e)
      rows.push([
        `Evaluated on ${split}`,
        `${formatMetrics(e.metrics)}${e.examples !== undefined ? ` on ${e.examples} examples` : ''}`,
      ]);
  }
  rows.push(['Size on disk', formatBytes(c.sizeBytes)]);
  rows.push([
    'Files',
    [
      c.hasWeights ? 'weights' : 'no weights',
      c.hasOptimizer ? 'optimizer state' : 'no optimizer state (cannot resume from it)',
    ].join(', '),
  ]);
  if (c.created) rows.push(['Saved', new Date(c.created).toLocaleString()]);
  rows.push(['Folder', md(c.dir)]);
  lines.push('| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`));
  return lines.join('\n');
}

/** Runs folders' data sizes for a run's tooltip, counted by the model (cached). */
export function dataSizesOf(model: RunsModel, run: RunRecord): RunTooltipExtras['dataSizes'] {
  const d = run.config?.data;
  if (!d) return undefined;
  return {
    train: d.train ? model.dataSize(d.train) : undefined,
    validation: d.validation ? model.dataSize(d.validation) : undefined,
    test: d.test ? model.dataSize(d.test) : undefined,
  };
}

// ---- formatting ----------------------------------------------------------------------------------------

/** The backend's short name: `wasm (XNNPACK, SIMD, single thread)` → `wasm`. */
export function shortBackend(backend: string | undefined): string | undefined {
  return backend ? backend.split(/[\s(]/)[0] : undefined;
}

/** Escapes Markdown (and theme-icon) syntax in text from disk. */
export function md(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>$]/g, (c) => `\\${c}`);
}
