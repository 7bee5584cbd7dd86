import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../../src/core/errors';
import {
  findSchemaFile,
  loadConfig,
  parseConfigText,
  validateConfigText,
  type ConfigIssue,
} from '../../src/core/config/load';
import { semanticIssues } from '../../src/core/config/semantic';
import type { MethodConfig, ResolvedConfig, TrainingConfig } from '../../src/core/config/types';

const REPO = path.resolve(__dirname, '..', '..');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'configs');
const EXAMPLES = path.join(REPO, 'examples');
const FILE = '/work/exp/demo.peft.json';

type Json = Record<string, unknown>;

const MINIMAL: Json = {
  name: 'demo',
  model: { path: 'models/bert' },
  task: { type: 'classification' },
  data: { train: 'data/train.jsonl' },
  method: { type: 'houlsby' },
};

/** Pretty-printed so each field sits on its own line and line numbers are easy to predict. */
function configText(overrides: Json = {}): string {
  return JSON.stringify({ ...MINIMAL, ...overrides }, null, 2);
}

/** 1-based line of the first occurrence of `needle` (after `after`, if given). */
function lineOf(text: string, needle: string, after = ''): number {
  const start = after ? text.indexOf(after) : 0;
  const index = text.indexOf(needle, start);
  assert.ok(index >= 0, `'${needle}' not in text`);
  return text.slice(0, index).split('\n').length;
}

