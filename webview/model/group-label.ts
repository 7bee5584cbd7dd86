/**
 * What the dashboard calls a seed group opened from the Experiments table (no DOM).
 */
import type { AnalysisMessage, CellValue } from '../../src/protocol/experiments';
import { formatNumber } from './experiments-table';

/** A parameter value as the group table and the labels show it. */
export function keyText(v: CellValue | undefined): string {
  if (v === undefined || v === null) return '—';
  return typeof v === 'number' ? formatNumber(v) : String(v);
}

/**
 * The grouping columns that tell the groups apart: from the last, a column is left out when the
 * groups' keys stay distinct without it (Houlsby's bottleneck says nothing that `method.type houlsby`
 * does not, beside LoRA). The legend then stays short; the table shows the whole key.
 */
export function distinguishingColumns(a: AnalysisMessage): string[] {
  const kept = [...a.groupBy];
  for (const p of [...a.groupBy].reverse()) {
    const without = kept.filter((q) => q !== p);
    if (!without.length) continue;
    const keys = new Set(a.groups.map((g) => JSON.stringify(without.map((q) => g.key[q] ?? null))));
    if (keys.size === a.groups.length) kept.splice(kept.indexOf(p), 1);
  }
  return kept;
}

/** What the dashboard's legend calls a group: the columns that define it, `name value` each. */
export function groupLabel(
  a: AnalysisMessage,
  g: AnalysisMessage['groups'][number],
  columns = distinguishingColumns(a),
): string {
  const parts = columns
    .filter((p) => g.key[p] !== null && g.key[p] !== undefined)
    .map((p) => `${p} ${keyText(g.key[p])}`);
  return parts.length ? parts.join(', ') : a.groupBy.length ? `no ${columns.join(', ')}` : 'all runs';
}
