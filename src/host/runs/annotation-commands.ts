/**
 * Rename…, Star, Unstar and Edit Note… of a run (the Runs view's context menu; the Experiments
 * table writes through `annotateRun` too). The annotations live in the run folder
 * (annotations.ts); after a write the sidebar's model reads the file at once, so the tree and the
 * table change without waiting for the file watcher.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import {
  ANNOTATIONS_FILE,
  MAX_NAME_LENGTH,
  MAX_NOTE_LENGTH,
  updateAnnotations,
  type RunAnnotations,
} from './annotations';
import type { RunRecord, RunsDelta } from './runs-types';
import type { RunsModel } from './runs-model';

/** What the commands need from the Runs sidebar. */
export interface AnnotatedRuns {
  readonly model: RunsModel;
  readonly onDidChange: vscode.Event<RunsDelta>;
  /** Applies changed paths now (RunsSidebar.forget: re-reads what changed under them). */
  forget(paths: string[]): void;
  readonly view: { readonly selection: readonly { kind: string; key: string }[] };
}

type Node = { kind: string; key: string } | string | undefined;

/** Writes a run's annotations and has the model read them; throws with a message naming the run. */
export function annotateRun(runs: AnnotatedRuns, dir: string, change: RunAnnotations): RunAnnotations {
  const run = runs.model.run(dir);
  if (!run) throw new Error(`${dir} is not a run folder PEFT Lab knows`);
  let written: RunAnnotations;
  try {
    written = updateAnnotations(run.dir, change);
  } catch (err) {
    throw new Error(`cannot save the annotations of ${run.id}: ${(err as Error).message}`);
  }
  runs.forget([path.join(run.dir, ANNOTATIONS_FILE)]);
  return written;
}

export function registerAnnotationCommands(runs: AnnotatedRuns): vscode.Disposable[] {
  const command = (id: string, handler: (node: Node, selection?: readonly Node[], value?: unknown) => unknown) =>
    vscode.commands.registerCommand(id, handler);
  return [
    command('peftLab.runs.rename', (node, selection, name) =>
      rename(runs, targets(runs, node, selection)[0], name as string | undefined),
    ),
    command('peftLab.runs.star', (node, selection) => star(runs, targets(runs, node, selection), true)),
    command('peftLab.runs.unstar', (node, selection) => star(runs, targets(runs, node, selection), false)),
    command('peftLab.runs.editNote', (node, selection, note) =>
      editNote(runs, targets(runs, node, selection)[0], note as string | undefined),
    ),
  ];
}

/** The runs a command acts on: the selection when the clicked run is in it, else the clicked run (a tree node or a folder path). */
function targets(runs: AnnotatedRuns, node: Node, selection: readonly Node[] | undefined): RunRecord[] {
  const key = (n: Node) => (typeof n === 'string' ? n : n?.kind === 'run' ? n.key : undefined);
  const clicked = key(node);
  let keys: (string | undefined)[];
  if (clicked && selection?.some((s) => key(s) === clicked)) keys = selection.map(key);
  else if (clicked) keys = [clicked];
  else keys = runs.view.selection.map(key);
  return keys.map((k) => (k ? runs.model.run(k) : undefined)).filter((r): r is RunRecord => r !== undefined);
}

async function rename(runs: AnnotatedRuns, run: RunRecord | undefined, given?: string): Promise<void> {
  if (!run) return;
  const name =
    given ??
    (await vscode.window.showInputBox({
      title: `Rename ${run.id}`,
      value: run.annotations.name ?? run.id,
      prompt:
        'The name shown in the Runs view and the Experiments table; the folder keeps its name. Empty: show the folder name.',
      validateInput: (v) => (v.trim().length > MAX_NAME_LENGTH ? `At most ${MAX_NAME_LENGTH} characters.` : undefined),
    }));
  if (name === undefined) return;
  save(runs, run, { name: name.trim() === run.id ? '' : name });
}

async function editNote(runs: AnnotatedRuns, run: RunRecord | undefined, given?: string): Promise<void> {
  if (!run) return;
  const note =
    given ??
    (await vscode.window.showInputBox({
      title: `Note on ${run.annotations.name ?? run.id}`,
      value: run.annotations.note ?? '',
      prompt: "Shown in the run's tooltip and in the Experiments table. Empty: remove the note.",
      validateInput: (v) => (v.length > MAX_NOTE_LENGTH ? `At most ${MAX_NOTE_LENGTH} characters.` : undefined),
    }));
  if (note === undefined) return;
  save(runs, run, { note });
}

function star(runs: AnnotatedRuns, targets: RunRecord[], starred: boolean): void {
  for (const run of targets) save(runs, run, { starred });
}

function save(runs: AnnotatedRuns, run: RunRecord, change: RunAnnotations): void {
  try {
    annotateRun(runs, run.dir, change);
  } catch (err) {
    void vscode.window.showErrorMessage(`PEFT Lab: ${(err as Error).message}`);
  }
}
