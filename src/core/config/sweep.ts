/**
 * Hyperparameter sweeps: a config's `sweep` section expanded into points. A point is the config
 * with some fields set (a deep set of each dotted path), checked exactly as a config is (schema and
 * semantic checks), and named after its values so that its run folder says what it tried.
 *
 * A problem a point would have is reported on the sweep field that causes it, e.g. on the `16` of
 * `sweep.parameters["method.bottleneck"].values[2]` (JSON pointer
 * `/sweep/parameters/method.bottleneck/values/2`, as every ConfigIssue and ConfigError path is):
 * that is the value to change, not the base config's field, which is fine as written. Problems
 * the base config has anyway are reported once, by the base config's own checks.
 *
 * On disk a point's run is an ordinary run folder whose config.json holds the point's resolved
 * config: `name` is the point's name and `sweepPoint` (SweepPointInfo) says which sweep and point
 * it is, so runs can be grouped by sweep and each swept field charted against the metric.
 */
import { parse } from 'jsonc-parser';
import { ConfigError } from '../errors';
import { Rng } from '../random';
import { lowerIsBetter } from '../train/metrics';
import {
  isPretrainConfig,
  parseAnyConfigText,
  parseConfigText,
  readConfigFile,
  validateConfigText,
  type LoadOptions,
} from './load';
import { JsonLocator, joinPointer, type ConfigIssue } from './semantic';
import type {
  ResolvedConfig,
  SweepConfig,
  SweepGoal,
  SweepMethod,
  SweepMetric,
  SweepParameter,
  SweepPointInfo,
  TaskType,
} from './types';

/** Larger sweeps are almost always a mistake (a grid that multiplied out); `count` caps a grid. */
export const MAX_SWEEP_POINTS = 1000;
export const DEFAULT_RANDOM_COUNT = 10;
/** Random draws from a range keep this many significant digits: readable run names, no false precision. */
const DRAW_DIGITS = 3;
/** Longer point names become `<name>-point<N>`: folder names have limits, and nobody reads 200 characters. */
const MAX_NAME_LENGTH = 120;
/** Random search stops looking for new distinct points after this many draws per wanted point. */
const DRAWS_PER_POINT = 100;
/** Run-name keys for fields whose last path segment is long. */
const SHORT_KEYS: Record<string, string> = {
  learningRate: 'lr',
  batchSize: 'bs',
  weightDecay: 'wd',
  warmupRatio: 'warmup',
  reductionFactor: 'rf',
  consistencyWeight: 'cw',
};
const METRICS_BY_TASK: Record<TaskType, readonly SweepMetric[]> = {
  classification: ['accuracy', 'f1', 'mcc', 'loss'],
  regression: ['pearson', 'spearman', 'mse', 'loss'],
};
const PARSE_OPTIONS = { allowTrailingComma: true, disallowComments: false };
const FIELD_PATH = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+$/;

export interface SweepPoint {
  index: number;
  /** The run name: the config's name and the point's values, e.g. `tiny-bottleneck=16-lr=1e-4`. */
  name: string;
  /** Dotted field path -> this point's value. */
  values: Record<string, unknown>;
  /** What this point trains: resolved and checked, named `name`, with `sweepPoint` set and no `sweep`. */
  config: ResolvedConfig;
}

export interface SweepPlan {
  id: string;
  configFile: string;
  baseName: string;
  method: SweepMethod;
  metric: SweepMetric;
  goal: SweepGoal;
  /** The swept fields, in the order written. */
  fields: string[];
  points: SweepPoint[];
  /** E.g. a random search that found fewer distinct points than `count`. */
  warnings: ConfigIssue[];
}

export interface SweepOptions extends LoadOptions {
  /** When the sweep is planned; names its id. */
  now?: Date;
}

/** Whether a config text has a `sweep` section (cheap: no validation). */
export function hasSweepSection(text: string): boolean {
  const data: unknown = parse(text, [], PARSE_OPTIONS);
  return isRecord(data) && data.sweep !== undefined;
}

