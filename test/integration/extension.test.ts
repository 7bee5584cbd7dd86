/**
 * PEFT Lab inside a real VS Code extension host, on the fixture workspace: CodeLens, diagnostics
 * for each semantic check, Train to a finished run folder, Stop, and a crashed worker.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RunOutcome } from '../../src/host/training/run-manager';
import { spawn } from 'node:child_process';
import { lab, until, EXTENSION_ID } from './helpers';

function workspaceFile(name: string): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the fixture workspace is open');
  return vscode.Uri.joinPath(folder.uri, name);
}

async function lensTitles(uri: vscode.Uri): Promise<string[]> {
  await vscode.workspace.openTextDocument(uri); // the provider command needs the document loaded
  const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri);
  return lenses.map((l) => l.command?.title ?? '');
}

/** Leaves the fixture workspace as the repository has it: no runs, no settings written by a test. */
function removeRuns(): void {
  fs.rmSync(workspaceFile('runs').fsPath, { recursive: true, force: true });
  fs.rmSync(workspaceFile('.vscode').fsPath, { recursive: true, force: true });
}

suite('PEFT Lab in VS Code', () => {
  suiteSetup(removeRuns);
  suiteTeardown(removeRuns);

  test('activates in a workspace with configs and offers Train above a valid config', async () => {
    await lab();
    const titles = await lensTitles(workspaceFile('tiny.peft.json'));
    assert.ok(titles.includes('$(play) Train'), `lenses: ${titles.join(' | ')}`);
  });

  test('each semantic check is a diagnostic on the exact field, and Train says why it is blocked', async () => {
    await lab();
    const uri = workspaceFile('semantic-errors.peft.json');
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    const diagnostics = await until(() => {
      const found = vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'PEFT Lab');
      return found.length >= 4 && found;
    }, 'four PEFT Lab diagnostics');
    const byPath = new Map(diagnostics.map((d) => [String(d.code), d]));
    const expectations: [string, string, RegExp][] = [
      ['/model/scratch/heads', '3', /3 attention heads do not divide the hidden size 16/],
      ['/data/train', '"data/missing.jsonl"', /file not found/],
      ['/method/bottleneck', '16', /must be smaller than the model's hidden size 16/],
      ['/method/leaveOut/0', '5', /layer 5 does not exist/],
    ];
    for (const [pointer, text, message] of expectations) {
      const d = byPath.get(pointer);
      assert.ok(d, `diagnostic for ${pointer}; got ${[...byPath.keys()].join(', ')}`);
      assert.equal(doc.getText(d.range), text, `range of ${pointer}`);
      assert.match(d.message, message);
      assert.equal(d.severity, vscode.DiagnosticSeverity.Error);
    }
    const titles = await lensTitles(uri);
    assert.ok(
      titles.some((t) => t.startsWith('$(circle-slash) Train: fix 4 problems first')),
      `lenses: ${titles.join(' | ')}`,
    );
  });

  test('a diagnostic appears as the user types a bad value, and goes when it is fixed', async () => {
    await lab();
    const uri = workspaceFile('tiny.peft.json');
    const editor = await vscode.window.showTextDocument(uri);
    const original = editor.document.getText();
    try {
      const at = original.indexOf('"bottleneck": 4') + '"bottleneck": '.length;
      await editor.edit((e) =>
        e.replace(new vscode.Range(editor.document.positionAt(at), editor.document.positionAt(at + 1)), '64'),
      );
      const bad = await until(
        () => vscode.languages.getDiagnostics(uri).find((d) => d.code === '/method/bottleneck'),
        'the bottleneck diagnostic',
      );
      assert.match(bad.message, /bottleneck 64 must be smaller than the model's hidden size 16/);
      await editor.edit((e) => e.replace(bad.range, '4'));
      await until(
        () => !vscode.languages.getDiagnostics(uri).some((d) => d.code === '/method/bottleneck'),
        'the diagnostic to go',
      );
    } finally {
      await editor.edit((e) => e.replace(new vscode.Range(0, 0, editor.document.lineCount, 0), original));
      await editor.document.save();
    }
  });

  test('Train runs the config in a worker process to a finished run folder', async () => {
    const peft = await lab();
    const uri = workspaceFile('tiny.peft.json');
    const outcome = await vscode.commands.executeCommand<RunOutcome | undefined>('peftLab.train', uri);
    assert.ok(outcome, 'train returned an outcome');
    assert.equal(outcome.kind, 'finished', outcome.kind === 'failed' ? outcome.error.message : '');
    const runDir = outcome.kind === 'finished' ? outcome.message.runDir : '';
    const status = JSON.parse(fs.readFileSync(path.join(runDir, 'status.json'), 'utf8'));
    assert.equal(status.state, 'finished');
    assert.equal(status.step, status.totalSteps);
    assert.ok(fs.existsSync(path.join(runDir, 'placement.json')));
    assert.ok(fs.readdirSync(path.join(runDir, 'checkpoints')).some((d) => d.startsWith('step-')));
    assert.notEqual(status.pid, process.pid, 'the extension host itself did not train');
    peft.index.invalidate();
    const titles = await lensTitles(uri);
    assert.ok(
      titles.some((t) => /1 run: latest finished/.test(t)),
      `lenses: ${titles.join(' | ')}`,
    );
  });

  test('Stop ends a running run at a step boundary with a checkpoint; a second Train of it is refused meanwhile', async () => {
    const peft = await lab();
    const uri = workspaceFile('slow.peft.json');
    const done = vscode.commands.executeCommand<RunOutcome | undefined>('peftLab.train', uri);
    await until(() => peft.runs.get(uri.fsPath)?.progress, 'the first progress message');
    assert.ok(
      (await lensTitles(uri)).some((t) => t.startsWith('$(debug-stop) Stop')),
      'the Stop lens',
    );
    assert.equal(
      await vscode.commands.executeCommand('peftLab.train', uri),
      undefined,
      'a second Train of the same config is refused',
    );
    await vscode.commands.executeCommand('peftLab.stop', uri);
    const outcome = await done;
    assert.ok(outcome && outcome.kind === 'finished', `outcome: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.message.state, 'stopped');
    assert.equal(outcome.message.reason, 'cancelled');
    const checkpoints = fs.readdirSync(path.join(outcome.message.runDir, 'checkpoints'));
    assert.ok(
      checkpoints.some((d) => d.startsWith('step-')),
      'a checkpoint to resume from',
    );
  });

  test('a killed worker is reported with its signal and last log lines, and the extension keeps working', async () => {
    const peft = await lab();
    const uri = workspaceFile('slow.peft.json');
    const done = vscode.commands.executeCommand<RunOutcome | undefined>('peftLab.train', uri);
    const started = await until(() => peft.runs.get(uri.fsPath)?.started, 'the started message');
    await until(() => peft.runs.get(uri.fsPath)?.progress, 'the first progress message');
    const pid = JSON.parse(fs.readFileSync(path.join(started.runDir, 'status.json'), 'utf8')).pid as number;
    process.kill(pid, 'SIGKILL');
    const outcome = await done;
    assert.ok(outcome && outcome.kind === 'failed', `outcome: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.error.name, 'WorkerCrashedError');
    assert.match(outcome.error.message, /killed by SIGKILL/);
    assert.match(outcome.error.message, /last output/);
    const again = await vscode.commands.executeCommand<RunOutcome | undefined>(
      'peftLab.train',
      workspaceFile('tiny.peft.json'),
    );
    assert.equal(again?.kind, 'finished', 'training works again after the crash');
  });

  test('a Train beyond peftLab.maxConcurrentRuns waits in the queue and starts when a run ends', async () => {
    const peft = await lab();
    const slow = workspaceFile('slow.peft.json');
    const tiny = workspaceFile('tiny.peft.json');
    const settings = vscode.workspace.getConfiguration('peftLab');
    await settings.update('maxConcurrentRuns', 1, vscode.ConfigurationTarget.Workspace);
    try {
      const first = vscode.commands.executeCommand<RunOutcome | undefined>('peftLab.train', slow);
      await until(() => peft.runs.get(slow.fsPath)?.progress, 'the slow run to train');
      const second = vscode.commands.executeCommand<RunOutcome | undefined>('peftLab.train', tiny);
      await until(() => peft.runs.get(tiny.fsPath)?.phase === 'queued', 'the second run to be queued');
      assert.ok((await lensTitles(tiny)).includes('$(debug-stop) Stop (Queued)'));
      await vscode.commands.executeCommand('peftLab.stop', slow);
      assert.equal((await first)?.kind, 'finished');
      const outcome = await second;
      assert.ok(outcome?.kind === 'finished' && outcome.message.state === 'finished', 'the queued run ran to the end');
    } finally {
      await settings.update('maxConcurrentRuns', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });

  test('a run this window did not start (a window reload, or the CLI) is followed through its folder and can be stopped', async () => {
    const peft = await lab();
    const slow = workspaceFile('slow.peft.json');
    const extensionRoot = vscode.extensions.getExtension(EXTENSION_ID)!.extensionPath;
    const cli = spawn(process.execPath, [path.join(extensionRoot, 'dist', 'cli.js'), 'train', slow.fsPath], {
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve));
    try {
      await until(() => {
        const runs = fs.existsSync(workspaceFile('runs').fsPath) ? fs.readdirSync(workspaceFile('runs').fsPath) : [];
        return runs.some((d) => {
          try {
            const status = JSON.parse(
              fs.readFileSync(path.join(workspaceFile('runs').fsPath, d, 'status.json'), 'utf8'),
            );
            return status.state === 'running' && status.pid === cli.pid;
          } catch {
            return false;
          }
        });
      }, 'the CLI run to start');
      assert.equal(await peft.training.reattachRuns(), 1, 'one live run found');
      await until(() => peft.runs.get(slow.fsPath)?.progress, 'progress read from metrics.jsonl', 30_000);
      assert.ok(
        (await lensTitles(slow)).some((t) => t.startsWith('$(debug-stop) Stop (step')),
        'the Stop lens for the followed run',
      );
      const done = peft.runs.whenDone(slow.fsPath)!;
      await vscode.commands.executeCommand('peftLab.stop', slow);
      const outcome = await done;
      assert.ok(outcome.kind === 'finished', `outcome: ${JSON.stringify(outcome)}`);
      assert.equal(outcome.message.state, 'stopped');
      assert.equal(outcome.message.reason, 'cancelled');
      assert.equal(await exited, 130, 'the CLI stopped gracefully on SIGTERM');
    } finally {
      cli.kill('SIGKILL');
    }
  });

  test('the schema gives hover docs and completion in *.peft.json files', async () => {
    const uri = workspaceFile('tiny.peft.json');
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    const at = doc.positionAt(doc.getText().indexOf('"bottleneck"') + 2);
    let hover = '';
    for (let tries = 0; tries < 50 && !/reductionFactor/.test(hover); tries++) {
      // the JSON language server starts lazily; ask until it answers with the schema's text
      const found = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, at);
      hover = found.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n');
      if (!/reductionFactor/.test(hover)) await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(hover, /reductionFactor/, `the hover explains the field: ${hover}`);
    const inMethod = doc.positionAt(doc.getText().indexOf('"type": "houlsby"'));
    const list = await vscode.commands.executeCommand<vscode.CompletionList>(
      'vscode.executeCompletionItemProvider',
      uri,
      inMethod,
    );
    const labels = list.items.map((i) => (typeof i.label === 'string' ? i.label : i.label.label));
    for (const field of ['activation', 'initStd', 'leaveOut', 'sites']) {
      assert.ok(
        labels.some((l) => l.includes(field)),
        `completion offers ${field}: ${labels.join(', ')}`,
      );
    }
  });
});
