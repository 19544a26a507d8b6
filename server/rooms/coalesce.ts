/**
 * Per-key coalescing for the join path. A call joins the next run for its key
 * that starts after the call was made, never one already in flight, and at
 * most one run per key is in flight: an idle key runs at once, and under load
 * the calls that queued behind a run go together in the next. So 50 joins
 * arriving at once into one room cost two PostgreSQL statements, not 50
 * (and one commit each, instead of 50 commits in a row behind the room's
 * row lock), and every caller still gets a result read after its own call.
 */
export type Coalesced<A, R> = (key: string, arg: A) => Promise<R>;

/**
 * `run(key, args)` does the work of several calls at once and returns one
 * result per argument, in order; if it throws, every call of that run
 * rejects with the error. `maxBatch` bounds one run.
 */
export function createCoalescer<A, R>(run: (key: string, args: A[]) => Promise<R[]>, maxBatch = 500): Coalesced<A, R> {
  interface Waiter {
    arg: A;
    resolve(result: R): void;
    reject(err: unknown): void;
  }
  const queues = new Map<string, Waiter[]>();

  async function drain(key: string, waiting: Waiter[]): Promise<void> {
    while (waiting.length > 0) {
      // Taken before the await: calls made from here on wait for the next run.
      const batch = waiting.splice(0, maxBatch);
      try {
        const results = await run(
          key,
          batch.map((w) => w.arg),
        );
        batch.forEach((w, i) => w.resolve(results[i]!));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    queues.delete(key);
  }

  return (key, arg) =>
    new Promise<R>((resolve, reject) => {
      const waiting = queues.get(key);
      if (waiting) {
        waiting.push({ arg, resolve, reject });
        return;
      }
      const fresh: Waiter[] = [{ arg, resolve, reject }];
      queues.set(key, fresh);
      void drain(key, fresh);
    });
}
