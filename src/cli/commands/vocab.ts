/** `peft-lab vocab`: a smaller WordPiece vocabulary that still covers a corpus. */
import * as path from 'node:path';
import { writeTrimmedVocabulary } from '../../core/data/vocab-trim';
import type { Command } from '../args';
import { EXIT_FAILED, EXIT_OK } from '../exit-codes';
import { displayPath, formatError } from '../../worker/errors';
import { formatPercent } from '../../protocol/format';

export function vocabCommand(command: Extract<Command, { kind: 'vocab' }>): number {
  try {
    const trimmed = writeTrimmedVocabulary({
      ...command,
      corpusOptions: { documents: command.documents, textField: 'text' },
    });
    const fewer = trimmed.tokens.length < command.size ? ` (the corpus uses fewer than ${command.size})` : '';
    process.stdout.write(
      `wrote ${trimmed.tokens.length} tokens${fewer} to ${displayPath(path.resolve(command.out))}: they cover ${formatPercent(trimmed.coverage)} of the corpus's ` +
        `${trimmed.corpusPieces} pieces (${trimmed.distinctPieces} distinct) as ${displayPath(path.resolve(command.from))} tokenizes it\n`,
    );
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return EXIT_FAILED;
  }
}
