/**
 * Masked-language-model pretraining (`peft-lab pretrain`): the masking, the corpus readers, the
 * config, the MLM head against plain autodiff, a tiny model that learns, the Hugging Face folder it
 * writes (loaded back and fine-tuned), resume, and the CLI and worker entry points.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tf } from '../../src/core/tf';
import { ConfigError, DataError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';
import { Ajv } from 'ajv';
import {
  findSchemaFile,
  loadAnyConfig,
  loadConfig,
  loadPretrainConfig,
  parseAnyConfigText,
  validateConfigText,
} from '../../src/core/config/load';
import type { ResolvedPretrainConfig } from '../../src/core/config/types';
import { WordPieceTokenizer } from '../../src/core/data/tokenizer';
import { makeBatches, type EncodedExample } from '../../src/core/data/batches';
import {
  maskBatch,
  maskVocabulary,
  readCorpusFile,
  splitMaskedBatch,
  tokenizeDocuments,
  type Document,
} from '../../src/core/data/corpus';
import { readSafetensors, toFloat32 } from '../../src/core/checkpoint/safetensors';
import type { CheckpointInfo, RunStatus } from '../../src/core/checkpoint/run-folder';
import { readBertFolder, randomBertWeights, sinusoidalPositions } from '../../src/core/model/hf-checkpoint';
import { DEFAULT_BERT_CONFIG, type BertConfig } from '../../src/core/model/bert-config';
import { MlmModel, WORD_EMBEDDINGS, mlmHeadShapes, randomMlmHead } from '../../src/core/model/mlm-model';
import { MaskedTokenTally, pretrain } from '../../src/core/train/pretrain';
import { train, type TrainOptions } from '../../src/core/train/trainer';
import type { StartedMessage, WorkerMessage } from '../../src/protocol/worker';
import {
  metricsLines,
  ofType,
  readJson,
  rejection,
  runRecorded,
  writeExperiment,
  type MetricsLine,
  type Outcome,
} from './helpers/runs';
import { runCli } from './helpers/run-cli';
import { WorkerUnderTest } from './helpers/worker-under-test';

const REPO = path.resolve(__dirname, '..', '..');
const VOCAB = path.join(REPO, 'test', 'fixtures', 'tiny-bert', 'vocab.txt');
const tokenizer = WordPieceTokenizer.fromVocabFile(VOCAB);

/** Eight sentences of whole tiny-bert words, repeated: a corpus a tiny model can learn in 100 steps. */
const SENTENCES = [
  'the movie was really good',
  'this film is very bad',
  'i loved the music and the story',
  'the actors were terrible',
  'she watched the movie last night',
  'we read the book at home',
  'the plot was boring but the music was great',
  'they liked the first scene',
];
const repeated = (n: number): string =>
  `${Array.from({ length: n }, (_, i) => SENTENCES[i % SENTENCES.length]).join('\n')}\n`;

const TINY_MODEL = {
  scratch: { vocab: VOCAB, layers: 1, hiddenSize: 16, heads: 2, intermediateSize: 32, maxPositions: 64 },
};

let root: string;

