/**
 * Saving what a webview exports (a table, a chart): VS Code's save dialog, proposing the workspace
 * folder and the file name, then the file written and a notice with Open. One place for every panel.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';

export async function saveExport(
  fileName: string,
  content: string | Uint8Array,
  kind: string,
  log: vscode.LogOutputChannel,
): Promise<vscode.Uri | undefined> {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  const target = await vscode.window.showSaveDialog({
    defaultUri: folder ? vscode.Uri.joinPath(folder, fileName) : undefined,
    filters: { [kind]: [path.extname(fileName).slice(1)] },
    title: `Export ${kind}`,
  });
  if (!target) return undefined;
  await vscode.workspace.fs.writeFile(target, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
  log.info(`exported ${target.fsPath}`);
  void vscode.window
    .showInformationMessage(`PEFT Lab: exported ${path.basename(target.fsPath)}`, 'Open')
    .then((choice) => {
      if (choice === 'Open') void vscode.commands.executeCommand('vscode.open', target);
    });
  return target;
}

/** A chart export's bytes: PNG arrives as a base64 data URL, SVG and CSV as text. */
export function chartContent(format: 'svg' | 'png' | 'csv', data: string): string | Uint8Array {
  return format === 'png' ? Buffer.from(data.replace(/^data:image\/png;base64,/, ''), 'base64') : data;
}
