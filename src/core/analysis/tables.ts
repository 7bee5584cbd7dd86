/**
 * Tables for papers and spreadsheets: one table model written as CSV (RFC 4180; a summary cell
 * becomes its mean, sd and N columns so a spreadsheet can compute with them), GitHub Markdown and
 * LaTeX (booktabs, `mean $\pm$ sd`). The Experiments table's exports and the claim bench's
 * printout use these writers, so a number reads the same everywhere.
 */
import type { Summary } from './stats';
import type { ParamValue } from './groups';

export type TableCell = ParamValue | undefined | Summary;

export interface TableColumn {
  readonly label: string;
  /** Digits after the point for numbers and summaries in Markdown and LaTeX (CSV keeps every digit). Default 4. */
  readonly digits?: number;
}

export interface Table {
  readonly columns: readonly TableColumn[];
  readonly rows: readonly (readonly TableCell[])[];
  /** LaTeX caption (also a Markdown line above the table). */
  readonly caption?: string;
}

export function isSummary(cell: TableCell): cell is Summary {
  return typeof cell === 'object' && cell !== null && 'mean' in cell && 'sd' in cell;
}

/** `0.8531 ± 0.0042` (N = 1: the value alone, there is no spread). */
export function formatSummary(s: Summary, digits: number, pm = '±'): string {
  return s.n > 1 ? `${s.mean.toFixed(digits)} ${pm} ${s.sd.toFixed(digits)}` : s.mean.toFixed(digits);
}

function plainCell(cell: TableCell, digits: number): string {
  if (cell === undefined || cell === null) return '';
  if (typeof cell === 'number') return Number.isInteger(cell) ? String(cell) : cell.toFixed(digits);
  return String(cell);
}

// ---- CSV ---------------------------------------------------------------------------------------------

function csvField(text: string): string {
  return /[",\r\n]/.test(text) || /^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Summary columns become `<label> mean`, `<label> sd`, `<label> N`; numbers keep every digit. */
export function toCsv(table: Table): string {
  const summaryColumn = table.columns.map((_, j) => table.rows.some((r) => isSummary(r[j])));
  const header = table.columns.flatMap((c, j) =>
    summaryColumn[j] ? [`${c.label} mean`, `${c.label} sd`, `${c.label} N`] : [c.label],
  );
  const lines = [header.map(csvField).join(',')];
  for (const row of table.rows) {
    const fields = table.columns.flatMap((_, j) => {
      const cell = row[j];
      if (summaryColumn[j])
        return isSummary(cell) ? [String(cell.mean), String(cell.sd), String(cell.n)] : [plainRaw(cell), '', ''];
      return [plainRaw(cell)];
    });
    lines.push(fields.map(csvField).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

function plainRaw(cell: TableCell): string {
  if (cell === undefined || cell === null) return '';
  if (isSummary(cell)) return String(cell.mean);
  return String(cell);
}

// ---- Markdown ------------------------------------------------------------------------------------------

function markdownText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export function toMarkdown(table: Table): string {
  const text = (cell: TableCell, c: TableColumn) =>
    isSummary(cell) ? formatSummary(cell, c.digits ?? 4) : plainCell(cell, c.digits ?? 4);
  const numeric = table.columns.map((_, j) => table.rows.some((r) => typeof r[j] === 'number' || isSummary(r[j])));
  const lines = [
    `| ${table.columns.map((c) => markdownText(c.label)).join(' | ')} |`,
    `| ${numeric.map((n) => (n ? '---:' : '---')).join(' | ')} |`,
    ...table.rows.map((row) => `| ${table.columns.map((c, j) => markdownText(text(row[j], c))).join(' | ')} |`),
  ];
  return `${table.caption ? `${markdownText(table.caption)}\n\n` : ''}${lines.join('\n')}\n`;
}

// ---- LaTeX ------------------------------------------------------------------------------------------------

const LATEX_SPECIAL: Record<string, string> = {
  '\\': '\\textbackslash{}',
  '&': '\\&',
  '%': '\\%',
  $: '\\$',
  '#': '\\#',
  _: '\\_',
  '{': '\\{',
  '}': '\\}',
  '~': '\\textasciitilde{}',
  '^': '\\textasciicircum{}',
};

export function latexText(text: string): string {
  return text.replace(/[\\&%$#_{}~^]/g, (c) => LATEX_SPECIAL[c]!);
}

/** A `table` with a booktabs `tabular` (needs \usepackage{booktabs}); numbers right-aligned. */
export function toLatex(table: Table): string {
  const numeric = table.columns.map((_, j) => table.rows.some((r) => typeof r[j] === 'number' || isSummary(r[j])));
  const cell = (c: TableCell, col: TableColumn) =>
    isSummary(c) ? `$${formatSummary(c, col.digits ?? 4, '\\pm')}$` : latexText(plainCell(c, col.digits ?? 4));
  const lines = [
    '\\begin{table}[t]',
    '\\centering',
    `\\begin{tabular}{${numeric.map((n) => (n ? 'r' : 'l')).join('')}}`,
    '\\toprule',
    `${table.columns.map((c) => latexText(c.label)).join(' & ')} \\\\`,
    '\\midrule',
    ...table.rows.map((row) => `${table.columns.map((c, j) => cell(row[j], c)).join(' & ')} \\\\`),
    '\\bottomrule',
    '\\end{tabular}',
    ...(table.caption ? [`\\caption{${latexText(table.caption)}}`] : []),
    '\\end{table}',
  ];
  return `${lines.join('\n')}\n`;
}

export type TableFormat = 'csv' | 'markdown' | 'latex';
export const TABLE_FORMATS: Record<TableFormat, { write: (t: Table) => string; extension: string }> = {
  csv: { write: toCsv, extension: 'csv' },
  markdown: { write: toMarkdown, extension: 'md' },
  latex: { write: toLatex, extension: 'tex' },
};
