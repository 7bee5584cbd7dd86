/**
 * The Experiments table webview's entry (bundled by esbuild.mjs into media/experiments.js, and its
 * CSS into media/experiments.css). It talks to the extension only through the messages of
 * src/protocol/experiments.ts.
 */
import './experiments.css';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import '@vscode-elements/elements/dist/vscode-icon/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import { ExperimentsApp, type ExperimentsVsCodeApi } from './app';

declare function acquireVsCodeApi(): ExperimentsVsCodeApi;

const root = document.getElementById('app');
if (root) {
  const app = new ExperimentsApp(root, acquireVsCodeApi());
  // for the benchmark (bench/experiments-table.mjs) and the UI test: render now instead of at the next frame
  (window as unknown as { peftLabExperiments?: ExperimentsApp }).peftLabExperiments = app;
  app.start();
}
