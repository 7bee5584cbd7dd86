/**
 * Reads `*.peft.json` experiment configs: JSON with comments, validated against
 * `schemas/peft-config.schema.json` (the same file VS Code uses for completion), defaults filled
 * in, and every path made absolute against the config file's folder.
 *
 * A config is one of two kinds, told apart by one field: with a `pretrain` section it is a
 * pretraining config (no `task`, `data` or `method`); without, a fine-tuning config. `loadConfig`
 * and `parseConfigText` accept fine-tuning configs only (what `train` runs), `loadPretrainConfig`
 * pretraining configs only, and `loadAnyConfig`, `parseAnyConfigText` and `validateConfigText` both.
 *
 * Errors name the JSON pointer and line of the field at fault. The `model` and `method` unions are
 * validated by dispatching on their discriminator rather than through the schema's `oneOf`, for
 * two reasons: ajv reports every failing branch of a `oneOf` (noise such as "must be equal to
 * constant 'lora'" for a Houlsby block), and ajv ignores `default`s inside `oneOf` branches.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import { parse, printParseErrorCode, type ParseError, type Node } from 'jsonc-parser';
import { ConfigError } from '../errors';
import type {
  AnyResolvedConfig,
  ModelConfig,
  PeftConfig,
  PretrainConfig,
  ResolvedConfig,
  ResolvedPretrainConfig,
} from './types';
import { JsonLocator, joinPointer, semanticIssues, type ConfigIssue } from './semantic';

export type { ConfigIssue } from './semantic';
export { semanticIssues } from './semantic';

export interface LoadOptions {
  /** Also check files on disk and sizes against the model (default true). */
  semantic?: boolean;
  /** Warn when `output.runsDir` lies outside this folder. */
  workspaceFolder?: string;
}

export const SCHEMA_RELATIVE_PATH = path.join('schemas', 'peft-config.schema.json');

const PARSE_OPTIONS = { allowTrailingComma: true, disallowComments: false };

/** Configs larger than this are refused before they are read. */
export const MAX_CONFIG_BYTES = 1_000_000;

/** Reads, validates and resolves a fine-tuning config file; throws `ConfigError` on the first error. */
export function loadConfig(file: string, options: LoadOptions = {}): ResolvedConfig {
  const { config, text } = loadChecked(file, options);
  return fineTuningOnly(config, file, text);
}

/** Reads, validates and resolves a pretraining config file (one with `pretrain`). */
export function loadPretrainConfig(file: string, options: LoadOptions = {}): ResolvedPretrainConfig {
  const { config } = loadChecked(file, options);
  if (isPretrainConfig(config)) return config;
  throw new ConfigError(
    file,
    '',
    "this is a fine-tuning config (it has no 'pretrain' section): run it with 'peft-lab train', or add a 'pretrain' section to pretrain",
    1,
  );
}

/** Reads, validates and resolves a config of either kind; `isPretrainConfig` tells which it is. */
export function loadAnyConfig(file: string, options: LoadOptions = {}): AnyResolvedConfig {
  return loadChecked(file, options).config;
}

function loadChecked(file: string, options: LoadOptions): { config: AnyResolvedConfig; text: string } {
  const text = readConfigFile(file);
  const config = parseAnyConfigText(text, file);
  if (options.semantic ?? true) throwFirstError(semanticIssues(config, text, options.workspaceFolder), file);
  return { config, text };
}

/**
 * Parses and validates fine-tuning config text (no file-system checks) and returns it with
 * defaults applied and paths resolved against `file`'s folder; throws `ConfigError` on the first error.
 */
export function parseConfigText(text: string, file: string): ResolvedConfig {
  return fineTuningOnly(parseAnyConfigText(text, file), file, text);
}

/** `parseConfigText` for either kind of config. */
export function parseAnyConfigText(text: string, file: string): AnyResolvedConfig {
  const { issues, config } = analyse(text, file);
  throwFirstError(issues, file);
  if (!config) throw new ConfigError(file, '', 'invalid config');
  return config;
}

export function isPretrainConfig(config: AnyResolvedConfig): config is ResolvedPretrainConfig {
  return 'pretrain' in config;
}