before(() => {
  delete process.env.PEFT_LAB_BACKEND; // the tests choose their backend in the config
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-lab-pretrain-'));
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** A folder with `files` and a pretraining config; `overrides` replace top-level fields, `pretrain`/`training` are merged. */
function experiment(files: Record<string, string>, overrides: Record<string, unknown> = {}): string {
  const { pretrain: p, training, ...rest } = overrides as { pretrain?: object; training?: object };
  const config = {
    name: 'mlm',
    model: TINY_MODEL,
    ...rest,
    pretrain: { corpus: ['corpus.txt'], maxLength: 32, ...p },
    training: { backend: 'cpu', batchSize: 8, maxSteps: 10, seed: 3, logEvery: 1, ...training },
  };
  return writeExperiment(root, files, config, 'mlm.peft.json');
}

function run(configFile: string, options: TrainOptions = {}, entry: typeof pretrain = pretrain): Promise<Outcome> {
  return runRecorded(entry, configFile, options);
}

// ---- masking -------------------------------------------------------------------------------------

describe('masking', () => {
  const vocab = maskVocabulary(tokenizer);
  const ordinary = Array.from(vocab.randomIds);
  const special = new Set([tokenizer.clsId, tokenizer.sepId, tokenizer.padId]);

  /** 400 sequences of 5-40 random ordinary tokens, padded to one batch. */
  function bigBatch(seed: number) {
    const rng = new Rng(seed);
    const rows: EncodedExample[] = Array.from({ length: 400 }, () => {
      const ids = Array.from({ length: 5 + rng.int(36) }, () => ordinary[rng.int(ordinary.length)]!);
      const inputIds = [tokenizer.clsId, ...ids, tokenizer.sepId];
      return { inputIds, tokenTypeIds: inputIds.map(() => 0), label: 0 };
    });
    return makeBatches(rows, rows.length)[0]!;
  }

  test('selects 15% of the real tokens, never [CLS], [SEP] or [PAD]; 80% [MASK], 10% random, 10% kept', () => {
    const batch = bigBatch(1);
    const {
      batch: masked,
      positions,
      targets,
    } = maskBatch(batch, vocab, { probability: 0.15, replaceWithMask: 0.8, replaceWithRandom: 0.1 }, new Rng(7));
    const candidates = batch.inputIds.filter((id, i) => batch.attentionMask[i] === 1 && !special.has(id)).length;
    assert.ok(candidates > 8000, `${candidates} candidates`);
    const rate = positions.length / candidates;
    assert.ok(Math.abs(rate - 0.15) < 0.012, `selected ${rate}`);

    let asMask = 0;
    let asRandom = 0;
    let kept = 0;
    positions.forEach((p, k) => {
      assert.equal(batch.attentionMask[p], 1, `position ${p} is padding`);
      assert.ok(!special.has(batch.inputIds[p]!), `position ${p} holds a special token`);
      assert.equal(targets[k], batch.inputIds[p], 'targets are the original ids');
      const now = masked.inputIds[p]!;
      if (now === tokenizer.maskId) asMask++;
      else if (now !== batch.inputIds[p]) {
        asRandom++;
        assert.ok(
          vocab.randomIds.includes(now) && !special.has(now) && now !== tokenizer.unkId,
          `random replacement ${now} is special`,
        );
      } else kept++;
    });
    const n = positions.length;
    assert.ok(Math.abs(asMask / n - 0.8) < 0.03, `[MASK] share ${asMask / n}`);
    // a random replacement equals the original with chance 1/|ordinary|, which then counts as kept
    assert.ok(Math.abs(asRandom / n - 0.1) < 0.025, `random share ${asRandom / n}`);
    assert.ok(Math.abs(kept / n - 0.1) < 0.025, `kept share ${kept / n}`);

    const selected = new Set(positions);
    batch.inputIds.forEach((id, i) => {
      if (!selected.has(i)) assert.equal(masked.inputIds[i], id, `unselected position ${i} changed`);
    });
    assert.deepEqual(
      [...positions],
      [...positions].sort((a, b) => a - b),
      'positions ascend',
    );
    assert.equal(batch.inputIds[positions[0]!], targets[0], 'the input batch itself is not modified');
  });

  test('is a function of the seed: the same seed gives the same masks, another seed others', () => {
    const batch = bigBatch(2);
    const options = { probability: 0.15, replaceWithMask: 0.8, replaceWithRandom: 0.1 };
    const a = maskBatch(batch, vocab, options, new Rng(11));
    const b = maskBatch(batch, vocab, options, new Rng(11));
    const c = maskBatch(batch, vocab, options, new Rng(12));
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.positions, c.positions);
  });

  test('a batch with nothing selected still gets one position; the 80/10/10 split is configurable', () => {
    const batch = bigBatch(3);
    const one = maskBatch(batch, vocab, { probability: 1e-12, replaceWithMask: 1, replaceWithRandom: 0 }, new Rng(1));
    assert.equal(one.positions.length, 1);
    assert.equal(one.batch.inputIds[one.positions[0]!], tokenizer.maskId);
    const keepAll = maskBatch(batch, vocab, { probability: 0.5, replaceWithMask: 0, replaceWithRandom: 0 }, new Rng(1));
    assert.deepEqual(keepAll.batch.inputIds, batch.inputIds);
    assert.ok(keepAll.positions.length > 1000);
  });

  test('random replacements skip the special and [unused] tokens', () => {
    const tokens = vocab.randomIds.length;
    assert.equal(tokens, tokenizer.vocabSize - 5 - 4); // 5 specials and [unused0-3]
    for (const id of vocab.randomIds)
      assert.doesNotMatch(tokenizer.tokens[id]!, /^\[(unused\d+|PAD|UNK|CLS|SEP|MASK)\]$/);
  });
});

// ---- corpus files ----------------------------------------------------------------------------------

describe('corpus files', () => {
  const options = { documents: 'lines' as const, textField: 'text' };

  function file(name: string, content: string | Buffer): string {
    const folder = fs.mkdtempSync(path.join(root, 'corpus-'));
    const f = path.join(folder, name);
    fs.writeFileSync(f, content);
    return f;
  }

  test("'lines' makes every non-blank line a document; 'paragraphs' joins blocks between blank lines", () => {
    const f = file('c.txt', '\uFEFFfirst line\n\n  second line  \nthird line\n\n\nfourth\n');
    assert.deepEqual(
      readCorpusFile(f, options).map((d) => [d.text, d.line]),
      [
        ['first line', 1],
        ['second line', 3],
        ['third line', 4],
        ['fourth', 7],
      ],
    );
    assert.deepEqual(
      readCorpusFile(f, { ...options, documents: 'paragraphs' }).map((d) => [d.text, d.line]),
      [
        ['first line', 1],
        ['second line third line', 3],
        ['fourth', 7],
      ],
    );
  });

  test('JSON Lines (by extension or format) take the text from textField', () => {
    const f = file('c.jsonl', '{"review": "good film", "id": 1}\n\n{"review": "bad plot"}\n');
    assert.deepEqual(
      readCorpusFile(f, { ...options, textField: 'review' }).map((d) => [d.text, d.line]),
      [
        ['good film', 1],
        ['bad plot', 3],
      ],
    );
    const g = file('c.txt', '{"text": "x"}\n');
    assert.deepEqual(
      readCorpusFile(g, { ...options, format: 'jsonl' }).map((d) => d.text),
      ['x'],
    );
  });

  test('bad files are DataErrors naming the file and line', () => {
    const cases: [string, string | Buffer, Partial<typeof options>, number | undefined, RegExp][] = [
      ['c.jsonl', '{"text": "ok"}\n{"text": oops}\n', {}, 2, /malformed JSON/],
      ['c.jsonl', '{"text": "ok"}\n{"body": "no text"}\n', {}, 2, /missing text field "text"/],
      ['c.jsonl', '{"text": "ok"}\n{"text": ["a"]}\n', {}, 2, /must be a string/],
      ['c.txt', Buffer.from('fine\nbin\u0000ary\n'), {}, 2, /NUL byte/],
      [
        'c.txt',
        Buffer.concat([Buffer.from('fine\nalso fine\n'), Buffer.from([0x62, 0xff, 0x61, 0x0a])]),
        {},
        3,
        /not valid UTF-8/,
      ],
      ['c.txt', '\n  \n', {}, undefined, /has no text/],
    ];
    for (const [name, content, extra, line, message] of cases) {
      const f = file(name, content);
      assert.throws(
        () => readCorpusFile(f, { ...options, ...extra }),
        (err: unknown) => {
          assert.ok(err instanceof DataError, String(err));
          assert.equal(err.file, f);
          assert.equal(err.line, line, err.message);
          assert.match(err.detail, message);
          return true;
        },
      );
    }
    assert.throws(() => readCorpusFile(path.join(root, 'missing.txt'), options), /does not exist/);
  });

  test('sequences: [CLS] ... [SEP] of at most maxLength; long documents are cut, packing fills every sequence', () => {
    const doc = (text: string, line: number): Document => ({ text, line, file: 'x' });
    const long = Array.from({ length: 25 }, (_, i) => SENTENCES[i % 8]).join(' ');
    const ids = (text: string) => tokenizer.tokenize(text).map((p) => tokenizer.idOf(p)!);
    const docs = [doc(long, 1), doc('good film', 2), doc('bad plot', 3)];

    const unpacked = tokenizeDocuments(docs, tokenizer, 16, false);
    for (const s of unpacked) {
      assert.ok(s.inputIds.length <= 16);
      assert.equal(s.inputIds[0], tokenizer.clsId);
      assert.equal(s.inputIds.at(-1), tokenizer.sepId);
      assert.deepEqual(
        s.tokenTypeIds,
        s.inputIds.map(() => 0),
      );
    }
    const body = (s: EncodedExample) => s.inputIds.slice(1, -1);
    assert.deepEqual(unpacked.slice(0, -2).flatMap(body), ids(long), 'the long document, cut into consecutive pieces');
    assert.deepEqual(unpacked.slice(-2).map(body), [ids('good film'), ids('bad plot')]);

    const packed = tokenizeDocuments(docs, tokenizer, 16, true);
    packed.slice(0, -1).forEach((s) => assert.equal(s.inputIds.length, 16));
    const stream = packed.flatMap((s) => s.inputIds.slice(1));
    assert.deepEqual(stream, [
      ...ids(long),
      tokenizer.sepId,
      ...ids('good film'),
      tokenizer.sepId,
      ...ids('bad plot'),
      tokenizer.sepId,
    ]);
  });
});

// ---- config ----------------------------------------------------------------------------------------

describe('pretraining configs', () => {
  const FILE = '/work/exp/base.peft.json';
  const MINIMAL = { name: 'base', model: { scratch: { vocab: 'vocab.txt' } }, pretrain: { corpus: ['corpus/a.txt'] } };
  const text = (value: unknown) => JSON.stringify(value, null, 2);
  const errorOf = (source: string): ConfigError => {
    try {
      parseAnyConfigText(source, FILE);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err;
    }
    assert.fail('expected a ConfigError');
  };
  const lineOf = (source: string, needle: string) => source.slice(0, source.indexOf(needle)).split('\n').length;

  test('a pretraining config needs no task, data or method; defaults are filled in and paths resolved', () => {
    const config = parseAnyConfigText(
      text({ ...MINIMAL, output: { modelDir: 'models/base' } }),
      FILE,
    ) as ResolvedPretrainConfig;
    assert.deepEqual(config.pretrain, {
      corpus: ['/work/exp/corpus/a.txt'],
      documents: 'lines',
      textField: 'text',
      maxLength: 128,
      pack: false,
      maskProbability: 0.15,
      replaceWithMask: 0.8,
      replaceWithRandom: 0.1,
      validationSplit: 0.05,
      maxValidationSequences: 500,
    });
    assert.deepEqual(config.output, { runsDir: '/work/exp/runs', modelDir: '/work/exp/models/base' });
    assert.equal(config.training.learningRate, 0.001);
    assert.ok(!('task' in config) && !('method' in config));
  });

  test('fine-tuning fields in a pretraining config are named errors at their key', () => {
    const source = text({ ...MINIMAL, method: { type: 'houlsby' } });
    const err = errorOf(source);
    assert.equal(err.path, '/method');
    assert.match(err.detail, /'method' is a fine-tuning field, but this is a pretraining config/);
    assert.equal(err.line, lineOf(source, '"method"'));
  });

  test('a config of neither kind says what either needs; modelDir in a fine-tuning config is an error', () => {
    const neither = errorOf(text({ name: 'x', model: { path: 'm' } }));
    assert.equal(neither.path, '');
    assert.match(
      neither.detail,
      /'task', 'data' and 'method' \(a fine-tuning config\) or 'pretrain' \(a pretraining config\)/,
    );
    const fineTuning = {
      name: 'x',
      model: { path: 'm' },
      task: { type: 'classification' },
      data: { train: 't.jsonl' },
      method: { type: 'houlsby' },
    };
    const source = text({ ...fineTuning, output: { modelDir: 'm2' } });
    const err = errorOf(source);
    assert.equal(err.path, '/output/modelDir');
    assert.equal(err.line, lineOf(source, '"modelDir"'));
  });

  test('schema errors inside pretrain name the field and line', () => {
    const source = text({ ...MINIMAL, pretrain: { corpus: ['a.txt'], maskProbability: 0 } });
    const err = errorOf(source);
    assert.equal(err.path, '/pretrain/maskProbability');
    assert.equal(err.detail, 'must be > 0');
    assert.equal(err.line, lineOf(source, '"maskProbability"'));
    assert.equal(errorOf(text({ ...MINIMAL, pretrain: { corpus: [] } })).path, '/pretrain/corpus');
    assert.match(
      errorOf(text({ ...MINIMAL, pretrain: { corpus: ['a.txt'], documents: 'sentences' } })).detail,
      /must be one of lines, paragraphs/,
    );
  });

  test('semantic checks: corpus files, held-out files, mask shares, maxLength and the model folder', () => {
    const folder = fs.mkdtempSync(path.join(root, 'cfg-'));
    fs.writeFileSync(path.join(folder, 'a.txt'), 'text\n');
    fs.mkdirSync(path.join(folder, 'foreign'));
    fs.writeFileSync(path.join(folder, 'foreign', 'notes.md'), 'mine\n');
    const write = (value: object): [string, string] => {
      const file = path.join(folder, 'x.peft.json');
      const source = text({
        name: 'x',
        model: { scratch: { vocab: VOCAB, maxPositions: 64 } },
        ...value,
        pretrain: { maxLength: 32, ...(value as { pretrain: object }).pretrain },
      });
      fs.writeFileSync(file, source);
      return [file, source];
    };
    const expectError = (value: object, pointer: string, message: RegExp) => {
      const [file, source] = write(value);
      assert.throws(
        () => loadPretrainConfig(file),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.equal(err.path, pointer, err.message);
          assert.match(err.detail, message);
          const issue = validateConfigText(source, file).find((i) => i.path === pointer);
          assert.ok(issue, 'the editor sees it too');
          assert.equal(err.line, issue.line);
          return true;
        },
      );
    };
    expectError({ pretrain: { corpus: ['a.txt', 'b.txt'] } }, '/pretrain/corpus/1', /file not found: .*b\.txt/);
    expectError(
      { pretrain: { corpus: ['a.txt'], validation: ['a.txt'] } },
      '/pretrain/validation/0',
      /also a corpus file .*must not be trained on/,
    );
    expectError({ pretrain: { corpus: ['a.txt', 'a.txt'] } }, '/pretrain/corpus/1', /listed twice/);
    expectError(
      { pretrain: { corpus: ['a.txt'], replaceWithMask: 0.8, replaceWithRandom: 0.3 } },
      '/pretrain/replaceWithRandom',
      /exceed 1/,
    );
    expectError(
      { pretrain: { corpus: ['a.txt'], maxLength: 128 } },
      '/pretrain/maxLength',
      /128 exceeds the model's 64 position embeddings/,
    );
    expectError(
      { pretrain: { corpus: ['a.txt'] }, output: { modelDir: 'foreign' } },
      '/output/modelDir',
      /did not write \(notes\.md\)/,
    );
    const [ok, okSource] = write({ pretrain: { corpus: ['a.txt'] }, output: { modelDir: 'new-model' } }); // maxLength 32 fits the 64 positions
    assert.deepEqual(validateConfigText(okSource, ok, { workspaceFolder: folder }), []);
    assert.equal(loadPretrainConfig(ok).name, 'x');
    assert.equal((loadAnyConfig(ok) as ResolvedPretrainConfig).pretrain.corpus[0], path.join(folder, 'a.txt'));
  });

  test('the schema file as the editor reads it (if/then/else) accepts either kind and rejects mixtures', () => {
    const schema = JSON.parse(fs.readFileSync(findSchemaFile(), 'utf8')) as object;
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    const fineTuning = {
      name: 'x',
      model: { path: 'm' },
      task: { type: 'classification' },
      data: { train: 't.jsonl' },
      method: { type: 'houlsby' },
    };
    const check = (config: object) =>
      validate(config) ? [] : validate.errors!.map((e) => `${e.instancePath} ${e.message}`);
    assert.deepEqual(check(MINIMAL), []);
    assert.deepEqual(check({ ...MINIMAL, output: { modelDir: 'models/base' } }), []);
    assert.deepEqual(check(fineTuning), []);
    assert.ok(check({ ...MINIMAL, task: { type: 'classification' } }).some((e) => e.startsWith('/task')));
    assert.ok(check({ ...fineTuning, output: { modelDir: 'm' } }).some((e) => e.startsWith('/output/modelDir')));
    assert.ok(check({ name: 'x', model: { path: 'm' } }).some((e) => /required property 'task'/.test(e)));
  });

  test('train and pretrain refuse the other kind of config with the command to use', () => {
    const folder = fs.mkdtempSync(path.join(root, 'cfg-'));
    fs.writeFileSync(path.join(folder, 'a.txt'), 'text\n');
    const file = path.join(folder, 'p.peft.json');
    const source = text({ name: 'x', model: { scratch: { vocab: VOCAB } }, pretrain: { corpus: ['a.txt'] } });
    fs.writeFileSync(file, source);
    assert.throws(
      () => loadConfig(file),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.path === '/pretrain' &&
        /peft-lab pretrain/.test(err.detail) &&
        err.line === lineOf(source, '"pretrain"'),
    );
    const tuning = path.join(folder, 't.peft.json');
    fs.writeFileSync(
      tuning,
      text({
        name: 'x',
        model: { scratch: { vocab: VOCAB } },
        task: { type: 'classification' },
        data: { train: 'a.txt' },
        method: { type: 'full' },
      }),
    );
    assert.throws(
      () => loadPretrainConfig(tuning, { semantic: false }),
      (err: unknown) => err instanceof ConfigError && /fine-tuning config .*peft-lab train/.test(err.detail),
    );
  });
});

