/**
 * Checks a schema-valid config against the world: files that must exist, and sizes that must fit
 * the model. Every finding carries the exact text range of the field to blame, so the editor can
 * underline it and the worker can refuse a run that would only fail minutes later.
 *
 * `JsonLocator` (pointer -> text range) lives here rather than in load.ts so that load.ts can use
 * it without the two modules importing each other.
 */
import {
  bertFieldsOf,
  familyDefaults,
  isSupportedModelType,
  unsupportedModelTypeError,
  usablePositions,
} from '../model/families';
import type { BertConfig } from '../model/bert-config';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseTree, type Node } from 'jsonc-parser';
import type {
  AnyResolvedConfig,
  MethodConfig,
  ModelConfig,
  ResolvedConfig,
  ResolvedPretrainConfig,
  ScratchModelConfig,
} from './types';

export interface ConfigIssue {
  /** JSON pointer of the field at fault, e.g. `/method/bottleneck`; `''` for the whole document. */
  path: string;
  message: string;
  severity: 'error' | 'warning';
  /** Range of the offending JSON node in the text (the key, for fields that should not be there). */
  offset: number;
  length: number;
  /** 1-based line of `offset`. */
  line: number;
  /** 'schema' covers syntax and schema problems (the editor's JSON support shows those too); 'semantic' the checks beyond it. */
  source?: 'schema' | 'semantic';
}

export interface TextRange {
  offset: number;
  length: number;
  line: number;
}

export interface IssueOptions {
  severity?: ConfigIssue['severity'];
  /** Pointer whose node is underlined; defaults to the issue's own path. */
  at?: string;
  /** Underline the property key instead of its value (used for fields that should not exist). */
  part?: 'key' | 'value';
}

/** Maps JSON pointers to ranges in one config text. Tolerates syntax errors (jsonc-parser recovers). */
export class JsonLocator {
  readonly root: Node | undefined;
  private readonly lineStarts: number[];

  constructor(readonly text: string) {
    this.root = parseTree(text, [], { allowTrailingComma: true });
    this.lineStarts = lineStartOffsets(text);
  }

  /** True when the field is written in the text, as opposed to filled in by a default. */
  has(pointer: string): boolean {
    return this.nodeAt(pointer).complete;
  }

  /**
   * Range of the node at `pointer`, or of its nearest ancestor in the text when the field itself
   * is absent (a missing or defaulted field is best blamed on the object that should hold it).
   */
  rangeOf(pointer: string, part: 'key' | 'value' = 'value'): TextRange {
    const { node } = this.nodeAt(pointer);
    if (!node) return { offset: 0, length: 0, line: 1 };
    const shown = this.underlinedNode(node, part);
    // A whole object or array would underline half the file; its opening bracket is enough.
    const length = shown.type === 'object' || shown.type === 'array' ? 1 : shown.length;
    return { offset: shown.offset, length, line: this.lineOf(shown.offset) };
  }

  issue(pointer: string, message: string, options: IssueOptions = {}): ConfigIssue {
    const range = this.rangeOf(options.at ?? pointer, options.part);
    return { path: pointer, message, severity: options.severity ?? 'error', ...range };
  }

  /** 1-based line of a character offset. */
  lineOf(offset: number): number {
    let low = 0;
    let high = this.lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.lineStarts[mid] <= offset) low = mid;
      else high = mid - 1;
    }
    return low + 1;
  }

  private nodeAt(pointer: string): { node: Node | undefined; complete: boolean } {
    let node = this.root;
    for (const segment of pointerSegments(pointer)) {
      const child = node && childNode(node, segment);
      if (!child) return { node, complete: false };
      node = child;
    }
    return { node, complete: node !== undefined };
  }

  private underlinedNode(node: Node, part: 'key' | 'value'): Node {
    const key = node.parent?.type === 'property' ? node.parent.children?.[0] : undefined;
    const isContainer = node.type === 'object' || node.type === 'array';
    return key && (part === 'key' || isContainer) ? key : node;
  }
}