function fineTuningOnly(config: AnyResolvedConfig, file: string, text: string): ResolvedConfig {
  if (!isPretrainConfig(config)) return config;
  const { line } = new JsonLocator(text).rangeOf('/pretrain', 'key');
  throw new ConfigError(
    file,
    '/pretrain',
    "this is a pretraining config (it has a 'pretrain' section): run it with 'peft-lab pretrain'",
    line,
  );
}

/**
 * Every problem in the text, sorted by position, for editor diagnostics. Never throws: a failure
 * of the checker itself is reported as an issue at the top of the file.
 */
export function validateConfigText(text: string, file: string, options: LoadOptions = {}): ConfigIssue[] {
  try {
    const { issues, config } = analyse(text, file);
    const semantic = config && (options.semantic ?? true) ? semanticIssues(config, text, options.workspaceFolder) : [];
    const tagged = [
      ...issues.map((i): ConfigIssue => ({ ...i, source: 'schema' })),
      ...semantic.map((i): ConfigIssue => ({ ...i, source: 'semantic' })),
    ];
    return tagged.sort((a, b) => a.offset - b.offset);
  } catch (error) {
    return [
      {
        path: '',
        message: `cannot check this config: ${(error as Error).message}`,
        severity: 'error',
        offset: 0,
        length: 0,
        line: 1,
        source: 'semantic',
      },
    ];
  }
}

/** The schema file, found by walking up from this module (`src/core/config` or a bundle in `dist/`). */
export function findSchemaFile(startDir: string = __dirname): string {
  for (let dir = startDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, SCHEMA_RELATIVE_PATH);
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir)
      throw new Error(`cannot find ${SCHEMA_RELATIVE_PATH} in ${startDir} or any folder above it`);
  }
}

/** A config file's text without a byte-order mark; a missing or unreadable file is a ConfigError. */
export function readConfigFile(file: string): string {
  let text: string;
  try {
    // a config is a page of JSON; a huge file is the wrong file, and parsing it first would take minutes
    const size = fs.statSync(file).size;
    if (size > MAX_CONFIG_BYTES) {
      throw new ConfigError(
        file,
        '',
        `the config file is ${(size / 1e6).toFixed(1)} MB; a config is at most ${MAX_CONFIG_BYTES / 1e6} MB (is this the right file?)`,
      );
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      file,
      '',
      code === 'ENOENT' ? 'config file not found' : `cannot read config file: ${(error as Error).message}`,
    );
  }
  // Editors hide a byte-order mark, so offsets must be counted without it.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function throwFirstError(issues: readonly ConfigIssue[], file: string): void {
  const first = issues.find((issue) => issue.severity === 'error');
  if (first) throw new ConfigError(file, first.path, first.message, first.line);
}

// ---------------------------------------------------------------------------------------------
// Analysis

interface Analysis {
  issues: ConfigIssue[];
  /** Present when there are no errors. */
  config?: AnyResolvedConfig;
}

function analyse(text: string, file: string): Analysis {
  const locator = new JsonLocator(text);
  const syntax = syntaxIssues(text, locator);
  if (syntax.length > 0) return { issues: syntax };
  const data: unknown = parse(text, [], PARSE_OPTIONS);
  const issues = [...duplicateKeyIssues(locator), ...schemaIssues(data, locator)].sort((a, b) => a.offset - b.offset);
  if (issues.some((issue) => issue.severity === 'error')) return { issues };
  return { issues, config: resolvePaths(data as PeftConfig | PretrainConfig, file) };
}

const SYNTAX_MESSAGES: Record<string, string> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'malformed number',
  PropertyNameExpected: 'expected a property name in double quotes',
  ValueExpected: 'expected a value',
  ColonExpected: "expected ':'",
  CommaExpected: "expected ','",
  CloseBraceExpected: "expected '}'",
  CloseBracketExpected: "expected ']'",
  EndOfFileExpected: 'unexpected text after the end of the config object',
  InvalidCommentToken: 'malformed comment',
  UnexpectedEndOfComment: 'unterminated comment',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'unterminated number',
  InvalidUnicode: 'malformed \\u escape',
  InvalidEscapeCharacter: 'invalid escape sequence',
  InvalidCharacter: 'control character in string (escape it, e.g. \\n or \\t)',
};

