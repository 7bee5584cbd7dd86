/** Command-line flags of the TypeScript benchmarks: node:util's parseArgs, with usage errors in words. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Flags = NonNullable<ParseArgsConfig['options']>;

/** The flags' values, typed by their declarations; a malformed command line or --help goes to `usage`. */
export function readFlags<const T extends Flags>(
  argv: string[],
  flags: T,
  usage: (message: string) => never,
  about: string,
) {
  const config = { args: argv, options: flags, strict: true as const };
  if (argv.includes('--help') || argv.includes('-h')) usage(about);
  try {
    return parseArgs(config).values;
  } catch (err) {
    return usage((err as Error).message.split('\n')[0]!);
  }
}

export function positiveInteger(flag: string, value: string, usage: (message: string) => never): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) usage(`${flag} must be a positive integer, got '${value}'`);
  return n;
}
