/** JSON as the tests read it back: of any shape, walked freely by the assertions (which fail where a field is missing). */
import { readJson } from './runs';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- assertions walk JSON of any shape
export type Json = Record<string, any>;

export function readJsonObject(file: string): Json {
  return readJson<Json>(file);
}

/** The CLI's `--json` output: one object per line. */
export function jsonLines(stdout: string): Json[] {
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Json);
}