function syntaxIssues(text: string, locator: JsonLocator): ConfigIssue[] {
  const errors: ParseError[] = [];
  parse(text, errors, PARSE_OPTIONS);
  return errors.map((error) => {
    const code = printParseErrorCode(error.error);
    const message = `syntax error: ${SYNTAX_MESSAGES[code] ?? 'invalid JSON'} (${code})`;
    return {
      path: '',
      message,
      severity: 'error',
      offset: error.offset,
      length: error.length,
      line: locator.lineOf(error.offset),
    };
  });
}

/** jsonc-parser silently keeps the last of two equal keys; a user almost never means that. */
function duplicateKeyIssues(locator: JsonLocator): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const visit = (node: Node | undefined, pointer: string): void => {
    if (!node) return;
    if (node.type === 'object') {
      const seen = new Set<string>();
      for (const property of node.children ?? []) {
        const [keyNode, valueNode] = property.children ?? [];
        const key = String(keyNode?.value);
        const childPointer = joinPointer(pointer, key);
        if (seen.has(key)) {
          const line = locator.lineOf(keyNode.offset);
          issues.push({
            path: childPointer,
            message: `duplicate field '${key}'; only its last value would be used`,
            severity: 'error',
            offset: keyNode.offset,
            length: keyNode.length,
            line,
          });
        }
        seen.add(key);
        visit(valueNode, childPointer);
      }
    } else if (node.type === 'array') {
      node.children?.forEach((child, index) => visit(child, joinPointer(pointer, index)));
    }
  };
  visit(locator.root, '');
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Schema validation

/** One alternative of a union field (`model` or `method`), selected by its discriminator value. */
interface UnionBranch {
  validate: ValidateFunction;
  fields: string[];
}

interface Union {
  /** Discriminator value -> branch; for `method` the `type`, for `model` the one key it requires. */
  branches: Map<string, UnionBranch>;
}

interface Validators {
  /** Everything except the insides of `model` and `method`, for each kind of config. */
  root: Record<ConfigKind, ValidateFunction>;
  model: Union;
  method: Union;
}

type ConfigKind = 'fine-tuning' | 'pretraining';

/** The fields only a fine-tuning config has; a `pretrain` section replaces them. */
const FINE_TUNING_FIELDS = ['task', 'data', 'method'] as const;

// Keywords VS Code's JSON language service understands; ajv must accept them without meaning.
const EDITOR_KEYWORDS = [
  'markdownDescription',
  'enumDescriptions',
  'markdownEnumDescriptions',
  'defaultSnippets',
  'errorMessage',
  'patternErrorMessage',
  'allowComments',
  'allowTrailingCommas',
];

let cachedValidators: Validators | undefined;

function validators(): Validators {
  cachedValidators ??= compileValidators(JSON.parse(fs.readFileSync(findSchemaFile(), 'utf8')) as SchemaObject);
  return cachedValidators;
}

function compileValidators(schema: SchemaObject): Validators {
  // verbose: error objects carry their schema, which holds the editor messages and field names.
  const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true });
  ajv.addVocabulary(EDITOR_KEYWORDS);
  const properties = schema.properties as Record<string, SchemaObject>;
  // The schema's if/then/else (which kind of config) serves the editor; here each kind gets its own
  // root, and `kindIssues` explains a field of the other kind better than a failed `not` could.
  const { if: _if, then: _then, else: _else, ...plain } = schema;
  const anything = {};
  const root = {
    'fine-tuning': ajv.compile({
      ...plain,
      required: [...(schema.required as string[]), ...FINE_TUNING_FIELDS],
      properties: { ...properties, model: withoutOneOf(properties.model), method: withoutOneOf(properties.method) },
    }),
    pretraining: ajv.compile({
      ...plain,
      required: [...(schema.required as string[]), 'pretrain'],
      properties: {
        ...properties,
        model: withoutOneOf(properties.model),
        task: anything,
        data: anything,
        method: anything,
      },
    }),
  };
  const compileBranch = (branch: SchemaObject): UnionBranch => ({
    validate: ajv.compile({ ...branch, definitions: schema.definitions }),
    fields: Object.keys(branch.properties ?? {}),
  });
  const branchesOf = (union: SchemaObject, discriminator: (branch: SchemaObject) => string): Union => {
    const branches = (union.oneOf as SchemaObject[]).map((ref) => resolveLocalRef(schema, ref));
    return { branches: new Map(branches.map((branch) => [discriminator(branch), compileBranch(branch)])) };
  };
  return {
    root,
    model: branchesOf(properties.model, (branch) => (branch.required as string[])[0]),
    method: branchesOf(properties.method, (branch) => String(branch.properties.type.const)),
  };
}

