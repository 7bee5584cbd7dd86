/**
 * Export of a checkpoint in PEFT Lab's own format: the trainable weights, the checkpoint's metadata
 * and the run's resolved config, copied into a new folder `<destination>/<run>-step-N/` with a
 * README saying what each file is. The optimizer state is left out: an export is for loading the
 * adapter, not for resuming. The AdapterHub format is written by core/checkpoint/adapterhub.ts.
 *
 * No `vscode` import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runDirOfCheckpoint } from '../../core/checkpoint/run-folder';
import { defaultExportFolder, exportAdapterHub } from '../../core/checkpoint/adapterhub';

export type ExportFormat = 'peft-lab' | 'adapterhub';

/** Exports into a new folder under `destination` in either format; returns it and what the user should be told. */
export function exportCheckpointAs(
  format: ExportFormat,
  checkpointDir: string,
  destination: string,
): { folder: string; warnings: string[] } {
  if (format === 'peft-lab') return { folder: exportCheckpoint(checkpointDir, destination), warnings: [] };
  const result = exportAdapterHub(checkpointDir, { out: defaultExportFolder(checkpointDir, destination) });
  const n = result.notExported.length;
  return {
    folder: result.dir,
    warnings: n
      ? [`${n} trained LayerNorm weights are not part of an AdapterHub adapter (the library keeps the base model's).`]
      : [],
  };
}

export const EXPORTED_FILES = ['weights.safetensors', 'checkpoint.json', 'config.json'] as const;

export class ExportError extends Error {
  constructor(
    readonly checkpointDir: string,
    message: string,
  ) {
    super(`cannot export ${checkpointDir}: ${message}`);
    this.name = 'ExportError';
  }
}

/** Copies the checkpoint into a new folder under `destination`; returns that folder. */
export function exportCheckpoint(checkpointDir: string, destination: string): string {
  const dir = path.resolve(checkpointDir);
  const runDir = runDirOfCheckpoint(dir);
  const sources: Record<(typeof EXPORTED_FILES)[number], string> = {
    'weights.safetensors': path.join(dir, 'weights.safetensors'),
    'checkpoint.json': path.join(dir, 'checkpoint.json'),
    'config.json': path.join(runDir, 'config.json'),
  };
  for (const [name, file] of Object.entries(sources)) {
    if (!fs.existsSync(file)) throw new ExportError(dir, `${name} is missing (${file})`);
  }
  const base = path.join(path.resolve(destination), `${path.basename(runDir)}-${path.basename(dir)}`);
  let target = base;
  for (let n = 2; fs.existsSync(target); n++) target = `${base}-${n}`;
  // assembled aside and renamed, like checkpoints themselves: no half export is ever visible
  const staging = `${target}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  try {
    for (const [name, file] of Object.entries(sources)) fs.copyFileSync(file, path.join(staging, name));
    fs.writeFileSync(path.join(staging, 'README.md'), readme(runDir, dir, sources['checkpoint.json']));
    fs.renameSync(staging, target);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return target;
}

function readme(runDir: string, checkpointDir: string, infoFile: string): string {
  let step = path.basename(checkpointDir);
  let method = '';
  try {
    const info = JSON.parse(fs.readFileSync(infoFile, 'utf8')) as { step?: number; method?: string };
    if (info.step !== undefined) step = `step ${info.step}`;
    if (info.method) method = info.method;
  } catch {
    // the README is a courtesy; the files are what count
  }
  return [
    `# PEFT Lab checkpoint export`,
    '',
    `Exported from \`${runDir}\` (${step}${method ? `, method ${method}` : ''}) on ${new Date().toISOString()}.`,
    '',
    "This is **PEFT Lab's own format**, not the AdapterHub layout (for that, choose the AdapterHub format or run `peft-lab export --format adapterhub`):",
    '',
    '- `weights.safetensors`: the trainable weights (adapters, LayerNorms, head), named as in Hugging Face BERT;',
    '  AdaMix keeps every expert (it merges them at inference).',
    '- `checkpoint.json`: step, epoch, method, label names, validation metrics at this step, trainer state.',
    '- `config.json`: the resolved config the run trained with (method, model, data, training).',
    '',
    'The optimizer state is not included: this export is for using the adapter, not for resuming training.',
    '',
  ].join('\n');
}
