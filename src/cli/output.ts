/**
 * What the CLI prints for the trainer's messages: JSON lines with --json, otherwise text, with a
 * progress bar redrawn in place on a terminal.
 */
import type {
  CheckpointMessage,
  EvaluatedMessage,
  FinishedMessage,
  LogMessage,
  MetricsMessage,
  ProgressMessage,
  StartedMessage,
  WorkerMessage,
} from '../protocol/worker';
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatMetrics,
  formatMetricValue,
  formatPercent,
} from '../protocol/format';
import { displayPath, formatError, toErrorInfo } from '../worker/errors';

export interface Output {
  message(message: WorkerMessage): void;
  failure(err: unknown): void;
  /** A remark from the CLI itself (e.g. about Ctrl-C); never mixed into stdout's JSON lines. */
  notice(text: string): void;
}

export function createOutput(json: boolean, logEvery: number): Output {
  if (json) return new JsonOutput();
  return new TextOutput(
    process.stdout.isTTY
      ? { interactive: true, columns: () => process.stdout.columns || 80 }
      : { interactive: false, logEvery },
  );
}

/** One JSON object per line on stdout, every message including the outcome; humans get stderr. */
class JsonOutput implements Output {
  message(message: WorkerMessage): void {
    process.stdout.write(`${JSON.stringify(message)}\n`);
  }

  failure(err: unknown): void {
    this.message({ type: 'failed', error: toErrorInfo(err) });
    process.stderr.write(`${formatError(err)}\n`);
  }

  notice(text: string): void {
    process.stderr.write(`${text}\n`);
  }
}

type TextMode = { interactive: true; columns: () => number } | { interactive: false; logEvery: number };

/**
 * Human-readable output. On a terminal, progress is one line redrawn in place and every other line
 * is printed above it; elsewhere (CI logs, pipes) redraws would turn into garbage, so progress is a
 * plain line every `logEvery` steps.
 */
class TextOutput implements Output {
  private run?: { started: StartedMessage; startedAt: number; firstStep: number };
  private lastProgress?: ProgressMessage;
  private barVisible = false;
  private lastDrawAt = 0;
  private lastPrintedStep = 0;

  constructor(private readonly mode: TextMode) {}

  message(message: WorkerMessage): void {
    switch (message.type) {
      case 'started':
        return this.onStarted(message);
      case 'progress':
        return this.onProgress(message);
      case 'metrics':
        return this.line(formatMetricsLine(message));
      case 'checkpoint':
        return this.line(formatCheckpoint(message));
      case 'log':
        return this.onLog(message);
      case 'finished':
        return this.onFinished(message);
      case 'evaluated':
        return this.line(formatEvaluated(message));
      case 'failed':
        return this.failureLine(`error: ${message.error.message}`);
    }
  }

  failure(err: unknown): void {
    this.failureLine(formatError(err));
  }

  notice(text: string): void {
    this.line(text, process.stderr);
  }

  private onStarted(started: StartedMessage): void {
    this.run = { started, startedAt: Date.now(), firstStep: started.resumedFromStep ?? 0 };
    this.lastPrintedStep = this.run.firstStep;
    for (const text of formatStarted(started)) this.line(text);
  }

  private onProgress(progress: ProgressMessage): void {
    this.lastProgress = progress;
    if (this.mode.interactive) this.redrawThrottled(progress);
    else if (progress.step - this.lastPrintedStep >= this.mode.logEvery || progress.step === progress.totalSteps) {
      this.lastPrintedStep = progress.step;
      this.line(this.progressText(progress));
    }
  }

  private onLog(log: LogMessage): void {
    if (log.level === 'info') this.line(log.message);
    else this.line(`${log.level === 'warn' ? 'warning' : 'error'}: ${log.message}`, process.stderr);
  }

  private onFinished(finished: FinishedMessage): void {
    this.lastProgress = undefined;
    for (const text of formatFinished(finished, this.run?.started)) this.line(text);
  }

  private failureLine(text: string): void {
    this.lastProgress = undefined;
    this.line(text, process.stderr);
  }

  /** Prints a whole line above the progress bar, then puts the bar back. */
  private line(text: string, stream: NodeJS.WriteStream = process.stdout): void {
    this.clearBar();
    stream.write(`${text}\n`);
    if (this.lastProgress) this.redraw(this.lastProgress);
  }

  /** Redrawing more often than the eye can follow only costs time in fast runs. */
  private redrawThrottled(progress: ProgressMessage): void {
    const now = Date.now();
    if (now - this.lastDrawAt < 100 && progress.step !== progress.totalSteps) return;
    this.lastDrawAt = now;
    this.redraw(progress);
  }

  private redraw(progress: ProgressMessage): void {
    if (!this.mode.interactive) return;
    // One column short of the width: writing into the last column wraps on some terminals, and a
    // wrapped line can no longer be redrawn with \r.
    const width = this.mode.columns() - 1;
    process.stdout.write(`\r\x1b[K${fitBar(this.progressText(progress), progress, width)}`);
    this.barVisible = true;
  }

  private clearBar(): void {
    if (!this.barVisible) return;
    process.stdout.write('\r\x1b[K');
    this.barVisible = false;
  }

  private progressText(progress: ProgressMessage): string {
    const started = this.run?.started;
    const epoch = started ? epochOf(progress.step, started) : `epoch ${progress.epoch}`;
    return [
      `step ${progress.step}/${progress.totalSteps}`,
      epoch,
      `loss ${formatMetricValue(progress.loss)}`,
      `lr ${progress.learningRate.toExponential(2)}`,
      `${Math.round(progress.examplesPerSecond)} ex/s`,
      `ETA ${this.eta(progress)}`,
    ].join('  ');
  }

