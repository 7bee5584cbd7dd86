/**
 * `peft-lab export` and `peft-lab import`: AdapterHub adapter folders in and out (the work is in
 * src/core/checkpoint/adapterhub*.ts; this file only talks to the terminal).
 * Results go to stdout, warnings and errors to stderr, as in the rest of the CLI.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultExportFolder, exportAdapterHub, type AdapterHubExport } from '../../core/checkpoint/adapterhub';
import { importAdapterHub, type AdapterHubImport } from '../../core/checkpoint/adapterhub-import';
import { ConfigError } from '../../core/errors';
import {
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  defaultPeftFolder,
  exportPeft,
  importPeft,
  type PeftExport,
  type PeftImport,
} from '../../core/checkpoint/hf-peft';
import type { MethodConfig } from '../../core/config/types';
import { displayPath, formatError } from '../../worker/errors';
import { EXIT_FAILED, EXIT_OK } from '../exit-codes';

export function exportCommand(command: {
  checkpointDir: string;
  out?: string;
  name?: string;
  format?: 'adapterhub' | 'peft';
}): number {
  try {
    if (command.format === 'peft') {
      printPeftExport(
        command.checkpointDir,
        exportPeft(command.checkpointDir, {
          out: command.out ?? defaultPeftFolder(command.checkpointDir, process.cwd()),
        }),
      );
      return EXIT_OK;
    }
    const out = command.out ?? defaultExportFolder(command.checkpointDir, process.cwd());
    printExport(command.checkpointDir, exportAdapterHub(command.checkpointDir, { out, name: command.name }));
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
}

export async function importCommand(command: { adapterDir: string; base: string; out?: string }): Promise<number> {
  try {
    checkBaseIsConfig(command.base);
    if (isPeftFolder(command.adapterDir)) {
      printPeftImport(
        command.adapterDir,
        command.base,
        await importPeft(command.adapterDir, {
          config: command.base,
          out: command.out,
          onLog: (m) => process.stderr.write(`${m}\n`),
        }),
      );
      return EXIT_OK;
    }
    const imported = await importAdapterHub(command.adapterDir, {
      config: command.base,
      out: command.out,
      onLog: (m) => process.stderr.write(`${m}\n`),
    });
    printImport(command.adapterDir, command.base, imported);
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
}

/** A Hugging Face PEFT folder: adapter_model.safetensors (AdapterHub's is adapter.safetensors), or a config with peft_type. */
function isPeftFolder(dir: string): boolean {
  if (fs.existsSync(path.join(dir, PEFT_WEIGHTS_FILE))) return true;
  try {
    return 'peft_type' in JSON.parse(fs.readFileSync(path.join(dir, PEFT_CONFIG_FILE), 'utf8'));
  } catch {
    return false; // the AdapterHub reader names what is wrong with the folder
  }
}

function printPeftExport(checkpointDir: string, result: PeftExport): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(
    `exported ${displayPath(path.resolve(checkpointDir))} (lora) as a Hugging Face PEFT adapter to ${displayPath(result.dir)}: ${PEFT_CONFIG_FILE}, ${PEFT_WEIGHTS_FILE} (${result.loraTensors} LoRA tensors, ${result.savedModules} in modules_to_save)`,
  );
  for (const note of result.notes) out(`note: ${note}`);
}

function printPeftImport(adapterDir: string, base: string, result: PeftImport): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(
    `imported ${displayPath(path.resolve(adapterDir))} (Hugging Face PEFT: ${describeMethod(result.method)}) onto the model of ${displayPath(path.resolve(base))}`,
  );
  out(`run: ${displayPath(result.runDir)}`);
  out(`checkpoint: ${displayPath(result.checkpointDir)}`);
  for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
  out(`evaluate it with: peft-lab evaluate ${displayPath(result.checkpointDir)}`);
}

/** A model folder alone says nothing about the task and data a checkpoint is evaluated with. */
function checkBaseIsConfig(base: string): void {
  if (fs.existsSync(base) && fs.statSync(base).isDirectory()) {
    throw new ConfigError(
      base,
      '',
      `is a folder; --base takes a *.peft.json config, whose model is the base and whose task and data the checkpoint is scored on (e.g. with "model": {"path": "${base}"})`,
    );
  }
}

function printExport(checkpointDir: string, result: AdapterHubExport): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const tensors: Record<string, number> = {
    'adapter.safetensors': result.adapterTensors,
    'model_head.safetensors': result.headTensors,
  };
  const files = result.files.map((f) => (f in tensors ? `${f} (${tensors[f]} tensors)` : f)).join(', ');
  out(
    `exported ${displayPath(path.resolve(checkpointDir))} (${result.method}) as AdapterHub adapter '${result.name}' to ${displayPath(result.dir)}: ${files}`,
  );
  for (const note of result.notes) out(`note: ${note}`);
  if (result.notExported.length) {
    process.stderr.write(
      `warning: ${result.notExported.length} LayerNorm weights the run trained are not part of an AdapterHub adapter; the library keeps the base model's, so its predictions differ from PEFT Lab's\n`,
    );
    out('not exported (trained LayerNorms):');
    for (const name of result.notExported) out(`  ${name}`);
  }
  const load = result.adapterTensors
    ? `model.load_adapter(${JSON.stringify(result.dir)}, use_safetensors=True, set_active=True)`
    : `model.load_head(${JSON.stringify(result.dir)}, use_safetensors=True)`;
  out(`load it in Python: model = adapters.BertAdapterModel.from_pretrained(<base model>); ${load}`);
}

function printImport(adapterDir: string, base: string, result: AdapterHubImport): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(
    `imported ${displayPath(path.resolve(adapterDir))} (adapter '${result.name}': ${describeMethod(result.method)}) onto the model of ${displayPath(path.resolve(base))}`,
  );
  out(`run: ${displayPath(result.runDir)}`);
  out(`checkpoint: ${displayPath(result.checkpointDir)}`);
  for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
  out(`evaluate it with: peft-lab evaluate ${displayPath(result.checkpointDir)}`);
}

function describeMethod(method: MethodConfig): string {
  const leftOut =
    'leaveOut' in method && method.leaveOut.length ? `, layers ${method.leaveOut.join(', ')} left out` : '';
  switch (method.type) {
    case 'houlsby':
      return `houlsby, bottleneck ${method.bottleneck} at ${method.sites.join(' and ')}, ${method.activation}${leftOut}`;
    case 'pfeiffer':
      return `pfeiffer, bottleneck ${method.bottleneck} at ffn, ${method.activation}${leftOut}`;
    case 'parallel':
      return `parallel, bottleneck ${method.bottleneck} at ${method.sites.join(' and ')}, scale ${method.scale}, ${method.activation}${leftOut}`;
    case 'lora':
      return `lora, rank ${method.rank}, alpha ${method.alpha} on ${method.targets.join(', ')}${leftOut}`;
    default:
      return method.type;
  }
}
