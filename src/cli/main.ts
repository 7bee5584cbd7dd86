/**
 * `peft-lab`: train, evaluate and inspect from a terminal or a script, without VS Code.
 *
 * Training runs in this process (no worker): a terminal user wants Ctrl-C to reach the trainer
 * directly. The first Ctrl-C stops at the next step boundary after a checkpoint, so the run can be
 * resumed; a second one exits at once. `sweep` is the exception: each of its points trains in a
 * worker process of its own, so that several can train at once (sweep-command.ts).
 *
 * Exit codes: 0 done, 1 bad input or failure, 2 usage error, 130 cancelled.
 */
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { version } from '../../package.json';
import { loadAnyConfig } from '../core/config/load';
import type { BackendName } from '../core/config/types';
import { CancelledError, RunFinishedError } from '../core/errors';
import { checkOutputLocation } from '../core/config/output-location';
import { writeTrimmedVocabulary } from '../core/data/vocab-trim';
import type * as Trainer from '../core/train/trainer';
import type * as Pretrainer from '../core/train/pretrain';
import type * as AdapterHubCommands from './adapterhub-commands';
import type * as SweepCommands from './sweep-command';
import type * as SlurmCommands from './slurm-command';
import type { SlurmOptions } from '../core/slurm/job';
import type {
  CheckpointMessage,
  EvaluatedMessage,
  FinishedMessage,
  LogMessage,
  MetricsMessage,
  ProgressMessage,
  Split,
  StartedMessage,
  WorkerMessage,
} from '../protocol/worker';
import { displayPath, formatError, toErrorInfo } from './errors';
import { onInterrupts } from './interrupts';
import { formatBytes, formatCount, formatDuration, formatMetrics, formatMetricValue, formatPercent } from '../protocol/format';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_CANCELLED = 130;

