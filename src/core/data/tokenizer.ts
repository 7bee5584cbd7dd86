/**
 * BERT WordPiece tokenizer that reproduces Hugging Face's (slow, Python) `BertTokenizer` token for
 * token, so a model fine-tuned here sees exactly the ids it saw during pretraining.
 *
 * Pipeline, as in `transformers`:
 *   1. split off never-split tokens ([CLS], [SEP], [MASK], ...) wherever they occur;
 *   2. BasicTokenizer on each remaining chunk: clean control chars, space CJK ideographs, NFC,
 *      split on whitespace, lower-case and strip accents, split punctuation into single tokens;
 *   3. WordpieceTokenizer: greedy longest-match-first sub-words with a `##` continuation prefix.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors';

export interface TokenizerOptions {
  /** Lower-case the text before word pieces are looked up (uncased models). Default true. */
  lowercase?: boolean;
  /** Remove accents (NFD + drop Mn marks). Default: the same as `lowercase`, as in Hugging Face. */
  stripAccents?: boolean;
  /** Put spaces around CJK ideographs so each becomes its own word. Default true. */
  tokenizeChineseChars?: boolean;
  /** Prefix marking a word piece that continues a word. Default `##`. */
  continuationPrefix?: string;
  /** Words longer than this many code points become [UNK] without being split. Default 100. */
  maxCharsPerWord?: number;
  /** Tokens matched verbatim in the raw text and never split; default the five BERT specials. */
  neverSplit?: string[];
}

export interface Encoding {
  inputIds: number[];
  tokenTypeIds: number[];
}

const SPECIAL_TOKENS = { cls: '[CLS]', sep: '[SEP]', pad: '[PAD]', unk: '[UNK]', mask: '[MASK]' } as const;
const DEFAULT_NEVER_SPLIT = Object.values(SPECIAL_TOKENS);

// Unicode general categories used by the reference implementation.
const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;
const PUNCTUATION = /^\p{P}$/u;
const NONSPACING_MARK = /\p{Mn}/gu;
// After cleaning, these are exactly the characters Python's `str.split()` splits on.
const WHITESPACE_RUN = /\s+/u;

export class WordPieceTokenizer {
  readonly kind = 'WordPiece';
  readonly tokens: readonly string[];
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly maskId: number;

  private readonly ids: Map<string, number>;
  private readonly lowercase: boolean;
  private readonly stripAccents: boolean;
  private readonly tokenizeChineseChars: boolean;
  private readonly continuationPrefix: string;
  private readonly maxCharsPerWord: number;
  private readonly neverSplit: ReadonlySet<string>;
  private readonly neverSplitPattern: RegExp | undefined;

  /** Throws a plain Error when a required special token is missing; the factories add the file name. */
  private constructor(tokens: string[], options: TokenizerOptions = {}) {
    this.tokens = tokens;
    // Like `transformers.load_vocab`, a token listed twice keeps its last id.
    this.ids = new Map(tokens.map((token, id) => [token, id]));
    this.lowercase = options.lowercase ?? true;
    this.stripAccents = options.stripAccents ?? this.lowercase;
    this.tokenizeChineseChars = options.tokenizeChineseChars ?? true;
    this.continuationPrefix = options.continuationPrefix ?? '##';
    this.maxCharsPerWord = options.maxCharsPerWord ?? 100;
    this.neverSplit = new Set(options.neverSplit ?? DEFAULT_NEVER_SPLIT);
    this.neverSplitPattern = alternationOf([...this.neverSplit]);
    const missing = Object.values(SPECIAL_TOKENS).filter((token) => !this.ids.has(token));
    if (missing.length > 0) throw new Error(`the vocabulary lacks the BERT special token(s) ${missing.join(' ')}`);
    this.clsId = this.requireId(SPECIAL_TOKENS.cls);
    this.sepId = this.requireId(SPECIAL_TOKENS.sep);
    this.padId = this.requireId(SPECIAL_TOKENS.pad);
    this.unkId = this.requireId(SPECIAL_TOKENS.unk);
    this.maskId = this.requireId(SPECIAL_TOKENS.mask);
  }

  /** A tokenizer over an in-memory vocabulary; token i gets id i. */
  static fromVocab(tokens: string[], options?: TokenizerOptions): WordPieceTokenizer {
    return new WordPieceTokenizer([...tokens], options);
  }

  /** Reads a `vocab.txt` (one token per line, line n is id n - 1). */
  static fromVocabFile(path: string, options?: TokenizerOptions): WordPieceTokenizer {
    const tokens = parseVocabText(readTextFile(path));
    return withFileContext(path, () => new WordPieceTokenizer(tokens, options));
  }

