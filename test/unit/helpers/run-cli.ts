/** Runs the `peft-lab` CLI as a real process from its TypeScript source through tsx, so tests never depend on a stale `dist/` build. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const REPO = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(REPO, 'src', 'cli', 'main.ts');
// An absolute URL: a bare `--import tsx` would be resolved from the child's cwd, a temp folder.
const TSX = pathToFileURL(require.resolve('tsx')).href;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Called with all stdout so far after each chunk, e.g. to interrupt the run at some point. */
  onStdout?: (stdout: string, child: ChildProcess) => void;
}

/** Runs the CLI with `cwd` as its working folder and without the env vars that change its output. */
export function runCli(
  args: string[],
  cwd: string,
  { timeoutMs = 60_000, onStdout }: RunOptions = {},
): Promise<CliResult> {
  const env = { ...process.env };
  delete env.PEFT_LAB_DEBUG;
  delete env.PEFT_LAB_BACKEND;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`peft-lab ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
