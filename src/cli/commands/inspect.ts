/** `peft-lab inspect`: a config, a run folder or a checkpoint, described in plain text. */
import type * as Describe from '../../core/train/describe';
import { EXIT_FAILED, EXIT_OK } from '../exit-codes';
import { formatError } from '../../worker/errors';

/** Loaded on first use: reading a checkpoint pulls in the model code. */
function loadDescribe(): typeof Describe {
  return require('../../core/train/describe') as typeof Describe;
}

export function inspectCommand(target: string): number {
  try {
    process.stdout.write(`${loadDescribe().describeRun(target).trimEnd()}\n`);
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
}