// ---- the MLM model --------------------------------------------------------------------------------

describe('held-out metrics by how each selected token was shown', () => {
  test('[MASK], kept and random tokens are scored apart, and together', () => {
    const batch = {
      inputIds: Int32Array.from([1, 4, 7, 4, 9, 2]),
      tokenTypeIds: new Int32Array(6),
      attentionMask: new Float32Array(6).fill(1),
      labels: new Float32Array(1),
      batchSize: 1,
      seqLength: 6,
    };
    // positions 1 and 3 show [MASK] (id 4), 2 is kept (7), 4 shows a random 9 for an original 5
    const masked = { batch, positions: Int32Array.from([1, 2, 3, 4]), targets: Int32Array.from([6, 7, 8, 5]) };
    const tally = new MaskedTokenTally();
    tally.add(masked, 4, [1, 0.5, 3, 2], [6, 7, 0, 0]);
    const m = tally.metrics();
    assert.equal(m.loss, 6.5 / 4);
    assert.equal(m.accuracy, 2 / 4);
    assert.equal(m.perplexity, Math.exp(6.5 / 4));
    assert.equal(m.maskLoss, 2);
    assert.equal(m.maskAccuracy, 1 / 2);
    assert.equal(m.keptAccuracy, 1);
    assert.equal(m.randomAccuracy, 0);
  });
});