/** Reads a config and expands its sweep; throws a ConfigError on the first problem of the config or of any point. */
export function planSweep(file: string, options: SweepOptions = {}): SweepPlan {
  return planSweepText(readConfigFile(file), file, options);
}

export function planSweepText(text: string, file: string, options: SweepOptions = {}): SweepPlan {
  throwFirstError(validateConfigText(text, file, options), file);
  if (!hasSweepSection(text)) throw new ConfigError(file, '/sweep', "this config has no 'sweep' section to run");
  const { issues, plan } = analyseSweep(text, file, options, true);
  throwFirstError(issues, file);
  return plan!;
}

/**
 * The sweep's problems for the editor: [] without a sweep section, and when the config itself does
 * not parse (its own diagnostics say why). Never throws.
 */
export function sweepIssues(text: string, file: string, options: LoadOptions = {}): ConfigIssue[] {
  if (!hasSweepSection(text)) return [];
  try {
    return analyseSweep(text, file, options, false).issues.map((issue): ConfigIssue => ({
      ...issue,
      source: 'semantic',
    }));
  } catch (error) {
    if (error instanceof ConfigError) return [];
    const at = new JsonLocator(text).issue('/sweep', `cannot check this sweep: ${(error as Error).message}`, {
      part: 'key',
    });
    return [{ ...at, source: 'semantic' }];
  }
}

/** The best result by the sweep's metric; ties go to the earlier one, and results without the metric never win. */
export function bestPoint<T extends { metrics?: Record<string, number> }>(
  results: readonly T[],
  metric: string,
  goal: SweepGoal,
): T | undefined {
  let best: { result: T; value: number } | undefined;
  for (const result of results) {
    const value = result.metrics?.[metric];
    if (value === undefined || !Number.isFinite(value)) continue;
    if (!best || (goal === 'maximize' ? value > best.value : value < best.value)) best = { result, value };
  }
  return best?.result;
}

/** `method.bottleneck=16, training.learningRate=1e-4`, for messages. */
export function describePoint(values: Record<string, unknown>): string {
  return Object.entries(values)
    .map(([field, value]) => `${field}=${nameValue(value)}`)
    .join(', ');
}

/** The direction a metric improves in when the sweep does not say. */
export function defaultGoal(metric: string): SweepGoal {
  return lowerIsBetter(metric) ? 'minimize' : 'maximize';
}

// ---- analysis ------------------------------------------------------------------------------------

/** One field set by one point, and the sweep field it came from (where its problems are reported). */
interface Assignment {
  field: string;
  value: unknown;
  source: string;
}

interface Context {
  file: string;
  options: LoadOptions;
  locator: JsonLocator;
  /** The config without its sweep, as parsed (no defaults). */
  baseData: Record<string, unknown>;
  /** `path\0message` of the errors the base config has itself: not the points' fault. */
  baseErrors: Set<string>;
}

/** Throws a ConfigError (schema problems of the config itself) only when the text does not parse as a config. */
function analyseSweep(
  text: string,
  file: string,
  options: SweepOptions,
  expand: boolean,
): { issues: ConfigIssue[]; plan?: SweepPlan } {
  const base = parseAnyConfigText(text, file);
  const locator = new JsonLocator(text);
  if (isPretrainConfig(base))
    return {
      issues: [
        locator.issue(
          '/sweep',
          'sweeps run fine-tuning configs only; remove the sweep section from this pretraining config',
          { part: 'key' },
        ),
      ],
    };
  // ajv filled in the sweep's defaults; the text as written tells a range from a list
  const spec = base.sweep!;
  const data = parse(text, [], PARSE_OPTIONS) as Record<string, unknown>;
  const written = (data.sweep as { parameters: Record<string, Record<string, unknown>> }).parameters;
  const shape = [
    ...Object.entries(written).flatMap(([field, parameter]) => parameterIssues(field, parameter, spec.method, locator)),
    ...metricIssues(spec, base.task.type, locator),
  ];
  if (shape.some(isError)) return { issues: shape };
  const { points, issues: drawIssues } = drawPoints(spec, locator);
  if (drawIssues.some(isError)) return { issues: [...shape, ...drawIssues] };
  const { sweep: _sweep, ...baseData } = data;
  const baseErrors = new Set(validateConfigText(JSON.stringify(baseData), file, options).filter(isError).map(issueKey));
  const context: Context = { file, options, locator, baseData, baseErrors };
  const checked = points.map((point) => checkPoint(point, context));
  const issues = unique([...shape, ...drawIssues, ...checked.flatMap((c) => c.issues)]).sort(
    (a, b) => a.offset - b.offset,
  );
  if (!expand || issues.some(isError)) return { issues };
  const texts = checked.map((c) => c.text!);
  return { issues, plan: makePlan(base, spec, points, texts, file, options.now ?? new Date(), issues) };
}

