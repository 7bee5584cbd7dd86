/** The command line: `peft-lab <command> [options]` parsed into a Command, or a UsageError that says what is wrong. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { BackendName } from '../core/config/types';
import type { SlurmOptions } from '../core/slurm/job';
import type { Split } from '../protocol/worker';

export const BACKENDS = [
  'auto',
  'wasm',
  'cpu',
  'tensorflow',
  'tensorflow-gpu',
] as const satisfies readonly BackendName[];
const SPLITS = ['validation', 'test'] as const satisfies readonly Split[];
const EXPORT_FORMATS = ['adapterhub', 'peft'] as const;

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | {
      kind: 'train' | 'pretrain';
      configFile: string;
      resume?: string;
      backend?: BackendName;
      json: boolean;
      allowConfigChange: boolean;
      allowOutside: boolean;
      slurm?: SlurmOptions;
    }
  | {
      kind: 'sweep';
      configFile: string;
      parallel: number;
      backend?: BackendName;
      json: boolean;
      allowOutside: boolean;
      slurm?: SlurmOptions;
    }
  | { kind: 'slurm-task'; jobDir: string }
  | { kind: 'evaluate'; checkpointDir: string; split: Split; backend?: BackendName; json: boolean }
  | { kind: 'inspect'; target: string }
  | { kind: 'export'; checkpointDir: string; out?: string; name?: string; format: (typeof EXPORT_FORMATS)[number] }
  | { kind: 'import'; adapterDir: string; base: string; out?: string }
  | { kind: 'vocab'; out: string; from: string; corpus: string[]; size: number; documents: 'lines' | 'paragraphs' };

/** A command line that does not match the synopsis; reported with the usage text and exit code 2. */
export class UsageError extends Error {}

const COMMAND_NAMES = [
  'train',
  'pretrain',
  'evaluate',
  'inspect',
  'export',
  'import',
  'sweep',
  'vocab',
  'slurm-task',
] as const;
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
  sweep: {
    parallel: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
    'allow-outside': { type: 'boolean' },
    ...SLURM_OPTIONS,
  },
  'slurm-task': {},
  vocab: {
    from: { type: 'string' },
    corpus: { type: 'string', multiple: true },
    size: { type: 'string' },
    documents: { type: 'string' },
  },
};

export function parseCommandLine(argv: readonly string[]): Command {
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
      if (values['allow-config-change'] && values.resume === undefined)
        throw new UsageError(`${first}: --allow-config-change goes with --resume <runDir>`);
      if (values.resume !== undefined && slurmOptions(values))
        throw new UsageError(`${first}: --resume runs here; a Slurm run resumes by itself when it is requeued`);
      return {
        kind: first,
        configFile: target,
        resume: values.resume,
        backend: backendOption(values.backend),
        json: values.json ?? false,
        allowConfigChange: values['allow-config-change'] ?? false,
        allowOutside: values['allow-outside'] ?? false,
        slurm: slurmOptions(values),
      };
    case 'evaluate':
      return {
        kind: 'evaluate',
        checkpointDir: target,
        split: splitOption(values.split),
        backend: backendOption(values.backend),
        json: values.json ?? false,
      };
    case 'inspect':
      return { kind: 'inspect', target };
    case 'export':
      return {
        kind: 'export',
        checkpointDir: target,
        out: values.out,
        name: values.name,
        format: oneOf('--format', values.format ?? 'adapterhub', EXPORT_FORMATS),
      };
    case 'import':
      if (values.base === undefined) throw new UsageError('import: missing --base <file.peft.json>');
      return { kind: 'import', adapterDir: target, base: values.base, out: values.out };
    case 'sweep':
      return {
        kind: 'sweep',
        configFile: target,
        parallel: parallelOption(values.parallel),
        backend: backendOption(values.backend),
        json: values.json ?? false,
        allowOutside: values['allow-outside'] ?? false,
        slurm: slurmOptions(values),
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
  const given = ['partition', 'time', 'cpus-per-task', 'mem', 'gres', 'account', 'qos', 'sbatch', 'node'].filter(
    (k) => values[k as keyof CommandValues] !== undefined,
  );
  if (executor === 'local') {
    if (given.length) throw new UsageError(`--${given[0]} is a Slurm option: add --executor slurm`);
    return undefined;
  }
  const cpus = values['cpus-per-task'];
  if (cpus !== undefined && !/^[1-9]\d*$/.test(cpus))
    throw new UsageError(`--cpus-per-task must be a whole number of at least 1, not '${cpus}'`);
  const options: SlurmOptions = {
    partition: values.partition,
    time: values.time,
    cpusPerTask: cpus === undefined ? undefined : Number(cpus),
    mem: values.mem,
    gres: values.gres,
    account: values.account,
    qos: values.qos,
    extraDirectives: values.sbatch,
    nodePath: values.node,
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
  if (values.size === undefined || !/^[1-9]\d*$/.test(values.size))
    throw new UsageError(`vocab: --size must be a whole number of tokens, not '${values.size ?? ''}'`);
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
