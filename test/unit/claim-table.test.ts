/**
 * The claim bench's table and the Experiments table's "Group seeds" agree on the same runs:
 * `bench/adapter-claim.ts --from-runs` on a 3-seed x 2-method set of run folders prints the groups,
 * N and mean ± sd that the view's analysis (the panel's answer to 'analyze') shows for them.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { analyze } from '../../src/host/experiments/experiments-analysis';
import { seedGrid } from './helpers/seed-grid';

const REPO = path.resolve(__dirname, '..', '..');
const roots: string[] = [];
after(() => {
  for (const dir of roots) fs.rmSync(dir, { recursive: true, force: true });
});

test('adapter-claim --from-runs prints the groups the Experiments view shows, mean ± sd alike', () => {
  const grid = seedGrid();
  roots.push(grid.root);
  const bench = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(REPO, 'bench', 'adapter-claim.ts'), '--from-runs', grid.runs],
    { cwd: REPO, encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(bench.status, 0, bench.stderr);
  const printed = JSON.parse(bench.stdout.trim().split('\n').pop()!) as {
    groupBy: string[];
    groups: {
      key: Record<string, unknown>;
      runs: number;
      stats: Record<string, { n: number; mean: number; sd: number }>;
    }[];
  };
  // what the view shows for every run of the table (the panel sends all shown rows)
  const view = analyze(grid.source, { request: 1, choice: 'best' });
  assert.deepEqual(printed.groupBy, view.groupBy);
  assert.equal(printed.groups.length, 2);
  assert.deepEqual(
    printed.groups.map((g) => g.key),
    view.groups.map((g) => g.key),
  );
  for (const [i, g] of printed.groups.entries()) {
    assert.equal(g.runs, 3);
    assert.deepEqual(g.stats['test:accuracy'], view.groups[i]!.stats['test:accuracy']);
    assert.deepEqual(g.stats['best:accuracy'], view.groups[i]!.stats['best:accuracy']);
  }
  // and the printed table reads as the view's cells do
  assert.match(bench.stderr, /\| houlsby \|.*\| 3 \| 0\.7700 ± 0\.0200 \|/);
  assert.match(bench.stderr, /\| lora \|.*\| 3 \| 0\.6700 ± 0\.0265 \|/);
});
