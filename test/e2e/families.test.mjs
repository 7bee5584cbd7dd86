/**
 * Encoder families in a real VS Code 1.100 workbench, PEFT Lab installed from its VSIX: a config
 * whose model is a (tiny) RoBERTa checkpoint in Hugging Face's folder layout, with its byte-level
 * BPE tokenizer.json, trains from the Train lens; its dashboard draws RoBERTa's post-LN layers and
 * embeddings. A ModernBERT run (trained with the CLI before the editor starts) draws its pre-LN
 * layers: a LayerNorm before each block, rotary local and global attention, GeGLU, no biases.
 * Screenshots: .test-artifacts/families-*.png.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, screenshot, writeUserSettings } from '../../scripts/vscode-test/code-server.mjs';
import {
  ExtensionUiTest,
  UI_TIMEOUT,
  codeLens,
  copyFixtureWorkspace,
  openFile,
  webviewContent,
} from '../../scripts/vscode-test/workbench.mjs';

const TRAIN_TIMEOUT = 180_000;

/** The fixture workspace with the tiny RoBERTa and ModernBERT folders and a config for each. */
function workspaceCopy(dir) {
  const folder = copyFixtureWorkspace(dir);
  const tiny = JSON.parse(readFileSync(join(folder, 'tiny.peft.json'), 'utf8'));
  for (const family of ['roberta', 'modernbert']) {
    cpSync(join(REPO_ROOT, 'test', 'fixtures', `tiny-${family}`), join(folder, `tiny-${family}`), { recursive: true });
    const config = {
      ...tiny,
      name: family,
      model: { path: `tiny-${family}` },
      data: { ...tiny.data, maxLength: 16 },
      method: { type: 'houlsby', bottleneck: 4 },
      training: { ...tiny.training, epochs: 3, batchSize: 8 },
    };
    writeFileSync(join(folder, `${family}.peft.json`), `${JSON.stringify(config, null, 2)}\n`);
  }
  const cli = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'cli.js'), 'train', 'modernbert.peft.json'], {
    cwd: folder,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(cli.status, 0, `training modernbert.peft.json failed:\n${cli.stdout}\n${cli.stderr}`);
  return folder;
}

async function openDashboard(page, config) {
  await openFile(page, config);
  const open = codeLens(page, 'Open dashboard');
  await open.waitFor({ timeout: 60_000 });
  await open.click();
  const view = webviewContent(page);
  await view.locator('body[data-ready="true"]').waitFor({ timeout: 60_000 });
  return view;
}

test(
  'VS Code UI: a RoBERTa checkpoint trains from the Train lens and its dashboard draws RoBERTa; a ModernBERT run draws pre-LN layers',
  { timeout: 600_000 },
  async () => {
    const ui = new ExtensionUiTest('ui-families', 'peft-lab-families-test.vsix');
    const folder = workspaceCopy(ui.dir);
    writeUserSettings(ui.userDataDir, { 'workbench.colorTheme': 'Default Dark Modern' });
    await ui.run({ folder, file: 'roberta.peft.json', failureShot: 'families-failure.png' }, async (page) => {
      // ---- RoBERTa, trained from the lens ------------------------------------------------------------
      await openFile(page, 'roberta.peft.json');
      const train = codeLens(page, 'Train');
      await train.waitFor({ timeout: 60_000 });
      assert.match(await train.innerText(), /^\s*Train\s*$/, 'the editor finds nothing wrong with a RoBERTa folder');
      await train.click();
      await page
        .locator('.notifications-toasts', { hasText: /roberta\.peft\.json finished; best accuracy/ })
        .waitFor({ timeout: TRAIN_TIMEOUT });
      const [run] = readdirSync(join(folder, 'runs')).filter((d) => d.startsWith('roberta-'));
      const placement = JSON.parse(readFileSync(join(folder, 'runs', run, 'placement.json'), 'utf8'));
      assert.equal(placement.architecture.modelType, 'roberta');

      let view = await openDashboard(page, 'roberta.peft.json');
      await view.locator('.run-title h1', { hasText: run }).waitFor({ timeout: UI_TIMEOUT });
      await view.locator('[data-section="placement"]').evaluate((el) => el.scrollIntoView({ block: 'start' }));
      assert.equal(await view.locator('.placement[data-family="roberta"][data-norm="post"]').count(), 1);
      assert.equal(
        await view.locator('.model-architecture').innerText(),
        'RoBERTa · post-LayerNorm · GELU · absolute positions',
      );
      assert.match(await view.locator('[data-part="embeddings"]').innerText(), /position from padding_idx \+ 1/);
      assert.equal(await view.locator('.layer-row[data-layer]').count(), 2);
      assert.equal(
        await view.locator('.adapter[data-kind="bottleneck"]').count(),
        4,
        'Houlsby: both sites of both layers',
      );
      assert.equal(await view.locator('[data-sublayer="add_norm"]').count(), 4, 'Add & LayerNorm after every block');
      assert.equal(await view.locator('[data-sublayer="pre_norm"]').count(), 0);
      assert.equal(Number(await view.locator('.total-number').getAttribute('data-total')), placement.trainableParams);
      await screenshot(page, 'families-roberta-placement.png');

      // ---- ModernBERT, trained from the command line ---------------------------------------------------
      view = await openDashboard(page, 'modernbert.peft.json');
      await view.locator('.placement[data-family="modernbert"][data-norm="pre"]').waitFor({ timeout: UI_TIMEOUT });
      await view.locator('[data-section="placement"]').evaluate((el) => el.scrollIntoView({ block: 'start' }));
      assert.equal(
        await view.locator('.model-architecture').innerText(),
        'ModernBERT · pre-LayerNorm · GeGLU · rotary positions · 2 global and 1 local attention layers (window 4) · no biases',
      );
      assert.deepEqual(
        await view
          .locator('.layer-row[data-layer]')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-attention'))),
        ['global', 'local', 'global'],
      );
      assert.equal(
        await view.locator('[data-sublayer="pre_norm"]').count(),
        5,
        'a LayerNorm before each block, none before the first attention',
      );
      assert.equal(await view.locator('[data-sublayer="add"]').count(), 6, 'a residual Add after each block');
      assert.equal(await view.locator('[data-part="final-norm"]').count(), 1);
      assert.match(
        await view.locator('.layer-row[data-layer="1"] [data-block="ffn"] .block-title').innerText(),
        /Feed-forward, GeGLU/,
      );
      assert.match(
        await view.locator('.layer-row[data-layer="1"] [data-sublayer="attention"]').innerText(),
        /Attention/,
      );
      assert.match(
        await view.locator('.layer-row[data-layer="1"] [data-sublayer="attention"]').getAttribute('title'),
        /rotary Q, K, local: ±2 tokens/,
      );
      await screenshot(page, 'families-modernbert-placement.png');
    });
  },
);
