/** The training worker as the extension runs it: forked from its TypeScript source through tsx, spoken to over IPC. */
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { HostRequest, WorkerMessage } from '../../../src/protocol/worker';
import { isWorkerMessage } from '../../../src/protocol/worker';

const REPO = path.resolve(__dirname, '..', '..', '..');
const WORKER = path.join(REPO, 'src', 'worker', 'worker.ts');
// An absolute URL: a bare `--import tsx` would be resolved from the child's cwd.
const TSX = pathToFileURL(require.resolve('tsx')).href;
export const TIMEOUT_MS = 180_000;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A forked worker with everything it said recorded. */
export class WorkerUnderTest {
  readonly messages: WorkerMessage[] = [];
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;
  private readonly waiters: { predicate: (m: WorkerMessage) => boolean; resolve: (m: WorkerMessage) => void }[] = [];

  constructor(cwd: string) {
    const env = { ...process.env };
    delete env.PEFT_LAB_BACKEND;
    this.child = fork(WORKER, [], { cwd, env, execArgv: ['--import', TSX], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.child.stdout!.resume();
    this.child.on('message', (message: unknown) => this.onMessage(message));
    this.exited = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`worker did not exit within ${TIMEOUT_MS} ms; stderr:\n${this.stderr}`));
      }, TIMEOUT_MS);
      this.child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  }

  send(request: HostRequest | Record<string, unknown>): void {
    this.child.send(request);
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  disconnect(): void {
    this.child.disconnect();
  }

  /** Resolves with the first message (already received or still to come) that matches. */
  next<T extends WorkerMessage>(predicate: (m: WorkerMessage) => m is T): Promise<T> {
    const seen = this.messages.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.waiters.push({ predicate, resolve: (m) => resolve(m as T) });
      void this.exited.then(() =>
        reject(
          new Error(
            `worker exited before the expected message; got ${this.types().join(', ')}; stderr:\n${this.stderr}`,
          ),
        ),
      );
    });
  }

  types(): string[] {
    return this.messages.map((m) => m.type);
  }

  ofType<K extends WorkerMessage['type']>(type: K): Extract<WorkerMessage, { type: K }>[] {
    return this.messages.filter((m): m is Extract<WorkerMessage, { type: K }> => m.type === type);
  }

  private onMessage(message: unknown): void {
    assert.ok(isWorkerMessage(message), `not a WorkerMessage: ${JSON.stringify(message)}`);
    this.messages.push(message);
    for (const waiter of this.waiters.filter((w) => w.predicate(message))) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(message);
    }
  }
}

export const isType =
  <K extends WorkerMessage['type']>(type: K) =>
  (m: WorkerMessage): m is Extract<WorkerMessage, { type: K }> =>
    m.type === type;
