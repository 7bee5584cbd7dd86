/**
 * A smaller WordPiece vocabulary for a corpus, cut from a larger one (`peft-lab vocab`).
 *
 * The corpus is tokenized with the source vocabulary and the pieces it uses are counted. The new
 * vocabulary keeps the special tokens, every single character the corpus uses (in both its
 * word-initial and its `##` continuation form), then the most frequent pieces until it is full.
 * Keeping the characters means every word that was not [UNK] before still tokenizes: greedy
 * longest-match falls back to shorter pieces where a long one was dropped.
 *
 * Why trim rather than learn merges from scratch: the pieces stay those of a vocabulary people know
 * (bert-base-uncased), the result is deterministic and fast, and a 4-layer base spends far less of
 * its parameters and of every pretraining step on 30,522 embedding rows it would rarely see.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../checkpoint/atomic';
import { readCorpusFile, type CorpusOptions, type Document } from './corpus';
import { WordPieceTokenizer } from './tokenizer';

export const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
const CONTINUATION = '##';

export interface TrimmedVocabulary {
  tokens: string[];
  /** Share of the corpus's pieces the kept tokens cover as they were (before re-tokenization). */
  coverage: number;
  /** Pieces counted in the corpus, and how many distinct ones there were. */
  corpusPieces: number;
  distinctPieces: number;
}

/** Piece frequencies of the documents under `tokenizer`. */
export function countPieces(documents: Iterable<Document>, tokenizer: WordPieceTokenizer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const document of documents) {
    for (const piece of tokenizer.tokenize(document.text)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  }
  return counts;
}

/** The `size` tokens to keep, in id order: specials, characters, then by falling frequency. */
export function trimVocabulary(
  source: WordPieceTokenizer,
  counts: Map<string, number>,
  size: number,
): TrimmedVocabulary {
  const kept = new Set<string>(SPECIALS);
  for (const token of characterTokens(source, counts)) kept.add(token);
  if (kept.size > size) {
    throw new RangeError(
      `a vocabulary of ${size} cannot hold the ${kept.size} special and single-character tokens this corpus needs`,
    );
  }
  const byFrequency = [...counts]
    .filter(([piece]) => piece !== '[UNK]')
    .sort(([a, ca], [b, cb]) => cb - ca || idOf(source, a) - idOf(source, b));
  for (const [piece] of byFrequency) {
    if (kept.size >= size) break;
    kept.add(piece);
  }
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const covered = [...counts].reduce((n, [piece, count]) => n + (kept.has(piece) ? count : 0), 0);
  return { tokens: [...kept], coverage: total ? covered / total : 1, corpusPieces: total, distinctPieces: counts.size };
}

/** Each character the corpus's pieces contain, as a word start and as a continuation, where the source has it. */
function characterTokens(source: WordPieceTokenizer, counts: Map<string, number>): string[] {
  const characters = new Set<string>();
  for (const piece of counts.keys()) {
    if (piece.startsWith('[')) continue;
    const text = piece.startsWith(CONTINUATION) ? piece.slice(CONTINUATION.length) : piece;
    for (const char of text) characters.add(char);
  }
  const tokens: string[] = [];
  for (const char of [...characters].sort((a, b) => idOf(source, a) - idOf(source, b))) {
    for (const token of [char, CONTINUATION + char]) if (source.idOf(token) !== undefined) tokens.push(token);
  }
  return tokens;
}

function idOf(source: WordPieceTokenizer, token: string): number {
  return source.idOf(token) ?? Number.MAX_SAFE_INTEGER;
}

export interface VocabularyRequest {
  /** The vocabulary to cut from: a vocab.txt or a model folder. */
  from: string;
  corpus: string[];
  size: number;
  out: string;
  corpusOptions: CorpusOptions;
}

/** Reads the corpus, trims `from` to `size` tokens for it and writes them to `out` as a vocab.txt. */
export function writeTrimmedVocabulary(request: VocabularyRequest): TrimmedVocabulary {
  const source = fs.statSync(request.from).isDirectory()
    ? WordPieceTokenizer.fromFolder(request.from)
    : WordPieceTokenizer.fromVocabFile(request.from);
  const documents = request.corpus.flatMap((file) => readCorpusFile(file, request.corpusOptions));
  const trimmed = trimVocabulary(source, countPieces(documents, source), request.size);
  writeFileAtomic(request.out, `${trimmed.tokens.join('\n')}\n`);
  return trimmed;
}
