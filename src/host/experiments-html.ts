/**
 * The Experiments table webview's page: the dashboard's Content-Security-Policy (nothing remote,
 * no inline code or styles, scripts only with this page's nonce), its stylesheets and its bundle
 * from media/. No `vscode` here, so the page is unit-tested.
 */
import { contentSecurityPolicy, type DashboardPageUris } from './dashboard-html';

export function experimentsHtml(uris: DashboardPageUris, nonce: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(uris.cspSource, nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${uris.codicons}" id="vscode-codicon-stylesheet">
<link rel="stylesheet" href="${uris.style}">
<title>Experiments</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Loading the experiments…</p></main>
<script nonce="${nonce}" src="${uris.script}"></script>
</body>
</html>`;
}