function parameterIssues(
  field: string,
  parameter: Record<string, unknown>,
  method: SweepMethod,
  locator: JsonLocator,
): ConfigIssue[] {
  const at = parameterPointer(field);
  const pathProblem = fieldPathProblem(field);
  if (pathProblem) return [locator.issue(at, pathProblem, { part: 'key' })];
  const hasValues = 'values' in parameter;
  const hasRange = 'min' in parameter || 'max' in parameter;
  if (hasValues && hasRange)
    return [
      locator.issue(at, `'${field}': give either 'values' or a range ('min' and 'max'), not both`, { part: 'key' }),
    ];
  if (!hasValues && !hasRange)
    return [
      locator.issue(at, `'${field}' needs 'values' (a list) or, for random search, a range ('min' and 'max')`, {
        part: 'key',
      }),
    ];
  if (hasRange) return rangeIssues(field, parameter, method, locator);
  return ['scale', 'integer']
    .filter((option) => option in parameter)
    .map((option) =>
      locator.issue(
        joinPointer(at, option),
        `'${option}' applies to a range ('min', 'max') only; ignored with 'values'`,
        { severity: 'warning', part: 'key' },
      ),
    );
}

function fieldPathProblem(field: string): string | undefined {
  if (!FIELD_PATH.test(field))
    return `'${field}' is not a field path: use dotted names of this config's fields, such as 'method.bottleneck' or 'training.learningRate'`;
  if (field.startsWith('sweep.')) return `'${field}': a sweep cannot change its own settings`;
  return undefined;
}

function rangeIssues(
  field: string,
  range: Record<string, unknown>,
  method: SweepMethod,
  locator: JsonLocator,
): ConfigIssue[] {
  const at = parameterPointer(field);
  if (method === 'grid') {
    const key = 'min' in range ? 'min' : 'max';
    return [
      locator.issue(
        joinPointer(at, key),
        `a range ('min', 'max') needs random search ("method": "random"); a grid needs 'values'`,
        { part: 'key' },
      ),
    ];
  }
  const missing = ['min', 'max'].filter((bound) => !(bound in range));
  if (missing.length)
    return [
      locator.issue(at, `'${field}': a range needs both 'min' and 'max' (missing '${missing[0]}')`, { part: 'key' }),
    ];
  const { min, max } = range as { min: number; max: number };
  if (max <= min) return [locator.issue(joinPointer(at, 'max'), `must be greater than min (${min})`)];
  if (range.scale === 'log' && min <= 0) return [locator.issue(joinPointer(at, 'min'), 'a log scale needs min > 0')];
  if (range.integer === true && Math.ceil(min) > Math.floor(max))
    return [locator.issue(at, `'${field}': no whole number lies between min ${min} and max ${max}`, { part: 'key' })];
  return [];
}

function metricIssues(spec: SweepConfig, task: TaskType, locator: JsonLocator): ConfigIssue[] {
  if (spec.metric === undefined || METRICS_BY_TASK[task].includes(spec.metric)) return [];
  return [
    locator.issue(
      '/sweep/metric',
      `'${spec.metric}' does not apply to ${task}; use one of ${METRICS_BY_TASK[task].join(', ')}`,
    ),
  ];
}

