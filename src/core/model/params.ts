import { tf, type Tensor, type Variable } from '../tf';
import { CheckpointError } from '../errors';
import type { WeightMap } from './bert-config';

/** Which part of the model a parameter belongs to; placement and the sidebar count by group. */
export type ParamGroup = 'embeddings' | 'encoder' | 'pooler' | 'layerNorm' | 'adapter' | 'lora' | 'head';

export interface Param {
  /** Hugging Face style name, e.g. `bert.encoder.layer.0.output.adapter.down.weight`. */
  name: string;
  value: Variable;
  trainable: boolean;
  group: ParamGroup;
  /**
   * True for linear weights: stored on disk as torch does, [out, in], but held here as [in, out]
   * so the forward product x · W needs no transposed operand.
   */
  linear: boolean;
}

export interface AddOptions {
  trainable: boolean;
  group: ParamGroup;
  linear?: boolean;
}

/** All weights of a model, addressed by their Hugging Face names, in engine layout. */
export class ParamStore {
  private readonly params = new Map<string, Param>();

  /** Adds a parameter from data in disk layout (`diskShape`, torch order for linear weights). */
  add(name: string, diskShape: number[], data: Float32Array, options: AddOptions): Param {
    if (this.params.has(name)) throw new Error(`parameter ${name} is defined twice`);
    const linear = options.linear ?? false;
    const tensor = linear ? toEngineLayout(data, diskShape) : tf.tensor(data, diskShape);
    const param: Param = {
      name,
      value: tf.variable(tensor, options.trainable, uniqueVariableName(name)),
      trainable: options.trainable,
      group: options.group,
      linear,
    };
    tensor.dispose();
    this.params.set(name, param);
    return param;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  get(name: string): Param {
    const param = this.params.get(name);
    if (!param) throw new Error(`no parameter named ${name}`);
    return param;
  }

  tensor(name: string): Variable {
    return this.get(name).value;
  }

  all(): Param[] {
    return [...this.params.values()];
  }

  trainable(): Param[] {
    return this.all().filter((p) => p.trainable);
  }

  count(filter: (p: Param) => boolean = () => true): number {
    return this.all()
      .filter(filter)
      .reduce((n, p) => n + p.value.size, 0);
  }

  /** Weights in disk layout (torch order), for checkpoints and export. */
  exportWeights(filter: (p: Param) => boolean = () => true): WeightMap {
    const out: WeightMap = new Map();
    for (const p of this.all().filter(filter)) {
      const data = p.value.dataSync() as Float32Array;
      const shape = p.value.shape;
      out.set(p.name, p.linear ? transposeData(data, shape[0]!, shape[1]!) : { shape: [...shape], data: data.slice() });
    }
    return out;
  }

  /**
   * Overwrites parameters from weights in disk layout; every name must exist with its shape.
   * `file` names the source in errors.
   */
  importWeights(weights: WeightMap, file: string, options: { allowMissing?: boolean } = {}): void {
    const problems: string[] = [];
    for (const [name, w] of weights) {
      const param = this.params.get(name);
      if (!param) {
        problems.push(`unexpected weight ${name}`);
        continue;
      }
      const expected = diskShapeOf(param);
      if (!sameShape(expected, w.shape)) {
        problems.push(`${name}: expected shape [${expected}], found [${w.shape}]`);
        continue;
      }
      const tensor = param.linear ? toEngineLayout(w.data, w.shape) : tf.tensor(w.data, w.shape);
      param.value.assign(tensor);
      tensor.dispose();
    }
    if (!options.allowMissing) {
      for (const p of this.trainable()) if (!weights.has(p.name)) problems.push(`missing weight ${p.name}`);
    }
    if (problems.length) throw new CheckpointError(file, problems.join('; '));
  }

  dispose(): void {
    for (const p of this.params.values()) p.value.dispose();
    this.params.clear();
  }
}

export function diskShapeOf(param: Param): number[] {
  const shape = param.value.shape;
  return param.linear ? [shape[1]!, shape[0]!] : [...shape];
}

function toEngineLayout(data: Float32Array, diskShape: number[]): Tensor {
  if (diskShape.length !== 2) throw new Error(`linear weight must be 2-D, got [${diskShape}]`);
  const t = transposeData(data, diskShape[0], diskShape[1]);
  return tf.tensor(t.data, t.shape);
}

/** Row-major [rows, cols] -> [cols, rows]. */
export function transposeData(data: Float32Array, rows: number, cols: number): { shape: number[]; data: Float32Array } {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const rowOffset = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[rowOffset + c];
  }
  return { shape: [cols, rows], data: out };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

let variableCounter = 0;
/** TF.js variable names are global to the engine; two models in one process must not collide. */
function uniqueVariableName(name: string): string {
  return `${name}#${variableCounter++}`;
}
