/**
 * The page every PEFT Lab webview loads (dashboard, Experiments table): a strict
 * Content-Security-Policy (nothing remote, no inline code or styles, scripts only with this page's
 * nonce), the codicons, the feature's stylesheet and bundle from media/, and a loading line until
 * the bundle draws. No `vscode` here, so the page and its policy are unit-tested.
 */
import { randomBytes } from 'node:crypto';

export interface WebviewPageUris {
  /** webview.cspSource: the origin the webview serves local resources from. */
  cspSource: string;
  script: string;
  style: string;
  codicons: string;
}

/** What the page says before its script runs. */
export interface WebviewPageText {
  title: string;
  /** e.g. `Loading the dashboard…`. */
  loading: string;
}

/** A fresh nonce per page load, so a script injected into a page cannot carry a valid one. */
export function makeNonce(): string {
  return randomBytes(18).toString('base64').replace(/[+/=]/g, '');
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    // lit's components use constructable stylesheets, uPlot sets element.style: neither is inline CSS
    `style-src ${cspSource}`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
}

export function webviewPage(uris: WebviewPageUris, nonce: string, text: WebviewPageText): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(uris.cspSource, nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${uris.codicons}" id="vscode-codicon-stylesheet">
<link rel="stylesheet" href="${uris.style}">
<title>${escapeHtml(text.title)}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">${escapeHtml(text.loading)}</p></main>
<script nonce="${nonce}" src="${uris.script}"></script>
</body>
</html>`;
}

/** Titles come from run names on disk: never markup. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