const BACKENDS = ['auto', 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'] as const satisfies readonly BackendName[];
const SPLITS = ['validation', 'test'] as const satisfies readonly Split[];
const EXPORT_FORMATS = ['adapterhub', 'peft'] as const;
/** The schema's default for `training.logEvery`, used when the config cannot be read for it. */
const DEFAULT_LOG_EVERY = 10;

const SYNOPSIS = `usage: peft-lab train <file.peft.json> [--resume <runDir> [--allow-config-change]] [--allow-outside] [--backend <name>] [--executor local|slurm] [--json]
       peft-lab pretrain <file.peft.json> [--resume <runDir> [--allow-config-change]] [--allow-outside] [--backend <name>] [--executor local|slurm] [--json]
       peft-lab sweep <file.peft.json> [--parallel <n>] [--allow-outside] [--backend <name>] [--executor local|slurm] [--json]
       peft-lab evaluate <checkpointDir> [--split validation|test] [--backend <name>] [--json]
       peft-lab inspect <config|runDir|checkpointDir>
       peft-lab export <checkpointDir> [--out <dir>] [--format adapterhub|peft] [--name <name>]
       peft-lab import <adapterDir> --base <file.peft.json> [--out <runDir>]
       peft-lab vocab <out vocab.txt> --from <vocab.txt|modelDir> --corpus <file>... --size <n> [--documents lines|paragraphs]
       peft-lab --help | --version`;

const HELP = `peft-lab ${version}: parameter-efficient fine-tuning of BERT encoders (Houlsby adapters, AdaMix, LoRA)

${SYNOPSIS}

Commands:
  train <file.peft.json>     Fine-tune as the config says; writes a run folder with checkpoints.
    --resume <runDir>        Continue a stopped run from its last checkpoint (or rewind it to one of
                             its checkpoint folders). Refused while another process trains it, and
                             when the config file changes what the run computes.
    --allow-config-change    With --resume: continue with the changed config anyway; the changes
                             are recorded in the run's status.json.
    --allow-outside          Let output.runsDir (and output.modelDir) lie outside the config's
                             folder; system folders (/etc, /usr, ...) are refused regardless.
    --backend <name>         ${BACKENDS.join('|')} (overrides training.backend).
    --json                   Print every message as one JSON line, for scripts.
  pretrain <file.peft.json>  Pretrain an encoder by masked language modelling (a config with a
                             'pretrain' section); writes a run folder whose checkpoints are also
                             Hugging Face model folders, and the final model to output.modelDir
                             (default: <run folder>/model). Options as for train.
  sweep <file.peft.json>     Run every point of the config's 'sweep' section (grid or random search)
                             as a normal run, each in a worker process, then name the best point.
    --parallel <n>           How many points train at once (default 1).
    --allow-outside          As for train.
    --backend <name>         As for train.
    --json                   Every message as a JSON line with its 'point', between a 'sweep' and
                             a 'sweepEnded' line.
  --executor slurm           (train, pretrain, sweep) Submit to Slurm instead of training here: one
                             job, or for a sweep one job array (--parallel points at a time), then
                             follow it until every point has ended. Each task writes the same run
                             folder a local run would; a requeued or timed-out task continues from
                             its last checkpoint. The config's 'slurm' section sets the defaults of:
    --partition <name>  --time <limit>  --cpus-per-task <n>  --mem <size>  --gres <spec>
    --account <name>  --qos <name>  --sbatch <option> (an extra #SBATCH line; repeat)
    --node <path>            Node.js on the compute nodes (default: this one).
  evaluate <checkpointDir>   Score a saved checkpoint.
    --split <split>          validation|test (default: validation).
    --backend <name>         As for train.
    --json                   Print the messages as JSON lines.
  inspect <target>           Summarise a config file, a run folder or a checkpoint folder.
  export <checkpointDir>     Write the checkpoint as an adapter folder other libraries load.
    --format <format>        adapterhub (default): the Python 'adapters' library's save_adapter layout
                             (safetensors), adapter and head; every method but full.
                             peft: Hugging Face PEFT (adapter_config.json, adapter_model.safetensors)
                             for LoRA runs, the head as modules_to_save; PEFT has no bottleneck adapters.
    --out <dir>              The folder to create (default: ./<run>-<step>-<format>).
    --name <name>            The adapter's name in the adapters library (default: the config's name).
  import <adapterDir>        Make a PEFT Lab run folder with one checkpoint from an AdapterHub adapter
                             folder (adapter_config.json, adapter.safetensors, head) or a Hugging Face
                             PEFT LoRA folder (adapter_config.json, adapter_model.safetensors), ready
                             for evaluate.
    --base <file.peft.json>  The config whose model is the base and whose task and data it is scored on.
    --out <runDir>           The run folder to create (default: in the config's runs folder).
  vocab <out vocab.txt>      Cut a smaller WordPiece vocabulary for a corpus from a larger one: the
                             special tokens, every character the corpus uses, then its most frequent
                             pieces (for a small base to pretrain with 'pretrain').
    --from <vocab>           The vocabulary to cut from: a vocab.txt or a model folder.
    --corpus <file>          A corpus file, text or JSONL ('text' field); repeat for several.
    --size <n>               Tokens to keep.
    --documents <mode>       lines|paragraphs: how text files split into documents (default lines).

Options:
  -h, --help                 Show this help.
  -V, --version              Print the version.

Ctrl-C stops training at the next step boundary after writing a checkpoint (resume it with
--resume); press it again to exit at once. Set PEFT_LAB_BACKEND to force a backend and
PEFT_LAB_DEBUG=1 to see stack traces of unexpected errors.

Exit codes: 0 done, 1 error, 2 usage error, 130 cancelled.
`;

// ---- command line --------------------------------------------------------------------------------

type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'train' | 'pretrain'; configFile: string; resume?: string; backend?: BackendName; json: boolean; allowConfigChange: boolean; allowOutside: boolean; slurm?: SlurmOptions }
  | { kind: 'sweep'; configFile: string; parallel: number; backend?: BackendName; json: boolean; allowOutside: boolean; slurm?: SlurmOptions }
  | { kind: 'slurm-task'; jobDir: string }
  | { kind: 'evaluate'; checkpointDir: string; split: Split; backend?: BackendName; json: boolean }
  | { kind: 'inspect'; target: string }
  | { kind: 'export'; checkpointDir: string; out?: string; name?: string; format: (typeof EXPORT_FORMATS)[number] }
  | { kind: 'import'; adapterDir: string; base: string; out?: string }
  | { kind: 'vocab'; out: string; from: string; corpus: string[]; size: number; documents: 'lines' | 'paragraphs' };