function withoutOneOf(schema: SchemaObject): SchemaObject {
  const copy = { ...schema };
  delete copy.oneOf;
  return copy;
}

function resolveLocalRef(schema: SchemaObject, node: SchemaObject): SchemaObject {
  const match = /^#\/definitions\/(.+)$/.exec(String(node.$ref));
  const target = match ? (schema.definitions as Record<string, SchemaObject>)[match[1]] : undefined;
  if (!target) throw new Error(`schema: unsupported branch ${JSON.stringify(node)}`);
  return target;
}

/** Validates and fills in defaults (mutating `data`). */
function schemaIssues(data: unknown, locator: JsonLocator): ConfigIssue[] {
  const { root, model, method } = validators();
  const kind: ConfigKind = isRecord(data) && 'pretrain' in data ? 'pretraining' : 'fine-tuning';
  applyRegressionMetricDefault(data);
  const issues = ajvIssues(root[kind], data, '', locator);
  if (!isRecord(data)) return issues;
  if (kind === 'pretraining')
    return [...issues, ...fineTuningFieldIssues(data, locator), ...modelIssues(data.model, model, locator)];
  return [
    ...kindIssues(issues, data, locator),
    ...modelDirIssues(data, locator),
    ...methodIssues(data.method, method, locator),
    ...modelIssues(data.model, model, locator),
  ];
}

/**
 * A config with neither `pretrain` nor any fine-tuning field fits neither kind: one issue saying
 * so beats three "missing required field" issues that suggest only one of the two ways out.
 */
function kindIssues(issues: ConfigIssue[], data: Record<string, unknown>, locator: JsonLocator): ConfigIssue[] {
  if (FINE_TUNING_FIELDS.some((field) => field in data)) return issues;
  const missing = new Set(FINE_TUNING_FIELDS.map((field) => `/${field}`));
  return [
    ...issues.filter((issue) => !missing.has(issue.path)),
    locator.issue(
      '',
      "missing 'task', 'data' and 'method' (a fine-tuning config) or 'pretrain' (a pretraining config); a config needs one or the other",
    ),
  ];
}

function fineTuningFieldIssues(data: Record<string, unknown>, locator: JsonLocator): ConfigIssue[] {
  return FINE_TUNING_FIELDS.filter((field) => field in data).map((field) =>
    locator.issue(
      `/${field}`,
      `'${field}' is a fine-tuning field, but this is a pretraining config (it has 'pretrain'); remove '${field}', or remove 'pretrain' to fine-tune`,
      { part: 'key' },
    ),
  );
}

function modelDirIssues(data: Record<string, unknown>, locator: JsonLocator): ConfigIssue[] {
  if (!isRecord(data.output) || !('modelDir' in data.output)) return [];
  return [
    locator.issue(
      '/output/modelDir',
      "only pretraining configs (with a 'pretrain' section) write a model folder; remove 'modelDir'",
      { part: 'key' },
    ),
  ];
}

/** The schema's metric default suits classification; regression gets its own before ajv fills it. */
function applyRegressionMetricDefault(data: unknown): void {
  const task = isRecord(data) ? data.task : undefined;
  if (isRecord(task) && task.type === 'regression' && task.metric === undefined) task.metric = 'pearson';
}