export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export function joinPointer(base: string, segment: string | number): string {
  return `${base}/${String(segment).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

function childNode(node: Node, segment: string): Node | undefined {
  if (node.type === 'object') {
    // The last duplicate wins, as in jsonc-parser's `parse`.
    const property = node.children?.filter((p) => p.children?.[0]?.value === segment).pop();
    return property?.children?.[1];
  }
  if (node.type === 'array' && /^\d+$/.test(segment)) return node.children?.[Number(segment)];
  return undefined;
}

function lineStartOffsets(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  return starts;
}

// ---------------------------------------------------------------------------------------------
// Semantic checks

/** What is known about the encoder's architecture; any field may be unknown (e.g. hub models). */
interface ModelShape {
  hiddenSize?: number;
  heads?: number;
  layers?: number;
  maxPositions?: number;
  /** Where architecture problems are reported: the folder path or the scratch block. */
  pointers: { heads: string; maxPositions: string };
  /** How to name the architecture's source in messages, e.g. `config.json` or `model.scratch`. */
  source: string;
}

type CheckContext<C extends AnyResolvedConfig = ResolvedConfig> = { config: C; locator: JsonLocator };

/**
 * Problems a schema cannot see. `config` must come from `parseConfigText` (or `parseAnyConfigText`)
 * on the same `text` (absolute paths, defaults applied); `workspaceFolder` enables the
 * runs-outside-workspace warning.
 */
export function semanticIssues(config: AnyResolvedConfig, text: string, workspaceFolder?: string): ConfigIssue[] {
  if ('pretrain' in config) return pretrainSemanticIssues({ config, locator: new JsonLocator(text) }, workspaceFolder);
  const context: CheckContext = { config, locator: new JsonLocator(text) };
  const model = modelFindings(context);
  const issues = [
    ...model.issues,
    ...dataFileIssues(context),
    ...taskIssues(context),
    ...(model.shape ? shapeIssues(context, model.shape) : []),
    ...ignoredReductionFactorIssues(context),
    ...runsDirIssues(context, workspaceFolder),
  ];
  return issues.sort((a, b) => a.offset - b.offset);
}

// --- files -------------------------------------------------------------------------------------

function dataFileIssues({ config, locator }: CheckContext): ConfigIssue[] {
  const files = { train: config.data.train, validation: config.data.validation, test: config.data.test };
  return Object.entries(files).flatMap(([field, file]) => {
    if (file === undefined) return [];
    const problem = fileProblem(file);
    return problem ? [locator.issue(`/data/${field}`, problem)] : [];
  });
}

export function fileProblem(file: string): string | undefined {
  if (!fs.existsSync(file)) return `file not found: ${file}`;
  if (fs.statSync(file).isDirectory()) return `is a folder, not a file: ${file}`;
  return undefined;
}

function modelFindings(context: CheckContext<AnyResolvedConfig>): { issues: ConfigIssue[]; shape?: ModelShape } {
  const model: ModelConfig = context.config.model;
  if ('path' in model) return pathModelFindings(model.path, context.locator);
  if ('scratch' in model) return scratchModelFindings(model.scratch, context.locator);
  // A hub model is fetched at run time, so there is nothing on disk to check yet.
  return { issues: [] };
}

function pathModelFindings(folder: string, locator: JsonLocator): { issues: ConfigIssue[]; shape?: ModelShape } {
  const blame = (message: string): ConfigIssue => locator.issue('/model/path', message);
  if (!fs.existsSync(folder)) return { issues: [blame(`model folder not found: ${folder}`)] };
  if (!fs.statSync(folder).isDirectory()) return { issues: [blame(`is a file, not a model folder: ${folder}`)] };
  const problems = [weightsProblem(folder), tokenizerProblem(folder)].filter((p): p is string => p !== undefined);
  const architecture = readHuggingFaceConfig(folder);
  if (typeof architecture === 'string') problems.unshift(architecture);
  return { issues: problems.map(blame), shape: typeof architecture === 'string' ? undefined : architecture };
}

function weightsProblem(folder: string): string | undefined {
  if (['model.safetensors', 'model.safetensors.index.json'].some((name) => fs.existsSync(path.join(folder, name))))
    return undefined;
  if (fs.existsSync(path.join(folder, 'pytorch_model.bin'))) {
    // Pickled PyTorch weights cannot be read safely (or at all) from JavaScript.
    return (
      `${folder} has only pytorch_model.bin; convert it to model.safetensors, e.g. with ` +
      `python -c "from transformers import AutoModel; m = AutoModel.from_pretrained('${folder}'); ` +
      `m.save_pretrained('${folder}', safe_serialization=True)"`
    );
  }
  return `no model.safetensors in ${folder}`;
}

