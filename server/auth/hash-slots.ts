/**
 * A bound on password hashes in flight. One scrypt hash costs 32 MiB and
 * hundreds of ms of a CPU core (on the libuv thread pool, beside the event
 * loop's core); a login flood with many addresses and usernames passes the
 * per-address and per-account limits, and unbounded hashing would take every
 * core from the sockets. At most `concurrency` hashes run at once; up to
 * `queue` more sign-ins wait their turn, in order, each for at most `waitMs`;
 * the rest are refused at once. A refusal is `rate_limited` (retryable, with
 * `retryAfterMs`), never a hang. Kept per node, in memory: it bounds this
 * node's CPU. The queue holds only waiting sign-ins, so it is bounded by `queue`.
 */
import { AppError, ErrorCode } from '../errors.ts';

/** Wait suggested to a refused sign-in, ms. */
const RETRY_AFTER_MS = 1000;

export interface HashSlotsOptions {
  /** Hashes running at once. */
  concurrency: number;
  /** Sign-ins that may wait for a slot; 0 refuses whenever all slots are busy. */
  queue: number;
  /** Longest wait for a slot, ms. */
  waitMs: number;
}

interface Waiter {
  start: () => void;
  timer: NodeJS.Timeout;
}

export type HashSlots = ReturnType<typeof createHashSlots>;

export function createHashSlots({ concurrency, queue, waitMs }: HashSlotsOptions) {
  let running = 0;
  const waiting: Waiter[] = [];
  const counts = { refused: 0, timedOut: 0 };

  const busy = () => new AppError(ErrorCode.RateLimited, 'The server is busy checking passwords; try again in a moment', { retryAfterMs: RETRY_AFTER_MS });

  function release(): void {
    const next = waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      next.start();
    } else {
      running--;
    }
  }

  /** Wait for a slot (a finished hash hands its slot straight to the next waiter). */
  function acquire(): Promise<void> {
    if (running < concurrency) {
      running++;
      return Promise.resolve();
    }
    if (waiting.length >= queue) {
      counts.refused++;
      return Promise.reject(busy());
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        start: resolve,
        timer: setTimeout(() => {
          waiting.splice(waiting.indexOf(waiter), 1);
          counts.timedOut++;
          reject(busy());
        }, waitMs),
      };
      waiting.push(waiter);
    });
  }

  return {
    /** Run `task` (a password hash) in a slot; throws `rate_limited` when none frees up in time. */
    async run<T>(task: () => Promise<T>): Promise<T> {
      await acquire();
      try {
        return await task();
      } finally {
        release();
      }
    },
    /** Hashes running now, sign-ins waiting, and refusals so far (queue full, or waited too long). */
    stats(): { running: number; waiting: number; refused: number; timedOut: number } {
      return { running, waiting: waiting.length, ...counts };
    },
  };
}
