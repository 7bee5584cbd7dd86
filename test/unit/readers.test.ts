import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { DataConfig, TaskConfig } from '../../src/core/config/types';
import { readExamples, splitForValidation, type Example } from '../../src/core/data/readers';
import { DataError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';

const tempDir = mkdtempSync(join(tmpdir(), 'peft-readers-'));
after(() => rmSync(tempDir, { recursive: true, force: true }));

function writeTemp(name: string, content: string): string {
  const path = join(tempDir, name);
  writeFileSync(path, content);
  return path;
}

function dataConfig(overrides: Partial<DataConfig> = {}): DataConfig {
  return {
    train: 'unused',
    textField: 'text',
    labelField: 'label',
    maxLength: 128,
    validationSplit: 0.1,
    ...overrides,
  };
}

const classification: TaskConfig = { type: 'classification', metric: 'accuracy', pooling: 'cls' };
const regression: TaskConfig = { type: 'regression', metric: 'pearson', pooling: 'cls' };

/** Asserts `fn` throws a DataError at `line` whose message names the file and matches `detail`. */
function assertDataError(fn: () => unknown, file: string, line: number | undefined, detail: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DataError, `expected a DataError, got ${String(err)}`);
    assert.equal(err.file, file);
    assert.equal(err.line, line);
    assert.ok(err.message.startsWith(line === undefined ? `${file}: ` : `${file}:${line}: `), err.message);
    assert.match(err.message, detail);
    return true;
  });
}

function jsonl(...rows: unknown[]): string {
  return rows.map((row) => JSON.stringify(row)).join('\n') + '\n';
}

