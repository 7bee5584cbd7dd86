/**
 * The dashboard webview's page: a strict Content-Security-Policy (nothing remote, no inline code or
 * styles, scripts only with this page's nonce), the stylesheets and the bundle from media/.
 * No `vscode` here, so the policy is unit-tested.
 */
import { randomBytes } from 'node:crypto';

export interface DashboardPageUris {
  /** webview.cspSource: the origin the webview serves local resources from. */
  cspSource: string;
  script: string;
  style: string;
  codicons: string;
}

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

export function dashboardHtml(uris: DashboardPageUris, nonce: string, title: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(uris.cspSource, nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${uris.codicons}" id="vscode-codicon-stylesheet">
<link rel="stylesheet" href="${uris.style}">
<title>${escapeHtml(title)}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Loading the dashboard…</p></main>
<script nonce="${nonce}" src="${uris.script}"></script>
</body>
</html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
