/**
 * The archive worker: copies every room feed entry from the room's own stream
 * to PostgreSQL, and into the global feed, on any number of nodes.
 *
 * Input. An append tells the archive which room has new entries by a hint: the
 * appending node collects room ids and, every `HINT_FLUSH_MS`, adds them with
 * one `ZADD NX` to the pending set (room id → when it was first hinted). No
 * stream is written twice and no script touches two slots: the room's entries
 * stay in the room's stream, and the room's archive cursor (`archived`) in its
 * meta hash.
 *
 * One round. A script takes up to `ROOMS_PER_ROUND` rooms whose oldest hint is
 * at least `delayMs` old, oldest first (each hint goes to one worker: a busy
 * room's entries of that time go in one visit, not one visit per entry); each
 * room is claimed with a lease (one
 * worker per room; a dead worker's lease expires after `claimIdleMs`); its
 * entries after the cursor are read with XRANGE, copied to the global feed
 * (the copy script skips what it already copied), inserted with one multi-row
 * `INSERT … ON CONFLICT DO NOTHING` per `batchSize` rows, and the cursor moves
 * under the lease. A room with more entries than one page is hinted again.
 * A worker that dies anywhere in between leaves the cursor where it was; the
 * next holder inserts the same rows again, which adds nothing.
 *
 * One bad entry never stops it. A batch PostgreSQL refuses for its data
 * (SQLSTATE class 22 or 23, e.g. a `\u0000` jsonb refuses) is retried row by
 * row; a row that still fails goes to the dead-letter stream (kept, counted,
 * logged with its id) and the cursor moves past it. Any other failure
 * (PostgreSQL down, a timeout) puts the rooms back and retries with backoff.
 *
 * Lost hints. A hint is lost only when a node dies between an append and its
 * next flush, or a worker between taking a hint and finishing the room. Every
 * `claimIdleMs` one worker sweeps the rooms that are open or ended within
 * `SWEEP_LOOKBACK_MS` (PostgreSQL knows them) and hints every room whose last
 * id is not its archived id.
 *
 * Retention. The worker keeps the day partitions of `activity` from today to
 * `PARTITIONS_AHEAD` days ahead and drops those wholly older than
 * `retentionDays`, at start and every `MAINTENANCE_MS`.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RedisClient as Redis } from '../redis/connections.ts';
import type { Logger } from 'pino';
import type { FeedConfig } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import { dayOf, isRowError, type ActivityRepository } from './activity-repository.ts';
import type { ArchiveRecord, FeedStore } from './feed-store.ts';
import { compareIds, ZERO_ID } from '../../shared/stream-ids.ts';

/** How often a node writes the room hints it collected, ms. */
const HINT_FLUSH_MS = 100;
/** Rooms one worker takes per round. */
const ROOMS_PER_ROUND = 32;
/** Rooms open or ended this recently are swept for lost hints, ms. */
const SWEEP_LOOKBACK_MS = 86_400_000;
/** Partitions kept ahead of today, days. */
const PARTITIONS_AHEAD = 3;
/** How often partitions are created ahead and dropped past retention, ms. */
const MAINTENANCE_MS = 3_600_000;
/** A room another worker holds is hinted again after this, ms. */
const BUSY_RETRY_MS = 200;
const DAY_MS = 86_400_000;

export interface ArchiverHooks {
  /** Called after a round's rows were inserted and before the cursors move (fault injection in tests). */
  afterInsert?: (records: readonly ArchiveRecord[]) => Promise<void> | void;
}

export interface ArchiveHints {
  /** Note that `roomId` has a new entry (buffered; flushed every `HINT_FLUSH_MS`). */
  add(roomId: string): void;
  start(): void;
  /** Flush what is buffered, and stop. */
  stop(): Promise<void>;
}