describe('structured initialisation of an encoder from scratch', () => {
  const bert: BertConfig = {
    ...DEFAULT_BERT_CONFIG,
    vocab_size: 40,
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 32,
    max_position_embeddings: 32,
  };
  const plain = randomBertWeights(bert, 3);

  test('sinusoidal positions: sin and cos of position / 10000^(2i/d), at the spread of the other embeddings; nothing else changes', () => {
    const w = randomBertWeights(bert, 3, { positions: 'sinusoidal' });
    const p = w.get('bert.embeddings.position_embeddings.weight')!.data;
    const rms = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
    const words = plain.get(WORD_EMBEDDINGS)!.data;
    assert.ok(Math.abs(rms(p) / rms(words) - 1) < 0.1, `position rms ${rms(p)} vs word rms ${rms(words)}`);
    const scale = p[1]! / Math.cos(0); // position 0: sin 0 = 0, cos 0 = 1
    assert.equal(p[0], 0);
    assert.ok(Math.abs(p[5 * 64 + 0]! - scale * Math.sin(5)) < 1e-6);
    assert.ok(Math.abs(p[5 * 64 + 3]! - scale * Math.cos(5 / 10000 ** (2 / 64))) < 1e-6);
    assert.deepEqual(p, sinusoidalPositions(32, 64, 0.8796 * 0.02));
    for (const [name, t] of plain)
      if (!name.includes('position_embeddings')) assert.deepEqual(w.get(name)!.data, t.data, name);
  });

  test('mimetic attention: W_q W_kᵀ ≈ 0.7 I and W_v W_o ≈ -0.4 I in every layer; only those weights change', () => {
    const w = randomBertWeights(bert, 3, { attention: 'mimetic' });
    const d = bert.hidden_size;
    /** op(a) · op(b) of two d x d row-major matrices, op the transpose when asked. */
    const product = (a: Float32Array, b: Float32Array, transposeA: boolean, transposeB: boolean): Float64Array => {
      const out = new Float64Array(d * d);
      for (let i = 0; i < d; i++)
        for (let j = 0; j < d; j++) {
          let sum = 0;
          for (let k = 0; k < d; k++)
            sum += (transposeA ? a[k * d + i]! : a[i * d + k]!) * (transposeB ? b[j * d + k]! : b[k * d + j]!);
          out[i * d + j] = sum;
        }
      return out;
    };
    const diagonalAndRest = (m: Float64Array) => {
      let diag = 0;
      let rest = 0;
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) {
          if (i === j) diag += m[i * d + j]!;
          else rest += Math.abs(m[i * d + j]!);
        }
      }
      return [diag / d, rest / (d * d - d)];
    };
    for (let layer = 0; layer < 2; layer++) {
      const at = (n: string) => w.get(`bert.encoder.layer.${layer}.attention.${n}.weight`)!.data;
      // q = x Wqᵀ, k = x Wkᵀ, so q · k = x (Wqᵀ Wk) xᵀ; the value path is x Wvᵀ Woᵀ
      const [qkDiag, qkRest] = diagonalAndRest(product(at('self.query'), at('self.key'), true, false));
      const [voDiag, voRest] = diagonalAndRest(product(at('self.value'), at('output.dense'), true, true));
      assert.ok(
        Math.abs(qkDiag - 0.7) < 0.05 && qkRest < 0.05,
        `layer ${layer}: W_q W_kᵀ diagonal ${qkDiag}, off-diagonal ${qkRest}`,
      );
      assert.ok(
        Math.abs(voDiag + 0.4) < 0.05 && voRest < 0.05,
        `layer ${layer}: W_v W_o diagonal ${voDiag}, off-diagonal ${voRest}`,
      );
    }
    const changed = [...plain]
      .filter(([name, t]) => w.get(name)!.data.some((x, i) => x !== t.data[i]))
      .map(([name]) => name.replace(/layer\.\d+/, 'layer.N'));
    assert.deepEqual([...new Set(changed)].sort(), [
      'bert.encoder.layer.N.attention.output.dense.weight',
      'bert.encoder.layer.N.attention.self.key.weight',
      'bert.encoder.layer.N.attention.self.query.weight',
      'bert.encoder.layer.N.attention.self.value.weight',
    ]);
  });
});