function methodIssues(value: unknown, union: Union, locator: JsonLocator): ConfigIssue[] {
  // A missing or unknown type was already reported by the root validator.
  const type = isRecord(value) ? value.type : undefined;
  const branch = typeof type === 'string' ? union.branches.get(type) : undefined;
  if (!branch) return [];
  return ajvIssues(branch.validate, value, '/method', locator, (field) => {
    const owners = quotedList(branchesWithField(union, field));
    if (!owners) return undefined;
    const verb = owners.includes(',') ? 'have' : 'has';
    return `'${field}' is not a field of method '${String(type)}' (only ${owners} ${verb} it)`;
  });
}

function modelIssues(value: unknown, union: Union, locator: JsonLocator): ConfigIssue[] {
  // Anything but an object was already reported by the root validator.
  if (!isRecord(value)) return [];
  const kinds = [...union.branches.keys()];
  const present = kinds.filter((kind) => kind in value);
  if (present.length === 0) {
    return [
      locator.issue(
        '/model',
        `must have one of ${quotedList(kinds)} (a local folder, a Hub model id, or a random encoder)`,
      ),
    ];
  }
  if (present.length > 1) {
    return [
      locator.issue(`/model/${present[1]}`, `'${present[0]}' and '${present[1]}' cannot be combined; keep one`, {
        part: 'key',
      }),
    ];
  }
  const kind = present[0];
  return ajvIssues(union.branches.get(kind)!.validate, value, '/model', locator, (field) => {
    const owners = quotedList(branchesWithField(union, field));
    return owners ? `'${field}' does not apply to a '${kind}' model (only with ${owners})` : undefined;
  });
}

function quotedList(names: string[]): string {
  return names.map((name) => `'${name}'`).join(', ');
}

function branchesWithField(union: Union, field: string): string[] {
  return [...union.branches].filter(([, branch]) => branch.fields.includes(field)).map(([name]) => name);
}

/** Explains a field that exists only in other branches of a union, or returns undefined. */
type MisplacedFieldHint = (field: string) => string | undefined;

function ajvIssues(
  validate: ValidateFunction,
  data: unknown,
  base: string,
  locator: JsonLocator,
  misplaced?: MisplacedFieldHint,
): ConfigIssue[] {
  if (validate(data)) return [];
  return withoutCompositeChildren(validate.errors ?? []).map((error) => issueFromAjv(error, base, locator, misplaced));
}

/**
 * Drops the per-branch errors under a failed `oneOf`/`anyOf`: "must be equal to constant" plus
 * "must be integer" says less than the one message the schema gives for the whole field.
 */
function withoutCompositeChildren(errors: ErrorObject[]): ErrorObject[] {
  const composites = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf');
  return errors.filter((e) => !composites.some((c) => e !== c && e.schemaPath.startsWith(`${c.schemaPath}/`)));
}

function issueFromAjv(
  error: ErrorObject,
  base: string,
  locator: JsonLocator,
  misplaced?: MisplacedFieldHint,
): ConfigIssue {
  const at = base + error.instancePath;
  if (error.keyword === 'additionalProperties') {
    const field = String(error.params.additionalProperty);
    const message = misplaced?.(field) ?? unknownFieldMessage(field, Object.keys(error.parentSchema?.properties ?? {}));
    return locator.issue(joinPointer(at, field), message, { part: 'key' });
  }
  if (error.keyword === 'required') {
    const field = String(error.params.missingProperty);
    return locator.issue(joinPointer(at, field), `missing required field '${field}'`, { at, part: 'key' });
  }
  return locator.issue(at, describeError(error));
}

