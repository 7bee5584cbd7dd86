/**
 * The Experiments grid: a plain <table> with a sticky header (sort buttons and per-column filter
 * boxes) whose body draws only the rows in view (fixed row height, spacer rows above and below), so
 * 1,000 runs cost what 40 do. vscode-table renders every row as a web component with its own
 * shadow DOM; bench/experiments-table.mjs measures both.
 *
 * Keyboard (on the grid): ↑ ↓ PageUp PageDown Home End move the focused row, Space selects it,
 * Enter opens it in the dashboard (Ctrl/Cmd+Enter: the selection, overlaid), S stars it, F2 renames
 * it, N edits its note, Ctrl/Cmd+A selects every row shown.
 */
import type { CellValue, ExperimentRow, SortState } from '../../src/protocol/experiments';
import type { Column } from '../model/experiments-table';
import { clear, h } from '../view/dom';
import { FrameScheduler } from '../view/frame';

export const ROW_HEIGHT = 26;
const OVERSCAN = 8;
const SELECT_WIDTH = 32;
/** Leading columns that stay in view when the table scrolls sideways: the row's identity. */
const PINNABLE = new Set(['starred', 'name']);

export type EditField = 'name' | 'note';

export interface TableCallbacks {
  onSort(column: Column): void;
  onColumnFilter(columnId: string, text: string): void;
  onSelect(dirs: readonly string[], selected: boolean): void;
  onOpen(dirs: readonly string[]): void;
  onOpenConfig(dir: string): void;
  onStar(row: ExperimentRow): void;
  onEdit(row: ExperimentRow, field: EditField, value: string): void;
}

export class TableView {
  readonly element: HTMLElement;
  private readonly table = h('table', { class: 'grid' });
  private readonly colgroup = h('colgroup');
  private readonly thead = h('thead');
  private readonly tbody = h('tbody');
  private readonly topSpacer = spacer();
  private readonly bottomSpacer = spacer();
  private columns: Column[] = [];
  /** Left offset (px) of each pinned column. */
  private pinned = new Map<string, number>();
  private headerKey = '';
  private rows: ExperimentRow[] = [];
  private selected: ReadonlySet<string> = new Set();
  private focusIndex = 0;
  private anchor?: string;
  private editing?: { dir: string; field: EditField };
  private readonly frames = new FrameScheduler(() => this.renderWindow());

  constructor(private readonly callbacks: TableCallbacks) {
    this.table.append(this.colgroup, this.thead, this.tbody);
    this.element = h(
      'div',
      { class: 'grid-wrap', role: 'grid', tabindex: 0, 'aria-multiselectable': 'true', 'aria-label': 'Runs' },
      this.table,
    );
    this.element.addEventListener('scroll', () => this.frames.schedule());
    this.element.addEventListener('keydown', (e) => this.onKey(e));
    this.tbody.addEventListener('click', (e) => this.onClick(e));
    this.tbody.addEventListener('dblclick', (e) => this.onDoubleClick(e));
    new ResizeObserver(() => this.frames.schedule()).observe(this.element);
  }

  /** The focused row's run folder (for tests and the app). */
  get focusedDir(): string | undefined {
    return this.rows[this.focusIndex]?.dir;
  }

  /** Rebuilds the header only when the columns, the sort or a filter box's column set changed (a filter box keeps its focus). */
  setColumns(columns: Column[], sort: SortState | undefined, filters: Readonly<Record<string, string>>): void {
    this.columns = columns;
    const key = `${columns.map((c) => c.id).join('\n')}|${sort?.column}|${sort?.descending}`;
    if (key === this.headerKey) return;
    this.headerKey = key;
    this.renderHeader(sort, filters);
  }