/** A command line that does not match the synopsis; reported with the usage text and exit code 2. */
class UsageError extends Error {}

const COMMAND_NAMES = ['train', 'pretrain', 'evaluate', 'inspect', 'export', 'import', 'sweep', 'vocab', 'slurm-task'] as const;
type CommandName = (typeof COMMAND_NAMES)[number];

const SLURM_OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  executor: { type: 'string' },
  partition: { type: 'string' },
  time: { type: 'string' },
  'cpus-per-task': { type: 'string' },
  mem: { type: 'string' },
  gres: { type: 'string' },
  account: { type: 'string' },
  qos: { type: 'string' },
  sbatch: { type: 'string', multiple: true },
  node: { type: 'string' },
};

const TRAINING_OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  resume: { type: 'string' },
  backend: { type: 'string' },
  json: { type: 'boolean' },
  'allow-config-change': { type: 'boolean' },
  'allow-outside': { type: 'boolean' },
  ...SLURM_OPTIONS,
};

const COMMAND_OPTIONS: Record<CommandName, NonNullable<ParseArgsConfig['options']>> = {
  train: TRAINING_OPTIONS,
  pretrain: TRAINING_OPTIONS,
  evaluate: {
    split: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
  },
  inspect: {},
  export: { out: { type: 'string' }, format: { type: 'string' }, name: { type: 'string' } },
  import: { base: { type: 'string' }, out: { type: 'string' } },
  sweep: { parallel: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' }, 'allow-outside': { type: 'boolean' }, ...SLURM_OPTIONS },
  'slurm-task': {},
  vocab: { from: { type: 'string' }, corpus: { type: 'string', multiple: true }, size: { type: 'string' }, documents: { type: 'string' } },
};

function parseCommandLine(argv: readonly string[]): Command {
  const [first, ...rest] = argv;
  if (first === undefined) throw new UsageError('missing command');
  if (first === '--help' || first === '-h' || first === 'help') return { kind: 'help' };
  if (first === '--version' || first === '-V') return { kind: 'version' };
  if (!isCommandName(first)) {
    throw new UsageError(first.startsWith('-') ? `unknown option '${first}'` : `unknown command '${first}'`);
  }
  const { values, positionals } = parseCommandArgs(first, rest);
  if (values.help) return { kind: 'help' };
  const target = singlePositional(first, positionals);
  switch (first) {
    case 'train':
    case 'pretrain':
      if (values['allow-config-change'] && values.resume === undefined) throw new UsageError(`${first}: --allow-config-change goes with --resume <runDir>`);
      if (values.resume !== undefined && slurmOptions(values)) throw new UsageError(`${first}: --resume runs here; a Slurm run resumes by itself when it is requeued`);
      return {
        kind: first, configFile: target, resume: values.resume, backend: backendOption(values.backend), json: values.json ?? false,
        allowConfigChange: values['allow-config-change'] ?? false, allowOutside: values['allow-outside'] ?? false, slurm: slurmOptions(values),
      };
    case 'evaluate':
      return { kind: 'evaluate', checkpointDir: target, split: splitOption(values.split), backend: backendOption(values.backend), json: values.json ?? false };
    case 'inspect':
      return { kind: 'inspect', target };
    case 'export':
      return { kind: 'export', checkpointDir: target, out: values.out, name: values.name, format: oneOf('--format', values.format ?? 'adapterhub', EXPORT_FORMATS) };
    case 'import':
      if (values.base === undefined) throw new UsageError('import: missing --base <file.peft.json>');
      return { kind: 'import', adapterDir: target, base: values.base, out: values.out };
    case 'sweep':
      return {
        kind: 'sweep', configFile: target, parallel: parallelOption(values.parallel), backend: backendOption(values.backend), json: values.json ?? false,
        allowOutside: values['allow-outside'] ?? false, slurm: slurmOptions(values),
      };
    case 'slurm-task':
      return { kind: 'slurm-task', jobDir: target };
    case 'vocab':
      return vocabCommandLine(target, values);
  }
}

function isCommandName(word: string): word is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(word);
}

