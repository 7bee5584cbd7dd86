/**
 * How PEFT Lab writes a number for people: one format per kind, shared by the CLI, the VS Code side and
 * the webviews, so a run reads the same in the terminal, the sidebar and the dashboard.
 *
 * - durations      `42s`, `1m 12s`, `1h 02m`                         formatDuration
 * - bytes          `512 B`, `12.3 kB`, `4.5 MB`, `1.2 GB` (x1024)   formatBytes
 * - counts         `1,234,567` exact                                 formatCount
 *                  `1.23M`, `20.7K`, `512` where room is short       formatCountCompact
 * - shares         `2.30%`, `0.012%` (enough digits to be non-zero)  formatPercent
 * - metric values  `0.8125`; integers as they are; `1.00e-4` outside 1e-3..1e5; `–` when missing
 *                                                                    formatMetricValue
 * - metric lists   `accuracy 0.8125 · f1 0.8000 · loss 0.4100`: the main metric first, loss last
 *                                                                    formatMetrics
 *
 * It imports nothing: the webview bundle, the worker and the host all include it.
 */

/** Shown for a value that is missing or not a finite number. */
export const MISSING = '–';

/** 42_000 -> `42s`, 72_000 -> `1m 12s`, 3_723_000 -> `1h 02m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return MISSING;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${String(m % 60).padStart(2, '0')}m`;
}

const KIB = 1024;

/** 512 -> `512 B`, 12_600 -> `12.3 kB`, 4_718_592 -> `4.5 MB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return MISSING;
  if (bytes >= KIB ** 3) return `${(bytes / KIB ** 3).toFixed(1)} GB`;
  if (bytes >= KIB ** 2) return `${(bytes / KIB ** 2).toFixed(1)} MB`;
  if (bytes >= KIB) return `${(bytes / KIB).toFixed(1)} kB`;
  return `${Math.round(bytes)} B`;
}

/** 1234567 -> `1,234,567`: the exact number, for tooltips, logs and the CLI. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return MISSING;
  return Math.round(n).toLocaleString('en-US');
}

/** 4385920 -> `4.39M`, 20736 -> `20.7K`, 512 -> `512`: three significant digits where room is short. */
export function formatCountCompact(n: number): string {
  if (!Number.isFinite(n)) return MISSING;
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${threeDigits(n / 1e9)}B`;
  if (abs >= 1e6) return `${threeDigits(n / 1e6)}M`;
  if (abs >= 1e3) return `${threeDigits(n / 1e3)}K`;
  return String(Math.round(n));
}

/** 4.3859 -> `4.39`, 20.00 -> `20`, 110 -> `110` (only zeros after the point go). */
function threeDigits(x: number): string {
  const abs = Math.abs(x);
  const fixed = abs >= 100 ? x.toFixed(0) : abs >= 10 ? x.toFixed(1) : x.toFixed(2);
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

/** A share (0..1) as a percentage with enough digits to be non-zero: 0.02297 -> `2.30%`, 0.00012 -> `0.012%`. */
export function formatPercent(share: number): string {
  if (!Number.isFinite(share)) return MISSING;
  const p = share * 100;
  if (p === 0) return '0%';
  const abs = Math.abs(p);
  if (abs >= 10) return `${p.toFixed(1)}%`;
  if (abs >= 0.1) return `${p.toFixed(2)}%`;
  return `${p.toPrecision(2)}%`;
}

/** A metric or loss: 0.81249 -> `0.8125`, 3 -> `3`, 0.00002 -> `2.00e-5`, undefined -> `–`. */
export function formatMetricValue(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return MISSING;
  if (Number.isInteger(v)) return String(v);
  const abs = Math.abs(v);
  if (abs < 1e-3 || abs >= 1e5) return v.toExponential(2);
  return v.toFixed(4);
}

export interface MetricListOptions {
  /** Written first (default: none, the record's own order). */
  readonly main?: string;
  /** Keep only `main` and `loss` (default false). */
  readonly short?: boolean;
  /** Metrics left out (default none), e.g. `['loss']` where only quality matters. */
  readonly omit?: readonly string[];
}

/** `accuracy 0.8125 · f1 0.8000 · loss 0.4100`: the main metric first and the loss last. */
export function formatMetrics(metrics: Readonly<Record<string, number>>, options: MetricListOptions = {}): string {
  const { main, short = false, omit = [] } = options;
  const rank = (k: string) => (k === main ? 0 : k === 'loss' ? 2 : 1);
  let keys = Object.keys(metrics)
    .filter((k) => !omit.includes(k))
    .sort((a, b) => rank(a) - rank(b));
  if (short && main && main in metrics) keys = keys.filter((k) => k === main || k === 'loss');
  return keys.map((k) => `${k} ${formatMetricValue(metrics[k])}`).join(' · ');
}
