/**
 * `peft-lab`: train, evaluate and inspect from a terminal or a script, without VS Code.
 *
 * Training runs in this process (no worker): a terminal user wants Ctrl-C to reach the trainer
 * directly. The first Ctrl-C stops at the next step boundary after a checkpoint, so the run can be
 * resumed; a second one exits at once. `sweep` is the exception: each of its points trains in a
 * worker process of its own, so that several can train at once (commands/sweep.ts).
 *
 * Exit codes: 0 done, 1 bad input or failure, 2 usage error, 130 cancelled.
 */
import { version } from '../../package.json';
import { parseCommandLine, UsageError, type Command } from './args';
import { evaluateCommand, slurmTaskCommand, trainCommand } from './commands/train';
import { inspectCommand } from './commands/inspect';
import { vocabCommand } from './commands/vocab';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes';
import { HELP, SYNOPSIS } from './usage';
import { loadAdapterHub, loadSlurm, loadSweep } from './lazy';
import { formatError } from '../worker/errors';

export async function run(argv: readonly string[]): Promise<number> {
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
      if (command.slurm)
        return loadSlurm().slurmSubmitCommand({
          kind: 'train',
          configFile: command.configFile,
          parallel: 1,
          backend: command.backend,
          json: command.json,
          allowOutside: command.allowOutside,
          options: command.slurm,
        });
      return trainCommand(command);
    case 'slurm-task':
      return slurmTaskCommand(command.jobDir);
    case 'evaluate':
      return evaluateCommand(command);
    case 'inspect':
      return inspectCommand(command.target);
    case 'export':
      return loadAdapterHub().exportCommand(command);
    case 'import':
      return loadAdapterHub().importCommand(command);
    case 'sweep':
      if (command.slurm)
        return loadSlurm().slurmSubmitCommand({
          kind: 'sweep',
          configFile: command.configFile,
          parallel: command.parallel,
          backend: command.backend,
          json: command.json,
          allowOutside: command.allowOutside,
          options: command.slurm,
        });
      return loadSweep().sweepCommand(command);
    case 'vocab':
      return vocabCommand(command);
  }
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
