/**
 * What the user says about a run: a display name (the folder keeps its own), a star and a note,
 * kept in the run folder in `annotations.json`, so they travel with the run and every window (and
 * the Runs watcher) sees them.
 *
 *   { "name": "lr sweep, best so far", "starred": true, "note": "bottleneck 16 beats 64 here" }
 *
 * The file is small and written atomically (temporary file + rename), so a reader never sees half
 * of it. A broken file never breaks a run: it reads as no annotations plus an error saying why, and
 * the next rename, star or note replaces it. Fields this version does not know are kept on update.
 * No `vscode` import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../core/checkpoint/atomic';

export const ANNOTATIONS_FILE = 'annotations.json';
/** Longer names do not fit a tree row or a table cell; longer notes belong in a file of their own. */
export const MAX_NAME_LENGTH = 200;
export const MAX_NOTE_LENGTH = 10_000;

export interface RunAnnotations {
  /** Display name; absent means the folder name. */
  readonly name?: string;
  readonly starred?: boolean;
  readonly note?: string;
}

export interface AnnotationsRead {
  readonly value: RunAnnotations;
  /** Why the file was not usable (it is then read as no annotations); absent when fine or missing. */
  readonly error?: string;
}

/** Checks a parsed annotations.json: unusable fields are dropped, and the first problem is reported. */
export function parseAnnotations(raw: unknown): AnnotationsRead {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return {
      value: {},
      error: `${ANNOTATIONS_FILE} is not a JSON object (found ${Array.isArray(raw) ? 'an array' : raw === null ? 'null' : typeof raw})`,
    };
  }
  const o = raw as Record<string, unknown>;
  const problems: string[] = [];
  const value: { name?: string; starred?: boolean; note?: string } = {};
  if (typeof o.name === 'string') value.name = o.name;
  else if (o.name !== undefined) problems.push('"name" is not a string');
  if (typeof o.starred === 'boolean') value.starred = o.starred;
  else if (o.starred !== undefined) problems.push('"starred" is not true or false');
  if (typeof o.note === 'string') value.note = o.note;
  else if (o.note !== undefined) problems.push('"note" is not a string');
  return problems.length
    ? { value: normalise(value), error: `${ANNOTATIONS_FILE}: ${problems.join('; ')} (ignored)` }
    : { value: normalise(value) };
}

/** Reads a run folder's annotations; never throws. A missing file is no annotations, without error. */
export function readAnnotations(runDir: string): AnnotationsRead {
  let text: string;
  try {
    text = fs.readFileSync(path.join(runDir, ANNOTATIONS_FILE), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? { value: {} }
      : { value: {}, error: `cannot read ${ANNOTATIONS_FILE} (${code ?? (err as Error).message})` };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return {
      value: {},
      error: `${ANNOTATIONS_FILE} is not valid JSON (${(err as Error).message}): the run's name, star and note are ignored until it is fixed, or replaced by the next rename, star or note`,
    };
  }
  return parseAnnotations(raw);
}

/**
 * Changes some annotations of a run and writes the file atomically; returns what was written.
 * `undefined` in `change` leaves a field as it is; an empty name or note removes it. A broken file
 * is replaced (the user has just said what the run's annotations are).
 */
export function updateAnnotations(runDir: string, change: RunAnnotations): RunAnnotations {
  if (!fs.existsSync(runDir)) throw new Error(`${runDir} does not exist`);
  const current = readRaw(runDir);
  const next: Record<string, unknown> = { ...current };
  if (change.name !== undefined) next.name = change.name;
  if (change.starred !== undefined) next.starred = change.starred;
  if (change.note !== undefined) next.note = change.note;
  const known = normalise(parseAnnotations(next).value);
  const out: Record<string, unknown> = { ...next, name: known.name, starred: known.starred, note: known.note };
  for (const key of ['name', 'starred', 'note']) if (out[key] === undefined) delete out[key];
  writeJsonAtomic(path.join(runDir, ANNOTATIONS_FILE), out);
  return known;
}

/** Trims, caps the lengths, and drops what says nothing (an empty name, an empty note, `starred: false`). */
function normalise(a: { name?: string; starred?: boolean; note?: string }): RunAnnotations {
  const name = a.name?.replace(/\s+/g, ' ').trim().slice(0, MAX_NAME_LENGTH);
  const note = a.note?.trim().slice(0, MAX_NOTE_LENGTH);
  return { ...(name ? { name } : {}), ...(a.starred ? { starred: true } : {}), ...(note ? { note } : {}) };
}

/** The file as an object, keeping fields this version does not know; {} when missing or broken. */
function readRaw(runDir: string): Record<string, unknown> {
  try {
    const raw: unknown = JSON.parse(
      fs.readFileSync(path.join(runDir, ANNOTATIONS_FILE), 'utf8').replace(/^\uFEFF/, ''),
    );
    return typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
