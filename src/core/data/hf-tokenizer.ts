/**
 * Tokenizers from a Hugging Face `tokenizer.json` (WordPiece, byte-level BPE, Unigram), run by
 * `@huggingface/tokenizers` (Hugging Face's tokenizers in JavaScript: the same normalizers,
 * pre-tokenizers, models and post-processors as the Rust library, read from the same file).
 *
 * The library encodes a text or a pair but does not truncate, so `encode` does what the Rust
 * library's `encode` does with `truncation=longest_first`: each side is tokenized without special
 * tokens, the pair is cut by `truncate_encodings`' rule (tokenizers/src/utils/truncation.rs) to
 * `maxLength` less the special tokens the post-processor adds, then the post-processor adds them.
 *
 * Folders with only a `vocab.txt` (the shipped base, `peft-lab vocab` and `peft-lab pretrain`) keep
 * the hand-written WordPieceTokenizer (tokenizer.ts), which needs no tokenizer.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { DataError } from '../errors';
import { WordPieceTokenizer, type Encoding } from './tokenizer';

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_CONFIG_JSON = 'tokenizer_config.json';
export const VOCAB_TXT = 'vocab.txt';

/** What fine-tuning needs of a tokenizer: ids of a text (or a pair) with the model's special tokens, at most maxLength of them. */
export interface TextTokenizer {
  /** The tokenizer's model: WordPiece, BPE or Unigram. */
  readonly kind: string;
  readonly vocabSize: number;
  readonly padId: number;
  encode(text: string, pair: string | undefined, maxLength: number): Encoding;
}

type PostProcess = (
  tokens: string[],
  pair: string[] | null,
  addSpecialTokens: boolean,
) => { tokens: string[]; token_type_ids?: number[] };

interface TokenizerInternals {
  post_processor: PostProcess | null;
  model: { tokens_to_ids: Map<string, number>; unk_token_id?: number; vocab: string[] } | null;
}

const MODEL_TYPES = ['WordPiece', 'BPE', 'Unigram'];
const PAD_CANDIDATES = ['<pad>', '[PAD]'];

export class HfTokenizer implements TextTokenizer {
  readonly kind: string;
  readonly vocabSize: number;
  readonly padId: number;
  private readonly singleSpecials: number;
  private readonly pairSpecials: number;

  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly file: string,
    json: TokenizerJson,
    config: Record<string, unknown>,
  ) {
    this.kind = json.model.type;
    this.vocabSize = tokenizer.get_vocab(true).size;
    this.singleSpecials = this.postProcess([], null).tokens.length;
    this.pairSpecials = this.postProcess([], []).tokens.length;
    this.padId = this.findPadId(json, config);
  }

  /** Reads `tokenizer.json` and, when present beside it, `tokenizer_config.json`. */
  static fromFile(file: string, configFile?: string): HfTokenizer {
    const json = readTokenizerJson(file);
    const config = configFile && existsSync(configFile) ? readJsonObject(configFile) : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
    } catch (err) {
      throw new DataError(file, undefined, `cannot build the tokenizer: ${(err as Error).message}`);
    }
    return new HfTokenizer(tokenizer, file, json, config);
  }

  encode(text: string, pair: string | undefined, maxLength: number): Encoding {
    const specials = pair === undefined ? this.singleSpecials : this.pairSpecials;
    if (!Number.isInteger(maxLength) || maxLength < specials) {
      throw new RangeError(`maxLength must be an integer >= ${specials}, got ${maxLength}`);
    }
    const first: string[] = this.tokenizer.tokenize(text, { add_special_tokens: false });
    const second: string[] | null =
      pair === undefined ? null : this.tokenizer.tokenize(pair, { add_special_tokens: false });
    const [a, b] = truncateLongestFirst(first, second, maxLength - specials);
    const processed = this.postProcess(a, b);
    const inputIds = processed.tokens.map((token) => this.idOf(token));
    const tokenTypeIds = processed.token_type_ids ?? new Array<number>(inputIds.length).fill(0);
    return { inputIds, tokenTypeIds };
  }

  /** The tokens of a text without special tokens, for tests and diagnostics. */
  tokenize(text: string): string[] {
    return this.tokenizer.tokenize(text, { add_special_tokens: false });
  }

  private postProcess(tokens: string[], pair: string[] | null): { tokens: string[]; token_type_ids?: number[] } {
    const post = (this.tokenizer as unknown as TokenizerInternals).post_processor;
    if (!post) return { tokens: pair ? [...tokens, ...pair] : tokens };
    return post(tokens, pair, true);
  }

  /** The token's id as the library's own encode looks it up: added tokens, the vocabulary, else the unknown token. */
  private idOf(token: string): number {
    const id =
      this.tokenizer.token_to_id(token) ?? (this.tokenizer as unknown as TokenizerInternals).model?.unk_token_id;
    if (id === undefined)
      throw new DataError(
        this.file,
        undefined,
        `the token ${JSON.stringify(token)} is not in the vocabulary and the tokenizer has no unknown token`,
      );
    return id;
  }

  /** tokenizer_config.json's pad_token, else tokenizer.json's padding, else <pad> or [PAD]. */
  private findPadId(json: TokenizerJson, config: Record<string, unknown>): number {
    const configured = tokenContent(config.pad_token);
    const candidates = [configured, json.padding?.pad_token, ...PAD_CANDIDATES].filter(
      (t): t is string => typeof t === 'string',
    );
    for (const token of candidates) {
      const id = this.tokenizer.token_to_id(token);
      if (id !== undefined) return id;
    }
    if (typeof json.padding?.pad_id === 'number') return json.padding.pad_id;
    // Padding never reaches the model (the attention mask hides it), so any id in range will do.
    return 0;
  }
}

