/**
 * Ctrl-C in two steps, for the commands that run long (train, evaluate, sweep): the first asks the
 * work to end cleanly (after a checkpoint, say), the second is for a user who will not wait. SIGTERM
 * counts as Ctrl-C, because it is how the editor stops a run it did not start.
 */

/** Calls `first` on the first SIGINT or SIGTERM and `again` on every later one, until disposed. */
export function onInterrupts(first: () => void, again: () => void): { dispose(): void } {
  let interrupts = 0;
  const handler = (): void => {
    interrupts += 1;
    if (interrupts === 1) first();
    else again();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
