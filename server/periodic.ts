/**
 * A background job run every `interval()` ms (a function, so each turn may
 * add jitter), one turn at a time: the next turn is scheduled when the
 * previous one has finished. Timers are unref'd (they never keep a process
 * alive); `stop()` cancels the next turn and waits for one in progress.
 */
export interface Periodic {
  start(): void;
  stop(): Promise<void>;
}

export function createPeriodic({ interval, run }: { interval: () => number; run: () => Promise<unknown> }): Periodic {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let active = false;

  function schedule(): void {
    if (!active) return;
    timer = setTimeout(() => {
      running = run()
        .catch(() => undefined)
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, interval());
    timer.unref();
  }

  return {
    start() {
      if (active) return;
      active = true;
      schedule();
    },
    async stop() {
      active = false;
      clearTimeout(timer);
      await running;
    },
  };
}
