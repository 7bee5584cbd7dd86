/**
 * Where a run may write: never into the system's own folders, and by default only inside the folder
 * tree of its config file or of the current folder (`"runsDir": "../../.."` is more likely a slip
 * than a plan; `examples/x.peft.json` writing to `runs/` beside `examples/`, run from the project
 * folder, is the layout this repository itself uses). The editor warns about the workspace in
 * semantic.ts; the CLI refuses, and `--allow-outside` lifts the second rule.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnyResolvedConfig } from './types';
import { ConfigError } from '../errors';

/** Folders (and everything under them) no run writes into; `/` itself too. */
const SYSTEM_FOLDERS = [
  '/etc',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/boot',
  '/dev',
  '/proc',
  '/sys',
  '/run',
  '/var/lib',
  '/var/run',
  '/System',
  '/Library',
  '/private/etc',
];
const WINDOWS_SYSTEM_FOLDERS = [/^[a-z]:\\windows(\\|$)/i, /^[a-z]:\\program files( \(x86\))?(\\|$)/i];

/** The output fields a config of either kind has, with the JSON pointer of each. */
function outputFolders(config: AnyResolvedConfig): { pointer: string; dir: string }[] {
  const out = [{ pointer: '/output/runsDir', dir: config.output.runsDir }];
  if ('modelDir' in config.output && typeof config.output.modelDir === 'string')
    out.push({ pointer: '/output/modelDir', dir: config.output.modelDir });
  return out;
}

/**
 * Throws a ConfigError for an output folder in a system folder, or outside both the config's folder
 * tree and `cwd`'s (unless `allowOutside`).
 */
export function checkOutputLocation(
  config: AnyResolvedConfig,
  options: { allowOutside?: boolean; cwd?: string } = {},
): void {
  const home = realFolder(path.dirname(path.resolve(config.sourceFile)));
  const cwd = realFolder(path.resolve(options.cwd ?? process.cwd()));
  for (const { pointer, dir } of outputFolders(config)) {
    const real = realFolder(path.resolve(dir));
    const system = systemFolderOf(real);
    if (system !== undefined) {
      throw new ConfigError(
        config.sourceFile,
        pointer,
        `${dir} is ${system === '/' ? 'the root folder' : `inside the system folder ${system}`}: runs are never written there; choose a folder of your own (e.g. "runs")`,
      );
    }
    // the root as the current folder would allow anything
    const insideCwd = cwd !== path.parse(cwd).root && isInside(real, cwd);
    if (!options.allowOutside && !isInside(real, home) && !insideCwd) {
      throw new ConfigError(
        config.sourceFile,
        pointer,
        `${dir} is outside the config's folder ${home} and the current folder ${cwd}; pass --allow-outside to write there anyway`,
      );
    }
  }
}

/** The system folder `dir` lies in (`/` for the root itself), or undefined. */
export function systemFolderOf(dir: string): string | undefined {
  if (process.platform === 'win32') return WINDOWS_SYSTEM_FOLDERS.some((re) => re.test(dir)) ? dir : undefined;
  if (dir === '/') return '/';
  return SYSTEM_FOLDERS.find((system) => isInside(dir, system));
}

function isInside(dir: string, folder: string): boolean {
  const relative = path.relative(folder, dir);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/** The folder with symbolic links resolved as far as it exists (a runs folder is often made later). */
function realFolder(dir: string): string {
  let existing = dir;
  const rest: string[] = [];
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing) {
    rest.unshift(path.basename(existing));
    existing = path.dirname(existing);
  }
  try {
    return path.join(fs.realpathSync(existing), ...rest);
  } catch {
    return dir;
  }
}