  /**
   * Loads the WordPiece tokenizer of a folder that has a `vocab.txt`, with the casing settings of its
   * `tokenizer_config.json`, as `BertTokenizer` does. Folders with a `tokenizer.json` are read by
   * loadTokenizer (hf-tokenizer.ts) instead.
   */
  static fromFolder(folder: string): WordPieceTokenizer {
    const overrides = readTokenizerConfig(join(folder, 'tokenizer_config.json'));
    const vocabTxt = join(folder, 'vocab.txt');
    if (existsSync(vocabTxt)) return WordPieceTokenizer.fromVocabFile(vocabTxt, overrides);
    throw new DataError(
      folder,
      undefined,
      'no vocab.txt: a WordPiece vocabulary is needed here (the folder may have only a tokenizer.json)',
    );
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  /** The id of `token`, or undefined when it is not in the vocabulary. */
  idOf(token: string): number | undefined {
    return this.ids.get(token);
  }

  /** Word pieces of `text`, special tokens included verbatim where they appear. */
  tokenize(text: string): string[] {
    const pieces: string[] = [];
    for (const chunk of this.splitOnNeverSplit(text)) {
      if (this.neverSplit.has(chunk)) {
        pieces.push(chunk);
        continue;
      }
      for (const word of this.basicTokenize(chunk)) pieces.push(...this.wordPieces(word));
    }
    return pieces;
  }

  /**
   * `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, truncated like Hugging Face's `longest_first` so the
   * result has at most `maxLength` ids. Not padded: the batcher pads each batch to its own longest row.
   */
  encode(text: string, pair: string | undefined, maxLength: number): Encoding {
    const specialCount = pair === undefined ? 2 : 3;
    if (!Number.isInteger(maxLength) || maxLength < specialCount) {
      throw new RangeError(`maxLength must be an integer >= ${specialCount}, got ${maxLength}`);
    }
    const first = this.toIds(this.tokenize(text));
    const second = pair === undefined ? undefined : this.toIds(this.tokenize(pair));
    truncateLongestFirst(first, second, maxLength - specialCount);

    const inputIds = [this.clsId, ...first, this.sepId];
    const tokenTypeIds = new Array<number>(inputIds.length).fill(0);
    if (second !== undefined) {
      inputIds.push(...second, this.sepId);
      tokenTypeIds.push(...new Array<number>(second.length + 1).fill(1));
    }
    return { inputIds, tokenTypeIds };
  }

  private toIds(pieces: string[]): number[] {
    return pieces.map((piece) => this.ids.get(piece) ?? this.unkId);
  }

  private requireId(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw new Error(`the vocabulary has no ${token} token`);
    return id;
  }

  /** Splits around never-split tokens wherever they occur, even inside a word, as `transformers` does. */
  private splitOnNeverSplit(text: string): string[] {
    if (!this.neverSplitPattern) return [text];
    return text.split(this.neverSplitPattern).filter((chunk) => chunk.length > 0);
  }

  /** Hugging Face's BasicTokenizer: cleaned, normalised words with punctuation split off. */
  private basicTokenize(text: string): string[] {
    let cleaned = cleanText(text);
    if (this.tokenizeChineseChars) cleaned = spaceChineseChars(cleaned);
    const words: string[] = [];
    for (const rawWord of splitOnWhitespace(cleaned.normalize('NFC'))) {
      words.push(...splitOnPunctuation(this.normalizeWord(rawWord)));
    }
    return words;
  }

  private normalizeWord(word: string): string {
    let normalized = this.lowercase ? word.toLowerCase() : word;
    if (this.stripAccents) normalized = removeAccents(normalized);
    return normalized;
  }

  /** Greedy longest-match-first; a word with any unmatchable remainder becomes a single [UNK]. */
  private wordPieces(word: string): string[] {
    const chars = Array.from(word); // code points, like Python's list(str)
    if (chars.length > this.maxCharsPerWord) return [SPECIAL_TOKENS.unk];
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      const piece = this.longestPieceAt(chars, start);
      if (piece === undefined) return [SPECIAL_TOKENS.unk];
      pieces.push(piece.token);
      start = piece.end;
    }
    return pieces;
  }

  private longestPieceAt(chars: string[], start: number): { token: string; end: number } | undefined {
    const prefix = start > 0 ? this.continuationPrefix : '';
    for (let end = chars.length; end > start; end--) {
      const token = prefix + chars.slice(start, end).join('');
      if (this.ids.has(token)) return { token, end };
    }
    return undefined;
  }
}

