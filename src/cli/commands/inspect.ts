/** `peft-lab inspect`: a config, a run folder or a checkpoint, described in plain text. */
import { EXIT_FAILED, EXIT_OK } from '../exit-codes';
import { formatError } from '../../worker/errors';
import { loadDescribe } from '../lazy';

export function inspectCommand(target: string): number {
  try {
    process.stdout.write(`${loadDescribe().describeRun(target).trimEnd()}\n`);
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
}
