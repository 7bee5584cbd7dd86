/** The host's one disposal utility (src/host/util/dispose.ts): everything is disposed once, however often dispose() is called. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Disposable, disposeAll, toDisposable } from '../../src/host/util/dispose';

/** A disposable that counts how often it was disposed, and records the order. */
function counted(name: string, order: string[]) {
  const item = {
    name,
    disposed: 0,
    dispose: () => {
      item.disposed++;
      order.push(name);
    },
  };
  return item;
}

class Feature extends Disposable {
  constructor(readonly items: ReturnType<typeof counted>[]) {
    super();
    for (const item of items) this._register(item);
  }
  registerLate(item: ReturnType<typeof counted>) {
    return this._register(item);
  }
}

test('a second dispose() disposes nothing again; the last registered goes first', () => {
  const order: string[] = [];
  const items = ['a', 'b', 'c'].map((n) => counted(n, order));
  const feature = new Feature(items);
  feature.dispose();
  feature.dispose();
  assert.deepEqual(
    items.map((i) => i.disposed),
    [1, 1, 1],
  );
  assert.deepEqual(order, ['c', 'b', 'a']);
});

test('disposeAll empties the array first, so calling it twice (or re-entering it) disposes each item once', () => {
  const order: string[] = [];
  const list: { dispose(): void }[] = [];
  const reentrant = {
    dispose: () => {
      order.push('reentrant');
      disposeAll(list);
    },
  };
  const items = ['a', 'b'].map((n) => counted(n, order));
  list.push(items[0]!, reentrant, items[1]!);
  disposeAll(list);
  disposeAll(list);
  assert.equal(list.length, 0);
  assert.deepEqual(order, ['b', 'reentrant', 'a']);
});

test('one failing dispose does not keep the others alive, and its error is not swallowed', () => {
  const order: string[] = [];
  const items = [
    counted('a', order),
    {
      dispose: () => {
        throw new Error('boom');
      },
    },
    counted('c', order),
  ];
  assert.throws(() => disposeAll(items), /boom/);
  assert.deepEqual(order, ['c', 'a']);
});

test('registering on a disposed object disposes the newcomer at once; toDisposable runs its function once', () => {
  const order: string[] = [];
  const feature = new Feature([]);
  feature.dispose();
  const late = feature.registerLate(counted('late', order));
  assert.equal(late.disposed, 1);
  let runs = 0;
  const d = toDisposable(() => runs++);
  d.dispose();
  d.dispose();
  assert.equal(runs, 1);
});

test('no class in src/host disposes by hand: the ones holding disposables use util/dispose.ts', () => {
  const host = path.join(__dirname, '..', '..', 'src', 'host');
  const files = fs
    .readdirSync(host, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('dispose.ts'));
  assert.ok(files.length > 20, 'found the host sources');
  // the old hand-written forms: reversing the array in place, or looping over it without emptying it
  const handWritten = /for \(const \w+ of this\.(disposables|subscriptions)(\.reverse\(\))?\)/;
  const offenders = files.filter((f) => handWritten.test(fs.readFileSync(path.join(host, f), 'utf8')));
  assert.deepEqual(offenders, []);
});
