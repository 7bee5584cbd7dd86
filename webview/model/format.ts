/** Number and text formatting shared by the dashboard's views (no DOM). */

/** 1234567 -> "1,234,567". */
export function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 4385920 -> "4.39M", 20736 -> "20.7K", 512 -> "512". */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${trim(n / 1e9)}B`;
  if (abs >= 1e6) return `${trim(n / 1e6)}M`;
  if (abs >= 1e3) return `${trim(n / 1e3)}K`;
  return String(Math.round(n));
}

function trim(x: number): string {
  const abs = Math.abs(x);
  return (abs >= 100 ? x.toFixed(0) : abs >= 10 ? x.toFixed(1) : x.toFixed(2)).replace(/\.?0+$/, '');
}

/** A share (0..1) as a percentage with enough digits to be non-zero: 0.02297 -> "2.30%", 0.00012 -> "0.012%". */
export function formatPercent(share: number): string {
  if (!Number.isFinite(share)) return '–';
  const p = share * 100;
  if (p === 0) return '0%';
  const abs = Math.abs(p);
  if (abs >= 10) return `${p.toFixed(1)}%`;
  if (abs >= 0.1) return `${p.toFixed(2)}%`;
  return `${p.toPrecision(2)}%`;
}

/** [128, 32] -> "128 × 32". */
export function formatShape(shape: readonly number[]): string {
  return shape.join(' × ');
}

/** A metric or loss value. */
export function formatValue(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return v.toExponential(2);
  return v.toFixed(digits);
}

/** 83000 -> "1 min 23 s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} min`;
}

/** Axis tick labels: short, exponent form for tiny learning rates. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs < 1e-2 || abs >= 1e6) return v.toExponential(abs < 1e-2 ? 0 : 1).replace('e-', 'e−');
  if (abs >= 1e3) return formatCount(v);
  return String(Number(v.toPrecision(3)));
}