interface TokenizerJson {
  model: { type: string };
  padding?: { pad_id?: number; pad_token?: string } | null;
  [key: string]: unknown;
}

function readTokenizerJson(file: string): TokenizerJson {
  const json = readJsonObject(file);
  const model = json.model as { type?: unknown } | undefined;
  if (!model || typeof model !== 'object') throw new DataError(file, undefined, 'has no "model" section');
  // Files written before the Rust library recorded model.type: the vocab's shape tells.
  const type = typeof model.type === 'string' ? model.type : inferModelType(model);
  if (!MODEL_TYPES.includes(type)) {
    throw new DataError(
      file,
      undefined,
      `model.type ${JSON.stringify(model.type)} is not supported (supported: ${MODEL_TYPES.join(', ')})`,
    );
  }
  if (!Array.isArray(json.added_tokens)) json.added_tokens = [];
  // The Rust library writes every section, null when unused; hand-written files may leave them out.
  for (const section of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) json[section] ??= null;
  return { ...json, model: { ...model, type } } as TokenizerJson;
}

function inferModelType(model: Record<string, unknown>): string {
  if (Array.isArray(model.vocab)) return 'Unigram';
  if ('merges' in model) return 'BPE';
  if ('continuing_subword_prefix' in model || 'max_input_chars_per_word' in model) return 'WordPiece';
  return 'unknown';
}

function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataError(file, undefined, `cannot read: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DataError(file, undefined, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new DataError(file, undefined, 'must be a JSON object');
  return json as Record<string, unknown>;
}

/** A special token in tokenizer_config.json: a string or an AddedToken object {"content": ...}. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content;
  return undefined;
}

/**
 * The Rust library's `longest_first` truncation of a text (and pair) to `budget` tokens: a single
 * text loses its tail; a pair keeps the shorter side whole when the longer one can take the cut,
 * else each gets half the budget, the longer side the odd token.
 */
export function truncateLongestFirst<T>(first: T[], second: T[] | null, budget: number): [T[], T[] | null] {
  if (second === null) return [first.slice(0, Math.max(0, budget)), null];
  if (first.length + second.length <= budget) return [first, second];
  const swap = first.length > second.length;
  let short = swap ? second.length : first.length;
  let long = swap ? first.length : second.length;
  long = short > budget ? short : Math.max(short, budget - short);
  if (short + long > budget) {
    short = Math.floor(budget / 2);
    long = short + (budget % 2);
  }
  const [n1, n2] = swap ? [long, short] : [short, long];
  return [first.slice(0, n1), second.slice(0, n2)];
}

/**
 * The tokenizer of a Hugging Face model folder: `tokenizer.json` when present (any of the three
 * models), else the WordPiece `vocab.txt` with tokenizer_config.json's casing.
 */
export function loadTokenizer(folder: string): TextTokenizer {
  const tokenizerJson = join(folder, TOKENIZER_JSON);
  if (existsSync(tokenizerJson)) return HfTokenizer.fromFile(tokenizerJson, join(folder, TOKENIZER_CONFIG_JSON));
  if (existsSync(join(folder, VOCAB_TXT))) return WordPieceTokenizer.fromFolder(folder);
  throw new DataError(
    folder,
    undefined,
    `no tokenizer found: the folder has neither ${TOKENIZER_JSON} nor ${VOCAB_TXT}`,
  );
}
