/**
 * Colours for canvases (uPlot draws on canvas, which cannot use CSS variables directly): read from
 * VS Code's theme variables on the body, and read again when the theme changes.
 */

export type ThemeKind = 'light' | 'dark' | 'high-contrast' | 'high-contrast-light';

export interface Theme {
  readonly kind: ThemeKind;
  readonly foreground: string;
  readonly muted: string;
  readonly grid: string;
  readonly background: string;
  readonly font: string;
  /** One colour per run (comparison) or per metric (one run). */
  readonly palette: readonly string[];
  readonly lineWidth: number;
  /** Opacity of the raw line under a smoothed one. */
  readonly rawAlpha: number;
}

const PALETTE_VARS: [string, string][] = [
  ['--vscode-charts-blue', '#3794ff'],
  ['--vscode-charts-orange', '#d18616'],
  ['--vscode-charts-green', '#89d185'],
  ['--vscode-charts-purple', '#b180d7'],
  ['--vscode-charts-red', '#f14c4c'],
  ['--vscode-charts-yellow', '#cca700'],
];

export function themeKind(body: HTMLElement = document.body): ThemeKind {
  if (body.classList.contains('vscode-high-contrast-light')) return 'high-contrast-light';
  if (body.classList.contains('vscode-high-contrast')) return 'high-contrast';
  if (body.classList.contains('vscode-light')) return 'light';
  return 'dark';
}

export function readTheme(): Theme {
  const style = getComputedStyle(document.body);
  const v = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  const kind = themeKind();
  const hc = kind === 'high-contrast' || kind === 'high-contrast-light';
  const foreground = v('--vscode-foreground', kind === 'light' ? '#3b3b3b' : '#cccccc');
  const palette = PALETTE_VARS.map(([name, fallback]) => v(name, fallback));
  // a few more for large comparisons: the palette again, darker or lighter
  const extra = palette.map((c) => withAlpha(c, 0.6));
  const family = v('--vscode-font-family', 'system-ui, sans-serif');
  const size = v('--vscode-font-size', '13px');
  return {
    kind,
    foreground,
    muted: v('--vscode-descriptionForeground', foreground),
    grid: hc ? withAlpha(foreground, 0.35) : withAlpha(foreground, 0.12),
    background: v('--vscode-editor-background', kind === 'light' ? '#ffffff' : '#1e1e1e'),
    font: `${Math.max(10, parseFloat(size) - 2)}px ${family}`,
    palette: [...palette, ...extra],
    lineWidth: hc ? 2 : 1.5,
    rawAlpha: hc ? 0.45 : kind === 'light' ? 0.3 : 0.28,
  };
}

let probe: CanvasRenderingContext2D | null | undefined;

/** Any CSS colour with the given opacity, as rgba(). */
export function withAlpha(color: string, alpha: number): string {
  probe ??= document.createElement('canvas').getContext('2d');
  if (!probe) return color;
  probe.fillStyle = '#000000';
  probe.fillStyle = color;
  const normal = String(probe.fillStyle);
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(normal);
  if (hex) return `rgba(${parseInt(hex[1]!, 16)}, ${parseInt(hex[2]!, 16)}, ${parseInt(hex[3]!, 16)}, ${alpha})`;
  const rgba = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(normal);
  if (rgba) return `rgba(${rgba[1]!.trim()}, ${rgba[2]!.trim()}, ${rgba[3]!.trim()}, ${alpha})`;
  return color;
}

/** Calls back when VS Code switches the theme (it changes the body's class). */
export function onThemeChange(callback: () => void): () => void {
  const observer = new MutationObserver(() => callback());
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  return () => observer.disconnect();
}
