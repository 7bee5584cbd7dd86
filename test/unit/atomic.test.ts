import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  appendLine,
  isTempFile,
  readJsonFile,
  readJsonl,
  writeFileAtomic,
  writeJsonAtomic,
} from '../../src/core/checkpoint/atomic';
import { CheckpointError } from '../../src/core/errors';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-atomic-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let counter = 0;
/** A fresh folder per test so leftover-file checks only see that test's files. */
function freshFolder(): string {
  const folder = path.join(root, `case-${++counter}`);
  fs.mkdirSync(folder);
  return folder;
}

function tempFilesIn(folder: string): string[] {
  return fs.readdirSync(folder).filter(isTempFile);
}

function assertCheckpointError(fn: () => unknown, file: string, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CheckpointError, `expected CheckpointError, got ${String(err)}`);
    assert.equal(err.file, file);
    for (const fragment of fragments)
      assert.ok(err.message.includes(fragment), `"${err.message}" should mention ${fragment}`);
    return true;
  });
}

describe('writeFileAtomic', () => {
  it('creates missing folders, replaces content, and leaves no temporary files', () => {
    const folder = freshFolder();
    const file = path.join(folder, 'a', 'b', 'state.json');
    writeFileAtomic(file, 'first');
    writeFileAtomic(file, new Uint8Array([0x73, 0x65, 0x63, 0x6f, 0x6e, 0x64]));
    assert.equal(fs.readFileSync(file, 'utf8'), 'second');
    writeFileAtomic(file, '');
    assert.equal(fs.readFileSync(file, 'utf8'), '');
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['state.json']);
  });

  it('writes large buffers completely', () => {
    const file = path.join(freshFolder(), 'big.bin');
    const data = new Uint8Array(5 * 1024 * 1024).map((_, i) => i % 251);
    writeFileAtomic(file, data);
    assert.deepEqual(new Uint8Array(fs.readFileSync(file)), data);
  });

  it('fails when the parent is a file, without leaving anything behind', () => {
    const folder = freshFolder();
    fs.writeFileSync(path.join(folder, 'blocker'), 'keep');
    assert.throws(() => writeFileAtomic(path.join(folder, 'blocker', 'x.json'), '{}'), /ENOTDIR|EEXIST/);
    assert.equal(fs.readFileSync(path.join(folder, 'blocker'), 'utf8'), 'keep');
    assert.deepEqual(fs.readdirSync(folder), ['blocker']);
  });

  it('leaves the old file intact and removes the temporary file when writing fails midway', () => {
    const folder = freshFolder();
    const file = path.join(folder, 'checkpoint.json');
    fs.writeFileSync(file, 'old');
    // Not writable data: the temporary file exists by the time the write throws.
    assert.throws(() => writeFileAtomic(file, 42 as unknown as string), TypeError);
    assert.equal(fs.readFileSync(file, 'utf8'), 'old');
    assert.deepEqual(tempFilesIn(folder), []);
  });

  it('leaves a target folder intact when the rename fails', () => {
    const folder = freshFolder();
    const target = path.join(folder, 'taken');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'inside'), 'keep');
    assert.throws(() => writeFileAtomic(target, 'new'));
    assert.equal(fs.readFileSync(path.join(target, 'inside'), 'utf8'), 'keep');
    assert.deepEqual(tempFilesIn(folder), []);
  });

  it('keeps the permissions of the file it replaces', { skip: process.platform === 'win32' }, () => {
    const file = path.join(freshFolder(), 'private.json');
    fs.writeFileSync(file, 'old');
    fs.chmodSync(file, 0o600);
    writeFileAtomic(file, 'new');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });
});

describe('isTempFile', () => {
  it('recognises the temporary names writeFileAtomic uses, by name or path', () => {
    assert.ok(isTempFile('model.safetensors.tmp-1234-0a1b2c3d'));
    assert.ok(isTempFile('/runs/x/metrics.json.tmp-7-deadbeef'));
    assert.ok(!isTempFile('model.safetensors'));
    assert.ok(!isTempFile('notes.tmp'));
    assert.ok(!isTempFile('model.tmp-1234-0a1b2c3d.json'));
  });
});

