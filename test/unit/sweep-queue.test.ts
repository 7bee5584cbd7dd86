/**
 * The run queue's rules (src/core/run-queue.ts), which the extension's run manager and the CLI's
 * sweep follow, and how the Runs view finds the best run of a finished sweep (src/host/sweeps/sweep-best.ts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RunQueue } from '../../src/core/run-queue';
import type { SweepPointInfo } from '../../src/core/config/types';
import type { RunRecord } from '../../src/host/runs/runs-types';
import type { ItemData } from '../../src/host/runs/runs-present';
import { bestOfFinishedSweeps, markBestOfSweep, sweepPointOf } from '../../src/host/sweeps/sweep-best';

/** A run manager in miniature: starts what the queue allows, ends runs on request. */
class Slots {
  readonly running: string[] = [];
  readonly started: string[] = [];

  constructor(
    readonly queue: RunQueue<string>,
    readonly limit: number,
  ) {}

  submit(id: string): void {
    if (this.queue.canStartNow(this.running.length, this.limit)) this.start(id);
    else this.queue.enqueue(id);
  }

  end(id: string): void {
    this.running.splice(this.running.indexOf(id), 1);
    this.startWaiting();
  }

  startWaiting(): void {
    for (const id of this.queue.takeStartable(this.running.length, this.limit)) this.start(id);
  }

  private start(id: string): void {
    this.running.push(id);
    this.started.push(id);
  }
}

describe('the run queue', () => {
  test('starts runs up to the limit and the waiting ones in order as runs end', () => {
    const slots = new Slots(new RunQueue(), 2);
    for (const id of ['a', 'b', 'c', 'd']) slots.submit(id);
    assert.deepEqual(slots.running, ['a', 'b']);
    assert.deepEqual(slots.queue.items(), ['c', 'd']);
    slots.end('b');
    assert.deepEqual(slots.running, ['a', 'c']);
    slots.end('a');
    slots.end('c');
    assert.deepEqual(slots.started, ['a', 'b', 'c', 'd']);
    assert.equal(slots.queue.size, 0);
  });

  test('paused, running runs go on and no new run starts, not even a new one; resumed, they start', () => {
    const slots = new Slots(new RunQueue(), 1);
    slots.submit('a');
    slots.submit('b');
    assert.equal(slots.queue.pause(), true);
    assert.equal(slots.queue.pause(), false, 'pausing twice changes nothing');
    slots.end('a');
    assert.deepEqual(slots.running, [], 'the free slot stays free');
    slots.submit('c');
    assert.deepEqual(slots.queue.items(), ['b', 'c'], 'a new run waits too');
    assert.equal(slots.queue.resume(), true);
    slots.startWaiting();
    assert.deepEqual(slots.running, ['b']);
    assert.equal(slots.queue.isPaused, false);
  });

  test('clear drops every waiting run and returns them; running runs are not its business', () => {
    const slots = new Slots(new RunQueue(), 1);
    for (const id of ['a', 'b', 'c']) slots.submit(id);
    assert.deepEqual(slots.queue.clear(), ['b', 'c']);
    assert.equal(slots.queue.size, 0);
    assert.deepEqual(slots.running, ['a']);
    slots.end('a');
    assert.deepEqual(slots.started, ['a']);
  });

  test('remove takes one waiting run out', () => {
    const queue = new RunQueue<string>();
    queue.enqueue('a');
    queue.enqueue('b');
    assert.equal(queue.remove('a'), true);
    assert.equal(queue.remove('a'), false);
    assert.deepEqual(queue.items(), ['b']);
  });

  test('a new run never overtakes waiting ones, even with a free slot', () => {
    const queue = new RunQueue<string>();
    queue.enqueue('waiting');
    assert.equal(queue.canStartNow(0, 2), false);
    assert.deepEqual(queue.takeStartable(0, 2), ['waiting']);
    assert.equal(queue.canStartNow(1, 2), true);
  });
});

// ---- best of sweep ---------------------------------------------------------------------------------

const SWEEP: Omit<SweepPointInfo, 'index' | 'values'> = {
  sweepId: 's1',
  total: 3,
  method: 'grid',
  baseName: 'tiny',
  metric: 'accuracy',
  goal: 'maximize',
};

function run(
  index: number,
  accuracy: number | undefined,
  options: { state?: RunRecord['state']; sweep?: Partial<SweepPointInfo> } = {},
): RunRecord {
  const sweepPoint: SweepPointInfo = { ...SWEEP, index, values: { 'training.seed': index }, ...options.sweep };
  return {
    dir: `/runs/${sweepPoint.sweepId}-${index}`,
    state: options.state ?? 'finished',
    config: { name: `tiny-seed=${index}`, sweepPoint },
    status: accuracy === undefined ? undefined : { bestMetrics: { accuracy, loss: 1 - accuracy } },
  } as unknown as RunRecord;
}

describe('the best run of a sweep', () => {
  test('is marked once every point has a run folder and none is training', () => {
    assert.deepEqual([...bestOfFinishedSweeps([run(0, 0.6), run(1, 0.8), run(2, 0.7)])], ['/runs/s1-1']);
  });

  test('a tie goes to the earlier point, whatever order the runs come in', () => {
    assert.deepEqual([...bestOfFinishedSweeps([run(2, 0.8), run(1, 0.8), run(0, 0.6)])], ['/runs/s1-1']);
  });

  test('is not marked while a point is training or still waiting (no folder yet)', () => {
    assert.equal(bestOfFinishedSweeps([run(0, 0.6), run(1, 0.8), run(2, undefined, { state: 'running' })]).size, 0);
    assert.equal(bestOfFinishedSweeps([run(0, 0.6), run(1, 0.8)]).size, 0);
  });

  test('follows the goal, skips failed points, and keeps sweeps apart', () => {
    const byLoss = { metric: 'loss' as const, goal: 'minimize' as const };
    const runs = [
      run(0, 0.6, { sweep: byLoss }),
      run(1, 0.8, { sweep: byLoss }),
      run(2, undefined, { state: 'failed', sweep: byLoss }),
      run(0, 0.9, { sweep: { sweepId: 's2', total: 1 } }),
    ];
    assert.deepEqual([...bestOfFinishedSweeps(runs)].sort(), ['/runs/s1-1', '/runs/s2-0']);
  });

  test('ignores runs outside a sweep and malformed sweep records', () => {
    const plain = { dir: '/runs/plain', state: 'finished', config: { name: 'x' } } as unknown as RunRecord;
    const broken = {
      dir: '/runs/broken',
      state: 'finished',
      config: { sweepPoint: { sweepId: 3 } },
    } as unknown as RunRecord;
    assert.equal(sweepPointOf(plain), undefined);
    assert.equal(sweepPointOf(broken), undefined);
    assert.equal(bestOfFinishedSweeps([plain, broken]).size, 0);
  });

  test('the marked item says so and keeps its context words', () => {
    const item: ItemData = {
      id: 'run:/r',
      label: 'r',
      description: 'houlsby · accuracy 0.8',
      icon: { id: 'pass' },
      contextValue: 'peftRun finished',
      collapsible: 'none',
      path: '/r',
    };
    const marked = markBestOfSweep(item);
    assert.equal(marked.description, 'best of sweep · houlsby · accuracy 0.8');
    assert.equal(marked.icon.id, 'verified-filled');
    assert.match(marked.contextValue, /^peftRun finished\b.*\bbestOfSweep$/);
  });
});
