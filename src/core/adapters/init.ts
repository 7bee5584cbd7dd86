import type { Rng } from '../random';

/** Normal(0, std) truncated at two standard deviations, as TensorFlow's truncated_normal (adapter-bert's init). */
export function truncatedNormal(size: number, std: number, rng: Rng): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    let z: number;
    do z = standardNormal(rng);
    while (Math.abs(z) > 2);
    out[i] = z * std;
  }
  return out;
}

/** Uniform(-bound, bound): LoRA's A uses kaiming-uniform(a = sqrt 5), i.e. bound 1 / sqrt(fan_in). */
export function uniform(size: number, bound: number, rng: Rng): Float32Array {
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = (rng.next() * 2 - 1) * bound;
  return out;
}

function standardNormal(rng: Rng): number {
  // Box-Muller; 1 - u keeps the log argument in (0, 1]
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
