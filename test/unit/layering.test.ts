/**
 * The dependency rules of the design: core, worker and the CLI never touch VS Code; protocol imports
 * nothing (so the webviews may include it, src/protocol/format.ts among it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinModules } from 'node:module';

const BUILTINS = new Set(builtinModules);

const ROOT = path.join(__dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  const full = path.join(ROOT, dir);
  if (!fs.existsSync(full)) return [];
  return fs
    .readdirSync(full, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(full, f));
}

function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from\s+|require\(\s*|import\s+)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
}

test('src/core, src/worker and src/cli never import vscode or the host', () => {
  // src/cli: the command line, once it has left src/worker (issue 20); none of it runs in the editor
  const files = [...sourceFiles('src/core'), ...sourceFiles('src/worker'), ...sourceFiles('src/cli')];
  assert.ok(sourceFiles('src/cli').length >= 5, 'found the CLI sources');
  assert.ok(files.length > 20, 'found the sources');
  const offenders = files.filter((f) => importsOf(f).some((i) => i === 'vscode' || i.includes('/host/')));
  assert.deepEqual(
    offenders.map((f) => path.relative(ROOT, f)),
    [],
  );
});

test('src/core does not depend on the worker, the CLI or the host', () => {
  const offenders = sourceFiles('src/core').filter((f) => importsOf(f).some((i) => /\/(worker|cli|host)\//.test(i)));
  assert.deepEqual(
    offenders.map((f) => path.relative(ROOT, f)),
    [],
  );
});

test('src/protocol imports nothing outside src/protocol', () => {
  const files = sourceFiles('src/protocol');
  assert.ok(files.length > 0);
  const offenders = files.filter((f) => importsOf(f).some((i) => !/^\.\/[\w-]+$/.test(i)));
  assert.deepEqual(
    offenders.map((f) => path.relative(ROOT, f)),
    [],
  );
});

test('the webviews import only webview/, src/protocol/ and browser packages (never the host, core or Node)', () => {
  const files = sourceFiles('webview');
  assert.ok(files.length > 10, 'found the webview sources');
  const allowed = [path.join(ROOT, 'webview') + path.sep, path.join(ROOT, 'src', 'protocol') + path.sep];
  const offenders: string[] = [];
  for (const file of files) {
    for (const spec of importsOf(file)) {
      const ok = spec.startsWith('.')
        ? allowed.some((dir) => path.resolve(path.dirname(file), spec).startsWith(dir))
        : !/^(node:|vscode$)/.test(spec) && !BUILTINS.has(spec.split('/')[0]!);
      if (!ok) offenders.push(`${path.relative(ROOT, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});

/** Relative imports of a file, resolved to the files they name (type-only imports count: they tie the files together too). */
function localImportsOf(file: string): string[] {
  return importsOf(file)
    .filter((i) => i.startsWith('.'))
    .map((i) => path.resolve(path.dirname(file), i))
    .flatMap((target) => [`${target}.ts`, path.join(target, 'index.ts')].filter((f) => fs.existsSync(f)).slice(0, 1));
}

/** Every import cycle among the files, each as the chain of files that closes it. */
function importCycles(files: string[]): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const visit = (file: string, chain: string[]) => {
    const at = chain.indexOf(file);
    if (at >= 0) {
      cycles.push([...chain.slice(at), file].map((f) => path.relative(ROOT, f)));
      return;
    }
    if (done.has(file)) return;
    for (const next of localImportsOf(file)) visit(next, [...chain, file]);
    done.add(file);
  };
  for (const file of files) visit(file, []);
  return cycles;
}

test('src/host has no import cycles (a feature depends on another, never both ways)', () => {
  const files = sourceFiles('src/host');
  assert.ok(files.length > 20, 'found the sources');
  assert.deepEqual(importCycles(files), []);
});

test('the worker does not depend on the CLI', () => {
  const offenders = sourceFiles('src/worker').filter((f) => importsOf(f).some((i) => /\/cli\//.test(i)));
  assert.deepEqual(
    offenders.map((f) => path.relative(ROOT, f)),
    [],
  );
});

test('src/protocol/format.ts, which the webviews bundle, imports nothing at all', () => {
  assert.deepEqual(importsOf(path.join(ROOT, 'src', 'protocol', 'format.ts')), []);
});

/** Lazy `require('./x')` calls escape the type checker: a moved file would only fail when the command runs. */
test('every relative import and require in src resolves to a file', () => {
  const files = sourceFiles('src');
  assert.ok(files.length > 50, 'found the sources');
  const missing: string[] = [];
  for (const file of files) {
    for (const spec of importsOf(file).filter((i) => i.startsWith('.'))) {
      const target = path.resolve(path.dirname(file), spec);
      const candidates = [target, `${target}.ts`, path.join(target, 'index.ts')];
      if (!candidates.some((c) => fs.existsSync(c) && fs.statSync(c).isFile()))
        missing.push(`${path.relative(ROOT, file)}: ${spec}`);
    }
  }
  assert.deepEqual(missing, []);
});