  /** From this process's own clock, so time spent before a resume does not skew it. */
  private eta(progress: ProgressMessage): string {
    if (!this.run) return '?';
    const stepsDone = progress.step - this.run.firstStep;
    if (stepsDone <= 0) return '?';
    const msPerStep = (Date.now() - this.run.startedAt) / stepsDone;
    return formatDuration(msPerStep * (progress.totalSteps - progress.step));
  }
}

/** `[####......] step 3/10  epoch 1/2 ...`, with the bar shrunk or dropped to fit the terminal. */
function fitBar(text: string, progress: ProgressMessage, width: number): string {
  const barWidth = Math.min(30, width - text.length - 3);
  if (barWidth < 10) return text.slice(0, Math.max(0, width));
  const filled = Math.round((barWidth * progress.step) / Math.max(1, progress.totalSteps));
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${text}`;
}

function epochOf(step: number, started: StartedMessage): string {
  const epochs = Math.max(1, Math.ceil(started.totalSteps / started.stepsPerEpoch));
  const current = Math.min(epochs, Math.max(1, Math.ceil(step / started.stepsPerEpoch)));
  return `epoch ${current}/${epochs}`;
}

function formatStarted(started: StartedMessage): string[] {
  const { backend, placement } = started;
  const skipped = backend.skipped.map((s) => `; skipped ${s.name}: ${s.reason}`).join('');
  if (started.kind === 'pretrain') return formatPretrainStarted(started, skipped);
  const share =
    placement.baseParams > 0
      ? ` (${formatPercent(placement.trainableParams / placement.baseParams)} of ${formatCount(placement.baseParams)} base)`
      : '';
  const epochs = Math.ceil(started.totalSteps / Math.max(1, started.stepsPerEpoch));
  return [
    `run: ${displayPath(started.runDir)}`,
    `backend: ${backend.description}${skipped}`,
    `method: ${placement.method}, ${formatCount(placement.trainableParams)} trainable params${share}`,
    `data: ${started.trainExamples} train / ${started.validationExamples} validation examples; ${started.totalSteps} steps (${epochs} epochs x ${started.stepsPerEpoch})` +
      (started.resumedFromStep !== undefined ? `; resuming at step ${started.resumedFromStep}` : ''),
  ];
}

function formatMetricsLine(metrics: MetricsMessage): string {
  return `step ${metrics.step} ${metrics.split}: ${formatMetrics(metrics.metrics)}${metrics.isBest ? '  (best so far)' : ''}`;
}

function formatCheckpoint(checkpoint: CheckpointMessage): string {
  return `checkpoint step ${checkpoint.step}: ${displayPath(checkpoint.dir)} (${formatBytes(checkpoint.sizeBytes)}${checkpoint.isBest ? ', best' : ''})`;
}

function formatEvaluated(evaluated: EvaluatedMessage): string {
  return `${evaluated.split} (${evaluated.examples} examples) on ${displayPath(evaluated.checkpointDir)}: ${formatMetrics(evaluated.metrics)}`;
}

function formatPretrainStarted(started: StartedMessage, skipped: string): string[] {
  const p = started.placement;
  const epochs = Math.ceil(started.totalSteps / Math.max(1, started.stepsPerEpoch));
  return [
    `run: ${displayPath(started.runDir)}`,
    `backend: ${started.backend.description}${skipped}`,
    `model: masked language modelling, ${p.layers} layers, hidden ${p.hiddenSize}, ${p.heads} heads, ${formatCount(p.trainableParams)} params (all trainable)`,
    `corpus: ${started.trainExamples} train / ${started.validationExamples} held-out sequences; ${started.totalSteps} steps (${epochs} epochs x ${started.stepsPerEpoch})` +
      (started.resumedFromStep !== undefined ? `; resuming at step ${started.resumedFromStep}` : ''),
  ];
}

function formatFinished(finished: FinishedMessage, started: StartedMessage | undefined): string[] {
  const configFile = started?.configFile;
  const duration = formatDuration(finished.durationMs);
  const lines: string[] = [];
  if (finished.state === 'finished') lines.push(`finished in ${duration}: ${displayPath(finished.runDir)}`);
  else if (finished.reason === 'early-stopping')
    lines.push(`stopped early (no further improvement) after ${duration}: ${displayPath(finished.runDir)}`);
  else {
    lines.push(`stopped after ${duration}; the last checkpoint is in ${displayPath(finished.runDir)}`);
    const config = configFile ? displayPath(configFile) : '<file.peft.json>';
    lines.push(
      `resume with: peft-lab ${started?.kind ?? 'train'} ${quoteArg(config)} --resume ${quoteArg(displayPath(finished.runDir))}`,
    );
  }
  if (finished.bestCheckpoint) {
    const metrics = finished.bestMetrics ? ` (${formatMetrics(finished.bestMetrics)})` : '';
    lines.push(`best checkpoint: ${displayPath(finished.bestCheckpoint)}${metrics}`);
  }
  if (finished.modelDir)
    lines.push(`model: ${displayPath(finished.modelDir)} (fine-tune it with "model": {"path": ...})`);
  return lines;
}

/** Quotes a path for copy-pasting into a POSIX shell when it needs it. */
function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
