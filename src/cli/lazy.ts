/**
 * The CLI's heavy modules, each loaded on first use: TensorFlow.js, the model code and the schema take
 * a while to load, and `--help`, a usage error or `vocab` need none of them.
 */
import type * as AdapterHub from './commands/adapterhub';
import type * as Slurm from './commands/slurm';
import type * as Sweep from './commands/sweep';
import type * as Describe from '../core/train/describe';
import type * as Pretrainer from '../core/train/pretrain';
import type * as Trainer from '../core/train/trainer';

export function loadTrainer(): typeof Trainer {
  return require('../core/train/trainer') as typeof Trainer;
}

export function loadPretrainer(): typeof Pretrainer {
  return require('../core/train/pretrain') as typeof Pretrainer;
}

/** `inspect`: reading a checkpoint pulls in the model code. */
export function loadDescribe(): typeof Describe {
  return require('../core/train/describe') as typeof Describe;
}

/** `sweep` reads the schema to check every point. */
export function loadSweep(): typeof Sweep {
  return require('./commands/sweep') as typeof Sweep;
}

/** `import` pulls in TensorFlow.js. */
export function loadAdapterHub(): typeof AdapterHub {
  return require('./commands/adapterhub') as typeof AdapterHub;
}

export function loadSlurm(): typeof Slurm {
  return require('./commands/slurm') as typeof Slurm;
}