  setRows(rows: ExperimentRow[], selected: ReadonlySet<string>): void {
    const focused = this.focusedDir;
    this.rows = rows;
    this.selected = selected;
    const kept = focused === undefined ? -1 : rows.findIndex((r) => r.dir === focused);
    this.focusIndex = kept >= 0 ? kept : Math.min(this.focusIndex, Math.max(0, rows.length - 1));
    this.renderWindow();
  }

  // ---- drawing ---------------------------------------------------------------------------------

  private renderHeader(sort: SortState | undefined, filters: Readonly<Record<string, string>>): void {
    clear(this.colgroup);
    clear(this.thead);
    this.pinned = pinnedOffsets(this.columns);
    let width = 0;
    const cols = [SELECT_WIDTH, ...this.columns.map(widthOf)];
    for (const w of cols) {
      const col = h('col');
      col.style.width = `${w}px`;
      this.colgroup.appendChild(col);
      width += w;
    }
    this.table.style.width = `${width}px`;
    const all = h('input', {
      type: 'checkbox',
      class: 'select-all',
      'aria-label': 'Select every run shown',
      title: 'Select every run shown',
    }) as HTMLInputElement;
    all.addEventListener('change', () =>
      this.callbacks.onSelect(
        this.rows.map((r) => r.dir),
        all.checked,
      ),
    );
    const heads = this.columns.map((c) => this.headerCell(c, sort));
    const boxes = this.columns.map((c) =>
      this.pin(h('th', { class: 'filter-cell' }, this.filterBox(c, filters[c.id] ?? '')), c),
    );
    this.thead.append(
      h('tr', { class: 'head-row', role: 'row', 'aria-rowindex': 1 }, h('th', { class: 'select-cell' }, all), ...heads),
      h('tr', { class: 'filter-row' }, h('th', { class: 'select-cell' }), ...boxes),
    );
  }

  private headerCell(c: Column, sort: SortState | undefined): HTMLElement {
    const sorted = sort?.column === c.id;
    const arrow = sorted
      ? h('span', { class: `codicon codicon-arrow-${sort!.descending ? 'down' : 'up'}`, 'aria-hidden': 'true' })
      : null;
    const button = h(
      'button',
      { class: 'sort-button', title: `${c.title}\nClick to sort; click again to reverse.`, 'data-column': c.id },
      h('span', { class: 'head-label' }, c.label),
      arrow,
    );
    button.addEventListener('click', () => this.callbacks.onSort(c));
    const ariaSort = sorted ? (sort!.descending ? 'descending' : 'ascending') : 'none';
    return this.pin(
      h(
        'th',
        {
          role: 'columnheader',
          'aria-sort': ariaSort,
          class: `head-cell kind-${c.kind} group-${c.group}`,
          'data-column': c.id,
        },
        button,
      ),
      c,
    );
  }

  private pin(cell: HTMLElement, c: Column): HTMLElement {
    const left = this.pinned.get(c.id);
    if (left === undefined) return cell;
    cell.classList.add('pinned');
    cell.style.left = `${left}px`;
    return cell;
  }

  private filterBox(c: Column, value: string): HTMLElement {
    const hint = c.kind === 'number' ? '>0.8, 1..5' : c.kind === 'boolean' ? '★' : 'text, !text';
    const input = h('input', {
      type: 'text',
      class: 'column-filter',
      value,
      placeholder: hint,
      'aria-label': `Filter ${c.label}`,
      'data-column': c.id,
      spellcheck: 'false',
    }) as HTMLInputElement;
    input.addEventListener('input', () => this.callbacks.onColumnFilter(c.id, input.value));
    return input;
  }

