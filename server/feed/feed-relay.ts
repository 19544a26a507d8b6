/**
 * Delivery of feed entries to the subscribers on this node.
 *
 * The append script publishes every entry, with its id and the id before it
 * (`prev`), on its feed's live channel (sharded pub/sub, in the feed's hash
 * slot). A node subscribes (SSUBSCRIBE, on one dedicated connection) to the
 * channels of the feeds it has subscribers for, and nothing else: the work
 * per entry on a node is one message, one header parse and one write per
 * local subscriber, however many rooms the node serves. The stream stays the
 * source of truth: whatever the channel misses is read back from it.
 *
 * Invariants:
 * - A channel (one per feed with local subscribers) holds `cursor`, the last
 *   id it handed to its subscribers. A message is delivered only when its
 *   `prev` is the cursor. A message whose `prev` is not the cursor means
 *   messages were lost: the channel repairs from the stream (XRANGE after the
 *   cursor) before delivering anything after it, buffering what arrives
 *   meanwhile. If the stream no longer holds the entry after the cursor
 *   (trimmed past a node that fell behind) or its epoch changed, the channel
 *   is dropped and its subscribers are told (`lost`), never silently skipped
 *   ahead.
 * - Messages are lost only with the subscriber connection (a reconnect, a
 *   Redis restart, a cluster slot moving). After every reconnect each channel
 *   repairs from the stream; and a channel that heard nothing for
 *   `checkIntervalMs` compares its cursor with the feed's last id (one HMGET,
 *   pipelined), so a loss at the end of a burst is repaired within that time.
 * - A subscription holds its own `cursor` and only ever delivers an entry
 *   whose id is greater: each entry once, in order.
 * - A new subscription first replays from its start point with XRANGE pages
 *   (whenever its socket holds more than a low-water mark it waits until the
 *   socket has taken it: replays are flow-controlled, never queued whole) until it reaches the channel's
 *   cursor, and switches to live delivery synchronously (no message can
 *   interleave), so replay and live meet without gap or overlap. A replay
 *   longer than `replayMax` entries (known from the entries' `n` count before
 *   anything is read) is refused: `recovered: false`. A gap at the start of
 *   the replay (the stream was trimmed past `since`) is filled from the
 *   PostgreSQL archive when its rows form an unbroken `prev` chain from
 *   `since` to the first entry still in the stream.
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import type { Logger } from 'pino';
import type { FeedSubscribed } from '../../shared/schemas.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { ArchiveChain, ArchivedDelivery } from './activity-repository.ts';
import type { Delivery, FeedRef, FeedStore, StorePosition } from './feed-store.ts';
import { compareIds, isStreamId, ZERO_ID } from '../../shared/stream-ids.ts';

export type LostReason = 'epoch_changed' | 'fell_behind';

/** Where a subscription's entries go. The callbacks must not throw. */
export interface FeedSink {
  /**
   * Each entry, in stream order, once. The `Delivery` object is shared by every
   * subscriber on this node. `replay` is true while the subscription catches up;
   * returning false then asks the replay to wait (`ready`) before the next entry.
   */
  deliver(delivery: Delivery, replay: boolean): boolean | void;
  /** The subscription cannot continue without a gap; it has been removed. Subscribe again with `since`. */
  lost(reason: LostReason): void;
  /**
   * Replay flow control, awaited when `deliver` returned false: resolves true
   * once the subscriber has taken what it was sent, false when it is gone (the
   * replay stops). @default always ready
   */
  ready?(): Promise<boolean> | boolean;
}

export interface FeedSubscription {
  readonly ref: FeedRef;
  /** Stop delivery. Idempotent. */
  close(): void;
}

export interface ArchiveReader {
  /** Entries of one epoch strictly between `after` and `before`, oldest first, at most `limit`. */
  between(roomId: string, epoch: string, after: string, before: string, limit: number): Promise<ArchivedDelivery[]>;
  /** Whether the rows strictly between `after` and `before` chain from `after` to `linkTo`, and how many there are (at most `limit` + 1 counted). */
  chain(roomId: string, epoch: string, after: string, before: string, linkTo: string, limit: number): Promise<ArchiveChain>;
}

