/** What `peft-lab` prints for a usage error (the synopsis) and for --help. */
import { version } from '../../package.json';
import { BACKENDS } from './args';

export const SYNOPSIS = `usage: peft-lab train <file.peft.json> [--resume <runDir> [--allow-config-change]] [--allow-outside] [--backend <name>] [--executor local|slurm] [--json]
       peft-lab pretrain <file.peft.json> [--resume <runDir> [--allow-config-change]] [--allow-outside] [--backend <name>] [--executor local|slurm] [--json]
       peft-lab sweep <file.peft.json> [--parallel <n>] [--allow-outside] [--backend <name>] [--executor local|slurm] [--json]
       peft-lab evaluate <checkpointDir> [--split validation|test] [--backend <name>] [--json]
       peft-lab inspect <config|runDir|checkpointDir>
       peft-lab export <checkpointDir> [--out <dir>] [--format adapterhub|peft] [--name <name>]
       peft-lab import <adapterDir> --base <file.peft.json> [--out <runDir>]
       peft-lab vocab <out vocab.txt> --from <vocab.txt|modelDir> --corpus <file>... --size <n> [--documents lines|paragraphs]
       peft-lab --help | --version`;

export const HELP = `peft-lab ${version}: parameter-efficient fine-tuning of BERT encoders (Houlsby adapters, AdaMix, LoRA)

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
