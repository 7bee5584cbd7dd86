/**
 * The line of runs waiting to start: first in, first out, each starting once fewer than the
 * concurrency limit are running. Paused, no run starts (running ones go on); cleared, every waiting
 * run is dropped. Plain data without processes, so the rules are testable on their own: the
 * extension's run manager and the CLI's sweep do the starting and say how many runs are running.
 */
export class RunQueue<T> {
  private readonly waiting: T[] = [];
  private paused = false;

  get isPaused(): boolean {
    return this.paused;
  }

  get size(): number {
    return this.waiting.length;
  }

  /** The waiting runs, next first. */
  items(): readonly T[] {
    return [...this.waiting];
  }

  /** Whether a new run may start at once: not paused, a free slot, and nobody waiting ahead of it. */
  canStartNow(running: number, limit: number): boolean {
    return !this.paused && this.waiting.length === 0 && running < limit;
  }

  enqueue(item: T): void {
    this.waiting.push(item);
  }

  /** Drops one waiting run; false when it was not waiting. */
  remove(item: T): boolean {
    const index = this.waiting.indexOf(item);
    if (index < 0) return false;
    this.waiting.splice(index, 1);
    return true;
  }

  /** Takes the runs that may start now off the queue, in order: as many as there are free slots, none while paused. */
  takeStartable(running: number, limit: number): T[] {
    if (this.paused) return [];
    return this.waiting.splice(0, Math.max(0, limit - running));
  }

  /** Returns whether this changed anything. */
  pause(): boolean {
    const changed = !this.paused;
    this.paused = true;
    return changed;
  }

  /** Returns whether this changed anything; the caller then starts what `takeStartable` gives. */
  resume(): boolean {
    const changed = this.paused;
    this.paused = false;
    return changed;
  }

  /** Drops every waiting run and returns them (the caller tells their owners). */
  clear(): T[] {
    return this.waiting.splice(0);
  }
}
