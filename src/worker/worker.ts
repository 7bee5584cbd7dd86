/**
 * The training process the extension starts with
 * `fork('dist/worker.js', [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })`.
 *
 * Training runs in its own process so a long run (or a crash in a native TensorFlow backend)
 * never blocks or takes down the extension host. The worker does exactly one job per process:
 * it waits for a `train`, `pretrain` or `evaluate` request, forwards every message of that job over IPC,
 * sends the outcome (`finished`, `evaluated` or `failed`) and exits: 0 when the job ended normally
 * (also when stopped early), 1 when it failed, 130 when an evaluation was cancelled.
 *
 * Stopping is always graceful first: a `cancel` request, SIGTERM, or the parent going away all stop
 * training at the next step boundary after a checkpoint, so no work is lost. A second SIGTERM
 * exits at once. Lines on stderr are for the host's output channel, and are what the host shows
 * when the worker dies without a `failed` message.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnyResolvedConfig, BackendName } from '../core/config/types';
import { CancelledError } from '../core/errors';
import { evaluateCheckpoint, train } from '../core/train/trainer';
import { pretrain } from '../core/train/pretrain';
import { isPretrainConfig, loadAnyConfig } from '../core/config/load';
import {
  isHostRequest,
  type EvaluateRequest,
  type EvaluatedMessage,
  type FinishedMessage,
  type HostRequest,
  type PretrainRequest,
  type TrainRequest,
  type WorkerMessage,
} from '../protocol/worker';
import { formatError, toErrorInfo } from './errors';
import { formatDuration } from '../protocol/format';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_CANCELLED = 130;
const EXIT_SIGTERM = 143;

type TrainingJob = TrainRequest | PretrainRequest;
type Job = TrainingJob | EvaluateRequest;

/** What this process is doing; a worker runs at most one job in its lifetime. */
const state = {
  job: undefined as Job | undefined,
  /** Aborted on the first stop request; the trainer checks it at every step boundary. */
  stop: new AbortController(),
  /** Set once the outcome is being sent, so a late error or signal cannot send a second one. */
  exiting: false,
  /** `<run folder>/worker.log`, known once the run has started. */
  logFile: undefined as string | undefined,
};

function main(): void {
  process.setSourceMapsEnabled(true);
  if (!process.send) {
    printDirectStartHint();
    process.exitCode = EXIT_USAGE;
    return;
  }
  process.on('message', onParentMessage);
  process.on('disconnect', onDisconnect);
  // Once the host is gone its pipes are too; a write to them must not kill a detached run
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  process.on('SIGTERM', onSigterm);
  process.on('uncaughtException', (err) => void failAndExit(err));
  process.on('unhandledRejection', (reason) => void failAndExit(reason));
  logLine('ready; waiting for a request');
}

function printDirectStartHint(): void {
  process.stderr.write(
    'peft-lab worker: this is the training process the PEFT Lab extension starts over IPC; it is not meant to be run directly.\n' +
      'To train from a terminal, use the CLI:\n' +
      '  peft-lab train <file.peft.json>      (or: node dist/cli.js train <file.peft.json>)\n',
  );
}

// ---- requests from the host ------------------------------------------------------------------

function onParentMessage(message: unknown): void {
  if (!isHostRequest(message)) {
    warn(`ignoring a malformed request: ${preview(message)}`);
    return;
  }
  handleRequest(message);
}

function handleRequest(request: HostRequest): void {
  switch (request.type) {
    case 'cancel':
      requestStop('cancel requested');
      return;
    case 'train':
    case 'pretrain':
    case 'evaluate':
      startJob(request);
      return;
  }
}

function startJob(request: Job): void {
  if (state.job) {
    warn(
      `ignoring a '${request.type}' request: this worker is already running a '${state.job.type}' job (one job per process)`,
    );
    return;
  }
  state.job = request;
  logLine(
    request.type === 'evaluate'
      ? `evaluate ${request.checkpointDir} on ${request.split}`
      : `${request.type} ${request.configFile}${request.config ? ` as ${request.config.name}` : ''}${request.resume ? ` (resuming ${request.resume})` : ''}`,
  );
  void runJob(request);
}

async function runJob(request: Job): Promise<void> {
  try {
    const outcome = request.type === 'evaluate' ? await runEvaluate(request) : await runTrain(request);
    logLine(describeOutcome(outcome));
    await exitAfterSending(outcome, EXIT_OK);
  } catch (err) {
    await failAndExit(err);
  }
}

/** A `train` request for a pretraining config (or run) pretrains: the host's Train button need not know the kinds apart. */
function runTrain(request: TrainingJob): Promise<FinishedMessage> {
  const pretraining = request.type === 'pretrain' || isPretraining(request);
  if (pretraining && request.type === 'train') logLine('the config has a pretrain section: pretraining');
  return (pretraining ? pretrain : train)(request.configFile, {
    resume: request.resume,
    allowConfigChange: request.allowConfigChange,
    runsDir: request.runsDir,
    // checked by the host when it planned the sweep; the run refuses a config of the other kind
    config: request.config as AnyResolvedConfig | undefined,
    // Not checked here: backend selection rejects unknown names with a BackendError that lists the valid ones.
    backend: request.backend as BackendName | undefined,
    signal: state.stop.signal,
    onMessage: forward,
  });
}

