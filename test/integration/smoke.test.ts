/**
 * Smoke test that runs inside a real VS Code extension host (code-server 1.100 via
 * scripts/vscode-test/launcher.mjs; desktop VS Code where @vscode/test-electron can download it).
 * It checks the harness itself and does not depend on PEFT Lab's own code.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';

suite('real VS Code smoke', () => {
  test('runs in VS Code 1.100', () => {
    assert.ok(vscode.version.startsWith('1.100'), `unexpected VS Code version ${vscode.version}`);
  });

  test('has the fixture workspace folder open', () => {
    const folders = vscode.workspace.workspaceFolders ?? [];
    assert.equal(folders.length, 1, `workspace folders: ${folders.map((f) => f.uri.toString()).join(', ')}`);
    const folder = folders[0];
    assert.equal(folder.uri.scheme, 'file');
    assert.equal(path.basename(folder.uri.fsPath), 'workspace');
    assert.equal(path.basename(path.dirname(folder.uri.fsPath)), 'fixtures');
  });

  test('opens README.md from the workspace in an editor', async () => {
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'no workspace folder');
    const readme = vscode.Uri.joinPath(folder.uri, 'README.md');
    // The workspace file search (ripgrep in the server) finds it.
    const found = await vscode.workspace.findFiles('README.md');
    assert.ok(
      found.some((u) => u.toString() === readme.toString()),
      `findFiles('README.md') gave ${found.map((u) => u.toString()).join(', ') || 'nothing'}`,
    );

    const document = await vscode.workspace.openTextDocument(readme);
    const editor = await vscode.window.showTextDocument(document);
    assert.equal(vscode.window.activeTextEditor, editor);
    assert.equal(vscode.window.activeTextEditor?.document.uri.toString(), readme.toString());
    assert.equal(document.languageId, 'markdown');
    assert.match(document.getText(), /^# PEFT Lab test workspace/);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });
});