describe('the MLM model', () => {
  const bert: BertConfig = {
    ...DEFAULT_BERT_CONFIG,
    vocab_size: 23,
    hidden_size: 8,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 16,
    max_position_embeddings: 16,
  };

  before(async () => {
    await tf.setBackend('cpu');
  });

  function inputs() {
    const ids = tf.tensor2d(
      [
        [1, 5, 8, 3, 2, 9],
        [1, 7, 9, 2, 0, 0],
      ],
      [2, 6],
      'int32',
    );
    return {
      inputIds: ids,
      tokenTypeIds: tf.zerosLike(ids) as tf.Tensor2D,
      attentionMask: tf.tensor2d([
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0],
      ]),
    };
  }

  test('loss and every gradient equal plain autodiff (tf.gather, a transposed matmul, logSoftmax); every weight gets one', () => {
    const head = randomMlmHead(bert, 1);
    // a head that is not at its init, so LayerNorm and the biases matter
    for (const [name, w] of head)
      if (!name.endsWith('dense.weight')) w.data.forEach((_, i) => (w.data[i] += 0.1 * Math.sin(i + name.length)));
    const model = new MlmModel({ bert, encoder: randomBertWeights(bert, 1), head, dropout: 0 });
    try {
      const ctx = { training: false, dropoutSeed: () => undefined };
      const positions = tf.tensor1d([1, 2, 5, 7, 8], 'int32');
      const targets = tf.tensor1d([4, 6, 11, 12, 22], 'int32');
      const x = inputs();
      const vars = model.store.trainable().map((p) => p.value);
      const before = tf.memory().numTensors;
      const ours = tf.tidy(() => tf.variableGrads(() => model.loss(model.logits(x, positions, ctx), targets), vars));
      assert.equal(
        tf.memory().numTensors,
        before + 1 + vars.length,
        'only the loss and the gradients outlive the step',
      );
      const s = model.store;
      const reference = tf.tidy(() =>
        tf.variableGrads(() => {
          const selected = tf.gather(model.encoder.encode(x, ctx), positions);
          const t = tf.add(
            tf.matMul(selected, s.tensor('cls.predictions.transform.dense.weight')),
            s.tensor('cls.predictions.transform.dense.bias'),
          );
          const g = tf.mul(tf.mul(0.5, t), tf.add(1, tf.erf(tf.mul(t, Math.SQRT1_2))));
          const { mean, variance } = tf.moments(g, -1, true);
          const normed = tf.add(
            tf.mul(
              tf.div(tf.sub(g, mean), tf.sqrt(tf.add(variance, bert.layer_norm_eps))),
              s.tensor('cls.predictions.transform.LayerNorm.weight'),
            ),
            s.tensor('cls.predictions.transform.LayerNorm.bias'),
          );
          const logits = tf.add(
            tf.matMul(normed, s.tensor(WORD_EMBEDDINGS), false, true),
            s.tensor('cls.predictions.bias'),
          );
          return tf.neg(
            tf.mean(tf.sum(tf.mul(tf.oneHot(targets, bert.vocab_size), tf.logSoftmax(logits)), -1)),
          ) as tf.Scalar;
        }, vars),
      );
      assert.ok(Math.abs(ours.value.dataSync()[0]! - reference.value.dataSync()[0]!) < 1e-6);
      for (const p of model.store.trainable()) {
        const a = ours.grads[p.value.name];
        const b = reference.grads[p.value.name];
        assert.ok(a && b, `${p.name} has no gradient`);
        const [diff, largest] = tf.tidy(() => [
          tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!,
          tf.max(tf.abs(a)).dataSync()[0]!,
        ]);
        assert.ok(diff < 1e-5, `${p.name}: gradients differ by ${diff}`);
        assert.ok(largest > 0, `${p.name} gets a zero gradient`);
      }
      tf.dispose([ours.value, reference.value, ...Object.values(ours.grads), ...Object.values(reference.grads)]);
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([positions, targets, x.inputIds, x.tokenTypeIds, x.attentionMask]);
    } finally {
      model.dispose();
    }
  });

  test("logits exist only for the selected positions; the stored weights are BertForMaskedLM's (no pooler, tied decoder)", () => {
    const model = new MlmModel({ bert, encoder: randomBertWeights(bert, 2), head: randomMlmHead(bert, 2) });
    try {
      const logits = tf.tidy(
        () =>
          model.logits(inputs(), tf.tensor1d([3, 4], 'int32'), { training: false, dropoutSeed: () => undefined }).shape,
      );
      assert.deepEqual(logits, [2, bert.vocab_size]);
      const names = [...model.store.exportWeights().keys()];
      for (const name of mlmHeadShapes(bert).keys()) assert.ok(names.includes(name), name);
      assert.ok(!names.some((n) => n.startsWith('bert.pooler') || n.includes('decoder')), names.join(', '));
      assert.equal(model.placement().method, 'mlm');
      assert.equal(model.placement().trainableParams, model.store.count());
    } finally {
      model.dispose();
    }
  });
});

