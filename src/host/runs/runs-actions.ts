/**
 * What the Runs sidebar's context menus, inline icons and title bar do. Each command takes the
 * clicked element and the selection (VS Code passes both for tree menus); from the command palette
 * it works on the view's selection. Other features (the dashboard) pass a run or checkpoint folder.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EvaluatedMessage, Split } from '../../protocol/worker';
import { exportCheckpointAs, type ExportFormat } from './checkpoint-export';
import { stateWord } from './runs-present';
import { formatMetrics } from '../../protocol/format';
import { latestCompleteCheckpoint, metricName } from './runs-queries';
import { STATE_FILTERS, type RunRecord, type RunsViewOptions, type StateFilter } from './runs-types';
import type { RunsNode, RunsSidebar } from './runs-tree';
import type { RunOutcome } from '../training/run-manager';
import { loadAnyConfig } from '../../core/config/load';
import { describeConfigChanges, pendingConfigChanges } from '../../core/train/run-start';

export const DASHBOARD_COMMAND = 'peftLab.openDashboard';
export const COMPARE_COMMAND = 'peftLab.compareRuns';

/** A tree element, or the path of a run or checkpoint folder (what other features have). */
type Target = RunsNode | string;
type Handler = (node?: Target, selection?: readonly RunsNode[], ...rest: unknown[]) => unknown;

export function registerRunsActions(sidebar: RunsSidebar): vscode.Disposable[] {
  const a = new RunsActions(sidebar);
  const command = (id: string, handler: Handler) => vscode.commands.registerCommand(id, handler);
  return [
    command('peftLab.runs.openDashboard', (n, s) => a.openDashboard(n, s)),
    command('peftLab.runs.openConfig', (n, s) => a.openConfig(n, s)),
    command('peftLab.runs.reveal', (n, s) => a.reveal(n, s)),
    command('peftLab.runs.resume', (n, s) => a.resume(n, s)),
    command('peftLab.runs.evaluate', (n, s, split) => a.evaluate(n, s, split as Split | undefined)),
    command('peftLab.runs.export', (n, s, destination, format) =>
      a.export(n, s, destination as string | undefined, format as ExportFormat | undefined),
    ),
    command('peftLab.runs.compare', (n, s) => a.compare(n, s)),
    command('peftLab.runs.delete', (n, s) => a.delete(n, s)),
    command('peftLab.runs.copyPath', (n, s) => a.copyPath(n, s)),
    command('peftLab.runs.filter', (options) => a.filter(options as Partial<RunsViewOptions> | undefined)),
    command('peftLab.runs.clearFilter', () => sidebar.setView({ states: [], configs: [] })),
    command('peftLab.runs.sortByMetric', () => sidebar.setView({ sort: 'metric' })),
    command('peftLab.runs.sortByDate', () => sidebar.setView({ sort: 'date' })),
    command('peftLab.runs.refresh', () => sidebar.rescanNow()),
  ];
}

class RunsActions {
  constructor(private readonly sidebar: RunsSidebar) {}

  private get model() {
    return this.sidebar.model;
  }

  /** The elements a command acts on: the selection when the clicked element is part of it, else the clicked one. */
  private targets(
    target: Target | undefined,
    selection: readonly RunsNode[] | undefined,
    kinds: RunsNode['kind'][],
  ): RunsNode[] {
    const node = typeof target === 'string' ? this.nodeOfFolder(target) : target;
    let nodes: readonly RunsNode[];
    if (node && selection?.some((s) => s.kind === node.kind && s.key === node.key)) nodes = selection;
    else if (node) nodes = [node];
    else nodes = this.sidebar.view.selection;
    return nodes.filter((n) => kinds.includes(n.kind));
  }

  /** A folder as the tree element it is: a checkpoint the model knows, else a run folder. */
  private nodeOfFolder(folder: string): RunsNode {
    const key = path.resolve(folder);
    return this.sidebar.provider.node(this.model.checkpoint(key) ? 'checkpoint' : 'run', key);
  }