  /** Draws the rows in view; nothing while a cell is being edited (a redraw would drop the editor). */
  renderWindow(): void {
    if (this.editing) return;
    const { first, last } = this.windowRange();
    const span = this.columns.length + 1;
    this.topSpacer.firstElementChild!.setAttribute('colspan', String(span));
    this.bottomSpacer.firstElementChild!.setAttribute('colspan', String(span));
    this.topSpacer.style.height = `${first * ROW_HEIGHT}px`;
    this.bottomSpacer.style.height = `${(this.rows.length - last) * ROW_HEIGHT}px`;
    const fragment = document.createDocumentFragment();
    fragment.appendChild(this.topSpacer);
    for (let i = first; i < last; i++) fragment.appendChild(this.rowElement(this.rows[i]!, i));
    fragment.appendChild(this.bottomSpacer);
    clear(this.tbody);
    this.tbody.appendChild(fragment);
    this.element.setAttribute('aria-rowcount', String(this.rows.length + 1));
    const focused = this.rows[this.focusIndex];
    if (focused) this.element.setAttribute('aria-activedescendant', rowId(this.focusIndex));
    else this.element.removeAttribute('aria-activedescendant');
    const all = this.thead.querySelector<HTMLInputElement>('.select-all');
    if (all) {
      const count = this.rows.filter((r) => this.selected.has(r.dir)).length;
      all.checked = count > 0 && count === this.rows.length;
      all.indeterminate = count > 0 && count < this.rows.length;
    }
  }

  private windowRange(): { first: number; last: number } {
    const header = this.thead.offsetHeight;
    const top = Math.max(0, this.element.scrollTop - header);
    const height = this.element.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    return { first, last: Math.max(first, last) };
  }

  private rowElement(row: ExperimentRow, index: number): HTMLElement {
    const selected = this.selected.has(row.dir);
    const classes = [
      'row',
      `state-${row.state}`,
      selected ? 'selected' : '',
      index === this.focusIndex ? 'focused' : '',
      row.problems.length ? 'has-problem' : '',
    ];
    const tr = h('tr', {
      id: rowId(index),
      class: classes.filter(Boolean).join(' '),
      role: 'row',
      'aria-rowindex': index + 2,
      'aria-selected': String(selected),
      'data-dir': row.dir,
      'data-index': index,
    });
    const box = h('input', {
      type: 'checkbox',
      class: 'row-select',
      tabindex: -1,
      'aria-label': `Select ${row.name}`,
    }) as HTMLInputElement;
    box.checked = selected;
    tr.appendChild(h('td', { class: 'select-cell', role: 'gridcell' }, box));
    for (const c of this.columns) tr.appendChild(this.pin(this.cell(row, c), c));
    return tr;
  }

  private cell(row: ExperimentRow, c: Column): HTMLElement {
    const value = c.value(row);
    const text = c.format(value);
    const td = h('td', { role: 'gridcell', class: `cell kind-${c.kind}`, 'data-column': c.id });
    switch (c.id) {
      case 'starred':
        td.appendChild(
          h(
            'button',
            {
              class: `star-toggle${row.starred ? ' on' : ''}`,
              tabindex: -1,
              title: row.starred ? 'Unstar (S)' : 'Star (S)',
              'aria-pressed': String(row.starred),
              'aria-label': row.starred ? 'Unstar' : 'Star',
            },
            h('span', { class: `codicon codicon-${row.starred ? 'star-full' : 'star-empty'}`, 'aria-hidden': 'true' }),
          ),
        );
        return td;
      case 'name':
        td.title =
          row.name === row.folder
            ? `${row.folder}\nDouble-click or F2 to rename`
            : `${row.name}\nFolder: ${row.folder}`;
        td.appendChild(h('span', { class: 'cell-text' }, text));
        if (row.problems.length)
          td.appendChild(h('span', { class: 'codicon codicon-warning problem-icon', title: row.problems.join('\n') }));
        return td;
      case 'note':
        td.title = row.note ? `${row.note}\nDouble-click or N to edit` : 'Double-click or N to add a note';
        td.append(
          h('span', { class: 'cell-text' }, text),
          h(
            'button',
            { class: 'edit-note', tabindex: -1, title: 'Edit note (N)', 'aria-label': 'Edit note' },
            h('span', { class: 'codicon codicon-edit', 'aria-hidden': 'true' }),
          ),
        );
        return td;
      case 'state':
        td.append(h('span', { class: `state-dot state-${row.state}`, 'aria-hidden': 'true' }), text);
        return td;
      default:
        if (text.length > 12) td.title = text;
        td.textContent = text;
        if (c.group === 'metric' && isBest(value, c, row)) td.classList.add('is-primary');
        return td;
    }
  }