// ---- a real pretraining run ------------------------------------------------------------------------

describe('pretraining a tiny model on a repetitive corpus (wasm)', () => {
  let outcome: Outcome;
  let configFile: string;
  let modelDir: string;

  before(async () => {
    configFile = experiment(
      { 'corpus.txt': repeated(256), 'heldout.txt': repeated(64) },
      {
        name: 'tiny-base',
        model: {
          scratch: { vocab: VOCAB, layers: 2, hiddenSize: 64, heads: 4, intermediateSize: 128, maxPositions: 64 },
        },
        pretrain: { validation: ['heldout.txt'], maxValidationSequences: 64 },
        training: {
          backend: 'wasm',
          maxSteps: 100,
          batchSize: 32,
          learningRate: 0.003,
          warmupRatio: 0.1,
          weightDecay: 0,
          dropout: 0,
          evalEvery: 25,
          logEvery: 5,
        },
        output: { modelDir: 'models/tiny-base' },
      },
    );
    modelDir = path.join(path.dirname(configFile), 'models', 'tiny-base');
    outcome = await run(configFile);
  });

  test('the MLM loss falls and masked-token accuracy rises far above chance within 100 steps', () => {
    assert.equal(outcome.result.state, 'finished');
    const evals = ofType(outcome.messages, 'metrics').map((m) => m.metrics);
    assert.deepEqual(
      ofType(outcome.messages, 'metrics').map((m) => m.step),
      [25, 50, 75, 100],
    );
    const losses = ofType(outcome.messages, 'progress').map((m) => m.loss);
    assert.ok(losses.at(-1)! < losses[0]! * 0.5, `training loss ${losses[0]} -> ${losses.at(-1)}`);
    assert.ok(evals.at(-1)!.loss < evals[0]!.loss, `validation loss ${evals.map((e) => e.loss.toFixed(3))}`);
    // chance: the most frequent word ('the') is about a fifth of the tokens; uniform guessing 1/128
    const words = SENTENCES.join(' ').split(' ');
    const majority = words.filter((w) => w === 'the').length / words.length;
    const accuracy = evals.at(-1)!.accuracy!;
    assert.ok(
      accuracy > 0.5 && accuracy > 2.5 * majority,
      `accuracy ${evals.map((e) => e.accuracy!.toFixed(3))}, majority ${majority.toFixed(3)}`,
    );
    assert.ok(Math.abs(evals.at(-1)!.perplexity! - Math.exp(evals.at(-1)!.loss)) < 1e-6);
  });

  test('messages and run folder as for fine-tuning: started (kind pretrain), status, placement, metrics lines, checkpoints', () => {
    const started = ofType(outcome.messages, 'started')[0] as StartedMessage;
    assert.equal(outcome.messages.filter((m) => m.type !== 'log')[0]!.type, 'started');
    assert.equal(started.kind, 'pretrain');
    assert.equal(started.placement.method, 'mlm');
    assert.equal(started.trainExamples, 256);
    assert.equal(started.validationExamples, 64);
    assert.equal(started.totalSteps, 100);
    const runDir = outcome.result.runDir;
    const status = readJson<RunStatus>(path.join(runDir, 'status.json'));
    assert.equal(status.state, 'finished');
    assert.equal(status.method, 'mlm');
    assert.equal(status.step, 100);
    assert.equal(readJson<{ method: string }>(path.join(runDir, 'placement.json')).method, 'mlm');
    assert.ok('pretrain' in readJson<object>(path.join(runDir, 'config.json')));
    const lines = metricsLines(runDir);
    assert.ok(lines.filter((l) => l.kind === 'train').length >= 20);
    assert.deepEqual(
      lines.filter((l) => l.kind === 'eval').map((l) => [l.split, l.step, typeof l.accuracy]),
      [25, 50, 75, 100].map((s) => ['validation', s, 'number']),
    );
    assert.equal(outcome.result.modelDir, modelDir);
    assert.ok(ofType(outcome.messages, 'checkpoint').length >= 2);
  });

  test('every checkpoint is a Hugging Face folder too; the final model goes to output.modelDir with a card', () => {
    for (const checkpoint of ofType(outcome.messages, 'checkpoint').filter((c) => fs.existsSync(c.dir))) {
      for (const name of [
        'config.json',
        'model.safetensors',
        'vocab.txt',
        'tokenizer_config.json',
        'weights.safetensors',
        'optimizer.safetensors',
        'checkpoint.json',
      ]) {
        assert.ok(fs.existsSync(path.join(checkpoint.dir, name)), `${checkpoint.dir} lacks ${name}`);
      }
      assert.equal(readBertFolder(checkpoint.dir).config.hidden_size, 64);
    }
    const config = readJson<{ architectures: string[]; vocab_size: number }>(path.join(modelDir, 'config.json'));
    assert.deepEqual(config.architectures, ['BertForMaskedLM']);
    assert.equal(config.vocab_size, 128);
    assert.equal(fs.readFileSync(path.join(modelDir, 'vocab.txt'), 'utf8'), fs.readFileSync(VOCAB, 'utf8'));
    assert.ok(fs.existsSync(path.join(modelDir, 'tokenizer_config.json')));
    const card = readJson<{
      corpus: { files: string[] };
      training: { steps: number };
      validation: { accuracy: number };
    }>(path.join(modelDir, 'peft-lab-pretrain.json'));
    assert.deepEqual(card.corpus.files, ['../../corpus.txt']);
    assert.equal(card.training.steps, 100);
    assert.equal(card.validation.accuracy, outcome.result.bestMetrics!.accuracy);
  });

  test("model.safetensors holds exactly BertForMaskedLM's saved tensors, and equals the last checkpoint", () => {
    const { tensors } = readSafetensors(path.join(modelDir, 'model.safetensors'));
    const names = [...tensors.keys()];
    assert.deepEqual(names.filter((n) => n.startsWith('cls.')).sort(), [
      'cls.predictions.bias',
      'cls.predictions.transform.LayerNorm.bias',
      'cls.predictions.transform.LayerNorm.weight',
      'cls.predictions.transform.dense.bias',
      'cls.predictions.transform.dense.weight',
    ]);
    assert.ok(
      names.every(
        (n) => n.startsWith('bert.embeddings.') || n.startsWith('bert.encoder.') || n.startsWith('cls.predictions.'),
      ),
      names.join(', '),
    );
    assert.deepEqual(tensors.get('cls.predictions.transform.dense.weight')!.shape, [64, 64]);
    const last = readSafetensors(
      path.join(outcome.result.runDir, 'checkpoints', 'step-100', 'model.safetensors'),
    ).tensors;
    for (const [name, t] of tensors)
      assert.deepEqual(toFloat32(t), toFloat32(last.get(name)!), `${name} differs from the checkpoint`);
  });

  test('readBertFolder loads it like any checkpoint, and a houlsby fine-tuning run on it starts and finishes', async () => {
    const folder = readBertFolder(modelDir);
    assert.equal(folder.config.num_hidden_layers, 2);
    assert.ok(folder.weights.has(WORD_EMBEDDINGS));
    assert.deepEqual(
      folder.warnings.filter((w) => !/pooler/.test(w)),
      [],
      'only the (expected) missing pooler is mentioned',
    );
    const dataDir = path.dirname(configFile);
    const rows = Array.from({ length: 24 }, (_, i) =>
      JSON.stringify({ text: SENTENCES[i % 8], label: i % 2 ? 'pos' : 'neg' }),
    );
    fs.writeFileSync(path.join(dataDir, 'train.jsonl'), `${rows.join('\n')}\n`);
    const tuning = path.join(dataDir, 'tune.peft.json');
    fs.writeFileSync(
      tuning,
      JSON.stringify({
        name: 'tune',
        model: { path: 'models/tiny-base' },
        task: { type: 'classification' },
        data: { train: 'train.jsonl', maxLength: 32, validationSplit: 0.25 },
        method: { type: 'houlsby', bottleneck: 8 },
        training: { backend: 'cpu', batchSize: 8, maxSteps: 4, evalEvery: 2 },
      }),
    );
    const tuned = await run(tuning, {}, train);
    assert.equal(tuned.result.state, 'finished');
    assert.equal(ofType(tuned.messages, 'started')[0]!.placement.method, 'houlsby');
    assert.equal(ofType(tuned.messages, 'metrics').length, 2);
  });

  test('pretraining continues from the folder ("model": {"path"}), MLM head included', async () => {
    const folder = path.dirname(configFile);
    const again = path.join(folder, 'again.peft.json');
    fs.writeFileSync(
      again,
      JSON.stringify({
        name: 'again',
        model: { path: 'models/tiny-base' },
        pretrain: { corpus: ['corpus.txt'], validation: ['heldout.txt'], maxLength: 32 },
        training: { backend: 'wasm', maxSteps: 2, batchSize: 32, learningRate: 1e-4, dropout: 0 },
      }),
    );
    const continued = await run(again);
    assert.ok(ofType(continued.messages, 'log').some((m) => /MLM head: from the checkpoint/.test(m.message)));
    const firstLoss = ofType(continued.messages, 'progress')[0]!.loss;
    const scratchFirstLoss = ofType(outcome.messages, 'progress')[0]!.loss;
    assert.ok(firstLoss < scratchFirstLoss * 0.6, `continued at ${firstLoss}, scratch started at ${scratchFirstLoss}`);
  });
});