export interface FeedRelayOptions {
  store: FeedStore;
  /** Dedicated connection for SSUBSCRIBE; owned (connected and closed) by the caller. */
  subscriber: Redis;
  archive?: ArchiveReader;
  /** Most entries one subscribe replays (stream and archive together); more answers `recovered: false`. */
  replayMax: number;
  logger: Logger;
  /** Entries per XRANGE page, for repairs and replays. @default 200 */
  readCount?: number;
  /** A channel that heard nothing this long has its position checked, ms. @default 5000 */
  checkIntervalMs?: number;
  /** How long subscribing to a live channel may take before the subscribe fails with `unavailable`, ms. @default 2000 */
  subscribeTimeoutMs?: number;
  /**
   * Called once per live entry this node fans out (not per subscriber), with
   * its age in seconds: from the append (the stream id's time, Redis's clock)
   * to the fan-out (this node's clock).
   */
  onLiveDelivery?: (ageSeconds: number) => void;
}

interface Message extends Delivery {
  epoch: string;
}

interface Channel {
  name: string;
  ref: FeedRef;
  /** Resolves once subscribed and positioned; rejects when that failed. */
  ready: Promise<void>;
  epoch: string;
  /** Last id handed to the live subscriptions. Valid once `ready`. */
  cursor: string;
  subs: Set<Sub>;
  /** Subscribes in progress that will add a subscription. */
  joining: number;
  /** Messages held while the channel is being positioned or repaired; null when live. */
  held: Message[] | null;
  /** A repair is running. */
  repairing: boolean;
  /** Held messages overflowed and were dropped: repair once more afterwards. */
  again: boolean;
  heardAt: number;
  closed: boolean;
}

interface Sub {
  channel: Channel;
  sink: FeedSink;
  cursor: string;
  live: boolean;
  closed: boolean;
}

/** The feed no longer holds a contiguous run after a cursor. */
class GapError extends Error {}

/** Held messages past this many are dropped and read back from the stream instead. */
const HELD_MAX = 10_000;

/** Parse `<epoch> <prev> <id> <ends>\n<json>`; null for anything else. */
function parseMessage(text: string): Message | null {
  const nl = text.indexOf('\n');
  if (nl < 0) return null;
  const head = text.slice(0, nl).split(' ');
  if (head.length < 3) return null;
  return { epoch: head[0]!, prev: head[1]!, id: head[2]!, ends: head[3] ?? '', json: text.slice(nl + 1) };
}

export type FeedRelay = ReturnType<typeof createFeedRelay>;