describe('readExamples: JSONL', () => {
  test('reads text, label and 1-based lines, skipping blank lines', () => {
    const file = writeTemp('basic.jsonl', '{"text":"good","label":"pos"}\n\n  \n{"text":"bad","label":"neg"}\n');
    const { examples, labelNames } = readExamples(file, dataConfig(), classification);
    assert.deepEqual(labelNames, ['neg', 'pos']);
    assert.deepEqual(examples, [
      { text: 'good', label: 1, line: 1 },
      { text: 'bad', label: 0, line: 4 },
    ]);
  });

  test('reads a text pair and converts numeric text to strings', () => {
    const file = writeTemp('pair.jsonl', jsonl({ q: 'is it?', a: 42, y: 1 }));
    const { examples } = readExamples(
      file,
      dataConfig({ textField: 'q', textPairField: 'a', labelField: 'y' }),
      classification,
    );
    assert.deepEqual(examples, [{ text: 'is it?', pair: '42', label: 0, line: 1 }]);
  });

  test('sorts numeric labels numerically and other labels as text', () => {
    const numeric = writeTemp('numeric.jsonl', jsonl(...[10, 2, 9, 2].map((label) => ({ text: 't', label }))));
    assert.deepEqual(readExamples(numeric, dataConfig(), classification).labelNames, ['2', '9', '10']);
    const text = writeTemp('text.jsonl', jsonl(...['b', 'a', 'C'].map((label) => ({ text: 't', label }))));
    assert.deepEqual(readExamples(text, dataConfig(), classification).labelNames, ['C', 'a', 'b']);
  });

  test('maps labels through given label names', () => {
    const file = writeTemp('named.jsonl', jsonl({ text: 'x', label: 'positive' }, { text: 'y', label: 'negative' }));
    const { examples, labelNames } = readExamples(file, dataConfig(), classification, ['positive', 'negative']);
    assert.deepEqual(labelNames, ['positive', 'negative']);
    assert.deepEqual(
      examples.map((e) => e.label),
      [0, 1],
    );
  });

  test('matches numeric labels to numeric names by value, not by position', () => {
    const file = writeTemp(
      'numeric-names.jsonl',
      jsonl({ text: 'x', label: 1 }, { text: 'y', label: '0' }, { text: 'z', label: 1.0 }),
    );
    const { examples } = readExamples(file, dataConfig(), classification, ['1', '0']);
    assert.deepEqual(
      examples.map((e) => e.label),
      [0, 1, 0],
    );
  });

  test('reads whole-number labels as ids when no label name is numeric', () => {
    const file = writeTemp('index-labels.jsonl', jsonl({ text: 'x', label: 1 }, { text: 'y', label: 0 }));
    const { examples } = readExamples(file, dataConfig(), classification, ['negative', 'positive']);
    assert.deepEqual(
      examples.map((e) => e.label),
      [1, 0],
    );
  });

  test('reports an unknown label with the known ones', () => {
    const file = writeTemp('unknown-label.jsonl', jsonl({ text: 'x', label: 'pos' }, { text: 'y', label: 'meh' }));
    assertDataError(
      () => readExamples(file, dataConfig(), classification, ['neg', 'pos']),
      file,
      2,
      /unknown label "meh"; known labels: neg, pos$/,
    );
    // with numeric names an out-of-range number is not silently taken as an index
    const stars = writeTemp('stars.jsonl', jsonl({ text: 'x', label: 0 }));
    assertDataError(
      () => readExamples(stars, dataConfig(), classification, ['1', '2', '3']),
      stars,
      1,
      /unknown label "0"; known labels: 1, 2, 3/,
    );
  });

  test('reports malformed JSON with its line', () => {
    const file = writeTemp('malformed.jsonl', '{"text":"a","label":1}\n{"text": "b", label: 1}\n');
    assertDataError(() => readExamples(file, dataConfig(), classification), file, 2, /malformed JSON/);
  });

  test('reports a JSON array instead of one object per line', () => {
    const file = writeTemp('array.json', JSON.stringify([{ text: 'a', label: 1 }]));
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      1,
      /one JSON object per line \(JSONL\), got an array/,
    );
  });

  test('reports a missing field naming it and the fields the line has', () => {
    const file = writeTemp('missing.jsonl', jsonl({ text: 'a', label: 1 }, { sentence: 'b', label: 0 }));
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      2,
      /missing text field "text"; this line has fields: sentence, label$/,
    );
    const noLabel = writeTemp('no-label.jsonl', jsonl({ text: 'a' }));
    assertDataError(
      () => readExamples(noLabel, dataConfig(), classification),
      noLabel,
      1,
      /missing label field "label"; this line has fields: text$/,
    );
    const noPair = writeTemp('no-pair.jsonl', jsonl({ text: 'a', label: 0 }));
    assertDataError(
      () => readExamples(noPair, dataConfig({ textPairField: 'hypothesis' }), classification),
      noPair,
      1,
      /missing text pair field "hypothesis"; this line has fields: text, label$/,
    );
  });

  test('reports empty text and non-text values', () => {
    const empty = writeTemp('empty-text.jsonl', jsonl({ text: 'ok', label: 1 }, { text: '  ', label: 1 }));
    assertDataError(() => readExamples(empty, dataConfig(), classification), empty, 2, /text field "text" is empty/);
    const object = writeTemp('object-text.jsonl', jsonl({ text: { a: 1 }, label: 1 }));
    assertDataError(
      () => readExamples(object, dataConfig(), classification),
      object,
      1,
      /text field "text" must be a string, got an object/,
    );
  });

  test('reads regression labels, numeric strings included', () => {
    const file = writeTemp(
      'stsb.jsonl',
      jsonl({ text: 'a', label: 3.8 }, { text: 'b', label: ' 0.5 ' }, { text: 'c', label: -1 }),
    );
    const { examples, labelNames } = readExamples(file, dataConfig(), regression);
    assert.deepEqual(
      examples.map((e) => e.label),
      [3.8, 0.5, -1],
    );
    assert.deepEqual(labelNames, []);
  });

  test('reports a non-numeric regression label', () => {
    const file = writeTemp('bad-regression.jsonl', jsonl({ text: 'a', label: 1 }, { text: 'b', label: 'high' }));
    assertDataError(
      () => readExamples(file, dataConfig(), regression),
      file,
      2,
      /regression label "label" must be a finite number, got "high"/,
    );
  });
});

describe('readExamples: CSV', () => {
  test('reads quoted fields with commas, escaped quotes, newlines and CRLF', () => {
    const content = 'text,label\r\n"Hello, world",pos\r\n"She said ""hi""",neg\r\n"two\r\nlines",pos\r\nplain,neg\r\n';
    const file = writeTemp('quoted.csv', content);
    const { examples } = readExamples(file, dataConfig(), classification);
    assert.deepEqual(examples, [
      { text: 'Hello, world', label: 1, line: 2 },
      { text: 'She said "hi"', label: 0, line: 3 },
      { text: 'two\nlines', label: 1, line: 4 },
      { text: 'plain', label: 0, line: 6 },
    ]);
  });

  test('skips blank lines and tolerates a missing final newline and a byte order mark', () => {
    const file = writeTemp('blank.csv', '\uFEFFtext,label\n\na,1\n\nb,0');
    const { examples, labelNames } = readExamples(file, dataConfig(), classification);
    assert.deepEqual(labelNames, ['0', '1']);
    assert.deepEqual(examples, [
      { text: 'a', label: 1, line: 3 },
      { text: 'b', label: 0, line: 5 },
    ]);
  });

  test('reports a row with the wrong number of columns', () => {
    const file = writeTemp('columns.csv', 'text,label\na,1\nb,c,1\n');
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      3,
      /expected 2 columns like the header, found 3/,
    );
  });

  test('reports an unclosed quote at the line where it opens', () => {
    const file = writeTemp('unclosed.csv', 'text,label\na,1\n"never closed,1\nb,0\n');
    assertDataError(() => readExamples(file, dataConfig(), classification), file, 3, /unclosed quote/);
  });

  test('reports text after a closing quote', () => {
    const file = writeTemp('after-quote.csv', 'text,label\n"a"b,1\n');
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      2,
      /unexpected "b" after a closing quote/,
    );
  });

  test('reports a missing column at the header', () => {
    const file = writeTemp('header.csv', 'sentence,label\na,1\n');
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      1,
      /missing text field "text"; the header has columns: sentence, label$/,
    );
  });

  test('reports a header-only file as having no examples', () => {
    const file = writeTemp('header-only.csv', 'text,label\n');
    assertDataError(() => readExamples(file, dataConfig(), classification), file, undefined, /contains no examples/);
  });

  test('reports an empty text cell', () => {
    const file = writeTemp('empty-cell.csv', 'text,label\na,1\n"",0\n');
    assertDataError(() => readExamples(file, dataConfig(), classification), file, 3, /text field "text" is empty/);
  });
});

