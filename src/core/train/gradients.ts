/**
 * tf.variableGrads with the memory of a training step bounded by what the backward pass still needs.
 *
 * Why: tfjs-core's backward pass (engine.gradients) keeps every tensor the forward pass saved and
 * every intermediate gradient until the whole pass ends, so a step's peak holds the forward pass's
 * saved activations *and* a gradient for nearly every one of them. Here each tape node's saved
 * tensors are freed right after its gradient has run, and the gradient of each of its outputs once
 * the node has consumed it (every consumer of an output comes later on the tape, so it is complete
 * by then); tensors saved by nodes that do not lead from a variable to the loss are freed before the
 * backward pass starts. The arithmetic is tfjs-core's own (the same gradient functions, the same
 * order of accumulation), so the values are identical bit for bit.
 *
 * It drives tfjs-core's tape through the engine's internals (startTape, endTape, state.activeTape),
 * pinned by the exact @tensorflow version in package.json; a nested gradient (a gradient taken
 * inside another) falls back to tf.variableGrads.
 */
import { tf, type Tensor } from '../tf';

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, Tensor>;
  outputs: Tensor[];
  saved?: Tensor[];
  gradient?: (dys: (Tensor | null)[]) => Record<string, () => Tensor>;
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
}

export interface VariableGrads {
  value: tf.Scalar;
  /** Gradients by variable name; a variable the loss does not depend on has none. */
  grads: tf.NamedTensorMap;
}

/** The loss f() and its gradient with respect to each trainable variable of `vars`, as tf.variableGrads. */
export function variableGrads(f: () => tf.Scalar, vars: tf.Variable[]): VariableGrads {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.state.gradientDepth > 0) return tf.variableGrads(f, vars);
  const xs = vars.filter((v) => v.trainable);
  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  const tape = engine.state.activeTape ?? [];
  if (!(y instanceof tf.Tensor) || y.rank !== 0) {
    for (const node of tape) disposeSaved(node);
    engine.state.activeTape = null;
    tf.dispose(y);
    throw new Error(`variableGrads: f() must return a scalar, got rank ${(y as Tensor).rank}`);
  }
  return engine.tidy('backward', () => {
    const path = nodesFromXToY(tape, xs, y);
    const onPath = new Set(path.map((node) => node.id));
    for (const node of tape) if (!onPath.has(node.id)) disposeSaved(node);
    const grads = backpropagate(path, y);
    for (const node of tape) disposeSaved(node);
    engine.state.activeTape = null;
    const named: tf.NamedTensorMap = {};
    xs.forEach((x) => {
      const grad = grads.get(x.id);
      if (grad) named[x.name] = grad;
    });
    if (Object.keys(named).length === 0 && xs.length > 0) {
      y.dispose();
      throw new Error('variableGrads: the loss does not depend on any of the variables');
    }
    return { value: y as tf.Scalar, grads: named };
  });
}

function disposeSaved(node: TapeNode): void {
  for (const t of node.saved ?? []) t.dispose();
}

/**
 * Walks the path backwards from y, accumulating each tensor's gradient (tensor id -> gradient) as
 * tfjs-core's backpropagateGradients does, and freeing what no later node needs.
 */
function backpropagate(path: TapeNode[], y: Tensor): Map<number, Tensor> {
  const grads = new Map<number, Tensor>();
  /** How many ids hold each gradient tensor: a gradient function may return its dy itself. */
  const holders = new Map<Tensor, number>();
  const release = (t: Tensor) => {
    const n = (holders.get(t) ?? 1) - 1;
    if (n > 0) holders.set(t, n);
    else {
      holders.delete(t);
      t.dispose();
    }
  };
  const store = (id: number, grad: Tensor) => {
    const previous = grads.get(id);
    grads.set(id, grad);
    holders.set(grad, (holders.get(grad) ?? 0) + 1);
    if (previous) release(previous);
  };
  store(y.id, tf.onesLike(y));
  for (let i = path.length - 1; i >= 0; i--) {
    const node = path[i]!;
    if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const inputGradients = node.gradient(node.outputs.map((o) => grads.get(o.id) ?? null));
    for (const [name, x] of Object.entries(node.inputs)) {
      if (!(name in inputGradients))
        throw new Error(
          `Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`,
        );
      const dx = tf.tidy(() => inputGradients[name]!());
      if (dx.dtype !== 'float32')
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`,
        );
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
        );
      }
      const current = grads.get(x.id);
      if (!current) {
        store(x.id, dx);
        continue;
      }
      store(x.id, tf.add(current, dx));
      if (!holders.has(dx)) dx.dispose();
    }
    disposeSaved(node);
    for (const o of node.outputs) {
      const dy = grads.get(o.id);
      if (!dy) continue;
      grads.delete(o.id);
      release(dy);
    }
  }
  return grads;
}

/** The nodes on a path from some x to y, inputs pruned to those that depend on an x (tfjs-core's getFilteredNodesXToY). */
function nodesFromXToY(tape: TapeNode[], xs: Tensor[], y: Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((input) => fromX.has(input.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const input of Object.values(node.inputs)) toY.add(input.id);
      nodesToY.add(node.id);
    }
  }
  return tape
    .filter((node) => nodesFromX.has(node.id) && nodesToY.has(node.id))
    .map((node) => ({
      ...node,
      inputs: Object.fromEntries(Object.entries(node.inputs).filter(([, input]) => fromX.has(input.id))),
    }));
}