function tokenizerProblem(folder: string): string | undefined {
  const hasTokenizer = ['vocab.txt', 'tokenizer.json'].some((name) => fs.existsSync(path.join(folder, name)));
  return hasTokenizer ? undefined : `no vocab.txt or tokenizer.json in ${folder}`;
}

/** The architecture from a Hugging Face `config.json` of any family PEFT Lab reads, or a message saying why it cannot be read. */
function readHuggingFaceConfig(folder: string): ModelShape | string {
  const file = path.join(folder, 'config.json');
  if (!fs.existsSync(file)) return `no config.json in ${folder}`;
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    return `cannot read ${file}: ${(error as Error).message}`;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return `${file}: the model config must be a JSON object`;
  const raw = json as Record<string, unknown>;
  const modelType = raw.model_type ?? 'bert';
  if (!isSupportedModelType(modelType)) return unsupportedModelTypeError(file, raw.model_type).message;
  // DistilBERT names the same sizes dim, n_heads, n_layers; RoBERTa's first padding_idx + 1 positions hold no token
  const fields = { ...familyDefaults(modelType), ...bertFieldsOf(modelType, raw) } as Record<string, unknown>;
  const field = (name: string): number | undefined => {
    const value = fields[name];
    return typeof value === 'number' ? value : undefined;
  };
  const positions = field('max_position_embeddings');
  const padding = field('pad_token_id');
  const usable =
    positions === undefined || padding === undefined
      ? positions
      : usablePositions({
          ...(fields as unknown as BertConfig),
          model_type: modelType,
          max_position_embeddings: positions,
          pad_token_id: padding,
        });
  return {
    hiddenSize: field('hidden_size'),
    heads: field('num_attention_heads'),
    layers: field('num_hidden_layers'),
    maxPositions: usable,
    pointers: { heads: '/model/path', maxPositions: '/model/path' },
    source: file,
  };
}

function scratchModelFindings(
  scratch: ScratchModelConfig,
  locator: JsonLocator,
): { issues: ConfigIssue[]; shape: ModelShape } {
  const problem = fileProblem(scratch.vocab);
  return {
    issues: problem ? [locator.issue('/model/scratch/vocab', problem)] : [],
    shape: {
      hiddenSize: scratch.hiddenSize,
      heads: scratch.heads,
      layers: scratch.layers,
      maxPositions: scratch.maxPositions,
      pointers: { heads: '/model/scratch/heads', maxPositions: '/model/scratch/maxPositions' },
      source: 'model.scratch',
    },
  };
}

// --- task ----------------------------------------------------------------------------------------

const METRICS_BY_TASK = { classification: ['accuracy', 'f1', 'mcc'], regression: ['pearson', 'spearman'] } as const;

function taskIssues({ config, locator }: CheckContext): ConfigIssue[] {
  const { type, metric, labels } = config.task;
  const suitable: readonly string[] = METRICS_BY_TASK[type];
  const issues: ConfigIssue[] = [];
  if (!suitable.includes(metric)) {
    issues.push(
      locator.issue('/task/metric', `'${metric}' does not apply to ${type}; use one of ${suitable.join(', ')}`),
    );
  }
  if (type === 'regression' && labels) {
    issues.push(locator.issue('/task/labels', 'labels are ignored for regression', { severity: 'warning' }));
  }
  // 1 and "1" are one label: the data's labels are matched by their text
  const seen = new Set<string>();
  labels?.forEach((label, index) => {
    if (seen.has(String(label)))
      issues.push(
        locator.issue(
          `/task/labels/${index}`,
          `${JSON.stringify(label)} repeats an earlier label (a number and its text are the same label)`,
        ),
      );
    seen.add(String(label));
  });
  return issues;
}