  // ---- interaction ---------------------------------------------------------------------------------

  private rowOf(target: EventTarget | null): { row: ExperimentRow; index: number } | undefined {
    const tr = (target as Element | null)?.closest?.('tr.row') as HTMLElement | null;
    const index = tr ? Number(tr.dataset.index) : NaN;
    const row = this.rows[index];
    return row ? { row, index } : undefined;
  }

  private onClick(e: MouseEvent): void {
    const hit = this.rowOf(e.target);
    if (!hit) return;
    const target = e.target as Element;
    this.setFocus(hit.index, false);
    if (target.closest('.star-toggle')) this.callbacks.onStar(hit.row);
    else if (target.closest('.edit-note')) this.startEdit(hit.row, 'note');
    else if (target.closest('.row-select')) this.toggleSelect(hit.row, e.shiftKey);
    this.element.focus({ preventScroll: true });
  }

  private onDoubleClick(e: MouseEvent): void {
    const hit = this.rowOf(e.target);
    const cell = (e.target as Element).closest('td');
    if (!hit || !cell || (e.target as Element).closest('button, input')) return;
    const column = cell.getAttribute('data-column');
    if (column === 'name' || column === 'note') this.startEdit(hit.row, column);
    else if (column === 'config') this.callbacks.onOpenConfig(hit.row.dir);
    else this.callbacks.onOpen([hit.row.dir]);
  }

  private toggleSelect(row: ExperimentRow, range: boolean): void {
    if (range && this.anchor) {
      const a = this.rows.findIndex((r) => r.dir === this.anchor);
      const b = this.rows.indexOf(row);
      if (a >= 0 && b >= 0) {
        this.callbacks.onSelect(
          this.rows.slice(Math.min(a, b), Math.max(a, b) + 1).map((r) => r.dir),
          true,
        );
        return;
      }
    }
    this.anchor = row.dir;
    this.callbacks.onSelect([row.dir], !this.selected.has(row.dir));
  }

  private onKey(e: KeyboardEvent): void {
    if (e.target !== this.element) return; // the filter boxes and the cell editor handle their own keys
    const row = this.rows[this.focusIndex];
    const page = Math.max(1, Math.floor(this.element.clientHeight / ROW_HEIGHT) - 2);
    const moves: Record<string, number> = {
      ArrowDown: 1,
      ArrowUp: -1,
      PageDown: page,
      PageUp: -page,
      Home: -Infinity,
      End: Infinity,
    };
    const ctrl = e.ctrlKey || e.metaKey;
    if (e.key in moves) this.setFocus(this.focusIndex + moves[e.key]!, true, e.shiftKey);
    else if (e.key === ' ' && row) this.toggleSelect(row, e.shiftKey);
    else if (e.key === 'Enter' && row) this.callbacks.onOpen(ctrl ? [...this.selected] : [row.dir]);
    else if (e.key.toLowerCase() === 'a' && ctrl)
      this.callbacks.onSelect(
        this.rows.map((r) => r.dir),
        true,
      );
    else if (e.key.toLowerCase() === 's' && !ctrl && row) this.callbacks.onStar(row);
    else if (e.key.toLowerCase() === 'n' && !ctrl && row) this.startEdit(row, 'note');
    else if (e.key === 'F2' && row) this.startEdit(row, 'name');
    else return;
    e.preventDefault();
  }

