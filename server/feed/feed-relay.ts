/**
 * Delivery of feed entries to the subscribers on this node, from the streams
 * themselves: each node tails the streams that have local subscribers with
 * `XREAD BLOCK` on one dedicated blocking connection. There is no pub/sub hop
 * that could drop a message: an entry reaches a subscriber only by being read
 * from the stream, in stream order, after the last id this node holds.
 *
 * Invariants:
 * - A tail (one per stream with local subscribers) holds `cursor`, the last id
 *   it read; the next entry it reads must carry `prev === cursor`. Anything
 *   else means entries vanished (the stream was trimmed past a node that fell
 *   behind, or Redis lost the stream): the tail is dropped and its subscribers
 *   are told (`lost`), never silently skipped ahead.
 * - A subscription holds its own `cursor`, the last id it delivered, and only
 *   ever delivers an entry whose id is greater: each entry once, in order.
 * - A new subscription first catches up with XRANGE from its start point
 *   (`since`, or the feed's last id) until it reaches the tail's cursor, and
 *   switches to live delivery synchronously (no read can interleave), so the
 *   replay and the live part meet without gap or overlap. A gap at the start
 *   of the replay (the stream was trimmed past `since`) is filled from the
 *   PostgreSQL archive when the archived rows form an unbroken `prev` chain
 *   from `since` to the first entry still in the stream.
 * - A dropped connection only delays reads: the next XREAD continues from the
 *   same cursors.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FeedEntry, FeedSubscribed } from '../../shared/schemas.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { ArchivedEntry } from './activity-repository.ts';
import { decodeEntry, type FeedRef, type FeedStore, type StoredEntry } from './feed-store.ts';
import { compareIds, isStreamId } from './stream-ids.ts';

export type LostReason = 'epoch_changed' | 'fell_behind';

/** Where a subscription's entries go. Both callbacks must not throw. */
export interface FeedSink {
  /** Each entry, in stream order, once. */
  deliver(entry: FeedEntry): void;
  /** The subscription cannot continue without a gap; it has been removed. Subscribe again with `since`. */
  lost(reason: LostReason): void;
}

export interface FeedSubscription {
  readonly ref: FeedRef;
  /** Stop delivery. Idempotent. */
  close(): void;
}

export interface ArchiveReader {
  /** Entries of one epoch strictly between `after` and `before`, oldest first, at most `limit`. */
  between(roomId: string, epoch: string, after: string, before: string | undefined, limit: number): Promise<ArchivedEntry[]>;
}

export interface FeedRelayOptions {
  store: FeedStore;
  /** Command connection, for CLIENT UNBLOCK. */
  redis: Redis;
  /** Dedicated connection for XREAD BLOCK; owned (connected and closed) by the caller. */
  blocking: Redis;
  archive?: ArchiveReader;
  /** Most entries a subscription may take from the archive to fill a gap. */
  replayMax: number;
  logger: Logger;
  /** Upper bound of one XREAD BLOCK, ms (a new stream is added by unblocking it sooner). @default 5000 */
  blockMs?: number;
  /** Entries per stream per read, and per XRANGE page when catching up. @default 500 */
  readCount?: number;
}

interface Tail {
  key: string;
  ref: FeedRef;
  epoch: string;
  /** Last id read from the stream; null until the first subscription caught up to the end. */
  cursor: string | null;
  subs: Set<Sub>;
}

interface Sub {
  tail: Tail;
  sink: FeedSink;
  cursor: string;
  live: boolean;
  closed: boolean;
  /**
   * While a resume replays its gap: the entries read so far, held back until
   * the whole gap is known to fit `replayMax` (a longer gap replays nothing).
   */
  held?: FeedEntry[];
}

/** The stream no longer holds a contiguous run after a cursor (or the gap is longer than `replayMax`). */
class GapError extends Error {}

export type FeedRelay = ReturnType<typeof createFeedRelay>;