function describeError(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  const schema = (error.parentSchema ?? {}) as SchemaObject;
  switch (error.keyword) {
    case 'type':
      return `must be ${withArticle(String(params.type))}, not ${describeValue(error.data)}`;
    case 'enum':
      return enumMessage(error.data, params.allowedValues as unknown[]);
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `must be ${String(params.comparison)} ${String(params.limit)}`;
    case 'minLength':
      return params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long`;
    case 'maxLength':
      return `must be at most ${String(params.limit)} characters long`;
    case 'minItems':
      return `must have at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}`;
    case 'maxItems':
      return `must have at most ${String(params.limit)} items`;
    case 'uniqueItems':
      return `must not repeat items (items ${String(params.j)} and ${String(params.i)} are equal)`;
    case 'pattern':
      return typeof schema.patternErrorMessage === 'string'
        ? schema.patternErrorMessage
        : `must match ${String(params.pattern)}`;
    case 'oneOf':
    case 'anyOf':
      return typeof schema.errorMessage === 'string' ? schema.errorMessage : 'does not match any allowed form';
    default:
      return error.message ?? 'is invalid';
  }
}

function withArticle(jsonType: string): string {
  const names: Record<string, string> = {
    object: 'an object',
    array: 'an array',
    string: 'a string',
    number: 'a number',
    integer: 'an integer',
    boolean: 'true or false',
    null: 'null',
  };
  return jsonType
    .split(',')
    .map((t) => names[t] ?? t)
    .join(' or ');
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const shown = JSON.stringify(value);
  return `${typeof value} ${shown.length > 40 ? `${shown.slice(0, 37)}...` : shown}`;
}

function enumMessage(value: unknown, allowed: unknown[]): string {
  const list = allowed.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
  const guess = typeof value === 'string' ? closestMatch(value, allowed.map(String)) : undefined;
  return `must be one of ${list}${guess ? ` (did you mean '${guess}'?)` : ''}`;
}

function unknownFieldMessage(field: string, known: string[]): string {
  const guess = closestMatch(field, known);
  if (guess) return `unknown field '${field}' (did you mean '${guess}'?)`;
  return known.length ? `unknown field '${field}'; allowed fields: ${known.join(', ')}` : `unknown field '${field}'`;
}

/** The candidate a typo most plausibly meant: same letters ignoring case, or a few edits away. */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  const sameIgnoringCase = candidates.find((c) => c.toLowerCase() === lower);
  if (sameIgnoringCase) return sameIgnoringCase;
  const budget = Math.max(1, Math.floor(word.length / 3));
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= budget && (!best || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

/** Levenshtein distance with transpositions counted as one edit ('botlte' vs 'bottle'). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const substitution = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Paths

function resolvePaths(config: PeftConfig | PretrainConfig, file: string): AnyResolvedConfig {
  const sourceFile = path.resolve(file);
  const folder = path.dirname(sourceFile);
  const resolve = (p: string): string => path.resolve(folder, expandHome(p));
  if ('pretrain' in config) return resolvePretrainPaths(config, sourceFile, resolve);
  const { validation, test } = config.data;
  // the schema takes numbers too; every later reader compares labels as text
  const labels = (config.task.labels as (string | number)[] | undefined)?.map(String);
  return {
    ...config,
    task: { ...config.task, ...(labels && { labels }) },
    model: resolveModelPaths(config.model, resolve),
    data: {
      ...config.data,
      train: resolve(config.data.train),
      ...(validation !== undefined && { validation: resolve(validation) }),
      ...(test !== undefined && { test: resolve(test) }),
    },
    output: { ...config.output, runsDir: resolve(config.output.runsDir) },
    sourceFile,
  };
}

function resolvePretrainPaths(
  config: PretrainConfig,
  sourceFile: string,
  resolve: (p: string) => string,
): ResolvedPretrainConfig {
  const { validation } = config.pretrain;
  const { modelDir } = config.output;
  return {
    ...config,
    model: resolveModelPaths(config.model, resolve),
    pretrain: {
      ...config.pretrain,
      corpus: config.pretrain.corpus.map(resolve),
      ...(validation !== undefined && { validation: validation.map(resolve) }),
    },
    output: {
      ...config.output,
      runsDir: resolve(config.output.runsDir),
      ...(modelDir !== undefined && { modelDir: resolve(modelDir) }),
    },
    sourceFile,
  };
}

function resolveModelPaths(model: ModelConfig, resolve: (p: string) => string): ModelConfig {
  if ('path' in model) return { ...model, path: resolve(model.path) };
  if ('hub' in model) return { ...model, cacheDir: resolve(model.cacheDir) };
  return { scratch: { ...model.scratch, vocab: resolve(model.scratch.vocab) } };
}

function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/') || p.startsWith('~\\')) return path.join(os.homedir(), p.slice(2));
  return p;
}
