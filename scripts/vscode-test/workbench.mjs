/**
 * What a user does in the workbench, for the Playwright UI tests: open a file, run a command, find a
 * CodeLens, and start from a copy of the fixture workspace.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE_WORKSPACE } from './code-server.mjs';

export const UI_TIMEOUT = 30_000;

/** A copy of the fixture workspace (without its runs) under `dir`; returns its path. */
export function copyFixtureWorkspace(dir) {
  const folder = join(dir, 'workspace');
  cpSync(FIXTURE_WORKSPACE, folder, { recursive: true, filter: (src) => !src.includes(`${FIXTURE_WORKSPACE}/runs`) });
  return folder;
}

/** Quick Open (Ctrl+P) the file `name` and wait for its editor tab. */
export async function openFile(page, name) {
  const input = page.locator('.quick-input-widget input');
  await page.keyboard.press('Control+P');
  await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await input.fill(name);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: name }).first().waitFor({ timeout: UI_TIMEOUT });
  await page.keyboard.press('Enter');
  await page.locator('.editor-group-container.active .tab.active', { hasText: name }).waitFor({ timeout: UI_TIMEOUT });
}

/** Runs a command by its title from the command palette (F1). */
export async function runCommand(page, title) {
  const input = page.locator('.quick-input-widget input');
  await page.keyboard.press('F1');
  await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().waitFor({ timeout: UI_TIMEOUT });
  await page.keyboard.press('Enter');
}

/** The active editor's CodeLens whose text matches. */
export function codeLens(page, text) {
  return page.locator('.editor-group-container.active .monaco-editor .codelens-decoration a', { hasText: text }).first();
}
