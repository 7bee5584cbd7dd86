/**
 * The checks the message parsers of every webview contract are built from (dashboard.ts,
 * experiments.ts). Each takes the value and its path in the message, returns the value typed, or
 * throws Invalid naming the path, what was expected and what came; `attempt` turns that into a
 * Parsed result, so a malformed message is reported and ignored, never half-applied.
 *
 * This folder imports nothing outside itself.
 */

/** A parsed message, or why it is malformed (the first problem found, with its path). */
export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/** A malformed message; any other error thrown while parsing is a bug and propagates. */
export class Invalid extends Error {}

export function fail(path: string, expected: string, got: unknown): never {
  const shown = got === null ? 'null' : Array.isArray(got) ? 'an array' : typeof got;
  throw new Invalid(`${path}: expected ${expected}, got ${shown}`);
}

export function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'an object', v);
  return v as Record<string, unknown>;
}

export function str(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, 'a string', v);
  return v;
}

export function optStr(v: unknown, path: string): string | undefined {
  return v === undefined ? undefined : str(v, path);
}

export function num(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(path, 'a finite number', v);
  return v;
}

export function optNum(v: unknown, path: string): number | undefined {
  return v === undefined ? undefined : num(v, path);
}

export function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, 'a boolean', v);
  return v;
}

export function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, 'an array', v);
  return v;
}

export function strings(v: unknown, path: string): string[] {
  return arr(v, path).map((s, i) => str(s, `${path}[${i}]`));
}

export function numbers(v: unknown, path: string): number[] {
  const a = arr(v, path);
  for (let i = 0; i < a.length; i++) num(a[i], `${path}[${i}]`);
  return a as number[];
}

export function oneOf<T extends string>(v: unknown, set: ReadonlySet<string>, path: string): T {
  if (typeof v !== 'string' || !set.has(v)) fail(path, `one of ${[...set].join(', ')}`, v);
  return v as T;
}

/** Runs a parser built from the checks above: its value, or the Invalid it threw as the error. */
export function attempt<T>(check: () => T): Parsed<T> {
  try {
    return { ok: true, value: check() };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, error: err.message };
    throw err;
  }
}