// ---- points ------------------------------------------------------------------------------------

function drawPoints(spec: SweepConfig, locator: JsonLocator): { points: Assignment[][]; issues: ConfigIssue[] } {
  const parameters = Object.entries(spec.parameters);
  if (spec.method === 'grid') return gridPoints(parameters, spec.count, locator);
  return randomPoints(parameters, spec, locator);
}

/** The cartesian product in a stable order: the first parameter varies slowest, the last fastest. */
function gridPoints(
  parameters: [string, SweepParameter][],
  cap: number | undefined,
  locator: JsonLocator,
): { points: Assignment[][]; issues: ConfigIssue[] } {
  const choices = parameters.map(([field, parameter]) =>
    valuesOf(parameter).map((value, i): Assignment => ({ field, value, source: valuePointer(field, i) })),
  );
  const size = choices.reduce((n, c) => n * c.length, 1);
  if (cap === undefined && size > MAX_SWEEP_POINTS) {
    return {
      points: [],
      issues: [
        locator.issue(
          '/sweep/parameters',
          `the grid has ${size} points, more than ${MAX_SWEEP_POINTS}; remove values, or set 'count' to run only the first ones`,
          { part: 'key' },
        ),
      ],
    };
  }
  const count = Math.min(size, cap ?? size);
  return { points: Array.from({ length: count }, (_, k) => gridPoint(k, choices)), issues: [] };
}

/** Point `k` of the product: `k` written in the mixed radix of the choices' lengths. */
function gridPoint(k: number, choices: Assignment[][]): Assignment[] {
  const point: Assignment[] = new Array(choices.length);
  for (let i = choices.length - 1; i >= 0; i--) {
    point[i] = choices[i][k % choices[i].length];
    k = Math.floor(k / choices[i].length);
  }
  return point;
}

/** `count` distinct points drawn with the sweep's seed, so the same config draws the same points. */
function randomPoints(
  parameters: [string, SweepParameter][],
  spec: SweepConfig,
  locator: JsonLocator,
): { points: Assignment[][]; issues: ConfigIssue[] } {
  const rng = new Rng(spec.seed);
  const wanted = spec.count ?? DEFAULT_RANDOM_COUNT;
  const seen = new Set<string>();
  const points: Assignment[][] = [];
  for (let draws = 0; points.length < wanted && draws < wanted * DRAWS_PER_POINT; draws++) {
    const point = parameters.map(([field, parameter]) => drawAssignment(rng, field, parameter));
    const key = JSON.stringify(point.map((a) => a.value));
    if (seen.has(key)) continue;
    seen.add(key);
    points.push(point);
  }
  const issues =
    points.length < wanted
      ? [
          locator.issue(
            locator.has('/sweep/count') ? '/sweep/count' : '/sweep/method',
            `only ${points.length} distinct points exist, fewer than the ${wanted} asked for; the sweep runs ${points.length}`,
            { severity: 'warning' },
          ),
        ]
      : [];
  return { points, issues };
}

function drawAssignment(rng: Rng, field: string, parameter: SweepParameter): Assignment {
  if ('values' in parameter) {
    const i = rng.int(parameter.values.length);
    return { field, value: parameter.values[i], source: valuePointer(field, i) };
  }
  return { field, value: drawFromRange(rng, parameter), source: parameterPointer(field) };
}

/** A number from a range: uniform, or uniform in log(value); whole numbers when `integer`. */
export function drawFromRange(rng: Rng, range: Extract<SweepParameter, { min: number }>): number {
  const u = rng.next();
  const { min, max } = range;
  const log = range.scale === 'log';
  if (range.integer) {
    const lo = Math.ceil(min);
    const hi = Math.floor(max);
    if (log) return clamp(Math.round(Math.exp(lerp(Math.log(lo), Math.log(hi), u))), lo, hi);
    return Math.min(hi, lo + Math.floor(u * (hi - lo + 1)));
  }
  const x = log ? Math.exp(lerp(Math.log(min), Math.log(max), u)) : lerp(min, max, u);
  return clamp(Number(x.toPrecision(DRAW_DIGITS)), min, max);
}

