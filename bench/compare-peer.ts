/**
 * PEFT Lab against the PyTorch peer (../shared/bench/peer_torch.py) on the same shapes, each run in
 * its own process, alternating engine and peer so that both see the same machine load:
 *
 *   node --import tsx bench/compare-peer.ts [--rounds 2] [--steps 10] [--shapes 128x32,64x8]
 *        [--methods houlsby,adamix,full,mlm] [--layers 4] [--hidden 256] [--heads 4] [--intermediate 1024] [--vocab 30522]
 *        [--work peer|trainer] [--last-layer cls|all] [--native on|off] [--threads N] [--peer PATH] [--python PATH]
 *
 * For each shape and method: `rounds` times (engine run, peer run). The engine is
 * bench/train-throughput.ts (wasm backend; with the native OpenBLAS kernels when the addon is built),
 * the peer is peer_torch.py with its best setting (--threads 1) under Debian's /usr/bin/python3.
 * Prints one JSON line per run, then a summary line with each side's best examples/s (the least
 * contended run), every run, and ratio = engine / peer. Installs nothing: a missing interpreter,
 * torch or peer script is reported in the JSON and the exit code is 1.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { positiveInteger, readFlags } from './args';

const REPO = path.resolve(__dirname, '..');
const METHODS = ['houlsby', 'adamix', 'full', 'mlm'] as const;
/** The encoder shape flags, passed on to both sides unchanged. */
const SHAPE_FLAGS = ['layers', 'hidden', 'heads', 'intermediate', 'vocab'] as const;
type Method = (typeof METHODS)[number];

interface Options {
  rounds: number;
  /** The encoder's shape flags given (--layers ... --vocab), each as a [flag, value] pair for both sides. */
  shape: [string, string][];
  steps: number;
  shapes: { seq: number; batch: number }[];
  methods: Method[];
  native: 'on' | 'off';
  /**
   * peer: the engine does the peer's work (no dropout, no gradient clipping: peer_torch.py has
   * neither); trainer: the engine's step as the Trainer runs it (dropout 0.1, clipping at norm 1).
   */
  work: 'peer' | 'trainer';
  /**
   * cls: the engine's last layer computes the [CLS] rows alone, as its training does; all: every
   * token's, the same multiply-adds as the peer (Hugging Face's model computes every row).
   */
  lastLayer: 'cls' | 'all';
  threads?: number;
  peer: string;
  python: string;
}

