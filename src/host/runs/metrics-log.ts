/**
 * What a run's metrics.jsonl said so far, for the Runs view: the last training step, every
 * evaluation, and the lines that are not records. The file is followed by the one metrics reader
 * (src/core/checkpoint/run-reader.ts MetricsTail: appended bytes only; a rewritten file again
 * from the top).
 */
import { MetricsTail } from '../../core/checkpoint/run-reader';
import { finiteMetrics } from '../../protocol/metrics';
import type { MetricsLog } from './runs-types';

export function emptyMetricsLog(): MetricsLog {
  return { lines: 0, trainLines: 0, evals: [], broken: [], partialLastLine: false };
}

export class RunMetricsLog {
  log: MetricsLog = emptyMetricsLog();
  private readonly tail: MetricsTail;

  constructor(runDir: string) {
    this.tail = new MetricsTail(runDir);
  }

  /** Bytes read from disk over this log's life (tests check that appends cost only their size). */
  get bytesRead(): number {
    return this.tail.bytesRead;
  }

  /** Reads what was appended; returns true when the log changed. */
  update(): boolean {
    const read = this.tail.read();
    let changed = read.reset;
    if (read.reset) this.log = emptyMetricsLog();
    const log = this.log;
    log.lines += read.lineCount;
    for (const b of read.broken) log.broken.push({ line: b.line, reason: b.reason });
    for (const r of read.records) {
      if (r.kind === 'train') {
        log.trainLines++;
        log.lastTrain = {
          step: r.step,
          epoch: r.epoch,
          loss: r.loss ?? NaN,
          learningRate: r.learningRate ?? undefined,
          examplesPerSecond: r.examplesPerSecond ?? undefined,
          elapsedMs: r.elapsedMs ?? undefined,
        };
      } else {
        log.evals.push({ split: r.split, step: r.step, metrics: finiteMetrics(r.metrics), isBest: r.isBest === true });
      }
    }
    if (read.lineCount > 0) changed = true;
    if (log.partialLastLine !== read.partialLastLine) changed = true;
    log.partialLastLine = read.partialLastLine;
    return changed;
  }
}