  private runsOf(nodes: RunsNode[]): RunRecord[] {
    const dirs = new Set(nodes.map((n) => (n.kind === 'checkpoint' ? path.dirname(path.dirname(n.key)) : n.key)));
    return [...dirs].map((d) => this.model.run(d)).filter((r): r is RunRecord => r !== undefined);
  }

  async openDashboard(node?: Target, selection?: readonly RunsNode[]): Promise<void> {
    const [run] = this.runsOf(this.targets(node, selection, ['run', 'checkpoint']));
    if (!run) return;
    await vscode.commands.executeCommand(DASHBOARD_COMMAND, run.dir);
  }

  async compare(node?: Target, selection?: readonly RunsNode[]): Promise<void> {
    const runs = this.runsOf(this.targets(node, selection, ['run']));
    if (runs.length < 2) {
      void vscode.window.showInformationMessage('PEFT Lab: select two or more runs (Ctrl/Cmd+click) to compare them.');
      return;
    }
    await vscode.commands.executeCommand(
      COMPARE_COMMAND,
      runs.map((r) => r.dir),
    );
  }

  async openConfig(node?: Target, selection?: readonly RunsNode[]): Promise<void> {
    const [target] = this.targets(node, selection, ['config', 'run', 'checkpoint']);
    if (!target) return;
    let file: string | undefined;
    if (target.kind === 'config') file = target.key || undefined;
    else {
      const [run] = this.runsOf([target]);
      if (run?.configFile && fs.existsSync(run.configFile)) file = run.configFile;
      else if (run && fs.existsSync(path.join(run.dir, 'config.json'))) {
        file = path.join(run.dir, 'config.json');
        void vscode.window.showInformationMessage(
          `PEFT Lab: ${run.configFile ? `${path.basename(run.configFile)} no longer exists` : 'the run does not name its config'}; showing the resolved config the run used.`,
        );
      }
    }
    if (!file || !fs.existsSync(file)) {
      void vscode.window.showWarningMessage('PEFT Lab: this run has no config file to open.');
      return;
    }
    await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
  }

  async reveal(node?: Target, selection?: readonly RunsNode[]): Promise<void> {
    const [target] = this.targets(node, selection, ['config', 'run', 'checkpoint']);
    if (!target?.key) return;
    const uri = vscode.Uri.file(target.key);
    await vscode.commands.executeCommand(vscode.env.remoteName ? 'revealInExplorer' : 'revealFileInOS', uri);
  }

  async copyPath(node?: Target, selection?: readonly RunsNode[]): Promise<void> {
    const paths = this.targets(node, selection, ['config', 'run', 'checkpoint'])
      .map((n) => n.key)
      .filter(Boolean);
    if (!paths.length) return;
    await vscode.env.clipboard.writeText(paths.join('\n'));
    vscode.window.setStatusBarMessage(
      `$(copy) Copied ${paths.length === 1 ? path.basename(paths[0]!) : `${paths.length} paths`}`,
      3000,
    );
  }

