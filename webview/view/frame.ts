/**
 * Drawing at most once per animation frame: a burst of live messages or a held-down key becomes one
 * redraw, done when the browser is about to paint anyway. And the timings of a render's parts,
 * which the benchmarks (bench/*.mjs) read back from the page as `lastTimings`.
 */

export class FrameScheduler {
  private frame = 0;

  constructor(private readonly draw: () => void) {}

  /** Draws at the next animation frame, once however often it is asked before then. */
  schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Drops the pending frame: its caller draws now (the benchmark times a render without waiting for a frame). */
  cancel(): void {
    if (!this.frame) return;
    cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}

/** Milliseconds per named part of one render. */
export class PartTimings {
  readonly ms: Record<string, number> = {};

  time(name: string, part: () => void): void {
    const t0 = performance.now();
    part();
    this.ms[name] = performance.now() - t0;
  }
}