/** Collect room ids appended to on this node, and hand them to the archive in one `ZADD NX` per flush. */
export function createArchiveHints({ redis, keys, logger }: { redis: Redis; keys: Keys; logger: Logger }): ArchiveHints {
  let rooms = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let failing = false;

  async function flush(): Promise<void> {
    if (rooms.size === 0) return;
    const batch = rooms;
    rooms = new Set();
    const now = Date.now();
    try {
      await redis.zadd(keys.feedArchivePending, 'NX', ...[...batch].flatMap((roomId) => [now, roomId]));
      failing = false;
    } catch (err) {
      // Kept for the next flush; the sweep finds them anyway if this node dies first.
      for (const roomId of batch) rooms.add(roomId);
      if (!failing) logger.warn({ err: { message: (err as Error).message } }, 'archive hints could not be written; retrying');
      failing = true;
    }
  }

  const tick = () => {
    void flush().finally(() => {
      if (timer) timer = setTimeout(tick, HINT_FLUSH_MS).unref();
    });
  };

  return {
    add: (roomId) => void rooms.add(roomId),
    start() {
      timer ??= setTimeout(tick, HINT_FLUSH_MS).unref();
    },
    async stop() {
      clearTimeout(timer);
      timer = undefined;
      await flush();
    },
  };
}

export interface ArchiverOptions {
  /** Command connection. */
  redis: Redis;
  scripts: Scripts;
  store: FeedStore;
  activity: ActivityRepository;
  db: Db;
  keys: Keys;
  config: { feed: FeedConfig };
  logger: Logger;
  /** Worker name, unique per worker. @default `<host>-<pid>-<random>` */
  consumer?: string;
  hooks?: ArchiverHooks;
}

interface Held {
  roomId: string;
  score: number;
  epoch: string;
  archived: string;
  records: ArchiveRecord[];
}

export type Archiver = ReturnType<typeof createArchiver>;