/** Removes tokens from the end of the longer sequence (the pair on ties), one at a time. */
function truncateLongestFirst(first: number[], second: number[] | undefined, budget: number): void {
  let excess = first.length + (second?.length ?? 0) - budget;
  for (; excess > 0; excess--) {
    if (second === undefined || first.length > second.length) first.pop();
    else second.pop();
  }
}

// ---------------------------------------------------------------------------------------------
// BasicTokenizer helpers (names and rules follow transformers/models/bert/tokenization_bert.py)

/** Drops NUL, U+FFFD and control/format characters; maps every whitespace character to a space. */
function cleanText(text: string): string {
  let out = '';
  for (const char of text) {
    if (char === '\0' || char === '\uFFFD' || isControl(char)) continue;
    out += isWhitespace(char) ? ' ' : char;
  }
  return out;
}

function isWhitespace(char: string): boolean {
  return char === ' ' || char === '\t' || char === '\n' || char === '\r' || SPACE_SEPARATOR.test(char);
}

function isControl(char: string): boolean {
  // Tab and newlines are category Cc but count as whitespace, not as control characters.
  if (char === '\t' || char === '\n' || char === '\r') return false;
  return CONTROL.test(char);
}

/** The reference treats all non-alphanumeric ASCII as punctuation (e.g. `$`, `^`, `+`), not only Unicode P*. */
function isPunctuation(char: string): boolean {
  const cp = char.codePointAt(0) ?? 0;
  const asciiSymbol =
    (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  return asciiSymbol || PUNCTUATION.test(char);
}

/** The CJK Unified Ideographs blocks; Hangul, Hiragana and Katakana are deliberately not included. */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function spaceChineseChars(text: string): string {
  let out = '';
  for (const char of text) out += isChineseChar(char.codePointAt(0) ?? 0) ? ` ${char} ` : char;
  return out;
}

function splitOnWhitespace(text: string): string[] {
  const trimmed = text.trim();
  return trimmed === '' ? [] : trimmed.split(WHITESPACE_RUN);
}

function removeAccents(text: string): string {
  return text.normalize('NFD').replace(NONSPACING_MARK, '');
}

/** Every punctuation character becomes its own word; runs of other characters stay together. */
function splitOnPunctuation(word: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (const char of word) {
    if (!isPunctuation(char)) {
      current += char;
      continue;
    }
    if (current) parts.push(current);
    parts.push(char);
    current = '';
  }
  if (current) parts.push(current);
  return parts;
}

/** A regex with one capture group matching any of `tokens`, longest first so `[CLS]x` beats `[CLS]`. */
function alternationOf(tokens: string[]): RegExp | undefined {
  const nonEmpty = tokens.filter((token) => token.length > 0);
  if (nonEmpty.length === 0) return undefined;
  const escaped = nonEmpty
    .sort((a, b) => b.length - a.length)
    .map((token) => token.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(${escaped.join('|')})`, 'u');
}

// ---------------------------------------------------------------------------------------------
// File formats

function readTextFile(path: string): string {
  if (!existsSync(path)) throw new DataError(path, undefined, 'file does not exist');
  return readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
}

/** Re-throws a constructor error (e.g. a missing [CLS]) as a DataError naming the file. */
function withFileContext<T>(path: string, build: () => T): T {
  try {
    return build();
  } catch (err) {
    throw new DataError(path, undefined, (err as Error).message);
  }
}

/** Lines of a vocab.txt; like `transformers.load_vocab` only the line break is stripped, so ids match line numbers. */
function parseVocabText(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop(); // the trailing newline does not start a token
  return lines;
}

/** `do_lower_case`, `strip_accents` and `tokenize_chinese_chars` from tokenizer_config.json, when present. */
function readTokenizerConfig(path: string): TokenizerOptions {
  if (!existsSync(path)) return {};
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readTextFile(path)) as Record<string, unknown>;
  } catch (err) {
    throw new DataError(path, undefined, `not valid JSON: ${(err as Error).message}`);
  }
  const options: TokenizerOptions = {};
  if (typeof config.do_lower_case === 'boolean') options.lowercase = config.do_lower_case;
  if (typeof config.strip_accents === 'boolean') options.stripAccents = config.strip_accents;
  if (typeof config.tokenize_chinese_chars === 'boolean') options.tokenizeChineseChars = config.tokenize_chinese_chars;
  return options;
}