  /**
   * Continues a run from its last complete checkpoint, or rewinds it to an older checkpoint chosen
   * in the tree (after a confirmation: the later checkpoints go); resolves with the outcome.
   */
  async resume(node?: Target, selection?: readonly RunsNode[]): Promise<RunOutcome | undefined> {
    const [target] = this.targets(node, selection, ['run', 'checkpoint']);
    const [run] = target ? this.runsOf([target]) : [];
    if (!run || !target) return undefined;
    const last = latestCompleteCheckpoint(run);
    if (run.state === 'running' && !run.interrupted) {
      void vscode.window.showWarningMessage(
        `PEFT Lab: ${run.id} is still training${run.runningElsewhere ? ` elsewhere (${run.runningElsewhere})` : ''}.`,
      );
      return undefined;
    }
    if (!last) {
      void vscode.window.showWarningMessage(`PEFT Lab: ${run.id} has no complete checkpoint to resume from.`);
      return undefined;
    }
    const rewindTo = target.kind === 'checkpoint' && target.key !== last.dir ? target.key : undefined;
    if (rewindTo) {
      const choice = await vscode.window.showWarningMessage(
        `Resume ${run.id} from ${path.basename(rewindTo)}?`,
        {
          modal: true,
          detail: `The run goes back to that checkpoint: the later checkpoints (up to step ${last.step}) and their metrics are deleted, and training continues from there exactly as it did the first time.`,
        },
        'Rewind and Resume',
      );
      if (choice !== 'Rewind and Resume') return undefined;
    }
    // the worker refuses a config that now computes something else; ask here instead, naming the fields
    const changes = run.configFile
      ? pendingConfigChanges(run.dir, run.configFile, (file) => loadAnyConfig(file, { semantic: false }))
      : [];
    if (changes.length) {
      const choice = await vscode.window.showWarningMessage(
        `${path.basename(run.configFile!)} has changed since ${run.id} was trained.`,
        {
          modal: true,
          detail: `Changed: ${describeConfigChanges(changes)}.\n\nContinue the run with the new values (recorded in its status.json), or cancel and put them back (or train a new run).`,
        },
        'Continue with Changes',
      );
      if (choice !== 'Continue with Changes') return undefined;
    }
    let done: Promise<RunOutcome>;
    try {
      done = this.sidebar.runs.resume(run.dir, rewindTo, { allowConfigChange: changes.length > 0 });
    } catch (err) {
      void vscode.window.showWarningMessage(`PEFT Lab: cannot resume ${run.id}: ${(err as Error).message}.`);
      return undefined;
    }
    this.sidebar.hooks.onRunStarted(run.configFile ?? run.dir, done);
    return done;
  }

