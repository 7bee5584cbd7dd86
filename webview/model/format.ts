/** Formatting that only the dashboard's charts and placement view need (no DOM); the rest is src/protocol/format.ts. */
import { formatCountCompact } from '../../src/protocol/format';

/** [128, 32] -> "128 × 32". */
export function formatShape(shape: readonly number[]): string {
  return shape.join(' × ');
}

/** Axis tick labels: short, exponent form for tiny learning rates. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs < 1e-2 || abs >= 1e6) return v.toExponential(abs < 1e-2 ? 0 : 1).replace('e-', 'e−');
  if (abs >= 1e3) return formatCountCompact(v);
  return String(Number(v.toPrecision(3)));
}