describe('writeJsonAtomic', () => {
  it('writes pretty JSON with 2 spaces and a trailing newline', () => {
    const file = path.join(freshFolder(), 'config.json');
    writeJsonAtomic(file, { a: 1, b: [true, null] });
    assert.equal(fs.readFileSync(file, 'utf8'), '{\n  "a": 1,\n  "b": [\n    true,\n    null\n  ]\n}\n');
  });

  it('refuses a value JSON cannot represent instead of writing "undefined"', () => {
    const file = path.join(freshFolder(), 'nothing.json');
    assert.throws(() => writeJsonAtomic(file, undefined), TypeError);
    assert.ok(!fs.existsSync(file));
  });
});

describe('appendLine and readJsonl', () => {
  it('appends records that read back in order', () => {
    const file = path.join(freshFolder(), 'logs', 'metrics.jsonl');
    appendLine(file, JSON.stringify({ step: 1 }));
    appendLine(file, JSON.stringify({ step: 2 }));
    assert.equal(fs.readFileSync(file, 'utf8'), '{"step":1}\n{"step":2}\n');
    assert.deepEqual(readJsonl(file), { records: [{ step: 1 }, { step: 2 }], skipped: [] });
  });

  it('refuses a line containing a line break, which would split the record', () => {
    const file = path.join(freshFolder(), 'log.jsonl');
    assert.throws(() => appendLine(file, '{"a":\n1}'), RangeError);
    assert.throws(() => appendLine(file, 'a\rb'), RangeError);
  });

  it('keeps earlier records and reports a truncated last line', () => {
    const file = path.join(freshFolder(), 'log.jsonl');
    fs.writeFileSync(file, '{"step":1}\n{"step":2}\n{"step":3,"lo');
    const { records, skipped } = readJsonl(file);
    assert.deepEqual(records, [{ step: 1 }, { step: 2 }]);
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0].line, 3);
    assert.match(skipped[0].reason, /truncated last line/);
  });

  it('reports a broken line in the middle without calling it truncated', () => {
    const file = path.join(freshFolder(), 'log.jsonl');
    fs.writeFileSync(file, '{"a":1}\r\nnot json\r\n\r\n{"b":2}\r\n');
    const { records, skipped } = readJsonl(file);
    assert.deepEqual(records, [{ a: 1 }, { b: 2 }]);
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0].line, 2);
    assert.doesNotMatch(skipped[0].reason, /truncated/);
  });

  it('accepts a complete last record without a final newline', () => {
    const file = path.join(freshFolder(), 'log.jsonl');
    fs.writeFileSync(file, '{"a":1}\n{"b":2}');
    assert.deepEqual(readJsonl(file), { records: [{ a: 1 }, { b: 2 }], skipped: [] });
  });

  it('after a crash left a partial line, a new record starts on its own line and is not lost', () => {
    const file = path.join(freshFolder(), 'log.jsonl');
    fs.writeFileSync(file, '{"step":1}\n{"step":2,"lo');
    appendLine(file, '{"step":3}');
    const { records, skipped } = readJsonl(file);
    assert.deepEqual(records, [{ step: 1 }, { step: 3 }]);
    assert.deepEqual(
      skipped.map((s) => s.line),
      [2],
    );
  });

  it('says a missing log does not exist', () => {
    const file = path.join(freshFolder(), 'missing.jsonl');
    assertCheckpointError(() => readJsonl(file), file, 'does not exist');
  });
});

describe('readJsonFile', () => {
  it('parses JSON, tolerating a byte-order mark', () => {
    const file = path.join(freshFolder(), 'config.json');
    fs.writeFileSync(file, '\ufeff{"hidden_size": 32}');
    assert.deepEqual(readJsonFile(file, 'model config'), { hidden_size: 32 });
  });

  it('names the file and what it is when it is missing, empty or invalid', () => {
    const folder = freshFolder();
    const missing = path.join(folder, 'config.json');
    assertCheckpointError(() => readJsonFile(missing, 'model config'), missing, 'model config', 'does not exist');

    const empty = path.join(folder, 'empty.json');
    fs.writeFileSync(empty, '  \n');
    assertCheckpointError(() => readJsonFile(empty, 'adapter config'), empty, 'adapter config', 'empty');

    const broken = path.join(folder, 'broken.json');
    fs.writeFileSync(broken, '{\n  "a": 1,\n  "b" 2\n}\n');
    assertCheckpointError(
      () => readJsonFile(broken, 'adapter config'),
      broken,
      'adapter config',
      'not valid JSON',
      'line 3',
    );
  });

  it('says a folder is not a file', () => {
    const folder = freshFolder();
    assertCheckpointError(() => readJsonFile(folder, 'run state'), folder, 'run state', 'folder');
  });
});