export function createFeedRelay(options: FeedRelayOptions) {
  const { store, redis, blocking, archive, replayMax } = options;
  const blockMs = options.blockMs ?? 5000;
  const readCount = options.readCount ?? 500;
  const log = options.logger.child({ component: 'feed-relay' });

  const tails = new Map<string, Tail>();
  let running = false;
  let loop: Promise<void> | undefined;
  let reading = false;
  let dirty = false;
  let blockingId: number | null = null;
  let idleWake: (() => void) | undefined;
  let unblockTimer: NodeJS.Timeout | undefined;

  blocking.on('close', () => {
    blockingId = null;
  });

  function safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      log.warn({ err }, 'feed sink failed');
    }
  }

  function deliver(sub: Sub, entries: readonly FeedEntry[]): void {
    for (const entry of entries) {
      if (sub.closed) return;
      if (compareIds(entry.id, sub.cursor) <= 0) continue;
      sub.cursor = entry.id;
      if (sub.held) {
        sub.held.push(entry);
        if (sub.held.length > replayMax) throw new GapError(`more than ${replayMax} entries to replay`);
        continue;
      }
      safely(() => sub.sink.deliver(entry));
    }
  }

  /** The replayed gap fits: hand it to the sink, then deliver directly. Called right before a subscription goes live. */
  function release(sub: Sub): void {
    const held = sub.held;
    if (!held) return;
    sub.held = undefined;
    for (const entry of held) {
      if (sub.closed) return;
      safely(() => sub.sink.deliver(entry));
    }
  }

  function removeSub(sub: Sub): void {
    if (sub.closed) return;
    sub.closed = true;
    const tail = sub.tail;
    tail.subs.delete(sub);
    if (tail.subs.size === 0 && tails.get(tail.key) === tail) tails.delete(tail.key);
  }

  function dropTail(tail: Tail, reason: LostReason): void {
    if (tails.get(tail.key) === tail) tails.delete(tail.key);
    const subs = [...tail.subs];
    tail.subs.clear();
    log.warn({ stream: tail.key, reason, subscribers: subs.length }, 'feed tail lost its position; subscribers must resubscribe');
    for (const sub of subs) {
      sub.closed = true;
      safely(() => sub.sink.lost(reason));
    }
  }

  /** Wake the reader so that it includes a stream it does not read yet. */
  function wake(): void {
    dirty = true;
    if (!reading) {
      idleWake?.();
      return;
    }
    if (blockingId !== null) redis.client('UNBLOCK', blockingId).catch(() => undefined);
    // The UNBLOCK may overtake the XREAD it targets (two connections): repeat until the reader has seen the change.
    unblockTimer ??= setTimeout(() => {
      unblockTimer = undefined;
      if (dirty && reading && running) wake();
    }, 50);
  }

  async function fillFromArchive(sub: Sub, next: StoredEntry): Promise<FeedEntry[] | null> {
    const ref = sub.tail.ref;
    if (ref.kind !== 'room' || !archive) return null;
    const rows = await archive.between(ref.roomId, sub.tail.epoch, sub.cursor, next.entry.id, replayMax + 1);
    if (rows.length > replayMax) return null;
    let expected = sub.cursor;
    for (const row of rows) {
      if (row.prev !== expected) return null;
      expected = row.entry.id;
    }
    return next.prev === expected ? rows.map((r) => r.entry) : null;
  }

  /** Deliver from `sub.cursor` up to the tail's cursor, then switch to live. Throws GapError. */
  async function catchUp(sub: Sub, useArchive: boolean): Promise<void> {
    const tail = sub.tail;
    for (;;) {
      if (sub.closed) return;
      if (tail.cursor !== null && compareIds(sub.cursor, tail.cursor) >= 0) {
        release(sub);
        sub.live = true;
        return;
      }
      // Whether the tail was already ahead when this read was sent: a read sent
      // earlier may predate the entries another subscription's read saw and made
      // the tail's cursor (concurrent subscribes to one feed), so it is not a gap.
      const tailAheadBefore = tail.cursor !== null;
      const page = await store.after(tail.ref, sub.cursor, readCount);
      if (sub.closed) return;
      if (page.length === 0) {
        if (tail.cursor !== null && !tailAheadBefore) continue;
        if (tail.cursor !== null) throw new GapError('the stream holds nothing after the cursor but the tail is ahead');
        tail.cursor = sub.cursor;
        release(sub);
        sub.live = true;
        wake();
        return;
      }
      const first = page[0]!;
      if (first.prev !== sub.cursor) {
        const filled = useArchive ? await fillFromArchive(sub, first) : null;
        if (sub.closed) return;
        if (!filled) throw new GapError('entries after the cursor are neither in the stream nor provably in the archive');
        deliver(sub, filled);
      }
      deliver(
        sub,
        page.map((s) => s.entry),
      );
      if (page.length < readCount && tail.cursor === null) {
        tail.cursor = sub.cursor;
        release(sub);
        sub.live = true;
        wake();
        return;
      }
    }
  }

  function onEntries(tail: Tail, raw: [string, string[] | null][]): void {
    for (const item of raw) {
      if (tail.cursor === null || tails.get(tail.key) !== tail) return;
      const stored = decodeEntry(tail.ref, item);
      if (!stored || compareIds(stored.entry.id, tail.cursor) <= 0) continue;
      if (stored.prev !== tail.cursor) {
        const cursor = tail.cursor;
        tails.delete(tail.key);
        void store.meta(tail.ref).then(
          (meta) => dropTail(tail, meta && meta.epoch === tail.epoch ? 'fell_behind' : 'epoch_changed'),
          () => dropTail(tail, 'epoch_changed'),
        );
        log.warn({ stream: tail.key, cursor, next: stored.entry.id, prev: stored.prev }, 'gap in a tailed feed stream');
        return;
      }
      const previous = tail.cursor;
      tail.cursor = stored.entry.id;
      for (const sub of tail.subs) {
        if (!sub.live || sub.closed) continue;
        if (sub.cursor === previous) {
          // In step with the tail (the usual case): the entry is the next one for
          // this subscription, no id comparison or array needed (thousands per entry in a big room).
          sub.cursor = stored.entry.id;
          safely(() => sub.sink.deliver(stored.entry));
        } else {
          deliver(sub, [stored.entry]);
        }
      }
    }
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      const active = [...tails.values()].filter((t) => t.cursor !== null);
      if (active.length === 0) {
        await new Promise<void>((resolve) => {
          idleWake = resolve;
          if (dirty || !running) resolve();
        });
        idleWake = undefined;
        dirty = false;
        continue;
      }
      dirty = false;
      let reply: [string, [string, string[] | null][]][] | null;
      try {
        if (blockingId === null) {
          blocking.client('ID').then(
            (id) => {
              blockingId = Number(id);
            },
            () => undefined,
          );
        }
        reading = true;
        reply = (await blocking.call('XREAD', 'COUNT', readCount, 'BLOCK', blockMs, 'STREAMS', ...active.map((t) => t.key), ...active.map((t) => t.cursor!))) as typeof reply;
        failures = 0;
      } catch (err) {
        reading = false;
        if (!running) break;
        failures++;
        log.warn({ err: { message: (err as Error).message }, failures }, 'feed tail read failed; retrying from the same cursors');
        await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** Math.min(failures, 6))));
        continue;
      }
      reading = false;
      if (!reply) continue;
      const byKey = new Map(active.map((t) => [t.key, t]));
      for (const [key, entries] of reply) {
        const tail = byKey.get(key);
        if (tail && tails.get(key) === tail) onEntries(tail, entries);
      }
    }
  }

  return {
    start(): void {
      if (running) return;
      running = true;
      loop = run();
    },

    /** Stop reading; the caller disconnects the blocking connection, which ends a pending read. */
    async stop(): Promise<void> {
      running = false;
      idleWake?.();
      clearTimeout(unblockTimer);
      if (reading && blockingId !== null) await redis.client('UNBLOCK', blockingId).catch(() => undefined);
      await Promise.race([loop, new Promise((r) => setTimeout(r, 1000))]);
    },

    /**
     * Subscribe `sink` to a feed. With `since` in the current epoch, every entry
     * after `since.id` is delivered (from the stream, or the archive for a
     * trimmed gap), then live entries, each once, in order: `recovered: true`.
     * Otherwise delivery starts after the feed's current last id (`lastId`) and
     * `recovered` is false. Replayed entries are delivered before this resolves.
     */
    async subscribe(ref: FeedRef, since: { epoch: string; id: string } | undefined, sink: FeedSink): Promise<{ subscription: FeedSubscription; result: FeedSubscribed }> {
      const position = await store.position(ref);
      const key = store.streamKey(ref);
      let tail = tails.get(key);
      if (tail && tail.epoch !== position.epoch) {
        dropTail(tail, 'epoch_changed');
        tail = undefined;
      }
      if (!tail) {
        tail = { key, ref, epoch: position.epoch, cursor: null, subs: new Set() };
        tails.set(key, tail);
      }
      const resumable = since !== undefined && since.epoch === position.epoch && isStreamId(since.id) && compareIds(since.id, position.lastId) <= 0;
      const sub: Sub = { tail, sink, cursor: resumable ? since.id : position.lastId, live: false, closed: false, ...(resumable ? { held: [] } : {}) };
      tail.subs.add(sub);
      let recovered = false;
      try {
        if (resumable) {
          try {
            await catchUp(sub, true);
            recovered = !sub.closed;
          } catch (err) {
            if (!(err instanceof GapError)) throw err;
            // Not provable, or longer than replayMax: nothing was delivered (the
            // replay is held until it fits), so start from the position the
            // answer names instead; the client reloads.
            sub.held = undefined;
            sub.cursor = position.lastId;
          }
        }
        if (!sub.live && !sub.closed) await catchUp(sub, false);
      } catch (err) {
        removeSub(sub);
        if (err instanceof GapError) throw new AppError(ErrorCode.Unavailable, 'The feed moved on while subscribing; subscribe again', { cause: err });
        throw err;
      }
      const subscription: FeedSubscription = { ref, close: () => removeSub(sub) };
      return { subscription, result: { epoch: position.epoch, lastId: position.lastId, recovered } };
    },

    /** Streams tailed and subscriptions held by this node. */
    stats(): { streams: number; subscriptions: number } {
      let subscriptions = 0;
      for (const tail of tails.values()) subscriptions += tail.subs.size;
      return { streams: tails.size, subscriptions };
    },
  };
}