// --- sizes ---------------------------------------------------------------------------------------

function shapeIssues(context: CheckContext, shape: ModelShape): ConfigIssue[] {
  return [
    ...headsIssues(context, shape),
    ...maxLengthIssues(context, shape, context.config.data.maxLength, '/data/maxLength'),
    ...methodSizeIssues(context, shape),
    ...leaveOutIssues(context, shape),
  ];
}

function headsIssues(
  { locator }: CheckContext<AnyResolvedConfig>,
  { hiddenSize, heads, pointers, source }: ModelShape,
): ConfigIssue[] {
  if (hiddenSize === undefined || heads === undefined || hiddenSize % heads === 0) return [];
  return [
    locator.issue(pointers.heads, `${source}: ${heads} attention heads do not divide the hidden size ${hiddenSize}`),
  ];
}

function maxLengthIssues(
  { locator }: CheckContext<AnyResolvedConfig>,
  { maxPositions, source }: ModelShape,
  maxLength: number,
  pointer: string,
): ConfigIssue[] {
  if (maxPositions === undefined || maxLength <= maxPositions) return [];
  return [locator.issue(pointer, `${maxLength} exceeds the model's ${maxPositions} position embeddings (${source})`)];
}

function methodSizeIssues({ config, locator }: CheckContext, { hiddenSize }: ModelShape): ConfigIssue[] {
  const method = config.method;
  if (hiddenSize === undefined) return [];
  if (method.type === 'lora') {
    if (method.rank < hiddenSize) return [];
    return [
      locator.issue('/method/rank', `rank ${method.rank} must be smaller than the model's hidden size ${hiddenSize}`),
    ];
  }
  if (!hasBottleneck(method)) return [];
  if (method.bottleneck !== undefined) {
    if (method.bottleneck < hiddenSize) return [];
    return [
      locator.issue(
        '/method/bottleneck',
        `bottleneck ${method.bottleneck} must be smaller than the model's hidden size ${hiddenSize}`,
      ),
    ];
  }
  const problem = reductionFactorProblem(method.reductionFactor, hiddenSize);
  return problem ? [locator.issue('/method/reductionFactor', problem)] : [];
}

function reductionFactorProblem(factor: number, hiddenSize: number): string | undefined {
  const bottleneck = Math.floor(hiddenSize / factor);
  if (bottleneck < 1) {
    return `reductionFactor ${factor} leaves no bottleneck for hidden size ${hiddenSize} (${hiddenSize} / ${factor} < 1); use at most ${hiddenSize}`;
  }
  if (bottleneck >= hiddenSize) {
    return `reductionFactor ${factor} gives a bottleneck as large as the hidden size ${hiddenSize}; use 2 or more`;
  }
  return undefined;
}

function leaveOutIssues({ config, locator }: CheckContext, { layers }: ModelShape): ConfigIssue[] {
  const method = config.method;
  if (layers === undefined || !('leaveOut' in method)) return [];
  const issues = method.leaveOut.flatMap((layer, index) =>
    layer < layers
      ? []
      : [
          locator.issue(
            `/method/leaveOut/${index}`,
            `layer ${layer} does not exist; the model has ${layers} layers (0-${layers - 1})`,
          ),
        ],
  );
  const leftOut = new Set(method.leaveOut.filter((layer) => layer < layers));
  if (leftOut.size === layers) {
    issues.push(
      locator.issue('/method/leaveOut', `every layer is left out, so nothing but the head would be trained`, {
        severity: 'warning',
      }),
    );
  }
  return issues;
}

function ignoredReductionFactorIssues({ config, locator }: CheckContext): ConfigIssue[] {
  const method = config.method;
  if (!hasBottleneck(method) || method.bottleneck === undefined || !locator.has('/method/reductionFactor')) return [];
  return [locator.issue('/method/reductionFactor', 'ignored because bottleneck is set', { severity: 'warning' })];
}

function hasBottleneck(method: MethodConfig): method is Extract<MethodConfig, { reductionFactor: number }> {
  return 'reductionFactor' in method;
}