  /** Evaluates checkpoints on a split (asked for when not given) in the worker; resolves with the results. */
  async evaluate(node?: Target, selection?: readonly RunsNode[], split?: Split): Promise<EvaluatedMessage[]> {
    const checkpoints = this.targets(node, selection, ['checkpoint'])
      .map((n) => this.model.checkpoint(n.key))
      .filter((c) => c !== undefined);
    if (!checkpoints.length) return [];
    const run = this.model.run(checkpoints[0]!.runDir);
    split ??= await pickSplit(run);
    if (!split) return [];
    const chosen: Split = split;
    const results: EvaluatedMessage[] = [];
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `PEFT Lab: evaluating on ${chosen}`, cancellable: true },
      async (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        for (const c of checkpoints) {
          if (abort.signal.aborted) break;
          const label = `${path.basename(c.runDir)} / ${c.name}`;
          progress.report({ message: label });
          try {
            const result = await this.sidebar.runs.evaluate(c.dir, chosen, { signal: abort.signal });
            results.push(result);
            this.sidebar.forget([path.join(c.dir, `eval-${chosen}.json`)]);
            const main = run ? metricName(run) : undefined;
            void vscode.window.showInformationMessage(
              `PEFT Lab: ${label} on ${chosen} (${result.examples} examples): ${formatMetrics(result.metrics, { main })}.`,
            );
          } catch (err) {
            if (abort.signal.aborted) break;
            void vscode.window.showErrorMessage(
              `PEFT Lab: evaluating ${label} on ${chosen} failed: ${(err as Error).message.split('\n')[0]}`,
            );
          }
        }
      },
    );
    return results;
  }

  /**
   * Exports a checkpoint into a new folder under one the user picks, in PEFT Lab's format (weights,
   * checkpoint.json, config.json) or AdapterHub's; the format is asked for unless given (a given
   * destination alone keeps PEFT Lab's, as before formats existed).
   */
  async export(
    node?: Target,
    selection?: readonly RunsNode[],
    destination?: string,
    format?: ExportFormat,
  ): Promise<string | undefined> {
    const [target] = this.targets(node, selection, ['checkpoint']);
    const c = target ? this.model.checkpoint(target.key) : undefined;
    if (!c) return undefined;
    format ??= destination ? 'peft-lab' : await pickExportFormat();
    if (!format) return undefined;
    if (!destination) {
      const picked = await vscode.window.showOpenDialog({
        canSelectFiles: false,
        canSelectFolders: true,
        canSelectMany: false,
        openLabel: 'Export Here',
        title: `Export ${path.basename(c.runDir)} ${c.name} in ${format === 'adapterhub' ? 'the AdapterHub layout (adapter_config.json, adapter.safetensors, head)' : "PEFT Lab's format (weights.safetensors, checkpoint.json, config.json)"}`,
        defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
      });
      destination = picked?.[0]?.fsPath;
      if (!destination) return undefined;
    }
    let exported: ReturnType<typeof exportCheckpointAs>;
    try {
      exported = exportCheckpointAs(format, c.dir, destination);
    } catch (err) {
      void vscode.window.showErrorMessage(`PEFT Lab: ${(err as Error).message}`);
      return undefined;
    }
    const folder = exported.folder;
    const what =
      format === 'adapterhub'
        ? 'the AdapterHub layout (load it with model.load_adapter(dir, use_safetensors=True))'
        : "PEFT Lab's own format (weights.safetensors, checkpoint.json, config.json)";
    void vscode.window
      .showInformationMessage(
        [`PEFT Lab: exported ${c.name} to ${folder} in ${what}.`, ...exported.warnings].join(' '),
        'Reveal',
      )
      .then((choice) => {
        if (choice)
          void vscode.commands.executeCommand(
            vscode.env.remoteName ? 'revealInExplorer' : 'revealFileInOS',
            vscode.Uri.file(folder),
          );
      });
    return folder;
  }

  /** Deletes run folders after a modal confirmation; never a run that is training. Resolves with the deleted folders. */
  async delete(node?: Target, selection?: readonly RunsNode[]): Promise<string[]> {
    const runs = this.runsOf(this.targets(node, selection, ['run']));
    const training = runs.filter((r) => this.isTraining(r));
    const deletable = runs.filter((r) => !this.isTraining(r));
    if (training.length) {
      void vscode.window.showWarningMessage(
        `PEFT Lab: not deleting ${training.map((r) => r.id).join(', ')}: ${training.length === 1 ? 'it is' : 'they are'} training. Stop ${training.length === 1 ? 'it' : 'them'} first.`,
      );
    }
    if (!deletable.length) return [];
    const checkpoints = deletable.reduce((n, r) => n + r.checkpoints.length, 0);
    const what = deletable.length === 1 ? `run ${deletable[0]!.id}` : `${deletable.length} runs`;
    const detail = [
      `This permanently deletes ${deletable.length === 1 ? 'its folder' : 'their folders'}${checkpoints ? `, with ${checkpoints} checkpoint${checkpoints === 1 ? '' : 's'},` : ''} from disk:`,
      ...deletable.slice(0, 10).map((r) => `• ${r.id} (${stateWord(r)})`),
      ...(deletable.length > 10 ? [`• … and ${deletable.length - 10} more`] : []),
    ].join('\n');
    const choice = await vscode.window.showWarningMessage(`Delete ${what}?`, { modal: true, detail }, 'Delete');
    if (choice !== 'Delete') return [];
    const deleted: string[] = [];
    for (const r of deletable) {
      // checked again: a resume could have started while the dialog was open
      if (this.isTraining(this.model.run(r.dir) ?? r)) continue;
      try {
        await fs.promises.rm(r.dir, { recursive: true, force: true });
        deleted.push(r.dir);
      } catch (err) {
        void vscode.window.showErrorMessage(`PEFT Lab: cannot delete ${r.id}: ${(err as Error).message}`);
      }
    }
    this.sidebar.forget(deleted);
    return deleted;
  }

  private isTraining(run: RunRecord): boolean {
    if (run.state === 'running' && !run.interrupted) return true;
    return this.sidebar.runs.active().some((v) => v.started?.runDir && path.resolve(v.started.runDir) === run.dir);
  }

  /** The title bar's filter: a multi-select quick pick of states and configs (or the given options). */
  async filter(options?: Partial<RunsViewOptions>): Promise<void> {
    if (options && typeof options === 'object' && !('kind' in options)) {
      await this.sidebar.setView({ states: options.states ?? [], configs: options.configs ?? [] });
      return;
    }
    const current = this.sidebar.viewOptions;
    type Item = vscode.QuickPickItem & { state?: StateFilter; config?: string };
    const icons: Record<StateFilter, string> = {
      running: 'sync',
      finished: 'pass',
      failed: 'error',
      stopped: 'debug-stop',
      problem: 'warning',
    };
    const configs = this.model.groups({ sort: 'date' });
    const items: Item[] = [
      { label: 'States', kind: vscode.QuickPickItemKind.Separator },
      ...STATE_FILTERS.map((s): Item => ({
        label: `$(${icons[s]}) ${s === 'problem' ? 'with problems' : s}`,
        state: s,
        picked: current.states?.includes(s),
      })),
      { label: 'Configs', kind: vscode.QuickPickItemKind.Separator },
      ...configs.map((g): Item => ({
        label: g.configFile ? path.basename(g.configFile) : 'Unknown config',
        description: g.configFile ? folderDescription(g.configFile) : undefined,
        config: g.configFile,
        picked: current.configs?.includes(g.configFile),
      })),
    ];
    const picked = await vscode.window.showQuickPick(items, {
      canPickMany: true,
      title: 'Filter Runs',
      placeHolder: 'Show only runs in these states and of these configs (pick none to show all)',
    });
    if (!picked) return;
    await this.sidebar.setView({
      states: picked.filter((i) => i.state).map((i) => i.state!),
      configs: picked.filter((i) => i.config !== undefined).map((i) => i.config!),
    });
  }
}