export function createFeedRelay(options: FeedRelayOptions) {
  const { store, subscriber, archive, replayMax } = options;
  const readCount = options.readCount ?? 200;
  const checkIntervalMs = options.checkIntervalMs ?? 5000;
  const subscribeTimeoutMs = options.subscribeTimeoutMs ?? 2000;
  const log = options.logger.child({ component: 'feed-relay' });

  const channels = new Map<string, Channel>();
  let checkTimer: NodeJS.Timeout | undefined;
  let running = false;
  let disconnected = false;
  let delivered = 0;
  let repaired = 0;

  function safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      log.warn({ err }, 'feed sink failed');
    }
  }

  /** Deliver if newer than the subscription's cursor; false when a replaying subscriber asks to wait. */
  function deliverTo(sub: Sub, d: Delivery): boolean {
    if (sub.closed || compareIds(d.id, sub.cursor) <= 0) return true;
    sub.cursor = d.id;
    delivered++;
    const more = { ok: true };
    safely(() => {
      more.ok = sub.sink.deliver(d, !sub.live) !== false;
    });
    return more.ok;
  }

  /** Hand the next entry of the channel (its `prev` is the cursor) to every live subscription. */
  function fanOut(ch: Channel, d: Delivery): void {
    const previous = ch.cursor;
    ch.cursor = d.id;
    for (const sub of ch.subs) {
      if (!sub.live) continue;
      if (sub.cursor === previous) {
        // In step with the channel (the usual case): no id comparison, no closure.
        sub.cursor = d.id;
        delivered++;
        try {
          sub.sink.deliver(d, false);
        } catch (err) {
          log.warn({ err }, 'feed sink failed');
        }
      } else deliverTo(sub, d);
    }
  }

  function closeChannelIfUnused(ch: Channel): void {
    if (ch.closed || ch.subs.size > 0 || ch.joining > 0) return;
    ch.closed = true;
    if (channels.get(ch.name) === ch) channels.delete(ch.name);
    subscriber.sunsubscribe(ch.name).catch(() => undefined);
  }

  function removeSub(sub: Sub): void {
    if (sub.closed) return;
    sub.closed = true;
    sub.channel.subs.delete(sub);
    closeChannelIfUnused(sub.channel);
  }

  /** The channel cannot go on without a gap: every subscription is told and the channel goes. */
  function dropChannel(ch: Channel, reason: LostReason): void {
    if (ch.closed) return;
    const subs = [...ch.subs];
    ch.subs.clear();
    ch.closed = true;
    if (channels.get(ch.name) === ch) channels.delete(ch.name);
    subscriber.sunsubscribe(ch.name).catch(() => undefined);
    log.warn({ channel: ch.name, reason, subscribers: subs.length }, 'feed channel lost its position; subscribers must resubscribe');
    for (const sub of subs) {
      sub.closed = true;
      safely(() => sub.sink.lost(reason));
    }
  }

  async function dropAfterGap(ch: Channel): Promise<void> {
    const meta = await store.meta(ch.ref).catch(() => null);
    dropChannel(ch, meta && meta.epoch === ch.epoch ? 'fell_behind' : 'epoch_changed');
  }

  function apply(ch: Channel, m: Message): void {
    if (m.epoch !== ch.epoch) {
      dropChannel(ch, 'epoch_changed');
      return;
    }
    if (m.prev === ch.cursor) {
      // The next entry (the usual case: no id comparison).
      fanOut(ch, m);
      if (options.onLiveDelivery) options.onLiveDelivery((Date.now() - Number.parseInt(m.id, 10)) / 1000);
      return;
    }
    if (compareIds(m.id, ch.cursor) <= 0) return;
    log.info({ channel: ch.name, cursor: ch.cursor, id: m.id, prev: m.prev }, 'feed message missing: repairing from the stream');
    ch.held = [m];
    repair(ch);
  }

  /** Apply the held messages in order; if one of them starts a repair, the rest stay held behind it. */
  function release(ch: Channel): void {
    const held = ch.held;
    ch.held = null;
    if (!held) return;
    for (let i = 0; i < held.length; i++) {
      if (ch.closed) return;
      if (ch.held) {
        (ch.held as Message[]).push(...held.slice(i));
        return;
      }
      apply(ch, held[i]!);
    }
  }

  /** Read the stream after the cursor and deliver it, then release the held messages. Retries while Redis fails. */
  function repair(ch: Channel): void {
    if (ch.repairing || ch.closed) return;
    ch.repairing = true;
    ch.held ??= [];
    repaired++;
    void (async () => {
      let failures = 0;
      for (;;) {
        try {
          ch.again = false;
          for (;;) {
            const page = await store.after(ch.ref, ch.cursor, readCount);
            if (ch.closed) return;
            for (const d of page) {
              if (compareIds(d.id, ch.cursor) <= 0) continue;
              if (d.prev !== ch.cursor) {
                await dropAfterGap(ch);
                return;
              }
              fanOut(ch, d);
            }
            if (page.length < readCount) break;
          }
          if (ch.again) continue;
          break;
        } catch (err) {
          if (ch.closed || !running) return;
          failures++;
          log.warn({ err: { message: (err as Error).message }, channel: ch.name, failures }, 'feed repair failed; retrying');
          await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** Math.min(failures, 6))));
        }
      }
      ch.repairing = false;
      ch.heardAt = Date.now();
      release(ch);
    })();
  }

  function onMessage(name: string, text: string): void {
    const ch = channels.get(name);
    if (!ch || ch.closed) return;
    const m = parseMessage(text);
    if (!m) return;
    ch.heardAt = Date.now();
    if (ch.held) {
      if (ch.held.length >= HELD_MAX) {
        // The stream has them: drop what is held and read it back once the repair is done.
        ch.held = [];
        ch.again = true;
      }
      ch.held.push(m);
      return;
    }
    apply(ch, m);
  }

  /**
   * The channel of a feed, subscribed and positioned, with `joining` counted
   * for the caller (who adds a subscription or calls `leave`). Throws
   * `unavailable` when Redis fails.
   */
  async function openChannel(ref: FeedRef): Promise<Channel> {
    const name = store.liveChannel(ref);
    let ch = channels.get(name);
    if (!ch) {
      const created: Channel = {
        name,
        ref,
        ready: Promise.resolve(),
        epoch: '',
        cursor: ZERO_ID,
        subs: new Set(),
        joining: 0,
        held: [],
        repairing: false,
        again: false,
        heardAt: Date.now(),
        closed: false,
      };
      channels.set(name, created);
      created.ready = (async () => {
        try {
          // The subscriber connection has no command timeout (it waits for messages): bound this one call.
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            subscriber.ssubscribe(name).finally(() => clearTimeout(timer)),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`SSUBSCRIBE ${name} did not answer within ${subscribeTimeoutMs} ms`)), subscribeTimeoutMs);
            }),
          ]);
          // Positioned after the subscription took effect: every later entry arrives as a message.
          const position = await store.position(ref);
          created.epoch = position.epoch;
          created.cursor = position.lastId;
        } catch (err) {
          created.closed = true;
          if (channels.get(name) === created) channels.delete(name);
          subscriber.sunsubscribe(name).catch(() => undefined);
          throw new AppError(ErrorCode.Unavailable, 'The feed could not be followed; try again', { cause: err });
        }
        if (created.again) {
          created.again = false;
          created.held = [];
          repair(created);
        } else release(created);
      })();
      ch = created;
    }
    ch.joining++;
    try {
      await ch.ready;
    } catch (err) {
      ch.joining--;
      throw err;
    }
    return ch;
  }

  /** A caller of `openChannel` that will not add a subscription after all. */
  function leave(ch: Channel): void {
    ch.joining--;
    closeChannelIfUnused(ch);
  }

  /** How a subscription replays from `since`, if it can: how many entries, and up to where the archive must serve. */
  async function planReplay(ref: FeedRef, epoch: string, since: string, position: StorePosition): Promise<{ archiveUntil?: string } | null> {
    if (since === position.lastId) return {};
    const at = since === ZERO_ID ? null : await store.at(ref, since);
    if (at) return position.n - at.n <= replayMax ? {} : null;
    const first = await store.first(ref);
    if (!first) return null;
    if (first.prev === since) return position.n - first.n + 1 <= replayMax ? {} : null;
    // The stream was trimmed past `since`: only the archive can bridge to its first entry.
    if (ref.kind !== 'room' || !archive) return null;
    const budget = replayMax - (position.n - first.n + 1);
    if (budget < 0) return null;
    const chain = await archive.chain(ref.roomId, epoch, since, first.id, first.prev, budget);
    return chain.linked && chain.count <= budget ? { archiveUntil: first.id } : null;
  }

  async function flowControl(sub: Sub): Promise<void> {
    if (!sub.sink.ready) return;
    const ok = await sub.sink.ready();
    if (!ok) removeSub(sub);
  }

  /** Replay archived entries between `sub.cursor` and `until`, page by page. Throws GapError when the chain breaks. */
  async function replayArchive(sub: Sub, roomId: string, until: string): Promise<void> {
    for (;;) {
      const rows = await archive!.between(roomId, sub.channel.epoch, sub.cursor, until, readCount);
      if (sub.closed) return;
      for (const row of rows) {
        if (sub.closed) return;
        if (row.prev !== sub.cursor) throw new GapError('the archive chain broke during a replay');
        if (!deliverTo(sub, row.delivery)) await flowControl(sub);
      }
      if (sub.closed || rows.length < readCount) return;
    }
  }

  /** Deliver from `sub.cursor` up to the channel's cursor, page by page, then switch to live. Throws GapError. */
  async function catchUp(sub: Sub): Promise<void> {
    const ch = sub.channel;
    for (;;) {
      if (sub.closed) return;
      if (compareIds(sub.cursor, ch.cursor) >= 0) {
        sub.live = true;
        return;
      }
      const page = await store.after(ch.ref, sub.cursor, readCount);
      if (sub.closed) return;
      if (page.length === 0) {
        // The stream ends before the channel's cursor: it was trimmed or lost meanwhile.
        if (compareIds(sub.cursor, ch.cursor) < 0) throw new GapError('the stream holds nothing after the cursor but the channel is ahead');
        continue;
      }
      for (const d of page) {
        if (sub.closed) return;
        if (compareIds(d.id, sub.cursor) <= 0) continue;
        if (d.prev !== sub.cursor) throw new GapError('entries after the cursor are no longer in the stream');
        if (!deliverTo(sub, d)) await flowControl(sub);
      }
    }
  }

  async function checkQuiet(): Promise<void> {
    const now = Date.now();
    const quiet = [...channels.values()].filter((ch) => !ch.closed && !ch.held && !ch.repairing && ch.subs.size > 0 && now - ch.heardAt >= checkIntervalMs);
    await Promise.all(
      quiet.map(async (ch) => {
        const meta = await store.meta(ch.ref);
        ch.heardAt = Date.now();
        if (ch.closed || ch.held || ch.repairing) return;
        if (!meta || meta.epoch !== ch.epoch) {
          if (meta) dropChannel(ch, 'epoch_changed');
          return;
        }
        if (compareIds(meta.lastId, ch.cursor) > 0) {
          log.info({ channel: ch.name, cursor: ch.cursor, last: meta.lastId }, 'feed channel behind its stream: repairing');
          ch.held = [];
          repair(ch);
        }
      }),
    );
  }

  function scheduleCheck(): void {
    checkTimer = setTimeout(() => {
      checkQuiet()
        .catch((err: unknown) => log.warn({ err: { message: (err as Error).message } }, 'feed position check failed'))
        .finally(() => {
          if (running) scheduleCheck();
        });
    }, checkIntervalMs);
    checkTimer.unref();
  }

  const onSmessage = (channel: string, message: string) => onMessage(channel, message);
  const onClose = () => {
    disconnected = true;
  };
  const onReady = () => {
    if (!disconnected) return;
    disconnected = false;
    // ioredis resubscribes every channel right after 'ready'; a PING queued after those
    // answers once they took effect. Then every channel reads what it missed.
    setImmediate(() => {
      subscriber
        .ping()
        .catch(() => undefined)
        .finally(() => {
          for (const ch of channels.values()) {
            if (ch.closed || ch.repairing) continue;
            ch.held ??= [];
            repair(ch);
          }
        });
    });
  };

  return {
    start(): void {
      if (running) return;
      running = true;
      subscriber.on('smessage', onSmessage);
      subscriber.on('close', onClose);
      subscriber.on('ready', onReady);
      scheduleCheck();
    },

    /** Stop delivering; the caller closes the subscriber connection afterwards. */
    async stop(): Promise<void> {
      running = false;
      clearTimeout(checkTimer);
      subscriber.off('smessage', onSmessage);
      subscriber.off('close', onClose);
      subscriber.off('ready', onReady);
    },

    /**
     * Subscribe `sink` to a feed. With `since` in the current epoch, every entry
     * after `since.id` is delivered (from the stream, or the archive for a
     * trimmed gap), then live entries, each once, in order: `recovered: true`.
     * Otherwise delivery starts after the feed's current last id (`lastId`) and
     * `recovered` is false. Replayed entries are delivered before this resolves;
     * `signal` aborts a replay in progress (the subscription is closed).
     */
    async subscribe(
      ref: FeedRef,
      since: { epoch: string; id: string } | undefined,
      sink: FeedSink,
      signal?: AbortSignal,
    ): Promise<{ subscription: FeedSubscription; result: FeedSubscribed }> {
      let ch = await openChannel(ref);
      let position: StorePosition;
      try {
        position = await store.position(ref);
        if (ch.closed || position.epoch !== ch.epoch) {
          // The stream was recreated since the channel was positioned (or the channel dropped meanwhile): start over.
          dropChannel(ch, 'epoch_changed');
          leave(ch);
          ch = await openChannel(ref);
          position = await store.position(ref);
        }
      } catch (err) {
        leave(ch);
        throw err instanceof AppError ? err : new AppError(ErrorCode.Unavailable, 'The feed could not be read; try again', { cause: err });
      }
      const sub: Sub = { channel: ch, sink, cursor: position.lastId, live: false, closed: false };
      ch.subs.add(sub);
      ch.joining--;
      const subscription: FeedSubscription = { ref, close: () => removeSub(sub) };
      const abort = () => removeSub(sub);
      signal?.addEventListener('abort', abort, { once: true });
      if (signal?.aborted) abort();
      let recovered = false;
      try {
        const resumable = since !== undefined && since.epoch === position.epoch && isStreamId(since.id) && compareIds(since.id, position.lastId) <= 0;
        const plan = resumable ? await planReplay(ref, position.epoch, since.id, position) : null;
        if (plan && !sub.closed) {
          sub.cursor = since!.id;
          try {
            if (plan.archiveUntil && ref.kind === 'room') await replayArchive(sub, ref.roomId, plan.archiveUntil);
            await catchUp(sub);
            recovered = !sub.closed;
          } catch (err) {
            if (!(err instanceof GapError)) throw err;
            // Part of the replay was delivered and the rest is gone (trimmed while replaying): the client reloads.
            removeSub(sub);
            safely(() => sink.lost('fell_behind'));
          }
        } else if (!sub.closed) {
          await catchUp(sub);
        }
      } catch (err) {
        removeSub(sub);
        if (err instanceof GapError) throw new AppError(ErrorCode.Unavailable, 'The feed moved on while subscribing; subscribe again', { cause: err });
        throw err instanceof AppError ? err : new AppError(ErrorCode.Unavailable, 'The feed could not be read; try again', { cause: err });
      } finally {
        signal?.removeEventListener('abort', abort);
      }
      return { subscription, result: { epoch: position.epoch, lastId: position.lastId, recovered } };
    },

    /** Channels (feeds followed) and subscriptions held by this node, and counters since start. */
    stats(): { channels: number; subscriptions: number; delivered: number; repairs: number } {
      let subscriptions = 0;
      for (const ch of channels.values()) subscriptions += ch.subs.size;
      return { channels: channels.size, subscriptions, delivered, repairs: repaired };
    },

    /** Run the quiet-channel position check now (tests). */
    checkNow: checkQuiet,
  };
}