describe('readExamples: TSV', () => {
  test('reads GLUE-style rows with quotes as literal characters', () => {
    const file = writeTemp('sst2.tsv', 'sentence\tlabel\r\nit \'s a "gem"\t1\r\n"unbalanced quote\t0\r\n');
    const { examples } = readExamples(file, dataConfig({ textField: 'sentence' }), classification);
    assert.deepEqual(examples, [
      { text: 'it \'s a "gem"', label: 1, line: 2 },
      { text: '"unbalanced quote', label: 0, line: 3 },
    ]);
  });

  test('reads sentence pairs with a regression score (STS-B style)', () => {
    const file = writeTemp('stsb.tsv', 's1\ts2\tscore\nA man.\tA person.\t4.2\n');
    const data = dataConfig({ textField: 's1', textPairField: 's2', labelField: 'score' });
    assert.deepEqual(readExamples(file, data, regression).examples, [
      { text: 'A man.', pair: 'A person.', label: 4.2, line: 2 },
    ]);
  });

  test('reports a row with the wrong number of columns', () => {
    const file = writeTemp('columns.tsv', 'text\tlabel\na\t1\nb\n');
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      3,
      /expected 2 columns like the header, found 1/,
    );
  });
});

describe('readExamples: files and formats', () => {
  test('reports a missing file', () => {
    const file = join(tempDir, 'does-not-exist.jsonl');
    assertDataError(() => readExamples(file, dataConfig(), classification), file, undefined, /does not exist/);
  });

  test('reports an empty file', () => {
    const file = writeTemp('empty.jsonl', '\n  \n');
    assertDataError(() => readExamples(file, dataConfig(), classification), file, undefined, /the file is empty/);
  });

  test('asks for data.format when the extension is unknown, and honours it when given', () => {
    const file = writeTemp('data.txt', 'text\tlabel\na\t1\n');
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      undefined,
      /set data\.format to "jsonl", "csv" or "tsv"/,
    );
    assert.equal(readExamples(file, dataConfig({ format: 'tsv' }), classification).examples.length, 1);
  });

  test('reads the sentiment package Amazon reviews (1,000 examples, 2 labels)', () => {
    const source = join(__dirname, '..', '..', 'node_modules', 'sentiment', 'test', 'fixtures', 'amazon.json');
    const reviews = JSON.parse(readFileSync(source, 'utf8')) as Array<{ text: string; class: number | null }>;
    // The fixture ends with a placeholder {"text": "", "class": null}; the reader rightly rejects it.
    assert.equal(reviews.length, 1001);
    assert.deepEqual(reviews[1000], { text: '', class: null });
    const data = dataConfig({ labelField: 'class' });
    const raw = writeTemp('amazon-raw.jsonl', jsonl(...reviews));
    assertDataError(() => readExamples(raw, data, classification), raw, 1001, /text field "text" is empty/);

    const file = writeTemp('amazon.jsonl', jsonl(...reviews.slice(0, 1000)));
    const { examples, labelNames } = readExamples(file, data, classification);
    assert.equal(examples.length, 1000);
    assert.deepEqual(labelNames, ['0', '1']);
    assert.deepEqual(examples[1], { text: 'Good case, Excellent value.', label: 1, line: 2 });
  });
});

