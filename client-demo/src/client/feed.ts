/**
 * The room's feed: entries delivered to the page once each, in order (a
 * second guard on top of the server's guarantee), resumed after a reconnect
 * from the last entry shown; history pages; publishing; and the outbox.
 *
 * The outbox: chat messages and reactions are queued with their
 * `clientMsgId` (kept in sessionStorage, so a reload keeps them) and sent
 * only while the room is joined and its feed resumed; after a drop they go
 * once the client has rejoined and caught up. The server's idempotency per
 * `clientMsgId` makes a resend after a lost ack add nothing: each lands once.
 */
import type { FeedEntry, FeedHistoryPage, FeedPosition } from '../../../shared/schemas.ts';
import { compareIds } from '../../../shared/stream-ids.ts';
import type { Connection, PinroomSocket } from './connection.ts';
import { asPinroomError, PinroomError } from './errors.ts';
import type { Emit, KeyValueStore, OutboxItem } from './events.ts';
import type { CurrentRoom } from './rooms.ts';

const OUTBOX_KEY = 'pinroom.outbox';

export type Feed = ReturnType<typeof createFeed>;

export function createFeed({
  connection,
  emit,
  room,
  outboxStorage,
}: {
  connection: Connection;
  emit: Emit;
  /** The room this client is in now (its feed position is kept there). */
  room: () => CurrentRoom | null;
  outboxStorage: KeyValueStore;
}) {
  const { request } = connection;
  /** Joined and the feed subscribed (or resumed) on the live socket: the outbox may send. */
  let ready = false;
  let outbox: OutboxItem[] = readOutbox();
  let flushing = false;
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Counters of live entries, one per `feed:subscribe` in flight. */
  const counting = new Set<(entry: FeedEntry) => void>();

  function readOutbox(): OutboxItem[] {
    try {
      const raw = outboxStorage.getItem(OUTBOX_KEY);
      if (!raw) return [];
      const items: OutboxItem[] = JSON.parse(raw);
      return items;
    } catch {
      return [];
    }
  }

  function saveOutbox(): void {
    if (outbox.length === 0) outboxStorage.removeItem(OUTBOX_KEY);
    else outboxStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox));
  }

  const pendingIn = (roomId: string | undefined) => outbox.filter((item) => item.roomId === roomId);

  function outboxChanged(): void {
    saveOutbox();
    emit('outbox', pendingIn(room()?.room.id));
  }

  /** Drop what was queued for a room this client is no longer in (left, kicked, ended). */
  function dropOutbox(roomId: string): void {
    const before = outbox.length;
    outbox = outbox.filter((item) => item.roomId !== roomId);
    if (outbox.length !== before) outboxChanged();
  }

  function flushLater(ms: number): void {
    clearTimeout(flushTimer);
    flushTimer = setTimeout(() => {
      flushTimer = undefined;
      void flushOutbox();
    }, ms);
  }

  /**
   * Send the current room's queued items, oldest first, one at a time, while
   * the client is ready. A connection problem stops the loop with the item
   * still queued (sent again once the room is rejoined and the feed resumed);
   * the server's answer for a `clientMsgId` it already has is that entry's id,
   * so a resend never adds a second entry. Volatile: a send while the socket
   * is down is dropped by Socket.IO rather than replayed on reconnect ahead of
   * the rejoin (which the server would refuse as not a member).
   */
  async function flushOutbox(): Promise<void> {
    if (flushing) return;
    flushing = true;
    try {
      for (;;) {
        const roomId = room()?.room.id;
        const item = outbox.find((i) => i.roomId === roomId);
        if (!ready || !connection.connected || !item) return;
        try {
          await request('feed:publish', { roomId: item.roomId, type: item.type, payload: item.payload, clientMsgId: item.clientMsgId }, { volatile: true });
          outbox = outbox.filter((i) => i !== item);
          outboxChanged();
        } catch (err) {
          const error = asPinroomError(err);
          if (error.code === 'network') return; // tried again after the next rejoin, or by the timer below
          if (error.code === 'rate_limited' || error.code === 'unavailable' || error.code === 'internal') {
            flushLater(error.retryAfterMs ?? 1000);
            return;
          }
          outbox = outbox.filter((i) => i !== item);
          outboxChanged();
          emit('sendFailed', item, error);
        }
      }
    } finally {
      flushing = false;
      // A send that timed out on a live socket: try again soon rather than waiting for a reconnect.
      if (ready && connection.connected && pendingIn(room()?.room.id).length > 0 && !flushTimer) flushLater(2000);
    }
  }

  function setReady(value: boolean): void {
    ready = value;
    if (value) void flushOutbox();
  }

  function deliver(entry: FeedEntry, live: boolean): void {
    const current = room();
    if (!current || entry.roomId !== current.room.id) return;
    if (current.lastId !== null && compareIds(entry.id, current.lastId) <= 0) return; // seen already
    current.lastId = entry.id;
    emit('entry', entry, live);
  }

  /** Subscribe to the current room's feed; with `resume`, from the last entry shown (reporting how many were caught up). */
  async function subscribe(resume: boolean): Promise<void> {
    const current = room();
    if (!current) return;
    const since = resume && current.epoch && current.lastId ? { epoch: current.epoch, id: current.lastId } : undefined;
    const before = current.lastId;
    let caughtUp = 0;
    const count = (entry: FeedEntry) => {
      const now = room();
      if (now && entry.roomId === now.room.id && (before === null || compareIds(entry.id, before) > 0)) caughtUp++;
    };
    counting.add(count);
    try {
      const result = await request('feed:subscribe', since ? { roomId: current.room.id, since } : { roomId: current.room.id });
      const now = room();
      if (!now) return;
      if (since && !result.recovered) {
        now.epoch = result.epoch;
        now.lastId = result.lastId;
        emit('reset');
        connection.setState({ status: 'reloaded' });
      } else {
        now.epoch = result.epoch;
        if (!since) now.lastId = result.lastId;
        if (resume) connection.setState({ status: 'resumed', caughtUp });
      }
    } finally {
      counting.delete(count);
    }
  }

  return {
    /** Put the feed's listener on a new socket. */
    wire(s: PinroomSocket): void {
      s.on('feed:entry', (entry) => {
        deliver(entry, true);
        for (const count of counting) count(entry);
      });
    },
    setReady,
    subscribe,
    dropOutbox,
    /** Queued items of the current room, oldest first. */
    pending: () => pendingIn(room()?.room.id),
    /** Forget every queued item (the session ended). */
    clearOutbox(): void {
      ready = false;
      outbox = [];
      saveOutbox();
    },

    /** Subscribe from the position a join answered (live delivery starts after it). */
    async subscribeFrom(roomId: string, position: FeedPosition): Promise<void> {
      const result = await request('feed:subscribe', { roomId, since: { epoch: position.epoch, id: position.lastId } });
      const current = room();
      if (current) current.epoch = result.epoch;
    },

    /**
     * Publish into the room's feed. The `clientMsgId` makes a retry after a
     * dropped ack safe: the server answers the first id and adds nothing.
     */
    async publish(type: string, payload: Record<string, unknown>, clientMsgId = crypto.randomUUID()): Promise<string> {
      const current = room();
      if (!current) throw new PinroomError({ code: 'conflict', message: 'not in a room' });
      const roomId = current.room.id;
      for (let attempt = 1; ; attempt++) {
        try {
          const { id } = await request('feed:publish', { roomId, type, payload, clientMsgId });
          return id;
        } catch (err) {
          const retry = err instanceof PinroomError && (err.code === 'network' || err.code === 'unavailable') && attempt < 4;
          if (!retry) throw err;
          await new Promise((r) => setTimeout(r, 300 * attempt));
        }
      }
    },

    /**
     * Queue a chat message or reaction for the current room: it is sent now
     * if the room is joined and the feed live, else once it is again (after a
     * reconnect, or a reload of this tab). Pending until acknowledged (the
     * `outbox` event); lands exactly once.
     */
    send(type: 'chat.message' | 'reaction', payload: Record<string, unknown>): OutboxItem {
      const current = room();
      if (!current) throw new PinroomError({ code: 'conflict', message: 'not in a room' });
      const item: OutboxItem = { clientMsgId: crypto.randomUUID(), roomId: current.room.id, type, payload, queuedAt: Date.now() };
      outbox.push(item);
      outboxChanged();
      void flushOutbox();
      return item;
    },

    /** One page of older entries, newest first. */
    async history(before?: string, limit = 50): Promise<FeedHistoryPage> {
      const current = room();
      if (!current) return { entries: [] };
      return request('feed:history', before ? { roomId: current.room.id, before, limit } : { roomId: current.room.id, limit });
    },
  };
}