interface CommandValues {
  help?: boolean;
  resume?: string;
  backend?: string;
  split?: string;
  json?: boolean;
  out?: string;
  format?: string;
  name?: string;
  base?: string;
  parallel?: string;
  from?: string;
  corpus?: string[];
  size?: string;
  documents?: string;
  'allow-config-change'?: boolean;
  'allow-outside'?: boolean;
  executor?: string;
  partition?: string;
  time?: string;
  'cpus-per-task'?: string;
  mem?: string;
  gres?: string;
  account?: string;
  qos?: string;
  sbatch?: string[];
  node?: string;
}

/** The Slurm flags as options, or undefined for a local run (no --executor slurm). */
function slurmOptions(values: CommandValues): SlurmOptions | undefined {
  const executor = oneOf('--executor', values.executor ?? 'local', ['local', 'slurm'] as const);
  const given = ['partition', 'time', 'cpus-per-task', 'mem', 'gres', 'account', 'qos', 'sbatch', 'node'].filter((k) => values[k as keyof CommandValues] !== undefined);
  if (executor === 'local') {
    if (given.length) throw new UsageError(`--${given[0]} is a Slurm option: add --executor slurm`);
    return undefined;
  }
  const cpus = values['cpus-per-task'];
  if (cpus !== undefined && !/^[1-9]\d*$/.test(cpus)) throw new UsageError(`--cpus-per-task must be a whole number of at least 1, not '${cpus}'`);
  const options: SlurmOptions = {
    partition: values.partition, time: values.time, cpusPerTask: cpus === undefined ? undefined : Number(cpus), mem: values.mem,
    gres: values.gres, account: values.account, qos: values.qos, extraDirectives: values.sbatch, nodePath: values.node,
  };
  // flags given override the config's slurm section field by field; absent ones must not erase it
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SlurmOptions;
}

function parseCommandArgs(command: CommandName, args: string[]): { values: CommandValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...COMMAND_OPTIONS[command], help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    // Safe: with strict parsing every value has the type its option declares in COMMAND_OPTIONS.
    return { values: values as CommandValues, positionals };
  } catch (err) {
    // parseArgs reports unknown flags and missing option values as TypeErrors with an ERR_PARSE_ARGS_* code.
    const code = (err as NodeJS.ErrnoException).code;
    if (!code?.startsWith('ERR_PARSE_ARGS')) throw err;
    throw new UsageError(`${command}: ${parseArgsProblem(code, (err as Error).message)}`);
  }
}

/** parseArgs' own text for an unknown flag is a paragraph about '--'; the flag's name says enough. */
function parseArgsProblem(code: string, message: string): string {
  const quoted = /'([^']+)'/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && quoted) return `unknown option '${quoted}'`;
  return message.charAt(0).toLowerCase() + message.slice(1);
}

const ARGUMENT_NAMES: Record<CommandName, string> = {
  train: '<file.peft.json>',
  pretrain: '<file.peft.json>',
  evaluate: '<checkpointDir>',
  inspect: '<config|runDir|checkpointDir>',
  export: '<checkpointDir>',
  import: '<adapterhubDir>',
  sweep: '<file.peft.json>',
  vocab: '<out vocab.txt>',
  'slurm-task': '<job folder>',
};

