/**
 * The archive worker: copies every room feed entry from the global stream to
 * PostgreSQL through a Redis consumer group, so that any number of nodes share
 * the work and a dead node's unfinished batch is taken over.
 *
 * One batch: XREADGROUP (on a dedicated blocking connection) → one INSERT …
 * ON CONFLICT (room_id, entry_id) DO NOTHING → XACK after the insert committed.
 * A worker that dies between the insert and the XACK leaves the entries pending
 * under its name; after `claimIdleMs` another worker takes them (XAUTOCLAIM)
 * and inserts them again, which the conflict clause turns into a no-op: no
 * entry is lost and none is stored twice.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FeedConfig } from '../config.ts';
import type { Keys } from '../redis/keys.ts';
import type { ActivityRepository } from './activity-repository.ts';
import { decodeArchiveRecord, type ArchiveRecord } from './feed-store.ts';

/** Name of the consumer group that archives the global stream. */
export const ARCHIVE_GROUP = 'archive';

type RawEntry = [string, string[] | null];

export interface ArchiverHooks {
  /** Called after a batch was inserted and before it is acknowledged (fault injection in tests). */
  afterInsert?: (records: readonly ArchiveRecord[]) => Promise<void> | void;
}

export interface ArchiverOptions {
  /** Command connection: XACK, XAUTOCLAIM, XINFO. */
  redis: Redis;
  /** Dedicated connection for the blocking XREADGROUP; owned (connected and closed) by the caller. */
  blocking: Redis;
  activity: ActivityRepository;
  keys: Keys;
  config: { feed: FeedConfig };
  logger: Logger;
  /** Consumer name, unique per worker. @default `<host>-<pid>-<random>` */
  consumer?: string;
  hooks?: ArchiverHooks;
}

export type Archiver = ReturnType<typeof createArchiver>;

export function createArchiver(options: ArchiverOptions) {
  const { redis, blocking, activity, keys, logger } = options;
  const { batchSize, blockMs, claimIdleMs } = options.config.feed.archive;
  const consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const log = logger.child({ component: 'feed-archiver', consumer });
  const stream = keys.feedGlobal;

  let running = false;
  let loop: Promise<void> | undefined;
  let archived = 0;
  let lostToTrim = 0;

  async function ensureGroup(): Promise<void> {
    try {
      // From the start of the stream: entries appended before the group existed are archived too.
      await redis.xgroup('CREATE', stream, ARCHIVE_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
  }

  async function archiveBatch(raw: RawEntry[]): Promise<void> {
    if (raw.length === 0) return;
    const records = raw.map(decodeArchiveRecord).filter((r): r is ArchiveRecord => r !== null);
    if (records.length > 0) {
      archived += await activity.insertBatch(records);
      await options.hooks?.afterInsert?.(records);
    }
    // Acknowledge only after the insert committed; entries whose data is gone are acknowledged too.
    await redis.xack(stream, ARCHIVE_GROUP, ...raw.map(([id]) => id));
  }

  /** Take over entries a dead worker left pending; returns how many were taken. */
  async function claimStale(): Promise<number> {
    let cursor = '0-0';
    let taken = 0;
    for (let round = 0; round < 10; round++) {
      const [next, entries, deleted] = (await redis.call('XAUTOCLAIM', stream, ARCHIVE_GROUP, consumer, claimIdleMs, cursor, 'COUNT', batchSize)) as [
        string,
        RawEntry[],
        string[] | undefined,
      ];
      if (deleted && deleted.length > 0) {
        lostToTrim += deleted.length;
        log.error({ count: deleted.length }, 'feed entries were trimmed from the global stream before they were archived');
      }
      await archiveBatch(entries);
      taken += entries.length;
      if (next === '0-0') break;
      cursor = next;
    }
    return taken;
  }

  async function readGroup(id: '0' | '>', block: boolean): Promise<RawEntry[]> {
    const args: (string | number)[] = ['GROUP', ARCHIVE_GROUP, consumer, 'COUNT', batchSize];
    if (block) args.push('BLOCK', blockMs);
    args.push('STREAMS', stream, id);
    const reply = (await (block ? blocking : redis).call('XREADGROUP', ...args)) as [string, RawEntry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  async function run(): Promise<void> {
    let ownPending = true;
    let lastClaim = 0;
    let failures = 0;
    while (running) {
      try {
        if (Date.now() - lastClaim >= claimIdleMs / 2) {
          lastClaim = Date.now();
          await claimStale();
        }
        if (ownPending) {
          // Entries delivered to this consumer but not acknowledged (a failed insert, a lost reply).
          const mine = await readGroup('0', false);
          if (mine.length === 0) ownPending = false;
          else await archiveBatch(mine);
          continue;
        }
        await archiveBatch(await readGroup('>', true));
        failures = 0;
      } catch (err) {
        if (!running) break;
        failures++;
        ownPending = true;
        if (err instanceof Error && err.message.startsWith('NOGROUP')) {
          // Redis lost the stream (restart without persistence, flush): start a new group.
          await ensureGroup().catch(() => undefined);
        } else {
          log.warn({ err, failures }, 'archive batch failed; retrying');
        }
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(failures, 6))));
      }
    }
  }

  return {
    consumer,

    /** Start the worker loop. The connections must be connected. */
    async start(): Promise<void> {
      if (running) return;
      await ensureGroup();
      running = true;
      loop = run();
    },

    /** Stop after the current batch; the caller closes the connections afterwards. */
    async stop(): Promise<void> {
      if (!running) return;
      running = false;
      // A blocked XREADGROUP answers within blockMs; do not wait longer than that.
      await Promise.race([loop, new Promise((r) => setTimeout(r, blockMs + 500))]);
    },

    /**
     * Entries of the global stream not yet archived: never delivered to the
     * group plus delivered but not acknowledged. A number for a metric gauge.
     */
    async lag(): Promise<number> {
      const groups = (await redis.call('XINFO', 'GROUPS', stream).catch(() => [])) as (string | number | null)[][];
      for (const raw of groups) {
        const info: Record<string, string | number | null> = {};
        for (let i = 0; i + 1 < raw.length; i += 2) info[String(raw[i])] = raw[i + 1] ?? null;
        if (info.name !== ARCHIVE_GROUP) continue;
        const pending = Number(info.pending ?? 0);
        if (info.lag !== null && info.lag !== undefined) return pending + Number(info.lag);
        // Redis cannot tell (after trims or deletions): count what lies after the last delivered id.
        const after = (await redis.call('XRANGE', stream, `(${String(info['last-delivered-id'])}`, '+')) as unknown[];
        return pending + after.length;
      }
      return redis.xlen(stream);
    },

    /** Counters since start: rows inserted, and entries lost because they were trimmed before archiving. */
    stats(): { archived: number; lostToTrim: number } {
      return { archived, lostToTrim };
    },
  };
}