function valuesOf(parameter: SweepParameter): unknown[] {
  // ranges were refused for grids before this is reached
  return 'values' in parameter ? parameter.values : [];
}

/** Applies a point to the base config and checks the result as a config; problems land on the sweep field at fault. */
function checkPoint(point: Assignment[], context: Context): { issues: ConfigIssue[]; text?: string } {
  const data = structuredClone(context.baseData);
  for (const assignment of point) {
    const problem = setField(data, assignment.field, assignment.value);
    if (problem)
      return {
        issues: [
          context.locator.issue(parameterPointer(assignment.field), `'${assignment.field}': ${problem}`, {
            part: 'key',
          }),
        ],
      };
  }
  const text = JSON.stringify(data, null, 2);
  const own = validateConfigText(text, context.file, context.options).filter(
    (issue) => isError(issue) && !context.baseErrors.has(issueKey(issue)),
  );
  if (!own.length) return { issues: [], text };
  const pointLocator = new JsonLocator(text);
  return { issues: own.map((issue) => blame(issue, point, pointLocator, context.locator)) };
}

/** Sets `data.a.b.c`, creating missing objects on the way; returns a problem when the path runs into a non-object. */
function setField(data: Record<string, unknown>, field: string, value: unknown): string | undefined {
  const segments = field.split('.');
  let node = data;
  for (let i = 0; i < segments.length - 1; i++) {
    const next = node[segments[i]];
    if (next === undefined) node[segments[i]] = {};
    else if (!isRecord(next))
      return `'${segments.slice(0, i + 1).join('.')}' is ${JSON.stringify(next)}, not an object with fields`;
    node = node[segments[i]] as Record<string, unknown>;
  }
  node[segments[segments.length - 1]] = value;
  return undefined;
}

/**
 * Moves a point's problem onto the sweep: a problem with the field's name (unknown field, another
 * method's field) onto the parameter's key, one with its value onto that value (or range), and one
 * caused by the combination onto the point's first value.
 */
function blame(issue: ConfigIssue, point: Assignment[], pointLocator: JsonLocator, locator: JsonLocator): ConfigIssue {
  const owner = point.find((a) => isWithin(issue.path, fieldPointer(a.field)));
  if (!owner)
    return locator.issue(
      point[0].source,
      `with ${describePoint(valuesOfPoint(point))}: ${issue.path || '/'}: ${issue.message}`,
    );
  const exact = issue.path === fieldPointer(owner.field);
  if (exact && isKeyIssue(issue, pointLocator))
    return locator.issue(parameterPointer(owner.field), `'${owner.field}': ${issue.message}`, { part: 'key' });
  const inner = exact ? '' : `${issue.path}: `;
  return locator.issue(owner.source, `${owner.field} = ${JSON.stringify(owner.value)}: ${inner}${issue.message}`);
}

/** Whether the issue underlines the field's key rather than its value (what load.ts does for fields that should not be there). */
function isKeyIssue(issue: ConfigIssue, pointLocator: JsonLocator): boolean {
  const key = pointLocator.rangeOf(issue.path, 'key');
  return issue.offset === key.offset && key.offset !== pointLocator.rangeOf(issue.path, 'value').offset;
}

// ---- the plan ------------------------------------------------------------------------------------