/** Whether the config (or the run being resumed) is a pretraining one; any problem is left for `train` to report. */
function isPretraining(request: TrainingJob): boolean {
  try {
    if (request.resume)
      return 'pretrain' in (JSON.parse(fs.readFileSync(path.join(request.resume, 'config.json'), 'utf8')) as object);
    if (request.config) return 'pretrain' in request.config;
    return isPretrainConfig(loadAnyConfig(request.configFile, { semantic: false }));
  } catch {
    return false;
  }
}

function runEvaluate(request: EvaluateRequest): Promise<EvaluatedMessage> {
  return evaluateCheckpoint(request.checkpointDir, request.split, {
    backend: request.backend as BackendName | undefined,
    onMessage: forward,
  });
}

// ---- stopping ----------------------------------------------------------------------------------

/** Cancel, SIGTERM and a lost parent all mean: stop without losing work. */
function requestStop(reason: string): void {
  if (state.exiting) return;
  const job = state.job;
  if (!job) {
    logLine(`${reason} before any job started; exiting`);
    process.exit(EXIT_OK);
  }
  if (job.type === 'evaluate') {
    // Evaluation writes nothing, so there is nothing to save: stop now rather than after the whole split.
    logLine(`${reason}; abandoning the evaluation`);
    void exitAfterSending({ type: 'failed', error: toErrorInfo(new CancelledError()) }, EXIT_CANCELLED);
    return;
  }
  if (state.stop.signal.aborted) return;
  logLine(`${reason}; stopping at the next step boundary after writing a checkpoint`);
  state.stop.abort();
}

function onDisconnect(): void {
  const job = state.job;
  if (job !== undefined && job.type !== 'evaluate' && job.detach) {
    logLine('the extension host went away; training goes on (a new window follows it through the run folder)');
    return;
  }
  requestStop('the extension host disconnected');
}

let sigtermCount = 0;

function onSigterm(): void {
  sigtermCount += 1;
  if (sigtermCount > 1) {
    logLine('second SIGTERM; exiting now without a checkpoint');
    process.exit(EXIT_SIGTERM);
  }
  requestStop('SIGTERM received (send it again to exit at once)');
}

// ---- messages to the host ----------------------------------------------------------------------

function forward(message: WorkerMessage): void {
  mirrorToStderr(message);
  void send(message);
}

async function failAndExit(err: unknown): Promise<void> {
  if (state.exiting) return;
  // Unlike a terminal, the output channel is a log: the stack of an unexpected error (a bug) belongs there.
  logLine(formatError(err, { stack: true }));
  await exitAfterSending({ type: 'failed', error: toErrorInfo(err) }, EXIT_FAILED);
}

/** Sends the job's outcome, waits until IPC has handed it over, then exits: exiting earlier could drop it. */
async function exitAfterSending(outcome: WorkerMessage, code: number): Promise<void> {
  if (state.exiting) return;
  state.exiting = true;
  await send(outcome);
  process.exit(code);
}

/** Resolves once the message is handed to the IPC channel, or at once when there is no parent left to tell. */
function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, undefined, (err: Error | null) => {
      if (err) logLine(`could not send '${message.type}' to the extension host: ${err.message}`);
      resolve();
    });
  });
}

// ---- stderr ------------------------------------------------------------------------------------

/** Copies the messages worth keeping to stderr, so the output channel tells the story of a run. */
function mirrorToStderr(message: WorkerMessage): void {
  switch (message.type) {
    case 'started':
      state.logFile = path.join(message.runDir, 'worker.log');
      logLine(`run ${message.runDir}: ${message.totalSteps} steps on ${message.backend.description}`);
      return;
    case 'checkpoint':
      logLine(`checkpoint at step ${message.step}: ${message.dir}${message.isBest ? ' (best so far)' : ''}`);
      return;
    case 'log':
      logLine(message.level === 'info' ? message.message : `${message.level}: ${message.message}`);
      return;
    default:
      // Progress and metrics arrive often and are shown by the host's own views.
      return;
  }
}

function describeOutcome(outcome: FinishedMessage | EvaluatedMessage): string {
  if (outcome.type === 'evaluated') return `evaluated ${outcome.examples} examples: ${JSON.stringify(outcome.metrics)}`;
  const reason = outcome.reason ? ` (${outcome.reason})` : '';
  return `${outcome.state}${reason} after ${formatDuration(outcome.durationMs)}: ${outcome.runDir}`;
}

function warn(text: string): void {
  logLine(`warn: ${text}`);
  void send({ type: 'log', level: 'warn', message: text });
}

function logLine(text: string): void {
  const line = `[worker ${process.pid}] ${text}\n`;
  process.stderr.write(line); // after the host is gone this fails quietly (see the 'error' handlers)
  if (state.logFile) appendLog(state.logFile, `${new Date().toISOString()} ${line}`);
}

function appendLog(file: string, line: string): void {
  try {
    fs.appendFileSync(file, line);
  } catch {
    // a log line is not worth failing a run for
  }
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

main();
