/** The dashboard webview's page (webview-page.ts); no `vscode` here, so it is unit-tested. */
import { webviewPage, type WebviewPageUris } from '../webview/webview-page';

export function dashboardHtml(uris: WebviewPageUris, nonce: string, title: string): string {
  return webviewPage(uris, nonce, { title, loading: 'Loading the dashboard…' });
}