function singlePositional(command: CommandName, positionals: string[]): string {
  if (positionals.length === 0) throw new UsageError(`${command}: missing ${ARGUMENT_NAMES[command]}`);
  if (positionals.length > 1) throw new UsageError(`${command}: unexpected argument '${positionals[1]}'`);
  return positionals[0];
}

function backendOption(value: string | undefined): BackendName | undefined {
  return value === undefined ? undefined : oneOf('--backend', value, BACKENDS);
}

function parallelOption(value: string | undefined): number {
  if (value === undefined) return 1;
  if (/^[1-9]\d*$/.test(value)) return Number(value);
  throw new UsageError(`--parallel must be a whole number of at least 1, not '${value}'`);
}

function vocabCommandLine(out: string, values: CommandValues): Extract<Command, { kind: 'vocab' }> {
  if (values.from === undefined) throw new UsageError('vocab: missing --from <vocab.txt or model folder>');
  if (!values.corpus?.length) throw new UsageError('vocab: missing --corpus <file> (repeat it for several files)');
  if (values.size === undefined || !/^[1-9]\d*$/.test(values.size)) throw new UsageError(`vocab: --size must be a whole number of tokens, not '${values.size ?? ''}'`);
  const documents = oneOf('--documents', values.documents ?? 'lines', ['lines', 'paragraphs'] as const);
  return { kind: 'vocab', out, from: values.from, corpus: values.corpus, size: Number(values.size), documents };
}

function splitOption(value: string | undefined): Split {
  return value === undefined ? 'validation' : oneOf('--split', value, SPLITS);
}

function oneOf<T extends string>(option: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${option} must be one of ${allowed.join(', ')}, not '${value}'`);
}

// ---- commands ------------------------------------------------------------------------------------

async function run(argv: readonly string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommandLine(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`peft-lab: ${err.message}\n${SYNOPSIS}\nRun 'peft-lab --help' for details.\n`);
    return EXIT_USAGE;
  }
  switch (command.kind) {
    case 'help':
      process.stdout.write(HELP);
      return EXIT_OK;
    case 'version':
      process.stdout.write(`${version}\n`);
      return EXIT_OK;
    case 'train':
    case 'pretrain':
      if (command.slurm) return loadSlurmCommands().slurmSubmitCommand({ kind: 'train', configFile: command.configFile, parallel: 1, backend: command.backend, json: command.json, allowOutside: command.allowOutside, options: command.slurm });
      return trainCommand(command);
    case 'slurm-task':
      return slurmTaskCommand(command.jobDir);
    case 'evaluate':
      return evaluateCommand(command);
    case 'inspect':
      return inspectCommand(command.target);
    case 'export':
      return loadAdapterHubCommands().exportCommand(command);
    case 'import':
      return loadAdapterHubCommands().importCommand(command);
    case 'sweep':
      if (command.slurm) return loadSlurmCommands().slurmSubmitCommand({ kind: 'sweep', configFile: command.configFile, parallel: command.parallel, backend: command.backend, json: command.json, allowOutside: command.allowOutside, options: command.slurm });
      return loadSweepCommands().sweepCommand(command);
    case 'vocab':
      return vocabCommand(command);
  }
}

/** Loaded on first use: it pulls in TensorFlow.js, which takes a while and is not needed for help or usage errors. */
function loadTrainer(): typeof Trainer {
  return require('../core/train/trainer') as typeof Trainer;
}

/** Loaded on first use, like the trainer. */
function loadPretrainer(): typeof Pretrainer {
  return require('../core/train/pretrain') as typeof Pretrainer;
}

/** Loaded on first use, like the others (it reads the schema to check every point). */
function loadSweepCommands(): typeof SweepCommands {
  return require('./sweep-command') as typeof SweepCommands;
}

/** Loaded on first use: import pulls in TensorFlow.js. */
function loadAdapterHubCommands(): typeof AdapterHubCommands {
  return require('./adapterhub-commands') as typeof AdapterHubCommands;
}

function vocabCommand(command: Extract<Command, { kind: 'vocab' }>): number {
  try {
    const trimmed = writeTrimmedVocabulary({ ...command, corpusOptions: { documents: command.documents, textField: 'text' } });
    const fewer = trimmed.tokens.length < command.size ? ` (the corpus uses fewer than ${command.size})` : '';
    process.stdout.write(
      `wrote ${trimmed.tokens.length} tokens${fewer} to ${displayPath(path.resolve(command.out))}: they cover ${(100 * trimmed.coverage).toFixed(1)}% of the corpus's ` +
        `${trimmed.corpusPieces} pieces (${trimmed.distinctPieces} distinct) as ${displayPath(path.resolve(command.from))} tokenizes it\n`,
    );
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
}

