/**
 * Operational entries of the system log (the `system` feed that admins
 * follow): internal errors answered to a client (`error.internal`, where it
 * happened, never the error text: that stays in the server log) and
 * dependency transitions (`dependency.down`, `dependency.up` for Redis and
 * PostgreSQL, with the time of the transition in `at`).
 *
 * A storm cannot flood the log: each node writes at most `SYSTEM_LOG_RATE`
 * of these entries per window; the ones over it are counted, and the next
 * entry written carries the count as `suppressed`. An entry that cannot be
 * appended (Redis itself is down) waits in a bounded buffer (`PENDING_MAX`;
 * when full the oldest error entry is dropped and counted) and is written, in
 * order, when Redis is back.
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { RateLimit } from '../config.ts';
import { isTransientError } from '../retry.ts';
import type { OperationalEntry } from '../../shared/feed-entries.ts';

/** A system-log entry as the feed store's `log` takes it (written as an `OperationalEntry`). */
export interface SystemEntry {
  type: OperationalEntry['type'];
  payload: Record<string, unknown>;
}

export type Dependency = Extract<OperationalEntry, { type: 'dependency.down' }>['payload']['dependency'];

/** Entries kept while they cannot be appended. */
const PENDING_MAX = 100;

export type SystemEvents = ReturnType<typeof createSystemEvents>;

export function createSystemEvents({
  append,
  rate,
  logger,
  now = Date.now,
}: {
  /** Append to the system log; rejects when Redis is unavailable. */
  append: (entry: SystemEntry) => Promise<void>;
  rate: RateLimit;
  logger: Logger;
  now?: () => number;
}) {
  const log = logger.child({ component: 'system-events' });
  const windowMs = rate.durationSeconds * 1000;
  let windowStart = 0;
  let written = 0;
  let suppressed = 0;
  const pending: SystemEntry[] = [];
  let flushing = false;
  const down = new Set<Dependency>();

  /** Count an entry against the rate; false when it is over (it is then only counted). */
  function admit(): boolean {
    const t = now();
    if (t - windowStart >= windowMs) {
      windowStart = t;
      written = 0;
    }
    if (written >= rate.points) {
      suppressed++;
      return false;
    }
    written++;
    return true;
  }

  async function flush(): Promise<void> {
    if (flushing) return;
    flushing = true;
    try {
      while (pending.length > 0) {
        await append(pending[0]!);
        pending.shift();
      }
    } catch {
      // Still unavailable: the entries wait for the next transition or entry.
    } finally {
      flushing = false;
    }
  }

  /** Write `entry` (its `at` set by the caller), with the count of entries left out before it. */
  function record(entry: OperationalEntry): void {
    if (!admit()) return;
    if (pending.length >= PENDING_MAX) {
      // Full: drop the oldest error entry (transitions say more about an outage), else the oldest; count it and what it counted.
      const oldestError = pending.findIndex((e) => e.type === 'error.internal');
      const [dropped] = pending.splice(oldestError >= 0 ? oldestError : 0, 1);
      suppressed += 1 + Number(dropped!.payload.suppressed ?? 0);
    }
    if (suppressed > 0) entry.payload.suppressed = suppressed;
    suppressed = 0;
    pending.push(entry);
    void flush();
  }

  function transition(dependency: Dependency, state: 'down' | 'up', detail: { error?: string } = {}): void {
    if (state === 'down') {
      if (down.has(dependency)) return;
      down.add(dependency);
      log.warn({ dependency, ...detail }, 'dependency down');
    } else {
      if (!down.delete(dependency)) return;
      log.info({ dependency }, 'dependency up');
    }
    record(state === 'down' ? { type: 'dependency.down', payload: { dependency, ...detail, at: now() } } : { type: 'dependency.up', payload: { dependency, at: now() } });
  }

  const errorDetail = (err: unknown) => ({ error: (err as { code?: string }).code ?? (err instanceof Error ? err.name : 'error') });

  return {
    /** An error answered `internal` to a client: where (socket event or HTTP route), not what (that is in the server log). */
    internalError(where: { event: string } | { method: string; route: string }): void {
      record({ type: 'error.internal', payload: { ...where, at: now() } });
    },

    /** A dependency went down or came back; repeated reports of the same state are ignored. */
    transition,

    /**
     * Follow a Redis connection: down on its first error after being ready,
     * up when it is ready again (which also writes what waited meanwhile).
     */
    watchRedis(client: Redis): void {
      let ready = false;
      client.on('error', (err: Error) => {
        if (ready) transition('redis', 'down', errorDetail(err));
      });
      client.on('ready', () => {
        ready = true;
        transition('redis', 'up');
        void flush();
      });
    },

    /**
     * Follow the PostgreSQL pool: down when a connection cannot be opened or
     * is lost, up when a new connection opens.
     */
    watchPostgres(pool: pg.Pool): void {
      const lost = (err: Error) => transition('postgres', 'down', errorDetail(err));
      pool.on('error', lost);
      pool.on('connect', (client) => {
        client.on('error', lost);
        transition('postgres', 'up');
      });
      // A connection that cannot be opened emits nothing: watch the promise form of `connect` (what Kysely calls).
      const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
      (pool as { connect: (...args: unknown[]) => unknown }).connect = (...args: unknown[]) => {
        if (args.length > 0) return connect(...args);
        return (connect() as Promise<pg.PoolClient>).catch((err: unknown) => {
          if (isTransientError(err)) transition('postgres', 'down', errorDetail(err));
          throw err;
        });
      };
    },

    /** Entries waiting for Redis (tests, metrics). */
    pendingCount: () => pending.length,
  };
}
