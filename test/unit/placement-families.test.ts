/**
 * The placement diagram's rows for each encoder family, from the placement.json the real engine
 * writes for the tiny fixtures: BERT's post-LN blocks for RoBERTa, XLM-R, DistilBERT and ELECTRA
 * (with their own embeddings), ModernBERT's pre-LN blocks with rotary attention, local and global
 * layers, GeGLU and no biases; and the placement.json of runs from before families still draws BERT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { tf } from '../../src/core/tf';
import { readBertFolder } from '../../src/core/model/hf-checkpoint';
import { PeftModel } from '../../src/core/model/peft-model';
import type { MethodConfig } from '../../src/core/config/types';
import type { Placement } from '../../src/protocol/worker';
import { checkPlacement } from '../../src/protocol/dashboard';
import { buildPlacementView } from '../../webview/model/placement';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const houlsby: MethodConfig = {
  type: 'houlsby',
  bottleneck: 4,
  reductionFactor: 16,
  activation: 'gelu',
  initStd: 1e-3,
  leaveOut: [],
  sites: ['attention', 'ffn'],
};

async function placementOf(family: string, method: MethodConfig = houlsby): Promise<Placement> {
  await tf.setBackend('cpu');
  const read = readBertFolder(path.join(FIXTURES, `tiny-${family}`));
  const weights = new Map(read.weights);
  const model = new PeftModel({
    bert: read.config,
    base: weights,
    method,
    task: 'classification',
    outputs: 2,
    seed: 0,
    dropout: 0,
  });
  const placement = JSON.parse(JSON.stringify(model.placement())) as Placement; // as placement.json is read
  model.dispose();
  return checkPlacement(placement) as unknown as Placement;
}

test('BERT-like families draw post-LN layers, Add & LayerNorm after each block, with their own embeddings', async () => {
  const expected: Record<string, { family: string; embeddings: RegExp }> = {
    roberta: { family: 'RoBERTa', embeddings: /position from padding_idx \+ 1/ },
    'xlm-roberta': { family: 'XLM-RoBERTa', embeddings: /position from padding_idx \+ 1/ },
    distilbert: { family: 'DistilBERT', embeddings: /^Embeddings \(token, position\) \+ LayerNorm$/ },
    electra: { family: 'ELECTRA', embeddings: /width 8 → projected to the hidden size/ },
  };
  for (const [family, e] of Object.entries(expected)) {
    const view = buildPlacementView(await placementOf(family));
    assert.equal(view.architecture.family, e.family);
    assert.equal(view.architecture.norm, 'post');
    assert.match(view.architecture.embeddingsText, e.embeddings);
    assert.match(view.architecture.summary, new RegExp(`^${e.family} · post-LayerNorm · GELU · absolute positions$`));
    for (const row of view.layers) {
      assert.equal(row.attention, 'global');
      for (const block of row.blocks) {
        assert.equal(block.preNorm, undefined);
        assert.equal(block.norm.id, 'add_norm');
        assert.ok(block.adapter, `${family} layer ${row.index} ${block.id} adapter`);
      }
    }
    assert.equal(view.architecture.finalNorm, false);
  }
});

test('ModernBERT draws pre-LN layers: a LayerNorm before each block (none before the first attention), a residual Add after, rotary local and global attention, GeGLU, no biases, a final norm', async () => {
  const view = buildPlacementView(await placementOf('modernbert'));
  const a = view.architecture;
  assert.deepEqual(
    [a.family, a.norm, a.feedForward, a.biases, a.positions, a.finalNorm],
    ['ModernBERT', 'pre', 'GeGLU', false, 'rotary', true],
  );
  assert.equal(
    a.summary,
    'ModernBERT · pre-LayerNorm · GeGLU · rotary positions · 2 global and 1 local attention layers (window 4) · no biases',
  );
  assert.equal(a.embeddingsText, 'Token embeddings + LayerNorm (no bias)');
  assert.equal(
    view.description,
    'A bottleneck adapter after the attention output projection and after the feed-forward block, before each residual Add.',
  );
  assert.deepEqual(
    view.layers.map((row) => row.attention),
    ['global', 'local', 'global'],
  );
  const [first, second] = view.layers;
  assert.equal(first!.blocks[0].preNorm, undefined, 'layer 0 has no attn_norm');
  assert.equal(first!.blocks[1].preNorm?.label, 'LayerNorm (no bias)');
  assert.equal(second!.blocks[0].preNorm?.id, 'pre_norm');
  assert.ok(second!.blocks[0].preNorm?.trains, 'adapter methods train the pre-norms');
  for (const row of view.layers) for (const block of row.blocks) assert.equal(block.norm.id, 'add');
  assert.equal(second!.blocks[0].label, 'Multi-head attention (local window)');
  const attention = second!.blocks[0].sublayers.find((s) => s.id === 'attention')!;
  assert.match(attention.label, /rotary Q, K, local: ±2 tokens/);
  const ffn = first!.blocks[1];
  assert.equal(ffn.label, 'Feed-forward, GeGLU');
  assert.deepEqual(
    ffn.sublayers.map((s) => [s.label, s.shape]),
    [
      ['Input ‖ gate, GeGLU', '16 × 64'],
      ['Output', '32 × 16'],
    ],
  );
});

test('LoRA on ModernBERT intermediate adapts the GeGLU input projection, twice the intermediate size wide', async () => {
  const view = buildPlacementView(
    await placementOf('modernbert', { type: 'lora', rank: 2, alpha: 4, targets: ['intermediate'], leaveOut: [] }),
  );
  const lora = view.layers[0]!.blocks[1].sublayers[0]!.lora!;
  assert.deepEqual(
    lora.weights.map((w) => [w.name, w.shape]),
    [
      ['A', [16, 2]],
      ['B', [2, 64]],
    ],
  );
});

test('a placement.json without an architecture (runs from before families) draws BERT', async () => {
  const old = await placementOf('roberta');
  delete (old as { architecture?: unknown }).architecture;
  const view = buildPlacementView(old);
  assert.equal(view.architecture.family, 'BERT');
  assert.equal(view.architecture.embeddingsText, 'Embeddings (token, position, type) + LayerNorm');
  assert.equal(view.layers[0]!.blocks[0].norm.label, 'Add & LayerNorm');
});

test('a malformed architecture in placement.json is refused with its path', () => {
  assert.throws(
    () => checkPlacement({ method: 'houlsby', architecture: { modelType: 'x', family: 'X', norm: 'middle' } }),
    /placement\.architecture\.norm/,
  );
});
