/**
 * Charts as files: an SVG drawn with theme-coloured CSS classes is cloned with the computed styles
 * written onto each element as presentation attributes (so it looks the same outside VS Code), and a PNG is that SVG drawn
 * onto a canvas at twice its size. The host saves what these return (ExportChartMessage).
 */
const STYLED = [
  'fill',
  'fill-opacity',
  'stroke',
  'stroke-width',
  'stroke-opacity',
  'stroke-dasharray',
  'opacity',
  'font-family',
  'font-size',
  'font-weight',
  'text-anchor',
  'dominant-baseline',
];

/** The SVG as a standalone document, with its styles inlined and the editor's background behind it. */
export function standaloneSvg(svg: SVGSVGElement): string {
  const clone = svg.cloneNode(true) as SVGSVGElement;
  const live = [svg, ...svg.querySelectorAll('*')];
  const copies = [clone, ...clone.querySelectorAll('*')];
  live.forEach((node, i) => {
    const style = getComputedStyle(node);
    const copy = copies[i] as Element;
    // presentation attributes, not a style attribute: the webview's CSP forbids inline styles
    for (const p of STYLED) {
      const value = style.getPropertyValue(p);
      if (value) copy.setAttribute(p, value);
    }
  });
  clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  const box = svg.viewBox.baseVal;
  const background = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
  for (const [k, v] of Object.entries({
    x: box.x,
    y: box.y,
    width: box.width || svg.clientWidth,
    height: box.height || svg.clientHeight,
  }))
    background.setAttribute(k, String(v));
  background.setAttribute('fill', getComputedStyle(document.body).backgroundColor);
  clone.insertBefore(background, clone.firstChild);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(clone)}\n`;
}

/** The SVG rendered to a PNG data URL (scale 2 for sharp text). */
export async function svgToPng(svg: SVGSVGElement, scale = 2): Promise<string> {
  const text = standaloneSvg(svg);
  const box = svg.viewBox.baseVal;
  const width = Math.round((box.width || svg.clientWidth) * scale);
  const height = Math.round((box.height || svg.clientHeight) * scale);
  const image = new Image(width, height);
  image.src = `data:image/svg+xml;base64,${btoa(unescape(encodeURIComponent(text)))}`;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d')!.drawImage(image, 0, 0, width, height);
  return canvas.toDataURL('image/png');
}