export function createArchiver(options: ArchiverOptions) {
  const { redis, scripts, store, activity, db, keys, logger } = options;
  const { batchSize, blockMs, delayMs, claimIdleMs, retentionDays, deadLetterMaxLen } = options.config.feed.archive;
  const consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const log = logger.child({ component: 'feed-archiver', consumer });
  const pending = keys.feedArchivePending;

  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let archived = 0;
  let deadLetters = 0;
  let lostToTrim = 0;
  let lastSweep = 0;
  let lastMaintenance = 0;
  /** Rooms taken from the pending set and not yet done, with their hint time. */
  const inFlight = new Map<string, number>();
  const deferred: { roomId: string; score: number; at: number }[] = [];

  const retentionCutoff = () => Date.now() - retentionDays * DAY_MS;
  const lease = (roomId: string) => [keys.feedMeta(roomId), keys.feedArchiveLease(roomId)];

  /** Put rooms back in the pending set with their first hint time (NX: a newer hint keeps its own). */
  async function rehint(rooms: readonly { roomId: string; score: number }[]): Promise<void> {
    if (rooms.length === 0) return;
    await redis.zadd(pending, 'NX', ...rooms.flatMap((r) => [r.score, r.roomId]));
  }

  async function deadLetter(record: ArchiveRecord, err: unknown): Promise<void> {
    const error = err as { code?: string; message?: string };
    await redis.xadd(keys.feedArchiveDead, 'MAXLEN', '~', deadLetterMaxLen, '*',
      'r', record.roomId, 'i', record.entryId, 'e', record.epoch, 'v', record.prev, 't', record.type,
      'ai', record.actor?.id ?? '', 'an', record.actor?.name ?? '', 'p', record.payload,
      'error', `${error.code ?? ''} ${error.message ?? String(err)}`.trim());
    deadLetters++;
    log.error({ roomId: record.roomId, entryId: record.entryId, err: { code: error.code, message: error.message } }, 'feed entry refused by PostgreSQL: moved to the dead-letter stream');
  }

  /** Insert records in batches; a batch refused for its data is retried row by row, and what still fails is dead-lettered. */
  async function insertAll(records: readonly ArchiveRecord[]): Promise<void> {
    const notBefore = retentionCutoff();
    await activity.ensurePartitions(records.filter((r) => r.ts >= notBefore).map((r) => r.ts));
    for (let i = 0; i < records.length; i += batchSize) {
      const batch = records.slice(i, i + batchSize);
      try {
        archived += await activity.insertBatch(batch, notBefore);
      } catch (err) {
        if (!isRowError(err)) throw err;
        for (const record of batch) {
          try {
            archived += await activity.insertBatch([record], notBefore);
          } catch (rowErr) {
            if (!isRowError(rowErr)) throw rowErr;
            await deadLetter(record, rowErr);
          }
        }
      }
    }
  }

  async function archiveRooms(rooms: readonly { roomId: string; score: number }[]): Promise<void> {
    for (const r of rooms) inFlight.set(r.roomId, r.score);
    const held: Held[] = [];
    try {
      const claims = await Promise.all(rooms.map((r) => scripts.run<[string, string, string] | null>('feed-archive-claim', lease(r.roomId), [consumer, claimIdleMs])));
      const gone: string[] = [];
      claims.forEach((claim, i) => {
        const room = rooms[i]!;
        if (!claim) deferred.push({ ...room, at: Date.now() + BUSY_RETRY_MS });
        else if (!claim[0]) gone.push(room.roomId);
        else held.push({ roomId: room.roomId, score: room.score, epoch: claim[0], archived: claim[2] || ZERO_ID, records: [] });
      });
      // A feed that expired or was lost has nothing left to archive: let it go.
      await Promise.all(gone.map((roomId) => scripts.run('feed-archive-commit', lease(roomId), [consumer, '', ZERO_ID])));
      if (held.length === 0) return;

      const pages = await Promise.all(held.map((h) => store.records(h.roomId, h.epoch, h.archived, batchSize)));
      held.forEach((h, i) => {
        h.records = pages[i]!;
        const first = h.records[0];
        if (first && first.prev !== h.archived) {
          lostToTrim++;
          log.error({ roomId: h.roomId, archived: h.archived, next: first.entryId, prev: first.prev }, 'feed entries were trimmed from the room stream before they were archived');
        }
      });
      // The global feed first: it does not wait for PostgreSQL, and copies each entry once whatever the retries.
      await Promise.all(held.map((h) => store.copyToGlobal(h.roomId, h.records)));
      const records = held.flatMap((h) => h.records);
      await insertAll(records);
      await options.hooks?.afterInsert?.(records);

      const commits = await Promise.all(
        held.map((h) => scripts.run<string | null>('feed-archive-commit', lease(h.roomId), [consumer, h.epoch, h.records.at(-1)?.entryId ?? h.archived])),
      );
      const again = held.filter((h, i) => {
        const last = commits[i];
        // More than one page, or appended meanwhile: take it again (after the other rooms waiting).
        return typeof last === 'string' && last !== '' && compareIds(last, h.records.at(-1)?.entryId ?? h.archived) > 0;
      });
      await rehint(again);
    } catch (err) {
      // Nothing moved: put every room back and let the leases go, so a retry (here or elsewhere) starts over.
      await rehint(rooms).catch(() => undefined);
      await Promise.all(held.map((h) => scripts.run('compare-and-delete', [keys.feedArchiveLease(h.roomId)], [consumer]).catch(() => undefined)));
      throw err;
    } finally {
      for (const r of rooms) inFlight.delete(r.roomId);
    }
  }

  /** Hint every open or recently ended room whose stream holds entries past its archive cursor. One node per interval. */
  async function sweep(): Promise<number> {
    const locked = await redis.set(keys.feedArchiveSweep, consumer, 'PX', claimIdleMs, 'NX');
    if (locked !== 'OK') return 0;
    const since = new Date(Date.now() - SWEEP_LOOKBACK_MS);
    let after = '00000000-0000-0000-0000-000000000000';
    let hinted = 0;
    for (;;) {
      const rows = await db
        .selectFrom('rooms')
        .select('id')
        .where((eb) => eb.or([eb('ended_at', 'is', null), eb('ended_at', '>', since)]))
        .where('id', '>', after)
        .orderBy('id')
        .limit(500)
        .execute();
      if (rows.length === 0) break;
      after = rows.at(-1)!.id;
      const metas = await Promise.all(rows.map((r) => redis.hmget(keys.feedMeta(r.id), 'last', 'archived')));
      const behind = rows.filter((_, i) => {
        const [last, done] = metas[i]!;
        return last && last !== ZERO_ID && last !== (done ?? ZERO_ID);
      });
      if (behind.length > 0) {
        await redis.zadd(pending, 'NX', ...behind.flatMap((r) => [Date.now(), r.id]));
        hinted += behind.length;
      }
      if (rows.length < 500) break;
    }
    if (hinted > 0) log.info({ hinted }, 'archive sweep found rooms behind');
    return hinted;
  }

  /** Partitions ahead, and those past retention dropped. */
  async function maintain(): Promise<void> {
    const today = dayOf(Date.now());
    await activity.ensurePartitions(Array.from({ length: PARTITIONS_AHEAD + 1 }, (_, i) => today + i * DAY_MS));
    const dropped = await activity.dropPartitionsBefore(retentionCutoff());
    if (dropped.length > 0) log.info({ dropped }, 'archive partitions past retention dropped');
  }

  /** The rooms due for archiving, and when the next one will be (null: none waiting). */
  async function takeRooms(): Promise<{ rooms: { roomId: string; score: number }[]; nextAt: number | null }> {
    const reply = await scripts.run<string[]>('feed-archive-take', [pending], [Date.now() - delayMs, ROOMS_PER_ROUND]);
    const next = reply.pop();
    const rooms: { roomId: string; score: number }[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) rooms.push({ roomId: reply[i]!, score: Number(reply[i + 1]) });
    return { rooms, nextAt: next ? Number(next) + delayMs : null };
  }

  /** Wait up to `ms`, or until stopped. */
  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      try {
        const now = Date.now();
        if (now - lastMaintenance >= MAINTENANCE_MS) {
          await maintain();
          lastMaintenance = now;
        }
        if (now - lastSweep >= claimIdleMs) {
          lastSweep = now;
          await sweep();
        }
        const due = deferred.filter((d) => d.at <= now);
        if (due.length > 0) {
          deferred.splice(0, deferred.length, ...deferred.filter((d) => d.at > now));
          await rehint(due);
        }
        const { rooms, nextAt } = await takeRooms();
        failures = 0;
        if (rooms.length > 0) {
          await archiveRooms(rooms);
          continue;
        }
        await idle(Math.min(blockMs, nextAt === null ? blockMs : Math.max(5, nextAt - Date.now())));
      } catch (err) {
        if (!running) break;
        failures++;
        log.warn({ err, failures }, 'archive round failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(failures, 6))));
      }
    }
    await rehint(deferred.splice(0)).catch(() => undefined);
  }

  return {
    consumer,

    /** Start the worker loop. The connections must be connected. */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      loop = run();
    },

    /** Stop after the current round; the caller closes the connections afterwards. */
    async stop(): Promise<void> {
      if (!running) return;
      running = false;
      wake?.();
      await Promise.race([loop, new Promise((r) => setTimeout(r, blockMs + 500))]);
    },

    /**
     * How far the archive is behind, for a gauge: seconds since the oldest hint
     * not yet archived (0 when none), and rooms waiting.
     */
    async lag(): Promise<{ seconds: number; rooms: number }> {
      const [oldest, count] = await Promise.all([redis.zrange(pending, 0, 0, 'WITHSCORES'), redis.zcard(pending)]);
      let from = oldest[1] === undefined ? Number.POSITIVE_INFINITY : Number(oldest[1]);
      for (const score of inFlight.values()) from = Math.min(from, score);
      return { seconds: Number.isFinite(from) ? Math.max(0, (Date.now() - from) / 1000) : 0, rooms: count + inFlight.size };
    },

    /** Counters since start: rows inserted, entries dead-lettered, trims that outran the archive. */
    stats(): { archived: number; deadLetters: number; lostToTrim: number } {
      return { archived, deadLetters, lostToTrim };
    },

    /** One sweep now (tests). */
    sweep,
  };
}