describe('splitForValidation', () => {
  const examples: Example[] = Array.from({ length: 20 }, (_, i) => ({ text: `t${i}`, label: i % 2, line: i + 1 }));

  test('holds out the requested fraction, deterministically per seed, in file order', () => {
    const first = splitForValidation(examples, 0.25, new Rng(7));
    const again = splitForValidation(examples, 0.25, new Rng(7));
    const other = splitForValidation(examples, 0.25, new Rng(8));
    assert.equal(first.validation.length, 5);
    assert.equal(first.train.length, 15);
    assert.deepEqual(again, first);
    assert.notDeepEqual(other.validation, first.validation);
    const lines = [...first.train, ...first.validation].map((e) => e.line).sort((a, b) => a - b);
    assert.deepEqual(
      lines,
      examples.map((e) => e.line),
    );
    const validationLines = first.validation.map((e) => e.line);
    assert.deepEqual(
      validationLines,
      [...validationLines].sort((a, b) => a - b),
    );
  });

  test('keeps at least one example on each side and none with fraction 0', () => {
    assert.equal(splitForValidation(examples, 0.001, new Rng(1)).validation.length, 1);
    assert.equal(splitForValidation(examples.slice(0, 1), 0.5, new Rng(1)).train.length, 1);
    assert.deepEqual(splitForValidation(examples, 0, new Rng(1)).validation, []);
    assert.throws(() => splitForValidation(examples, 1, new Rng(1)), RangeError);
  });
});

describe('no silent guesses (issue 18)', () => {
  test('without task.labels, a file mixing numbers and names is an error naming the first line of each kind', () => {
    const file = writeTemp(
      'mixed.jsonl',
      jsonl(
        { text: 'a', label: 'negative' },
        { text: 'b', label: 'positive' },
        { text: 'c', label: 1 },
        { text: 'd', label: 'negative' },
      ),
    );
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      3,
      /the labels mix numbers and names \(line 1 has the label "negative", line 3 has the number 1\); .*task\.labels/,
    );
    const csv = writeTemp('mixed.csv', 'text,label\nx,1\ny,pos\n');
    assertDataError(
      () => readExamples(csv, dataConfig(), classification),
      csv,
      3,
      /line 2 has the label "1", line 3 has the label "pos"/,
    );
  });

  test('task.labels may be numbers: [0, 1] matches integer labels in the data', () => {
    const file = writeTemp(
      'ints.jsonl',
      jsonl({ text: 'a', label: 1 }, { text: 'b', label: 0 }, { text: 'c', label: '1' }),
    );
    const { examples, labelNames } = readExamples(file, dataConfig(), classification, [0, 1].map(String));
    assert.deepEqual(labelNames, ['0', '1']);
    assert.deepEqual(
      examples.map((e) => e.label),
      [1, 0, 1],
    );
  });

  test('bytes that are not UTF-8 are an error naming the file, line and byte offset; data.encoding "latin1" reads them', () => {
    const file = join(tempDir, 'latin1.csv');
    writeFileSync(
      file,
      Buffer.concat([Buffer.from('text,label\ngood,pos\ncaf'), Buffer.from([0xe9]), Buffer.from(' noir,neg\n')]),
    );
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      3,
      /not valid UTF-8: byte 0xE9 at byte offset 23 of the file; .*data\.encoding to "latin1"/,
    );
    const { examples } = readExamples(file, dataConfig({ encoding: 'latin1' }), classification);
    assert.equal(examples[1]!.text, 'café noir');
  });

  test('"text": null says null; an infinite regression label says Infinity', () => {
    const file = writeTemp('null.jsonl', jsonl({ text: 'ok', label: 'a' }, { text: null, label: 'b' }));
    assertDataError(
      () => readExamples(file, dataConfig(), classification),
      file,
      2,
      /^[^;]*text field "text" is null$/,
    );
    const infinite = writeTemp('inf.jsonl', '{"text":"a","label":1e999}\n');
    assertDataError(
      () => readExamples(infinite, dataConfig(), regression),
      infinite,
      1,
      /must be a finite number, got Infinity$/,
    );
  });

  test('a data file linked to a system file is refused without echoing a line of it; malformed JSON is not quoted back', () => {
    const link = join(tempDir, 'passwd.jsonl');
    symlinkSync('/etc/passwd', link);
    assert.throws(
      () => readExamples(link, dataConfig(), classification),
      (err: unknown) => {
        assert.ok(err instanceof DataError);
        assert.match(err.message, /is a link to \/etc\/passwd, a file of the system folder \/etc, not a data file/);
        assert.doesNotMatch(err.message, /root:/);
        return true;
      },
    );
    const secret = writeTemp('secret.jsonl', 'top-secret-token-1234\n');
    assertDataError(
      () => readExamples(secret, dataConfig(), classification),
      secret,
      1,
      /^[^"]*malformed JSON: Unexpected token/,
    );
  });
});
