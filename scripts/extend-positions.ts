/**
 * Gives a pretrained BERT-style model's untrained positions a trained start, between the base's
 * pretraining phases: phase 1 trains positions 0..trained-1 only (sequences of 64 are ~2x cheaper per
 * token here), and positions beyond stay near their initialisation, which cost phase 2 far more steps
 * than it has (held-out 4.96 after 200 of its 600 steps, against 3.87 at length 64 before it). Rows
 * `trained`.. are tiled from the trained rows 1..trained-1 (row 0 is always [CLS] in packed
 * pretraining), as Longformer extended RoBERTa's 512 positions by copying them.
 *
 *   node --import tsx scripts/extend-positions.ts <modelDir> --trained 64 --out <newModelDir>
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from '../src/core/checkpoint/safetensors';

const POSITION_SUFFIX = 'embeddings.position_embeddings.weight';

function main(): void {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { trained: { type: 'string' }, out: { type: 'string' } },
  });
  const [modelDir] = positionals;
  if (!modelDir || !values.trained || !values.out) {
    throw new Error('usage: extend-positions.ts <modelDir> --trained <positions trained> --out <newModelDir>');
  }
  const trained = Number(values.trained);
  const out = path.resolve(values.out);
  const weightsFile = path.join(modelDir, 'model.safetensors');
  const { tensors, metadata } = readSafetensors(weightsFile);
  const name = [...tensors.keys()].find((key) => key.endsWith(POSITION_SUFFIX));
  if (!name) throw new Error(`${weightsFile}: no tensor named *${POSITION_SUFFIX}`);
  const table = tensors.get(name)!;
  const [positions, hidden] = table.shape;
  if (!Number.isInteger(trained) || trained < 2 || trained >= positions) {
    throw new Error(
      `--trained ${values.trained}: must be an integer from 2 to ${positions - 1} (${name} has ${positions} positions)`,
    );
  }
  const rows = Float32Array.from(toFloat32(table));
  for (let p = trained; p < positions; p++) {
    const source = 1 + ((p - 1) % (trained - 1));
    rows.copyWithin(p * hidden, source * hidden, (source + 1) * hidden);
  }
  fs.mkdirSync(out, { recursive: true });
  for (const file of fs.readdirSync(modelDir)) {
    if (file !== 'model.safetensors') fs.copyFileSync(path.join(modelDir, file), path.join(out, file));
  }
  const toWrite: Record<string, TensorToWrite> = {};
  for (const [key, tensor] of tensors) {
    // integer tensors (a saved position_ids buffer) keep their type; float weights are written as F32
    const data =
      key === name ? rows : tensor.dtype === 'I64' || tensor.dtype === 'I32' ? tensor.data : toFloat32(tensor);
    toWrite[key] = { shape: tensor.shape, data };
  }
  writeSafetensors(path.join(out, 'model.safetensors'), toWrite, metadata);
  process.stdout.write(`${out}: positions ${trained}..${positions - 1} of ${name} tiled from 1..${trained - 1}\n`);
}

main();
