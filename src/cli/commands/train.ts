/**
 * `peft-lab train`, `pretrain` and `evaluate`, and one task of a Slurm job: the trainer runs in this
 * process, its messages go to the CLI's output, and Ctrl-C reaches it directly.
 */
import { loadAnyConfig } from '../../core/config/load';
import { checkOutputLocation } from '../../core/config/output-location';
import { CancelledError, RunFinishedError } from '../../core/errors';
import type { Command } from '../args';
import { EXIT_CANCELLED, EXIT_FAILED, EXIT_OK } from '../exit-codes';
import { onInterrupts } from '../interrupts';
import { loadPretrainer, loadSlurm, loadTrainer } from '../lazy';
import { createOutput, type Output } from '../output';
import { formatError } from '../../worker/errors';

/** The schema's default for `training.logEvery`, used when the config cannot be read for it. */
const DEFAULT_LOG_EVERY = 10;

/** One task of a Slurm job, on a compute node: plain text output, which is the job's log. */
export async function slurmTaskCommand(jobDir: string): Promise<number> {
  const output = createOutput(false, DEFAULT_LOG_EVERY);
  try {
    const { finished, code } = await loadSlurm().slurmTaskCommand(jobDir, (message) => output.message(message));
    if (finished) output.message(finished);
    return code;
  } catch (err) {
    return reportFailure(err, output);
  }
}

export async function trainCommand(command: Extract<Command, { kind: 'train' | 'pretrain' }>): Promise<number> {
  const output = createOutput(command.json, readLogEvery(command.configFile));
  const stop = new AbortController();
  const stopOnInterrupt = onInterrupt(() => {
    output.notice('stopping at the next step boundary after writing a checkpoint (press Ctrl-C again to exit now)');
    stop.abort();
  }, output);
  try {
    if (command.resume === undefined) refuseOutputLocation(command.configFile, command.allowOutside);
    const run = command.kind === 'pretrain' ? loadPretrainer().pretrain : loadTrainer().train;
    const finished = await run(command.configFile, {
      resume: command.resume,
      allowConfigChange: command.allowConfigChange,
      backend: command.backend,
      signal: stop.signal,
      onMessage: (message) => output.message(message),
    });
    output.message(finished);
    return finished.state === 'stopped' && finished.reason === 'cancelled' ? EXIT_CANCELLED : EXIT_OK;
  } catch (err) {
    return reportFailure(err, output);
  } finally {
    stopOnInterrupt.dispose();
  }
}

export async function evaluateCommand(command: Extract<Command, { kind: 'evaluate' }>): Promise<number> {
  const output = createOutput(command.json, 1);
  // Evaluation writes nothing, so there is nothing to finish cleanly: Ctrl-C exits at once.
  const exitOnInterrupt = onInterrupt(() => exitNow(output), output);
  try {
    const evaluated = await loadTrainer().evaluateCheckpoint(command.checkpointDir, command.split, {
      backend: command.backend,
      onMessage: (message) => output.message(message),
    });
    output.message(evaluated);
    return EXIT_OK;
  } catch (err) {
    return reportFailure(err, output);
  } finally {
    exitOnInterrupt.dispose();
  }
}

/**
 * Output in a system folder, or outside the config's folder tree without --allow-outside, is a
 * ConfigError. A config that does not load is left for the command to report as it always does.
 */
export function refuseOutputLocation(configFile: string, allowOutside: boolean): void {
  let config: ReturnType<typeof loadAnyConfig>;
  try {
    config = loadAnyConfig(configFile, { semantic: false });
  } catch {
    return;
  }
  checkOutputLocation(config, { allowOutside });
}

function reportFailure(err: unknown, output: Output): number {
  if (err instanceof CancelledError) {
    output.notice('cancelled');
    return EXIT_CANCELLED;
  }
  // resuming a finished run is not a failure: there is nothing to do (a requeued job exits cleanly)
  if (err instanceof RunFinishedError) {
    output.notice(formatError(err).replace(/^error: /, ''));
    return EXIT_OK;
  }
  output.failure(err);
  return EXIT_FAILED;
}

/**
 * The progress cadence the config asks for. Reading it here (without the file-system checks) costs
 * little; when the config is broken, `train` reports that properly a moment later.
 */
function readLogEvery(configFile: string): number {
  try {
    return loadAnyConfig(configFile, { semantic: false }).training.logEvery;
  } catch {
    return DEFAULT_LOG_EVERY;
  }
}

/** First Ctrl-C (or SIGTERM) calls `onFirst`; the second exits at once with 130. */
function onInterrupt(onFirst: () => void, output: Output): { dispose(): void } {
  return onInterrupts(onFirst, () => exitNow(output));
}

function exitNow(output: Output): never {
  output.notice('interrupted');
  process.exit(EXIT_CANCELLED);
}