interface Run {
  side: 'engine' | 'peer';
  method: Method;
  seq: number;
  batch: number;
  round: number;
  ms_per_step?: number;
  examples_per_sec?: number;
  peak_rss_mib?: number;
  backend?: string;
  loadavg_1min_before: number;
  error?: string;
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: node --import tsx bench/compare-peer.ts [--rounds N] [--steps N] [--shapes 128x32,64x8] [--methods houlsby,adamix,full,mlm] [--layers N] [--hidden N] [--heads N] [--intermediate N] [--vocab N] [--work peer|trainer] [--last-layer cls|all] [--native on|off] [--threads N] [--peer PATH] [--python PATH]\n`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const flags = readFlags(
    argv,
    {
      rounds: { type: 'string' },
      steps: { type: 'string' },
      shapes: { type: 'string' },
      methods: { type: 'string' },
      layers: { type: 'string' },
      hidden: { type: 'string' },
      heads: { type: 'string' },
      intermediate: { type: 'string' },
      vocab: { type: 'string' },
      native: { type: 'string' },
      work: { type: 'string' },
      'last-layer': { type: 'string' },
      threads: { type: 'string' },
      peer: { type: 'string' },
      python: { type: 'string' },
    },
    usage,
    'compare-peer: PEFT Lab against the PyTorch peer, alternating, each run in its own process',
  );
  const o: Options = {
    rounds: 2,
    shape: [],
    steps: 10,
    shapes: [
      { seq: 128, batch: 32 },
      { seq: 64, batch: 8 },
    ],
    methods: [...METHODS],
    native: 'on',
    work: 'peer',
    lastLayer: 'cls',
    peer: path.resolve(REPO, '..', 'shared', 'bench', 'peer_torch.py'),
    python: '/usr/bin/python3',
  };
  if (flags.rounds !== undefined) o.rounds = positiveInteger('--rounds', flags.rounds, usage);
  for (const name of SHAPE_FLAGS) {
    const value = flags[name];
    if (value !== undefined) o.shape.push([`--${name}`, String(positiveInteger(`--${name}`, value, usage))]);
  }
  if (flags.steps !== undefined) o.steps = positiveInteger('--steps', flags.steps, usage);
  if (flags.shapes !== undefined) {
    o.shapes = flags.shapes.split(',').map((s) => {
      const m = /^(\d+)x(\d+)$/.exec(s.trim());
      if (!m) usage(`--shapes takes SEQxBATCH,... got '${s}'`);
      return { seq: Number(m[1]), batch: Number(m[2]) };
    });
  }
  if (flags.methods !== undefined) {
    o.methods = flags.methods.split(',').map((m) => {
      if (!(METHODS as readonly string[]).includes(m)) usage(`unknown method '${m}'`);
      return m as Method;
    });
  }
  if (flags.native !== undefined) {
    if (flags.native !== 'on' && flags.native !== 'off') usage(`--native must be on or off, got '${flags.native}'`);
    o.native = flags.native;
  }
  if (flags.work !== undefined) {
    if (flags.work !== 'peer' && flags.work !== 'trainer') usage(`--work must be peer or trainer, got '${flags.work}'`);
    o.work = flags.work;
  }
  const lastLayer = flags['last-layer'];
  if (lastLayer !== undefined) {
    if (lastLayer !== 'cls' && lastLayer !== 'all') usage(`--last-layer must be cls or all, got '${lastLayer}'`);
    o.lastLayer = lastLayer;
  }
  if (flags.threads !== undefined) o.threads = positiveInteger('--threads', flags.threads, usage);
  if (flags.peer !== undefined) o.peer = path.resolve(flags.peer);
  if (flags.python !== undefined) o.python = flags.python;
  return o;
}

/** What the comparison needs and does not have, in words; [] when all is there. */
function missing(o: Options): string[] {
  const out: string[] = [];
  if (!fs.existsSync(o.peer)) out.push(`the peer script ${o.peer} (pass --peer PATH)`);
  if (!fs.existsSync(o.python)) {
    out.push(`the Python interpreter ${o.python} (Debian: apt-get install python3 python3-torch)`);
  } else {
    const probe = spawnSync(o.python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (probe.status !== 0)
      out.push(
        `PyTorch for ${o.python} (Debian: apt-get install python3-torch): ${(probe.stderr || '').trim().split('\n').pop()}`,
      );
  }
  return out;
}

/** Runs a command; resolves with the last JSON line of its stdout (or an error). */
function runJson(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ json?: Record<string, unknown>; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (out += c));
    child.stderr.on('data', (c: string) => (err += c));
    child.on('error', (e) => resolve({ error: e.message }));
    child.on('close', (code, signal) => {
      const lines = out.split('\n').filter((l) => l.startsWith('{'));
      if (code !== 0 || lines.length === 0) {
        resolve({ error: `exited with ${signal ?? `code ${code}`}: ${err.trim().split('\n').slice(-3).join(' | ')}` });
        return;
      }
      try {
        resolve({ json: JSON.parse(lines[0]!) as Record<string, unknown> });
      } catch (e) {
        resolve({ error: `unreadable output: ${String(e)}` });
      }
    });
  });
}

async function engineRun(o: Options, method: Method, seq: number, batch: number): Promise<Partial<Run>> {
  const args = [
    '--import',
    'tsx',
    path.join(REPO, 'bench', 'train-throughput.ts'),
    '--method',
    method,
    '--seq',
    String(seq),
    '--batch',
    String(batch),
    '--steps',
    String(o.steps),
    '--native',
    o.native,
    '--last-layer',
    o.lastLayer,
    ...o.shape.flat(),
  ];
  if (o.threads !== undefined) args.push('--threads', String(o.threads));
  if (o.work === 'peer') args.push('--dropout', '0', '--clip', 'off');
  const { json, error } = await runJson(process.execPath, args, { ...process.env, PEFT_LAB_BACKEND: '' });
  if (!json) return { error };
  return {
    ms_per_step: json.ms_per_step as number,
    examples_per_sec: json.examples_per_sec as number,
    peak_rss_mib: json.peak_rss_mib as number,
    backend: json.backend as string,
  };
}

async function peerRun(o: Options, method: Method, seq: number, batch: number): Promise<Partial<Run>> {
  const args = [
    o.peer,
    '--method',
    method,
    '--seq',
    String(seq),
    '--batch',
    String(batch),
    '--steps',
    String(o.steps),
    '--threads',
    '1',
    ...o.shape.flat(),
  ];
  const { json, error } = await runJson(o.python, args, process.env);
  if (!json) return { error };
  return {
    ms_per_step: json.ms_per_step as number,
    examples_per_sec: json.examples_per_sec as number,
    peak_rss_mib: json.peak_rss_mib as number,
    backend: json.peer as string,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function best(runs: Run[]): Run | undefined {
  return runs
    .filter((r) => r.examples_per_sec !== undefined)
    .sort((a, b) => b.examples_per_sec! - a.examples_per_sec!)[0];
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const machine = {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
  };
  const lacking = missing(o);
  if (lacking.length > 0) {
    process.stdout.write(`${JSON.stringify({ bench: 'compare-peer', error: 'missing', missing: lacking, machine })}\n`);
    process.exitCode = 1;
    return;
  }
  const runs: Run[] = [];
  for (const { seq, batch } of o.shapes) {
    for (const method of o.methods) {
      for (let r = 1; r <= o.rounds; r++) {
        for (const side of ['engine', 'peer'] as const) {
          const loadavg = round(os.loadavg()[0]!, 2);
          const result =
            side === 'engine' ? await engineRun(o, method, seq, batch) : await peerRun(o, method, seq, batch);
          const run: Run = { side, method, seq, batch, round: r, ...result, loadavg_1min_before: loadavg };
          runs.push(run);
          process.stdout.write(`${JSON.stringify({ bench: 'compare-peer', ...run })}\n`);
        }
      }
    }
  }
  const results = o.shapes.flatMap(({ seq, batch }) =>
    o.methods.map((method) => {
      const of = (side: Run['side']) =>
        runs.filter((r) => r.side === side && r.method === method && r.seq === seq && r.batch === batch);
      const summary = (side: Run['side']) => {
        const all = of(side);
        const b = best(all);
        return {
          examples_per_sec: b?.examples_per_sec ?? null,
          ms_per_step: b?.ms_per_step ?? null,
          peak_rss_mib: b?.peak_rss_mib ?? null,
          median_examples_per_sec: median(
            all.map((r) => r.examples_per_sec).filter((v): v is number => v !== undefined),
          ),
          runs_examples_per_sec: all.map((r) => r.examples_per_sec ?? null),
          ...(b?.backend ? { backend: b.backend } : {}),
          ...(all.some((r) => r.error) ? { errors: all.filter((r) => r.error).map((r) => r.error) } : {}),
        };
      };
      const engine = summary('engine');
      const peer = summary('peer');
      const ratio =
        engine.examples_per_sec && peer.examples_per_sec
          ? round(engine.examples_per_sec / peer.examples_per_sec, 3)
          : null;
      const ratioOfMedians =
        engine.median_examples_per_sec && peer.median_examples_per_sec
          ? round(engine.median_examples_per_sec / peer.median_examples_per_sec, 3)
          : null;
      return { method, seq, batch, engine, peer, ratio, ratio_of_medians: ratioOfMedians };
    }),
  );
  process.stdout.write(
    `${JSON.stringify({ bench: 'compare-peer', machine, shape: Object.fromEntries(o.shape), work: o.work, last_layer: o.lastLayer, steps: o.steps, rounds: o.rounds, results, loadavg_after: os.loadavg().map((x) => round(x, 2)) })}\n`,
  );
  if (runs.some((r) => r.error)) process.exitCode = 1;
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : round((sorted[mid - 1]! + sorted[mid]!) / 2, 2);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
