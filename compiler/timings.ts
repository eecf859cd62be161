// Wall time of each stage of a compile, in the order they ran, for `fpdtc compile --timings`.
// A stage's time covers its run, its verification and its dump (what it costs to have it).

export interface StageTime {
  readonly stage: string;
  readonly seconds: number;
  /** the group the stage is one line of (the graph passes) */
  readonly group?: string;
}

export interface Timings {
  readonly stages: readonly StageTime[];
  /** the whole compile, from loading the model file to the last file written */
  readonly totalSeconds: number;
}

export class StageTimer {
  readonly stages: StageTime[] = [];
  private readonly start = performance.now();

  time<T>(stage: string, run: () => T, group?: string): T {
    const t0 = performance.now();
    try {
      return run();
    } finally {
      this.add(stage, (performance.now() - t0) / 1000, group);
    }
  }

  async timeAsync<T>(stage: string, run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await run();
    } finally {
      this.add(stage, (performance.now() - t0) / 1000);
    }
  }

  add(stage: string, seconds: number, group?: string): void {
    this.stages.push({ stage, seconds, ...(group ? { group } : {}) });
  }

  /**
   * Laps for stages that a runner we do not own starts one after another (the graph passes):
   * `mark(name)` ends the open lap and opens `name`; `mark()` ends the last one.
   */
  laps(first: string, group: string): (next?: string) => void {
    let open: { stage: string; t0: number } | undefined = { stage: first, t0: performance.now() };
    return (next) => {
      const now = performance.now();
      if (open) this.add(open.stage, (now - open.t0) / 1000, group);
      open = next === undefined ? undefined : { stage: next, t0: now };
    };
  }

  done(): Timings {
    return { stages: [...this.stages], totalSeconds: (performance.now() - this.start) / 1000 };
  }
}