// --- output --------------------------------------------------------------------------------------

function runsDirIssues(
  { config, locator }: CheckContext<AnyResolvedConfig>,
  workspaceFolder: string | undefined,
): ConfigIssue[] {
  if (workspaceFolder === undefined || isInside(config.output.runsDir, path.resolve(workspaceFolder))) return [];
  return [
    locator.issue(
      '/output/runsDir',
      `runs folder ${config.output.runsDir} is outside the workspace folder ${workspaceFolder}, so runs will not show in the explorer`,
      { severity: 'warning' },
    ),
  ];
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  const escapes = relative === '..' || relative.startsWith(`..${path.sep}`);
  return !escapes && !path.isAbsolute(relative);
}

// --- pretraining -----------------------------------------------------------------------------------

/** Written into every model folder `peft-lab pretrain` makes; marks a folder it may overwrite. */
export const PRETRAIN_CARD_FILE = 'peft-lab-pretrain.json';

function pretrainSemanticIssues(
  context: CheckContext<ResolvedPretrainConfig>,
  workspaceFolder: string | undefined,
): ConfigIssue[] {
  const { config } = context;
  const model = modelFindings(context);
  const shape = model.shape;
  const issues = [
    ...model.issues,
    ...corpusFileIssues(context),
    ...(shape
      ? [
          ...headsIssues(context, shape),
          ...maxLengthIssues(context, shape, config.pretrain.maxLength, '/pretrain/maxLength'),
        ]
      : []),
    ...maskShareIssues(context),
    ...modelDirIssues(context),
    ...runsDirIssues(context, workspaceFolder),
  ];
  return issues.sort((a, b) => a.offset - b.offset);
}

/** Every corpus and validation file must exist; a file listed twice, or trained on and held out, is a mistake. */
function corpusFileIssues({ config, locator }: CheckContext<ResolvedPretrainConfig>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const { corpus, validation = [] } = config.pretrain;
  const check = (files: string[], field: string, seen: Map<string, string>): void => {
    files.forEach((file, index) => {
      const pointer = `/pretrain/${field}/${index}`;
      const problem = fileProblem(file);
      const earlier = seen.get(file);
      if (problem) issues.push(locator.issue(pointer, problem));
      else if (earlier !== undefined) {
        const message =
          earlier.startsWith('/pretrain/corpus/') && field === 'validation'
            ? `${file} is also a corpus file (${earlier}): held-out text must not be trained on`
            : `${file} is listed twice (also at ${earlier})`;
        issues.push(locator.issue(pointer, message));
      }
      seen.set(file, pointer);
    });
  };
  const seen = new Map<string, string>();
  check(corpus, 'corpus', seen);
  check(validation, 'validation', seen);
  return issues;
}

function maskShareIssues({ config, locator }: CheckContext<ResolvedPretrainConfig>): ConfigIssue[] {
  const { replaceWithMask, replaceWithRandom } = config.pretrain;
  if (replaceWithMask + replaceWithRandom <= 1 + 1e-9) return [];
  return [
    locator.issue(
      '/pretrain/replaceWithRandom',
      `replaceWithMask ${replaceWithMask} + replaceWithRandom ${replaceWithRandom} exceed 1; they are shares of the selected tokens (the rest stay unchanged)`,
    ),
  ];
}

/** The model folder is overwritten at the end of the run, so it must not hold anything else. */
function modelDirIssues({ config, locator }: CheckContext<ResolvedPretrainConfig>): ConfigIssue[] {
  const dir = config.output.modelDir;
  if (dir === undefined || !fs.existsSync(dir)) return [];
  if (!fs.statSync(dir).isDirectory()) return [locator.issue('/output/modelDir', `is a file, not a folder: ${dir}`)];
  const entries = fs.readdirSync(dir);
  if (entries.length === 0 || entries.includes(PRETRAIN_CARD_FILE)) return [];
  return [
    locator.issue(
      '/output/modelDir',
      `${dir} already holds files that peft-lab pretrain did not write (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); choose an empty or new folder`,
    ),
  ];
}
