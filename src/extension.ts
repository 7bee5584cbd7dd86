import type * as vscode from 'vscode';
import { PeftLab } from './host/peft-lab';

/** Builds the extension's one root object; VS Code disposes it on deactivation. */
export function activate(context: vscode.ExtensionContext): PeftLab {
  const lab = new PeftLab(context);
  context.subscriptions.push(lab);
  return lab;
}

export function deactivate(): void {}
