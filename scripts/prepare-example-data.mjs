#!/usr/bin/env node
// Builds examples/data/sentiment-{train,validation,test}.jsonl from the 3 x 1,000 labelled sentences
// (Amazon, IMDB, Yelp reviews; UCI "Sentiment Labelled Sentences") shipped in sentiment@5.0.2's
// test/fixtures. Deterministic: the same files on every machine.
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'examples', 'data');
const sources = ['amazon', 'imdb', 'yelp'];

const rows = sources.flatMap((source) =>
  require(`sentiment/test/fixtures/${source}.json`)
    // each fixture ends with a placeholder {"text": "", "class": null}
    .filter((r) => typeof r.text === 'string' && r.text.trim() && (r.class === 0 || r.class === 1))
    .map((r) => ({ text: r.text.trim(), label: r.class === 1 ? 'positive' : 'negative', source })),
);

// mulberry32: a fixed shuffle independent of Node's Math.random
let seed = 20261125;
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
for (let i = rows.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [rows[i], rows[j]] = [rows[j], rows[i]];
}

const splits = { test: rows.slice(0, 300), validation: rows.slice(300, 600), train: rows.slice(600) };
mkdirSync(outDir, { recursive: true });
for (const [name, items] of Object.entries(splits)) {
  writeFileSync(join(outDir, `sentiment-${name}.jsonl`), items.map((r) => JSON.stringify(r)).join('\n') + '\n');
  console.log(`${name}: ${items.length} sentences`);
}