function makePlan(
  base: ResolvedConfig,
  spec: SweepConfig,
  points: Assignment[][],
  texts: string[],
  file: string,
  now: Date,
  issues: ConfigIssue[],
): SweepPlan {
  const fields = Object.keys(spec.parameters);
  const values = points.map(valuesOfPoint);
  const names = pointNames(base.name, fields, values);
  const metric = spec.metric ?? base.task.metric;
  const info = {
    sweepId: sweepIdOf(base.name, now),
    total: points.length,
    method: spec.method,
    baseName: base.name,
    metric,
    goal: spec.goal ?? defaultGoal(metric),
  };
  const planned = values.map((pointValues, index): SweepPoint => {
    const config = parseConfigText(texts[index], file);
    config.name = names[index];
    config.sweepPoint = { ...info, index, values: pointValues } satisfies SweepPointInfo;
    return { index, name: names[index], values: pointValues, config };
  });
  return {
    id: info.sweepId,
    configFile: base.sourceFile,
    baseName: base.name,
    method: spec.method,
    metric,
    goal: info.goal,
    fields,
    points: planned,
    warnings: issues.filter((i) => !isError(i)),
  };
}

/** `<name>-sweep-<UTC stamp>`, the stamp as in run folder names. */
export function sweepIdOf(baseName: string, now: Date = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '')
    .replace('T', '-');
  return `${baseName}-sweep-${stamp}`;
}

/** `tiny-bottleneck=16-lr=1e-4`: the config's name, then each field's short key and value; unique within the sweep. */
export function pointNames(baseName: string, fields: string[], points: Record<string, unknown>[]): string[] {
  const keys = shortKeys(fields);
  const seen = new Set<string>();
  return points.map((values, index) => {
    let name = `${baseName}-${fields.map((field) => `${keys.get(field)}=${nameValue(values[field])}`).join('-')}`;
    if (name.length > MAX_NAME_LENGTH) name = `${baseName}-point${index + 1}`;
    if (seen.has(name)) name = `${name}-${index + 1}`;
    seen.add(name);
    return name;
  });
}

/** The last path segment (abbreviated where long); more segments where two fields would share one. */
function shortKeys(fields: string[]): Map<string, string> {
  const last = (field: string, n: number) => field.split('.').slice(-n).join('.');
  const short = new Map(fields.map((field) => [field, SHORT_KEYS[last(field, 1)] ?? last(field, 1)]));
  const clashes = (field: string) => fields.some((other) => other !== field && short.get(other) === short.get(field));
  return new Map(fields.map((field) => [field, clashes(field) ? last(field, 2) : short.get(field)!]));
}

/** A value as it reads in a folder name: compact numbers (`1e-4`), and nothing but letters, digits, `.`, `_`, `+`, `-`. */
function nameValue(value: unknown): string {
  if (typeof value === 'number') return compactNumber(value);
  if (Array.isArray(value)) return value.map(nameValue).join('+');
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.replace(/[^A-Za-z0-9._+-]+/g, '_');
}

function compactNumber(x: number): string {
  const plain = String(x);
  if (Number.isInteger(x) || !Number.isFinite(x)) return plain;
  const exponential = x.toExponential().replace('e+', 'e');
  return exponential.length < plain.length ? exponential : plain;
}

// ---- helpers -------------------------------------------------------------------------------------

function valuesOfPoint(point: Assignment[]): Record<string, unknown> {
  return Object.fromEntries(point.map((a) => [a.field, a.value]));
}

function parameterPointer(field: string): string {
  return joinPointer('/sweep/parameters', field);
}

function valuePointer(field: string, index: number): string {
  return joinPointer(joinPointer(parameterPointer(field), 'values'), index);
}

function fieldPointer(field: string): string {
  return field.split('.').reduce<string>((pointer, segment) => joinPointer(pointer, segment), '');
}

function isWithin(pointer: string, ancestor: string): boolean {
  return pointer === ancestor || pointer.startsWith(`${ancestor}/`);
}

function isError(issue: ConfigIssue): boolean {
  return issue.severity === 'error';
}

function issueKey(issue: ConfigIssue): string {
  return `${issue.path}\0${issue.message}`;
}

/** Many points share one bad value: report it once. */
function unique(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.offset}\0${issueKey(issue)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function throwFirstError(issues: readonly ConfigIssue[], file: string): void {
  const first = issues.find(isError);
  if (first) throw new ConfigError(file, first.path, first.message, first.line);
}

function lerp(a: number, b: number, u: number): number {
  return a + (b - a) * u;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