  private setFocus(index: number, scroll: boolean, extendSelection = false): void {
    if (!this.rows.length) return;
    const previous = this.rows[this.focusIndex];
    this.focusIndex = Math.max(0, Math.min(this.rows.length - 1, index));
    if (extendSelection && previous) this.callbacks.onSelect([previous.dir, this.rows[this.focusIndex]!.dir], true);
    if (scroll) this.ensureVisible(this.focusIndex);
    this.refreshFocus();
  }

  /** Moves the focus mark without redrawing the rows (a redraw between two clicks would lose a double-click). */
  private refreshFocus(): void {
    const current = this.tbody.querySelector(`tr[data-index="${this.focusIndex}"]`);
    if (!current) {
      this.renderWindow();
      return;
    }
    this.tbody.querySelector('tr.focused')?.classList.remove('focused');
    current.classList.add('focused');
    this.element.setAttribute('aria-activedescendant', rowId(this.focusIndex));
  }

  private ensureVisible(index: number): void {
    const header = this.thead.offsetHeight;
    const top = index * ROW_HEIGHT;
    const view = this.element.clientHeight - header;
    if (top < this.element.scrollTop) this.element.scrollTop = top;
    else if (top + ROW_HEIGHT > this.element.scrollTop + view) this.element.scrollTop = top + ROW_HEIGHT - view;
  }

  /** Replaces the cell's text with an input: Enter or leaving it saves, Escape cancels. */
  startEdit(row: ExperimentRow, field: EditField): void {
    const index = this.rows.indexOf(row);
    if (index < 0) return;
    this.ensureVisible(index);
    this.focusIndex = index;
    this.renderWindow();
    const td = this.tbody.querySelector(`tr[data-index="${index}"] td[data-column="${field}"]`);
    if (!td) return; // the column is hidden
    const input = h('input', {
      type: 'text',
      class: 'cell-editor',
      value: field === 'name' ? row.name : row.note,
      'aria-label': field === 'name' ? 'Run name' : 'Note',
      placeholder: field === 'name' ? row.folder : 'A note about this run',
    }) as HTMLInputElement;
    this.editing = { dir: row.dir, field };
    clear(td);
    td.appendChild(input);
    let done = false;
    const finish = (save: boolean) => {
      if (done) return;
      done = true;
      this.editing = undefined;
      if (save) this.callbacks.onEdit(row, field, input.value);
      this.renderWindow();
      this.element.focus({ preventScroll: true });
    };
    input.addEventListener('keydown', (e) => {
      e.stopPropagation();
      if (e.key === 'Enter') finish(true);
      else if (e.key === 'Escape') finish(false);
    });
    input.addEventListener('blur', () => finish(true));
    input.focus();
    input.select();
  }
}

function spacer(): HTMLElement {
  return h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td'));
}

function pinnedOffsets(columns: Column[]): Map<string, number> {
  const out = new Map<string, number>();
  let left = SELECT_WIDTH;
  for (const c of columns) {
    if (!PINNABLE.has(c.id)) break;
    out.set(c.id, left);
    left += widthOf(c);
  }
  return out;
}

function rowId(index: number): string {
  return `run-row-${index}`;
}

function widthOf(c: Column): number {
  const fixed: Record<string, number> = {
    starred: 36,
    name: 230,
    note: 240,
    state: 112,
    config: 150,
    sweep: 120,
    started: 142,
    folder: 220,
    backend: 84,
    duration: 84,
  };
  if (c.id in fixed) return fixed[c.id]!;
  const byLabel = Math.round(c.label.length * 7 + 30);
  if (c.group === 'parameter') return Math.min(220, Math.max(84, byLabel));
  return Math.min(170, Math.max(92, byLabel));
}

/** The metric column of the run's own task metric is emphasised. */
function isBest(value: CellValue | undefined, c: Column, row: ExperimentRow): boolean {
  return typeof value === 'number' && row.metric !== undefined && c.id === `best:${row.metric}`;
}
