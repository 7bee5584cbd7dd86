/** What package.json promises VS Code about where the extension runs. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const REPO = path.resolve(__dirname, '..', '..');
const manifest = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { extensionKind?: string[] };

test('the extension runs where the workspace is, so under Remote the worker trains on the remote machine', () => {
  assert.deepEqual(manifest.extensionKind, ['workspace']);
});

test('the host opens the OS file manager only on a local window', () => {
  const hostDir = path.join(REPO, 'src', 'host');
  // recursive: the host is grouped in feature folders, and a flat read would find nothing to check
  const files = fs.readdirSync(hostDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  let reveals = 0;
  for (const file of files) {
    for (const line of fs.readFileSync(path.join(hostDir, file), 'utf8').split('\n')) {
      if (!line.includes("'revealFileInOS'")) continue;
      reveals++;
      assert.match(line, /vscode\.env\.remoteName/, `${file}: ${line.trim()}`);
    }
  }
  assert.ok(files.length > 20, `found the host's sources (${files.length})`);
  assert.ok(reveals > 0, 'found the places that reveal a file in the OS, so the check checked something');
});

/** Every host source file's text, by its path under src/host. */
function hostSources(): Map<string, string> {
  const hostDir = path.join(REPO, 'src', 'host');
  const files = fs.readdirSync(hostDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  return new Map(files.map((f) => [f, fs.readFileSync(path.join(hostDir, f), 'utf8')]));
}

test('every PEFT Lab command the host runs is one it registers: no fallbacks for commands that never exist', () => {
  const sources = hostSources();
  const all = [...sources.values()].join('\n');
  const registered = new Set(
    [...all.matchAll(/(?:registerCommand|command)\(\s*'(peftLab\.[\w.]+)'/g)].map((m) => m[1]!),
  );
  const run = new Set([
    ...[...all.matchAll(/executeCommand\(\s*'(peftLab\.[\w.]+)'/g)].map((m) => m[1]!),
    ...[...all.matchAll(/_COMMAND = '(peftLab\.[\w.]+)'/g)].map((m) => m[1]!),
  ]);
  assert.ok(
    registered.size > 20 && run.size > 3,
    `found the commands (${registered.size} registered, ${run.size} run)`,
  );
  assert.deepEqual(
    [...run].filter((id) => !registered.has(id)),
    [],
  );
  // asking VS Code whether a command exists is how the host hedged against its own missing features
  assert.deepEqual(
    [...sources].filter(([, text]) => text.includes('getCommands(')).map(([f]) => f),
    [],
  );
});

test('every command in package.json is registered by the host', () => {
  const all = [...hostSources().values()].join('\n');
  const registered = new Set(
    [...all.matchAll(/(?:registerCommand|command)\(\s*'(peftLab\.[\w.]+)'/g)].map((m) => m[1]!),
  );
  const contributed = (
    JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
      contributes: { commands: { command: string }[] };
    }
  ).contributes.commands.map((c) => c.command);
  assert.deepEqual(
    contributed.filter((id) => !registered.has(id)),
    [],
  );
});
