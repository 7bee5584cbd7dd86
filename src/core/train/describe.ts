/** Human-readable summaries for `peft-lab inspect`: a config, a run folder or a checkpoint folder. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isPretrainConfig, loadAnyConfig } from '../config/load';
import { RunFolder, readCheckpoint, runDirOfCheckpoint, type RunStatus } from '../checkpoint/run-folder';
import { describeHolder, runActivity } from '../checkpoint/run-lock';
import { readJsonFile } from '../checkpoint/atomic';
import type { Placement } from '../../protocol/worker';
import { formatCount, formatMetrics, formatPercent } from '../../protocol/format';
import { CheckpointError } from '../errors';

export function describeRun(target: string): string {
  if (!fs.existsSync(target)) throw new CheckpointError(target, 'does not exist');
  if (fs.statSync(target).isFile()) return describeConfig(target);
  if (fs.existsSync(path.join(target, 'checkpoint.json'))) return describeCheckpoint(target);
  return describeRunFolder(target);
}

function describeConfig(file: string): string {
  const c = loadAnyConfig(file, { semantic: false });
  const model = 'path' in c.model ? c.model.path : 'hub' in c.model ? `${c.model.hub} (hub)` : 'random init (scratch)';
  if (isPretrainConfig(c)) {
    const p = c.pretrain;
    return [
      `pretraining config ${file}`,
      `  name      ${c.name}`,
      `  model     ${model}`,
      `  corpus    ${p.corpus.join(', ')}${p.validation ? `; held out ${p.validation.join(', ')}` : `; ${p.validationSplit} of the documents held out`}`,
      `  masking   ${p.maskProbability} of the tokens, ${p.replaceWithMask} [MASK] / ${p.replaceWithRandom} random; sequences of ${p.maxLength}`,
      `  training  ${c.training.maxSteps !== undefined ? `${c.training.maxSteps} steps` : `${c.training.epochs} epochs`}, batch ${c.training.batchSize}, lr ${c.training.learningRate}, seed ${c.training.seed}`,
      `  runs      ${c.output.runsDir}`,
      `  model dir ${c.output.modelDir ?? '<run folder>/model'}`,
    ].join('\n');
  }
  return [
    `config ${file}`,
    `  name      ${c.name}`,
    `  model     ${model}`,
    `  task      ${c.task.type}, metric ${c.task.metric}`,
    `  method    ${JSON.stringify(c.method)}`,
    `  data      train ${c.data.train}${c.data.validation ? `, validation ${c.data.validation}` : ''}${c.data.test ? `, test ${c.data.test}` : ''}`,
    `  training  ${c.training.epochs} epochs, batch ${c.training.batchSize}, lr ${c.training.learningRate}, seed ${c.training.seed}`,
    `  runs      ${c.output.runsDir}`,
  ].join('\n');
}

function describeRunFolder(dir: string): string {
  const run = RunFolder.open(dir);
  const status = run.readStatus();
  const lines = [
    `run ${run.id}`,
    `  state     ${stateLine(run.dir, status)}`,
    `  method    ${status.method}`,
    `  backend   ${status.backend ?? '?'}`,
    `  progress  step ${status.step} of ${status.totalSteps}`,
  ];
  if (status.error) lines.push(`  error     ${status.error.message}`);
  for (const change of status.configChanges ?? []) {
    lines.push(
      `  changed   at step ${change.step}: ${change.changes.map((c) => `${c.path} ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`).join(', ')}`,
    );
  }
  const placementFile = run.file('placement.json');
  if (fs.existsSync(placementFile))
    lines.push(...describePlacement(readJsonFile(placementFile, 'placement') as Placement));
  const best = run.bestStep();
  for (const step of run.checkpointSteps()) {
    const info = readCheckpoint(run.checkpointDir(step)).info;
    lines.push(`  checkpoint step-${step}${step === best ? ' (best)' : ''} ${metricsOrNone(info.metrics)}`);
  }
  return lines.join('\n');
}

/** `running` only while its holder lives (run-lock.ts's one rule); a dead holder's run is `interrupted`. */
function stateLine(dir: string, status: RunStatus): string {
  if (status.state !== 'running') return `${status.state}${status.reason ? ` (${status.reason})` : ''}`;
  const activity = runActivity(dir, status.pid);
  if (!activity.live) return `interrupted (status.json says running, but ${activity.why}; resume it with --resume)`;
  return activity.holder ? `running (${describeHolder(activity.holder)})` : `running (pid ${status.pid})`;
}

function describeCheckpoint(dir: string): string {
  const { info, weights } = readCheckpoint(dir);
  const params = [...weights.values()].reduce((n, w) => n + w.data.length, 0);
  return [
    `checkpoint ${dir}`,
    `  run       ${path.basename(runDirOfCheckpoint(dir))}`,
    `  step      ${info.step} (epoch ${info.epoch + 1})`,
    `  method    ${info.method}`,
    `  labels    ${info.labelNames.join(', ')}`,
    `  weights   ${weights.size} tensors, ${formatCount(params)} parameters`,
    `  metrics   ${metricsOrNone(info.metrics)}`,
  ].join('\n');
}

function describePlacement(p: Placement): string[] {
  return [
    `  model     ${p.layers} layers, hidden ${p.hiddenSize}, ${p.heads} heads, ${formatCount(p.baseParams)} base parameters`,
    `  trainable ${formatCount(p.trainableParams)} (${formatPercent(p.trainableParams / p.baseParams)} of base) ${JSON.stringify(p.trainableByGroup)}`,
    `  sites     ${p.sites.length}${p.leftOut.length ? `, layers left out: ${p.leftOut.join(', ')}` : ''}`,
  ];
}

function metricsOrNone(metrics?: Record<string, number>): string {
  return metrics ? formatMetrics(metrics) : '(no evaluation)';
}
