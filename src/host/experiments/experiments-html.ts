/** The Experiments table webview's page (webview-page.ts); no `vscode` here, so it is unit-tested. */
import { webviewPage, type WebviewPageUris } from '../webview/webview-page';

export function experimentsHtml(uris: WebviewPageUris, nonce: string): string {
  return webviewPage(uris, nonce, { title: 'Experiments', loading: 'Loading the experiments…' });
}
