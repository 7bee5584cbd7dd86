/**
 * The dashboard webview's entry (bundled by esbuild.mjs into media/dashboard.js, and its CSS
 * imports into media/dashboard.css). It talks to the extension only through the messages of
 * src/protocol/dashboard.ts.
 */
import 'uplot/dist/uPlot.min.css';
import './dashboard.css';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-icon/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import { App, type VsCodeApi } from './app';

declare function acquireVsCodeApi(): VsCodeApi;

const root = document.getElementById('app');
if (root) {
  const app = new App(root, acquireVsCodeApi());
  // for the benchmark (bench/dashboard-render.mjs): draw now instead of at the next frame
  (window as unknown as { peftLabDashboard?: App }).peftLabDashboard = app;
  app.start();
}