// ---- resume ------------------------------------------------------------------------------------------

describe('resume', () => {
  test('cancel at step 5, resume: bit-identical weights, optimizer, metrics and final model to an uninterrupted run', async () => {
    const configFile = experiment(
      { 'corpus.txt': repeated(96) },
      {
        pretrain: { validationSplit: 0.25 },
        training: { maxSteps: 12, evalEvery: 4, dropout: 0.1, learningRate: 0.01, warmupRatio: 0.2 },
      },
    );
    const a = await run(configFile);
    assert.equal(a.result.state, 'finished');

    const controller = new AbortController();
    const first = await run(configFile, {
      signal: controller.signal,
      onMessage: (m) => m.type === 'progress' && m.step >= 5 && controller.abort(),
    });
    assert.equal(first.result.state, 'stopped');
    assert.equal(first.result.reason, 'cancelled');
    assert.equal(first.result.modelDir, undefined, 'a stopped run writes no final model');
    const runDirB = first.result.runDir;
    assert.ok(
      fs.existsSync(path.join(runDirB, 'checkpoints', 'step-5', 'model.safetensors')),
      'the cancel checkpoint is a model folder',
    );

    const resumed = await run(configFile, { resume: runDirB });
    assert.equal(resumed.result.state, 'finished');
    assert.equal(ofType(resumed.messages, 'started')[0]!.resumedFromStep, 5);
    assert.equal(ofType(resumed.messages, 'progress')[0]!.step, 6);

    const finalA = path.join(a.result.runDir, 'checkpoints', 'step-12');
    const finalB = path.join(runDirB, 'checkpoints', 'step-12');
    for (const name of ['weights.safetensors', 'optimizer.safetensors', 'model.safetensors']) {
      assert.ok(
        fs.readFileSync(path.join(finalA, name)).equals(fs.readFileSync(path.join(finalB, name))),
        `${name} differs`,
      );
    }
    assert.ok(
      fs
        .readFileSync(path.join(a.result.modelDir!, 'model.safetensors'))
        .equals(fs.readFileSync(path.join(resumed.result.modelDir!, 'model.safetensors'))),
    );
    const info = (dir: string) => ({ ...readJson<CheckpointInfo>(path.join(dir, 'checkpoint.json')), created: '' });
    assert.deepEqual(info(finalB), info(finalA));
    const strip = (lines: MetricsLine[]) =>
      lines.map(({ kind, step, split, loss, accuracy, learningRate }) => ({
        kind,
        step,
        split,
        loss,
        accuracy,
        learningRate,
      }));
    assert.deepEqual(strip(metricsLines(runDirB)), strip(metricsLines(a.result.runDir)));
  });

  test('resuming a pretraining run with train names the command to use', async () => {
    const configFile = experiment({ 'corpus.txt': repeated(16) }, { training: { maxSteps: 2 } });
    const done = await run(configFile);
    const err = await rejection(train(configFile, { resume: done.result.runDir }));
    assert.match(err.message, /is a pretraining run: use 'peft-lab pretrain'/);
  });
});

