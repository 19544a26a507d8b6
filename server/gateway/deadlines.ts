/**
 * Many deadlines on one timer: items (sockets) are kept in buckets of
 * `resolutionMs` and one interval, running only while a bucket is pending,
 * hands every item whose deadline has passed to `onDue`. An idle socket with
 * a deadline costs one entry in a Set instead of a Timeout and its closure;
 * adding and removing are O(1).
 *
 * An item fires at or after its deadline, at most about `resolutionMs` late;
 * never early. A deadline already passed fires on the next tick. An item has
 * at most one deadline at a time in one `Deadlines`, and the caller keeps it:
 * `remove` needs the deadline `add` was given.
 */
export interface Deadlines<T> {
  /** Call `onDue(item)` once `now() >= at` (ms since the epoch). */
  add(at: number, item: T): void;
  /** Cancel what `add(at, item)` scheduled. A no-op once it fired. */
  remove(at: number, item: T): void;
  /** Items pending. */
  size(): number;
  /** Drop everything and stop the timer. */
  clear(): void;
}

export function createDeadlines<T>({ onDue, resolutionMs = 250, now = Date.now }: { onDue: (item: T) => void; resolutionMs?: number; now?: () => number }): Deadlines<T> {
  const buckets = new Map<number, Set<T>>();
  /** Last tick handed out; tick `t` holds deadlines in ((t - 1) · resolution, t · resolution]. */
  let processed = Math.floor(now() / resolutionMs);
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;

  const tickOf = (at: number) => Math.max(Math.ceil(at / resolutionMs), processed + 1);

  function run(): void {
    const target = Math.floor(now() / resolutionMs);
    while (processed < target) {
      processed++;
      const bucket = buckets.get(processed);
      if (!bucket) continue;
      buckets.delete(processed);
      pending -= bucket.size;
      for (const item of bucket) onDue(item);
    }
    if (pending === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  }

  return {
    add(at, item) {
      if (!timer) {
        // The clock moved on while nothing was pending: no bucket is older than now.
        processed = Math.max(processed, Math.floor(now() / resolutionMs));
        timer = setInterval(run, resolutionMs);
        timer.unref();
      }
      const tick = tickOf(at);
      let bucket = buckets.get(tick);
      if (!bucket) buckets.set(tick, (bucket = new Set()));
      if (!bucket.has(item)) {
        bucket.add(item);
        pending++;
      }
    },
    remove(at, item) {
      const tick = tickOf(at);
      const bucket = buckets.get(tick);
      if (!bucket?.delete(item)) return;
      pending--;
      if (bucket.size === 0) buckets.delete(tick);
    },
    size: () => pending,
    clear() {
      buckets.clear();
      pending = 0;
      clearInterval(timer);
      timer = undefined;
    },
  };
}