function errorOf(text: string, file = FILE): ConfigError {
  try {
    parseConfigText(text, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a ConfigError');
}

function issueAt(issues: ConfigIssue[], pointer: string): ConfigIssue {
  const issue = issues.find((i) => i.path === pointer);
  assert.ok(issue, `no issue at ${pointer}; got ${JSON.stringify(issues.map((i) => `${i.path}: ${i.message}`))}`);
  return issue;
}

function underlined(text: string, issue: ConfigIssue): string {
  return text.slice(issue.offset, issue.offset + issue.length);
}

const TRAINING_DEFAULTS: TrainingConfig = {
  epochs: 3,
  batchSize: 32,
  learningRate: 0.001,
  warmupRatio: 0.06,
  weightDecay: 0.01,
  maxGradNorm: 1,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  seed: 42,
  evalEvery: 'epoch',
  logEvery: 10,
  keepCheckpoints: 2,
  backend: 'auto',
};

describe('defaults', () => {
  test('a minimal config gets every default and absolute paths', () => {
    const expected: ResolvedConfig = {
      name: 'demo',
      model: { path: '/work/exp/models/bert' },
      task: { type: 'classification', metric: 'accuracy', pooling: 'cls' },
      data: {
        train: '/work/exp/data/train.jsonl',
        textField: 'text',
        labelField: 'label',
        maxLength: 128,
        validationSplit: 0.1,
      },
      method: {
        type: 'houlsby',
        reductionFactor: 16,
        activation: 'gelu',
        initStd: 0.001,
        leaveOut: [],
        sites: ['attention', 'ffn'],
      },
      training: TRAINING_DEFAULTS,
      output: { runsDir: '/work/exp/runs' },
      sourceFile: FILE,
    };
    assert.deepEqual(parseConfigText(configText(), FILE), expected);
  });

  const bottleneckDefaults = { reductionFactor: 16, activation: 'gelu', initStd: 0.001, leaveOut: [] } as const;
  const methodDefaults: MethodConfig[] = [
    { type: 'pfeiffer', ...bottleneckDefaults, leaveOut: [] },
    { type: 'parallel', ...bottleneckDefaults, leaveOut: [], sites: ['ffn'], scale: 4 },
    {
      type: 'adamix',
      ...bottleneckDefaults,
      leaveOut: [],
      sites: ['attention', 'ffn'],
      experts: 4,
      share: 'up',
      consistencyWeight: 1,
    },
    { type: 'lora', rank: 8, alpha: 16, targets: ['query', 'value'], leaveOut: [] },
    { type: 'head-only' },
    { type: 'full' },
  ];
  for (const expected of methodDefaults) {
    test(`method '${expected.type}' gets its own defaults and no others`, () => {
      const config = parseConfigText(configText({ method: { type: expected.type } }), FILE);
      assert.deepEqual(config.method, expected);
    });
  }

  test('regression defaults to pearson, but an explicit metric is kept', () => {
    assert.equal(parseConfigText(configText({ task: { type: 'regression' } }), FILE).task.metric, 'pearson');
    assert.equal(
      parseConfigText(configText({ task: { type: 'regression', metric: 'spearman' } }), FILE).task.metric,
      'spearman',
    );
  });

  test('hub model defaults, with ~ expanded to the home folder', () => {
    const config = parseConfigText(configText({ model: { hub: 'bert-base-uncased' } }), FILE);
    assert.deepEqual(config.model, {
      hub: 'bert-base-uncased',
      revision: 'main',
      cacheDir: path.join(os.homedir(), '.cache/peft-lab/hub'),
    });
  });

  test('scratch model defaults; only vocab is required', () => {
    const config = parseConfigText(configText({ model: { scratch: { vocab: 'vocab.txt' } } }), FILE);
    assert.deepEqual(config.model, {
      scratch: {
        vocab: '/work/exp/vocab.txt',
        layers: 4,
        hiddenSize: 256,
        heads: 4,
        intermediateSize: 1024,
        maxPositions: 512,
        typeVocabSize: 2,
        initializerRange: 0.02,
        positionInit: 'normal',
        attentionInit: 'normal',
        seed: 0,
      },
    });
  });

  test('early stopping gets its defaults only when the block is present', () => {
    const withBlock = parseConfigText(configText({ training: { earlyStopping: {} } }), FILE);
    assert.deepEqual(withBlock.training.earlyStopping, { patience: 3, minDelta: 0 });
    assert.equal(parseConfigText(configText(), FILE).training.earlyStopping, undefined);
  });

  test('evalEvery accepts a step count', () => {
    assert.equal(parseConfigText(configText({ training: { evalEvery: 500 } }), FILE).training.evalEvery, 500);
  });
});

describe('valid configs', () => {
  const configFiles = (folder: string): string[] =>
    fs.existsSync(folder)
      ? fs
          .readdirSync(folder)
          .filter((f) => f.endsWith('.peft.json'))
          .map((f) => path.join(folder, f))
      : [];

  test('there are fixtures to check', () => {
    assert.ok(configFiles(FIXTURES).length >= 5);
  });

  // examples/ may be empty early on; every file that is there must pass the schema.
  for (const file of [...configFiles(EXAMPLES), ...configFiles(FIXTURES)]) {
    test(`${path.relative(REPO, file)} validates`, () => {
      const config = loadConfig(file, { semantic: false });
      assert.equal(config.sourceFile, file);
      const schemaIssues = validateConfigText(fs.readFileSync(file, 'utf8'), file, { semantic: false });
      assert.deepEqual(schemaIssues, []);
    });
  }

  test('comments and trailing commas are accepted, and explicit values win over defaults', () => {
    const config = loadConfig(path.join(FIXTURES, 'houlsby-every-field.peft.json'), { semantic: false });
    assert.deepEqual(config.method, {
      type: 'houlsby',
      bottleneck: 64,
      reductionFactor: 16,
      activation: 'swish',
      initStd: 0.01,
      leaveOut: [0, 1],
      sites: ['ffn'],
    });
    assert.equal(config.training.evalEvery, 200);
    assert.equal(config.output.runsDir, path.join(REPO, 'test', 'fixtures', 'runs'));
  });
});

describe('schema errors', () => {
  test('unknown method type lists the valid types and points at method.type', () => {
    const text = configText({ method: { type: 'houlby' } });
    const error = errorOf(text);
    assert.equal(error.path, '/method/type');
    assert.equal(error.line, lineOf(text, '"houlby"'));
    assert.match(error.detail, /must be one of houlsby, pfeiffer, parallel, adamix, lora, head-only, full/);
    assert.match(error.detail, /did you mean 'houlsby'/);
    assert.equal(error.file, FILE);
  });

  test('method errors come from the selected branch only (no oneOf noise)', () => {
    const text = configText({ method: { type: 'lora', rank: 0 } });
    const issues = validateConfigText(text, FILE);
    assert.deepEqual(
      issues.map((i) => [i.path, i.message]),
      [['/method/rank', 'must be >= 1']],
    );
  });

  test("a typo'd field suggests the right name and underlines the key", () => {
    const text = configText({ method: { type: 'houlsby', botleneck: 32 } });
    const issue = issueAt(validateConfigText(text, FILE), '/method/botleneck');
    assert.equal(issue.message, "unknown field 'botleneck' (did you mean 'bottleneck'?)");
    assert.equal(issue.line, lineOf(text, '"botleneck"'));
    assert.equal(underlined(text, issue), '"botleneck"');
    assert.equal(errorOf(text).path, '/method/botleneck');
  });

  test('a field of another method says which method has it', () => {
    const issue = issueAt(
      validateConfigText(configText({ method: { type: 'houlsby', scale: 2 } }), FILE),
      '/method/scale',
    );
    assert.match(issue.message, /not a field of method 'houlsby' \(only 'parallel' has it\)/);
  });

  test('an unknown top-level field is flagged', () => {
    const text = configText({ trainig: { epochs: 1 } });
    const error = errorOf(text);
    assert.equal(error.path, '/trainig');
    assert.equal(error.detail, "unknown field 'trainig' (did you mean 'training'?)");
    assert.equal(error.line, lineOf(text, '"trainig"'));
  });

  test('a wrong type names the expected and the actual type', () => {
    const text = configText({ training: { batchSize: '32' } });
    const error = errorOf(text);
    assert.equal(error.path, '/training/batchSize');
    assert.equal(error.detail, 'must be an integer, not string "32"');
    assert.equal(error.line, lineOf(text, '"batchSize"'));
  });

  test('an out-of-range number gives the bound', () => {
    const text = configText({ training: { epochs: 0 } });
    const error = errorOf(text);
    assert.equal(error.path, '/training/epochs');
    assert.equal(error.detail, 'must be >= 1');
    assert.equal(error.line, lineOf(text, '"epochs"'));
    const issue = issueAt(validateConfigText(text, FILE), '/training/epochs');
    assert.equal(underlined(text, issue), '0');
  });

  test('a missing required field is blamed on the object that should hold it', () => {
    const text = configText({ task: { metric: 'f1' } });
    const error = errorOf(text);
    assert.equal(error.path, '/task/type');
    assert.equal(error.detail, "missing required field 'type'");
    assert.equal(error.line, lineOf(text, '"task"'));
  });

  test('a missing top-level field points at the document', () => {
    const { data: _omitted, ...withoutData } = MINIMAL;
    const issue = issueAt(validateConfigText(JSON.stringify(withoutData, null, 2), FILE), '/data');
    assert.equal(issue.message, "missing required field 'data'");
    assert.equal(issue.line, 1);
  });

  test('a model must have exactly one of path, hub and scratch', () => {
    const none = errorOf(configText({ model: {} }));
    assert.equal(none.path, '/model');
    assert.match(none.detail, /must have one of 'path', 'hub', 'scratch'/);
    const text = configText({ model: { path: 'm', hub: 'bert-base-uncased' } });
    const both = errorOf(text);
    assert.equal(both.path, '/model/hub');
    assert.equal(both.line, lineOf(text, '"hub"'));
  });

  test('a hub-only field on a path model says where it belongs', () => {
    const issue = issueAt(
      validateConfigText(configText({ model: { path: 'm', revision: 'v1' } }), FILE),
      '/model/revision',
    );
    assert.match(issue.message, /'revision' does not apply to a 'path' model \(only with 'hub'\)/);
  });

  test('model string shorthand is rejected', () => {
    assert.equal(errorOf(configText({ model: 'models/bert' })).detail, 'must be an object, not string "models/bert"');
  });

  test('evalEvery gets one readable message', () => {
    const issues = validateConfigText(configText({ training: { evalEvery: 'epochs' } }), FILE);
    assert.deepEqual(
      issues.map((i) => [i.path, i.message]),
      [['/training/evalEvery', 'must be "epoch" or an integer >= 1']],
    );
  });

  test('name must be safe as a folder name', () => {
    const error = errorOf(configText({ name: '../escape' }));
    assert.equal(error.path, '/name');
    assert.match(error.detail, /letters, digits/);
  });

  test('a nested array item is located by index', () => {
    const text = configText({ method: { type: 'lora', targets: ['query', 'vaule'] } });
    const issue = issueAt(validateConfigText(text, FILE), '/method/targets/1');
    assert.match(issue.message, /did you mean 'value'/);
    assert.equal(underlined(text, issue), '"vaule"');
  });

  test('a duplicate key is an error at the second occurrence', () => {
    const text = '{\n  "name": "a",\n  "name": "b"\n}';
    const issue = issueAt(validateConfigText(text, FILE), '/name');
    assert.equal(issue.line, 3);
    assert.match(issue.message, /duplicate field 'name'/);
  });

  test('all problems are reported, sorted by position', () => {
    const text = configText({ name: '', method: { type: 'houlsby', botleneck: 1 }, training: { epochs: 0 } });
    const issues = validateConfigText(text, FILE);
    assert.deepEqual(
      issues.map((i) => i.path),
      ['/name', '/method/botleneck', '/training/epochs'],
    );
  });
});

describe('syntax errors', () => {
  test('a missing comma reports the line the parser stopped at', () => {
    const text = '{\n  "name": "demo"\n  "task": {}\n}';
    const error = errorOf(text);
    assert.equal(error.line, 3);
    assert.match(error.detail, /syntax error: expected ',' \(CommaExpected\)/);
    assert.match(error.message, /demo\.peft\.json:3: /);
  });

  test('an unterminated string is located', () => {
    const error = errorOf('{\n  "name": "demo,\n}');
    assert.equal(error.line, 2);
    assert.match(error.detail, /unterminated string/);
  });

  test('empty text is an error, not a crash', () => {
    const issues = validateConfigText('', FILE);
    assert.equal(issues.length, 1);
    assert.match(issues[0].message, /expected a value/);
    assert.equal(issues[0].line, 1);
  });

  test('a non-object document is an error', () => {
    assert.match(errorOf('[1, 2]').detail, /must be an object, not an array/);
  });
});

describe('semantic checks', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-config-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function write(relative: string, content = ''): string {
    const file = path.join(dir, relative);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    return file;
  }

  interface FakeModel {
    hidden?: number;
    heads?: number;
    layers?: number;
    positions?: number;
    files?: string[];
  }

  function fakeModel(
    relative: string,
    { hidden = 64, heads = 4, layers = 2, positions = 128, files = ['model.safetensors', 'vocab.txt'] }: FakeModel = {},
  ): void {
    const config = {
      hidden_size: hidden,
      num_attention_heads: heads,
      num_hidden_layers: layers,
      max_position_embeddings: positions,
    };
    write(path.join(relative, 'config.json'), JSON.stringify(config));
    for (const name of files) write(path.join(relative, name));
  }

  /** A config in `dir` whose model folder and training file exist unless overridden. */
  function setup(overrides: Json = {}, model: FakeModel = {}): { file: string; text: string } {
    fakeModel('models/bert', model);
    write('data/train.jsonl', '{"text": "good", "label": "pos"}\n');
    const text = configText({ data: { train: 'data/train.jsonl', maxLength: 64 }, ...overrides });
    return { file: write('exp.peft.json', text), text };
  }

  function issuesOf(
    overrides: Json = {},
    model: FakeModel = {},
    workspaceFolder?: string,
  ): { issues: ConfigIssue[]; text: string } {
    const { file, text } = setup(overrides, model);
    return { issues: semanticIssues(parseConfigText(text, file), text, workspaceFolder), text };
  }

  test('a sound config has no issues and loads', () => {
    assert.deepEqual(issuesOf().issues, []);
    const { file } = setup();
    assert.ok('path' in loadConfig(file).model);
  });

  test('relative paths resolve against the config folder, not the working directory', () => {
    write('shared/train.jsonl');
    const text = configText({ data: { train: '../shared/train.jsonl' }, output: { runsDir: 'out' } });
    const file = write('sub/exp.peft.json', text);
    const config = loadConfig(file, { semantic: false });
    assert.equal(config.data.train, path.join(dir, 'shared', 'train.jsonl'));
    assert.equal(config.output.runsDir, path.join(dir, 'sub', 'out'));
    assert.equal((config.model as { path: string }).path, path.join(dir, 'sub', 'models', 'bert'));
    assert.equal(config.sourceFile, file);
  });

  test('a missing data file is an error on that field', () => {
    const { issues, text } = issuesOf({
      data: { train: 'data/train.jsonl', validation: 'data/dev.jsonl', test: 'data/train.jsonl' },
    });
    assert.deepEqual(
      issues.map((i) => i.path),
      ['/data/validation'],
    );
    assert.match(issues[0].message, /file not found: .*dev\.jsonl/);
    assert.equal(underlined(text, issues[0]), '"data/dev.jsonl"');
  });

  test('loadConfig throws the first semantic error with pointer and line', () => {
    fakeModel('models/bert');
    const text = configText({ data: { train: 'data/missing.jsonl' } });
    const file = write('exp.peft.json', text);
    assert.throws(
      () => loadConfig(file),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.path === '/data/train' &&
        error.line === lineOf(text, '"data/missing.jsonl"'),
    );
    assert.doesNotThrow(() => loadConfig(file, { semantic: false }));
  });

  test('a missing config file is a ConfigError', () => {
    assert.throws(
      () => loadConfig(path.join(dir, 'nope.peft.json')),
      (error: unknown) => error instanceof ConfigError && /not found/.test(error.detail),
    );
  });

  test('a missing model folder is an error on model.path', () => {
    const { issues } = issuesOf({ model: { path: 'models/nowhere' } });
    assert.deepEqual(
      issues.map((i) => i.path),
      ['/model/path'],
    );
    assert.match(issues[0].message, /model folder not found/);
  });

  test('a folder with only pytorch_model.bin says to convert it', () => {
    const { issues } = issuesOf({}, { files: ['pytorch_model.bin', 'vocab.txt'] });
    const issue = issueAt(issues, '/model/path');
    assert.match(issue.message, /only pytorch_model\.bin; convert it to model\.safetensors/);
  });

  test('a folder without weights or tokenizer gets one error each', () => {
    const { issues } = issuesOf({}, { files: [] });
    const messages = issues.map((i) => i.message).join('\n');
    assert.match(messages, /no model\.safetensors/);
    assert.match(messages, /no vocab\.txt or tokenizer\.json/);
  });

  test('tokenizer.json is an accepted tokenizer', () => {
    assert.deepEqual(issuesOf({}, { files: ['model.safetensors', 'tokenizer.json'] }).issues, []);
  });

  test('a bottleneck not smaller than the hidden size is an error', () => {
    const { issues, text } = issuesOf({ method: { type: 'houlsby', bottleneck: 64 } }, { hidden: 64 });
    const issue = issueAt(issues, '/method/bottleneck');
    assert.match(issue.message, /bottleneck 64 must be smaller than the model's hidden size 64/);
    assert.equal(issue.line, lineOf(text, '"bottleneck"'));
  });

  test('a reduction factor that leaves no bottleneck is an error', () => {
    const { issues } = issuesOf({ method: { type: 'pfeiffer', reductionFactor: 128 } }, { hidden: 64 });
    assert.match(issueAt(issues, '/method/reductionFactor').message, /leaves no bottleneck/);
    const factorOne = issuesOf({ method: { type: 'pfeiffer', reductionFactor: 1 } }, { hidden: 64 }).issues;
    assert.match(issueAt(factorOne, '/method/reductionFactor').message, /as large as the hidden size/);
  });

  test('a reduction factor next to a bottleneck is flagged as ignored', () => {
    const { issues } = issuesOf({ method: { type: 'houlsby', bottleneck: 8, reductionFactor: 4 } });
    const issue = issueAt(issues, '/method/reductionFactor');
    assert.equal(issue.severity, 'warning');
  });

  test('heads that do not divide the hidden size are an error (model folder)', () => {
    const { issues } = issuesOf({}, { hidden: 64, heads: 5 });
    assert.match(issueAt(issues, '/model/path').message, /5 attention heads do not divide the hidden size 64/);
  });

  test('heads that do not divide the hidden size are an error (scratch model)', () => {
    write('vocab.txt', '[PAD]\n');
    const { issues, text } = issuesOf({ model: { scratch: { vocab: 'vocab.txt', hiddenSize: 100, heads: 3 } } });
    const issue = issueAt(issues, '/model/scratch/heads');
    assert.equal(issue.line, lineOf(text, '"heads"'));
  });

  test('a missing scratch vocab file is an error', () => {
    const { issues } = issuesOf({ model: { scratch: { vocab: 'missing-vocab.txt' } } });
    assert.match(issueAt(issues, '/model/scratch/vocab').message, /file not found/);
  });

  test('leaveOut layers the model does not have are errors at their index', () => {
    const { issues, text } = issuesOf({ method: { type: 'lora', leaveOut: [1, 2, 7] } }, { layers: 2 });
    assert.deepEqual(
      issues.map((i) => i.path),
      ['/method/leaveOut/1', '/method/leaveOut/2'],
    );
    assert.match(issues[0].message, /layer 2 does not exist; the model has 2 layers \(0-1\)/);
    assert.equal(underlined(text, issues[1]), '7');
  });

  test('leaving out every layer is a warning', () => {
    const { issues } = issuesOf({ method: { type: 'houlsby', leaveOut: [0, 1] } }, { layers: 2 });
    assert.equal(issueAt(issues, '/method/leaveOut').severity, 'warning');
  });

  test('a LoRA rank not smaller than the hidden size is an error', () => {
    const { issues } = issuesOf({ method: { type: 'lora', rank: 64 } }, { hidden: 64 });
    assert.match(issueAt(issues, '/method/rank').message, /rank 64 must be smaller/);
  });

  test('maxLength beyond the position embeddings is an error', () => {
    const { issues } = issuesOf({ data: { train: 'data/train.jsonl', maxLength: 256 } }, { positions: 128 });
    assert.match(issueAt(issues, '/data/maxLength').message, /256 exceeds the model's 128 position embeddings/);
  });

  test("the families' config.json: RoBERTa's first padding_idx + 1 positions hold no token, DistilBERT names its sizes dim and n_heads", () => {
    write(
      'models/roberta/config.json',
      JSON.stringify({
        model_type: 'roberta',
        hidden_size: 64,
        num_attention_heads: 4,
        num_hidden_layers: 2,
        max_position_embeddings: 130,
        pad_token_id: 1,
      }),
    );
    for (const name of ['model.safetensors', 'tokenizer.json']) write(path.join('models/roberta', name));
    write('data/train.jsonl', '{"text": "good", "label": "pos"}\n');
    const check = (model: string, maxLength: number, method: Json = { type: 'houlsby', bottleneck: 8 }) => {
      const text = configText({ model: { path: model }, data: { train: 'data/train.jsonl', maxLength }, method });
      return semanticIssues(parseConfigText(text, write('fam.peft.json', text)), text);
    };
    assert.deepEqual(check('models/roberta', 128), []);
    assert.match(
      issueAt(check('models/roberta', 129), '/data/maxLength').message,
      /129 exceeds the model's 128 position embeddings/,
    );
    write(
      'models/distil/config.json',
      JSON.stringify({ model_type: 'distilbert', dim: 48, n_heads: 4, n_layers: 2, max_position_embeddings: 512 }),
    );
    for (const name of ['model.safetensors', 'vocab.txt']) write(path.join('models/distil', name));
    assert.match(
      issueAt(check('models/distil', 64, { type: 'houlsby', bottleneck: 48 }), '/method/bottleneck').message,
      /bottleneck 48 must be smaller than the model's hidden size 48/,
    );
    assert.match(
      issueAt(check('models/distil', 64, { type: 'houlsby', leaveOut: [2] }), '/method/leaveOut/0').message,
      /layer 2 does not exist; the model has 2 layers/,
    );
  });

  test('a model type PEFT Lab does not support is an error on model.path naming it', () => {
    write(
      'models/deberta/config.json',
      JSON.stringify({ model_type: 'deberta-v2', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2 }),
    );
    for (const name of ['model.safetensors', 'tokenizer.json']) write(path.join('models/deberta', name));
    write('data/train.jsonl', '{"text": "good", "label": "pos"}\n');
    const text = configText({ model: { path: 'models/deberta' }, data: { train: 'data/train.jsonl' } });
    const issues = semanticIssues(parseConfigText(text, write('deberta.peft.json', text)), text);
    assert.match(
      issueAt(issues, '/model/path').message,
      /config\.json: model_type "deberta-v2" is not supported yet: PEFT Lab fine-tunes "bert", "roberta", "xlm-roberta", "distilbert", "electra", "modernbert" encoders/,
    );
  });

  test('a metric that does not fit the task type is an error', () => {
    const { issues } = issuesOf({ task: { type: 'regression', metric: 'accuracy' } });
    assert.match(
      issueAt(issues, '/task/metric').message,
      /'accuracy' does not apply to regression; use one of pearson, spearman/,
    );
  });

  test('a runs folder outside the workspace is a warning', () => {
    const outside = issuesOf({ output: { runsDir: '../elsewhere' } }, {}, dir).issues;
    assert.equal(issueAt(outside, '/output/runsDir').severity, 'warning');
    assert.deepEqual(issuesOf({}, {}, dir).issues, []);
  });

  test('validateConfigText combines schema and semantic issues', () => {
    const { file, text } = setup({ method: { type: 'houlsby', bottleneck: 64 } }, { hidden: 64 });
    assert.deepEqual(
      validateConfigText(text, file).map((i) => i.path),
      ['/method/bottleneck'],
    );
    assert.deepEqual(validateConfigText(text, file, { semantic: false }), []);
  });
});

describe('schema file', () => {
  const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'schemas', 'peft-config.schema.json'), 'utf8')) as Json;

  test('is found by walking up from a bundle folder', () => {
    assert.equal(findSchemaFile(path.join(REPO, 'dist')), path.join(REPO, 'schemas', 'peft-config.schema.json'));
    assert.throws(() => findSchemaFile(os.tmpdir()), /cannot find/);
  });

  // Optional fields whose absence means something (so a `default` would change behaviour).
  const OPTIONAL_WITHOUT_DEFAULT = new Set([
    '$schema',
    'labels',
    'validation',
    'test',
    'format',
    'textPairField',
    'maxTrainExamples',
    'bottleneck',
    'maxSteps',
    'earlyStopping',
    'dropout',
    'model',
    'method',
    // microBatchSize defaults to the config's own batchSize.
    'microBatchSize',
    // Unset: the decay starts when warm-up ends. Unset encoding is utf-8, and no default keeps the
    // configs of earlier runs equal to today's on resume (a filled-in default would read as a change).
    'decayRatio',
    'encoding',
    // Slurm options come from the editor's settings unless a config names them.
    'slurm',
    // A config has either task, data and method (fine-tuning) or pretrain (pretraining).
    'task',
    'data',
    'pretrain',
    'maxDocuments',
    'modelDir',
    // A sweep is optional; its count, metric and goal default to values that depend on the config,
    // and a swept field has either values or a range.
    'sweep',
    'count',
    'metric',
    'goal',
    'values',
    'min',
    'max',
  ]);
  /** Every dotted field path is a sweep parameter: the listed ones are there for completion. */
  const OPEN_OBJECTS = new Set(['$.sweep.parameters']);
  /** Objects whose unset fields fall back to the editor's settings (peftLab.slurm.*), so they have no default of their own. */
  const SETTINGS_OBJECTS = new Set(['$.slurm']);

  function resolve(node: Json): Json {
    const ref = node.$ref as string | undefined;
    if (!ref) return node;
    const target = (schema.definitions as Record<string, Json>)[ref.replace('#/definitions/', '')];
    return { ...target, ...node };
  }

  /** Every object schema with `properties`, with a readable location. */
  function objectSchemas(node: Json, where: string, out: Array<[string, Json]> = []): Array<[string, Json]> {
    if (node.properties) out.push([where, node]);
    for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, Json>))
      objectSchemas(resolve(child), `${where}.${key}`, out);
    for (const [key, child] of Object.entries((node.definitions ?? {}) as Record<string, Json>))
      objectSchemas(child, `#${key}`, out);
    return out;
  }

  test('every property is documented for hover, and optional ones have defaults', () => {
    for (const [where, object] of objectSchemas(schema, '$')) {
      const required = new Set((object.required ?? []) as string[]);
      for (const [key, raw] of Object.entries(object.properties as Record<string, Json>)) {
        const property = resolve(raw);
        assert.equal(typeof property.description, 'string', `${where}.${key} lacks description`);
        assert.equal(typeof property.markdownDescription, 'string', `${where}.${key} lacks markdownDescription`);
        if (
          !required.has(key) &&
          key !== 'type' &&
          !OPTIONAL_WITHOUT_DEFAULT.has(key) &&
          !OPEN_OBJECTS.has(where) &&
          !SETTINGS_OBJECTS.has(where)
        ) {
          assert.ok('default' in property, `${where}.${key} lacks a default`);
        }
      }
      if (OPEN_OBJECTS.has(where)) continue;
      assert.equal(
        object.additionalProperties ?? (where === '$.method' ? false : undefined),
        false,
        `${where} allows unknown fields`,
      );
    }
  });

  test('every enum has plain and markdown descriptions of the same length', () => {
    const visit = (node: unknown, where: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const record = node as Json;
      if (Array.isArray(record.enum)) {
        assert.equal(
          (record.enumDescriptions as unknown[] | undefined)?.length,
          record.enum.length,
          `${where} enumDescriptions`,
        );
        assert.equal(
          (record.markdownEnumDescriptions as unknown[] | undefined)?.length,
          record.enum.length,
          `${where} markdownEnumDescriptions`,
        );
      }
      for (const [key, child] of Object.entries(record)) if (key !== 'defaultSnippets') visit(child, `${where}/${key}`);
    };
    visit(schema, '#');
  });
});