async function pickSplit(run: RunRecord | undefined): Promise<Split | undefined> {
  const data = run?.config?.data;
  const items: (vscode.QuickPickItem & { split: Split })[] = [
    {
      label: 'Validation split',
      description: data?.validation
        ? path.basename(data.validation)
        : data?.validationSplit
          ? `${Math.round(data.validationSplit * 100)}% of the training file, held out`
          : undefined,
      split: 'validation',
    },
  ];
  if (data?.test) items.push({ label: 'Test split', description: path.basename(data.test), split: 'test' });
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Evaluate Checkpoint',
    placeHolder: data?.test
      ? 'Evaluate on which split? The result is saved beside the checkpoint.'
      : 'Evaluate on the validation split (the config has no test file). The result is saved beside the checkpoint.',
  });
  return picked?.split;
}

async function pickExportFormat(): Promise<ExportFormat | undefined> {
  const items: (vscode.QuickPickItem & { format: ExportFormat })[] = [
    {
      label: 'PEFT Lab',
      description: 'weights.safetensors, checkpoint.json, config.json: the checkpoint as PEFT Lab stores it',
      format: 'peft-lab',
    },
    {
      label: 'AdapterHub',
      description: 'adapter_config.json, adapter.safetensors and the head: loads with the Python adapters library',
      format: 'adapterhub',
    },
  ];
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Export Checkpoint',
    placeHolder: 'Export in which format?',
  });
  return picked?.format;
}

/** The config's folder relative to the workspace ('' at its root). */
function folderDescription(configFile: string): string {
  const folder = path.dirname(vscode.workspace.asRelativePath(configFile));
  return folder === '.' ? '' : folder;
}