function loadSlurmCommands(): typeof SlurmCommands {
  return require('./slurm-command') as typeof SlurmCommands;
}

/** One task of a Slurm job, on a compute node: plain text output, which is the job's log. */
async function slurmTaskCommand(jobDir: string): Promise<number> {
  const output = createOutput(false, DEFAULT_LOG_EVERY);
  try {
    const { finished, code } = await loadSlurmCommands().slurmTaskCommand(jobDir, (message) => output.message(message));
    if (finished) output.message(finished);
    return code;
  } catch (err) {
    return reportFailure(err, output);
  }
}

async function trainCommand(command: Extract<Command, { kind: 'train' | 'pretrain' }>): Promise<number> {
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

async function evaluateCommand(command: Extract<Command, { kind: 'evaluate' }>): Promise<number> {
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

function inspectCommand(target: string): number {
  try {
    process.stdout.write(`${loadTrainer().describeRun(target).trimEnd()}\n`);
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
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

// ---- output ------------------------------------------------------------------------------------

interface Output {
  message(message: WorkerMessage): void;
  failure(err: unknown): void;
  /** A remark from the CLI itself (e.g. about Ctrl-C); never mixed into stdout's JSON lines. */
  notice(text: string): void;
}

function createOutput(json: boolean, logEvery: number): Output {
  if (json) return new JsonOutput();
  return new TextOutput(process.stdout.isTTY ? { interactive: true, columns: () => process.stdout.columns || 80 } : { interactive: false, logEvery });
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
  const share = placement.baseParams > 0 ? ` (${formatPercent(placement.trainableParams / placement.baseParams)} of ${formatCount(placement.baseParams)} base)` : '';
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
  else if (finished.reason === 'early-stopping') lines.push(`stopped early (no further improvement) after ${duration}: ${displayPath(finished.runDir)}`);
  else {
    lines.push(`stopped after ${duration}; the last checkpoint is in ${displayPath(finished.runDir)}`);
    const config = configFile ? displayPath(configFile) : '<file.peft.json>';
    lines.push(`resume with: peft-lab ${started?.kind ?? 'train'} ${quoteArg(config)} --resume ${quoteArg(displayPath(finished.runDir))}`);
  }
  if (finished.bestCheckpoint) {
    const metrics = finished.bestMetrics ? ` (${formatMetrics(finished.bestMetrics)})` : '';
    lines.push(`best checkpoint: ${displayPath(finished.bestCheckpoint)}${metrics}`);
  }
  if (finished.modelDir) lines.push(`model: ${displayPath(finished.modelDir)} (fine-tune it with "model": {"path": ...})`);
  return lines;
}

/** Quotes a path for copy-pasting into a POSIX shell when it needs it. */
function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

// ---- entry -------------------------------------------------------------------------------------

/** Exits only after stdout has drained: process.exit() can drop output still buffered for a pipe. */
function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

function main(): void {
  process.setSourceMapsEnabled(true);
  // `peft-lab train x --json | head -1`: the reader is gone, so there is no one left to report to.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_OK);
    throw err;
  });
  run(process.argv.slice(2)).then(exitAfterFlush, (err: unknown) => {
    process.stderr.write(`${formatError(err)}\n`);
    exitAfterFlush(EXIT_FAILED);
  });
}

if (require.main === module) main();
