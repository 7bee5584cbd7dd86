/** What every integration suite needs: the running extension's root object, and waiting for a condition. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { PeftLab } from '../../src/host/peft-lab';

export const EXTENSION_ID = 'peft-lab.peft-lab';

/** The extension's composition root (what `activate` returns), activating it if needed. */
export async function lab(): Promise<PeftLab> {
  const extension = vscode.extensions.getExtension<PeftLab>(EXTENSION_ID);
  assert.ok(extension, `${EXTENSION_ID} is installed`);
  return extension.isActive ? extension.exports : extension.activate();
}

/** Polls `get` every 100 ms until it returns something truthy, which it resolves with. */
export async function until<T>(get: () => T | undefined | false, what: string, ms = 30_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = get();
    if (value) return value;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