// ---- bad input -------------------------------------------------------------------------------------

describe('bad input rejects with the named error', () => {
  test('a malformed corpus line: DataError with file and line, and no run folder', async () => {
    const configFile = experiment(
      { 'corpus.jsonl': '{"text": "good film"}\n{"text": "bad\n' },
      { pretrain: { corpus: ['corpus.jsonl'] } },
    );
    const err = await rejection(pretrain(configFile));
    assert.ok(err instanceof DataError);
    assert.equal(err.file, path.join(path.dirname(configFile), 'corpus.jsonl'));
    assert.equal(err.line, 2);
    assert.ok(!fs.existsSync(path.join(path.dirname(configFile), 'runs')));
  });

  test('a config error: ConfigError with the JSON pointer', async () => {
    const configFile = experiment({ 'corpus.txt': repeated(8) }, { pretrain: { maxLength: 2 } });
    const err = await rejection(pretrain(configFile));
    assert.ok(err instanceof ConfigError);
    assert.equal(err.path, '/pretrain/maxLength');
  });
});

// ---- command line and worker -----------------------------------------------------------------------

describe('peft-lab pretrain', () => {
  test('exits 0, prints the run, and writes the model folder', async () => {
    const configFile = experiment(
      { 'corpus.txt': repeated(32) },
      { training: { maxSteps: 4 }, output: { modelDir: 'out/base' } },
    );
    const cwd = path.dirname(configFile);
    const result = await runCli(['pretrain', 'mlm.peft.json'], cwd);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /model: masked language modelling, 1 layers, hidden 16/);
    assert.match(result.stdout, /finished in/);
    assert.match(result.stdout, /model: out\/base \(fine-tune it with/);
    assert.equal(readBertFolder(path.join(cwd, 'out', 'base')).config.hidden_size, 16);
  });

  test('--json prints typed lines; train on a pretraining config exits 1 naming /pretrain', async () => {
    const configFile = experiment({ 'corpus.txt': repeated(16) }, { training: { maxSteps: 2 } });
    const cwd = path.dirname(configFile);
    const json = await runCli(['pretrain', 'mlm.peft.json', '--json'], cwd);
    assert.equal(json.code, 0, json.stderr);
    const types = json.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as WorkerMessage).type);
    assert.equal(types.filter((t) => t !== 'log')[0], 'started');
    assert.equal(types.at(-1), 'finished');
    const wrong = await runCli(['train', 'mlm.peft.json'], cwd);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /mlm\.peft\.json:\d+: \/pretrain: this is a pretraining config .*peft-lab pretrain/);
  });
});

describe('worker', () => {
  test("a 'pretrain' request, and a 'train' request for a pretraining config, both pretrain and exit 0", async () => {
    const configFile = experiment({ 'corpus.txt': repeated(16) }, { training: { maxSteps: 2 } });
    for (const type of ['pretrain', 'train'] as const) {
      const worker = new WorkerUnderTest(root);
      worker.send({ type, configFile });
      assert.deepEqual(await worker.exited, { code: 0, signal: null }, worker.stderr);
      assert.equal(worker.ofType('started')[0]?.kind, 'pretrain', `${type}: ${worker.stderr}`);
      const finished = worker.ofType('finished')[0]!;
      assert.equal(finished.state, 'finished');
      assert.ok(fs.existsSync(path.join(finished.modelDir!, 'model.safetensors')));
    }
  });
});

// ---- micro-batches -----------------------------------------------------------------------------------

describe('training.microBatchSize in pretraining', () => {
  test('a masked batch splits into row slices whose positions and targets are its own, re-based', () => {
    const documents: Document[] = Array.from({ length: 10 }, (_, i) => ({
      text: SENTENCES[i % SENTENCES.length]!,
      file: 'corpus.txt',
      line: i + 1,
    }));
    const sequences = tokenizeDocuments(documents, tokenizer, 16, false);
    const masked = maskBatch(
      makeBatches(sequences, 10)[0]!,
      maskVocabulary(tokenizer),
      { probability: 0.3, replaceWithMask: 0.8, replaceWithRandom: 0.1 },
      new Rng(4),
    );
    const parts = splitMaskedBatch(masked, 4);
    assert.deepEqual(
      parts.map((p) => p.batch.batchSize),
      [4, 4, 2],
    );
    const width = masked.batch.seqLength;
    const rebuilt = parts.flatMap((p, i) => Array.from(p.positions, (pos) => pos + i * 4 * width));
    assert.deepEqual(rebuilt, Array.from(masked.positions));
    assert.deepEqual(
      parts.flatMap((p) => Array.from(p.targets)),
      Array.from(masked.targets),
    );
    for (const p of parts)
      for (const pos of p.positions)
        assert.equal(p.batch.inputIds[pos], masked.batch.inputIds[pos + parts.indexOf(p) * 4 * width]);
  });

  test('passes of 3 sequences make the updates one pass of 8 makes (dropout 0)', async () => {
    const training = { maxSteps: 4, evalEvery: 4, dropout: 0, learningRate: 0.01 };
    const whole = await run(experiment({ 'corpus.txt': repeated(48) }, { training }));
    const split = await run(
      experiment({ 'corpus.txt': repeated(48) }, { training: { ...training, microBatchSize: 3 } }),
    );
    const weights = (o: Outcome) =>
      readSafetensors(path.join(o.result.runDir, 'checkpoints', 'step-4', 'model.safetensors')).tensors;
    const a = weights(whole);
    const b = weights(split);
    for (const [name, tensor] of a) {
      const x = toFloat32(tensor);
      const y = toFloat32(b.get(name)!);
      const worst = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
      assert.ok(worst < 1e-4, `${name} differs by ${worst}`);
    }
  });
});
