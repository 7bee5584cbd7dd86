/**
 * What every PEFT Lab webview panel (dashboard, Experiments table) does the same way: scripts on
 * and nothing but media/ loadable, the page's resources as webview URIs, messages held back until
 * the webview says it is ready, and one dispose that ends the panel and everything it listens to.
 *
 * A hidden webview is destroyed (no retainContextWhenHidden: a page per hidden tab would cost
 * memory for nothing); when shown again its script loads anew and says 'ready', so a message posted
 * while it was hidden would be lost anyway: the panel's answer to 'ready' carries everything.
 */
import * as vscode from 'vscode';
import type { WebviewPageUris } from './webview-page';
import { disposeAll } from '../util/dispose';

export function mediaRoot(extensionUri: vscode.Uri): vscode.Uri {
  return vscode.Uri.joinPath(extensionUri, 'media');
}

/** Webview options of every panel (also applied to panels revived after a reload). */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return { enableScripts: true, localResourceRoots: [mediaRoot(extensionUri)], enableFindWidget: false };
}

export interface WebviewPanelDeps {
  extensionUri: vscode.Uri;
  log: vscode.LogOutputChannel;
}

export abstract class WebviewPanelHost<ToWebview> implements vscode.Disposable {
  /** The webview's script has loaded and asked for its data (false again once the tab is hidden). */
  protected ready = false;
  protected disposed = false;
  /** Disposed with the panel: listeners, and timers wrapped as `{ dispose }`. */
  protected readonly subscriptions: vscode.Disposable[] = [];
  private readonly disposeEmitter = new vscode.EventEmitter<void>();
  readonly onDidDispose = this.disposeEmitter.event;

  /** `feature` names the panel in the log (`dashboard`, `experiments`). */
  constructor(
    readonly panel: vscode.WebviewPanel,
    private readonly host: WebviewPanelDeps,
    private readonly feature: string,
  ) {
    panel.webview.options = webviewOptions(host.extensionUri);
    this.subscriptions.push(
      panel.webview.onDidReceiveMessage((message: unknown) => this.onMessage(message)),
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  /** A message from the webview, not yet validated. */
  protected abstract onMessage(raw: unknown): void;

  reveal(): void {
    this.panel.reveal();
  }

  /** The tab's icon: media/`name`-light.svg and -dark.svg. */
  protected setIcon(name: string): void {
    const media = mediaRoot(this.host.extensionUri);
    this.panel.iconPath = {
      light: vscode.Uri.joinPath(media, `${name}-light.svg`),
      dark: vscode.Uri.joinPath(media, `${name}-dark.svg`),
    };
  }

  /** The resources of the page whose bundle is media/`bundle`.js and .css. */
  protected pageUris(bundle: string): WebviewPageUris {
    const media = mediaRoot(this.host.extensionUri);
    const uri = (...parts: string[]) =>
      this.panel.webview.asWebviewUri(vscode.Uri.joinPath(media, ...parts)).toString();
    return {
      cspSource: this.panel.webview.cspSource,
      script: uri(`${bundle}.js`),
      style: uri(`${bundle}.css`),
      codicons: uri('codicons', 'codicon.css'),
    };
  }

  protected post(message: ToWebview): void {
    // before 'ready' (or while hidden) the message would be lost: the answer to the next 'ready' carries it
    if (!this.ready || this.disposed) return;
    void this.panel.webview
      .postMessage(message)
      .then(undefined, (err: Error) => this.host.log.warn(`${this.feature}: postMessage failed: ${err.message}`));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeAll(this.subscriptions);
    this.panel.dispose();
    this.disposeEmitter.fire();
    this.disposeEmitter.dispose();
  }
}
