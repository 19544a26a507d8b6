/**
 * Socket events of the feed: `feed:publish`, `feed:subscribe`,
 * `feed:unsubscribe`, `feed:history`, and `feed:entry` pushed to subscribers.
 *
 * Cost of one delivered entry per subscriber: one Set lookup (still in the
 * room?), one write of a frame built once per node, and a look at the socket's
 * buffered bytes. A socket past `SOCKET_MAX_BUFFERED_BYTES` has its transport
 * closed (the client reconnects and resumes with `since`); replays wait until
 * it is below a quarter of that before the next page.
 */
import type { Logger } from 'pino';
import { FeedHistoryPayload, FeedPublishPayload, FeedSubscribePayload, FeedUnsubscribePayload, type MemberRole } from '../../shared/schemas.ts';
import type { EventRouter } from '../gateway/ack.ts';
import { bufferedBytes, createJsonSender, cutOff } from '../gateway/broadcast.ts';
import type { PinroomSocket } from '../gateway/create-io.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';
import type { FeedSink } from './feed-relay.ts';
import type { FeedService, FeedUser } from './feed-service.ts';

export interface FeedHandlerOptions {
  router: EventRouter;
  feed: FeedService;
  logger: Logger;
  /** `SOCKET_MAX_BUFFERED_BYTES`. */
  maxBufferedBytes: number;
  /** How long a replay waits for a socket to take a page before it is cut off, ms (`WS_PING_TIMEOUT_MS`). */
  drainTimeoutMs: number;
}

const keyOf = (payload: { roomId: string } | { scope: string }) => ('roomId' in payload ? `room:${payload.roomId}` : `scope:${payload.scope}`);

/** A subscription of one socket: closing it aborts a replay still running. */
interface Held {
  close(): void;
}

/** Register the feed events once, for every socket routed by `router`. */
export function registerFeedHandlers({ router, feed, logger, maxBufferedBytes, drainTimeoutMs }: FeedHandlerOptions): void {
  const log = logger.child({ component: 'feed-handlers' });
  const sendEntry = createJsonSender('feed:entry');
  const lowWater = Math.floor(maxBufferedBytes / 4);
  /** A socket's subscriptions by feed key; only sockets that subscribed have an entry. */
  const bySocket = new WeakMap<PinroomSocket, Map<string, Held>>();
  /** Roles a connection was found to have, by room: a host stays host (a room's host never changes), a member stays member while the connection is in the room. */
  const roles = new WeakMap<PinroomSocket, Map<string, MemberRole>>();

  const userOf = (socket: PinroomSocket): FeedUser => ({
    id: socket.data.user.id,
    name: socket.data.user.name,
    nameIn: (roomId) => socket.data.roomNames?.get(roomId),
    inRoom: (roomId) => socket.rooms.has(socketRooms.room(roomId)),
    roles: roles.get(socket) ?? roles.set(socket, new Map()).get(socket)!,
  });

  const drop = (socket: PinroomSocket, key: string) => {
    const subscriptions = bySocket.get(socket);
    if (!subscriptions) return;
    subscriptions.get(key)?.close();
    subscriptions.delete(key);
  };

  const overflow = (socket: PinroomSocket, key: string, bytes: number) => {
    for (const held of bySocket.get(socket)?.values() ?? []) held.close();
    bySocket.delete(socket);
    log.info({ socketId: socket.id, feed: key, bufferedBytes: bytes }, 'socket not reading its feed: closing the transport so the client resumes with since');
    cutOff(socket);
  };

  const sinkFor = (socket: PinroomSocket, key: string, roomId: string | null): FeedSink => {
    const group = roomId === null ? null : socketRooms.room(roomId);
    return {
      deliver(d, replay) {
        if (group !== null && !socket.rooms.has(group)) {
          // Left, kicked or ended (the rooms feature took this connection out of the room on every node).
          drop(socket, key);
          return false;
        }
        sendEntry(socket, d, d.json);
        // A kick, a leave or the room's end is the last entry a member receives.
        if (d.ends !== '' && roomId !== null && (d.ends === '*' || d.ends === socket.data.user.id)) {
          drop(socket, key);
          return false;
        }
        const bytes = bufferedBytes(socket);
        // A replay waits for the socket (see `ready`); live entries cannot wait for one socket.
        if (replay) return bytes <= lowWater;
        if (bytes > maxBufferedBytes) overflow(socket, key, bytes);
        return true;
      },
      lost(reason) {
        bySocket.get(socket)?.delete(key);
        log.info({ socketId: socket.id, feed: key, reason }, 'feed position lost; closing the transport so the client resubscribes');
        // A transport close (not a Socket.IO disconnect): the client reconnects by itself and resubscribes with `since`.
        socket.conn.close();
      },
      async ready() {
        const deadline = Date.now() + drainTimeoutMs;
        for (;;) {
          if (socket.disconnected) return false;
          const bytes = bufferedBytes(socket);
          if (bytes <= lowWater) return true;
          if (bytes > maxBufferedBytes || Date.now() > deadline) {
            overflow(socket, key, bytes);
            return false;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      },
    };
  };

  router.handle('feed:publish', FeedPublishPayload, (socket, payload) => feed.publish(userOf(socket), payload));

  router.handle('feed:subscribe', FeedSubscribePayload, async (socket, payload) => {
    const key = keyOf(payload);
    // A second subscribe to the same feed replaces the first, and stops its replay if one is running:
    // repeated subscribes on one connection never run side by side.
    drop(socket, key);
    let subscriptions = bySocket.get(socket);
    if (!subscriptions) bySocket.set(socket, (subscriptions = new Map()));
    const controller = new AbortController();
    const held: Held = { close: () => controller.abort() };
    subscriptions.set(key, held);
    const sink = sinkFor(socket, key, 'roomId' in payload ? payload.roomId : null);
    try {
      const { subscription, result } =
        'roomId' in payload
          ? await feed.subscribeRoom(userOf(socket), payload.roomId, payload.since, sink, controller.signal)
          : await feed.subscribeScope(userOf(socket), payload.scope, payload.since, sink, controller.signal);
      if (socket.disconnected || controller.signal.aborted || bySocket.get(socket)?.get(key) !== held) subscription.close();
      else held.close = () => subscription.close();
      return result;
    } catch (err) {
      if (bySocket.get(socket)?.get(key) === held) bySocket.get(socket)!.delete(key);
      throw err;
    }
  });

  router.handle('feed:unsubscribe', FeedUnsubscribePayload, (socket, payload) => {
    drop(socket, keyOf(payload));
    return {};
  });

  router.handle('feed:history', FeedHistoryPayload, (socket, payload) => feed.history(userOf(socket), payload));

  router.onDisconnect((socket) => {
    const subscriptions = bySocket.get(socket);
    if (!subscriptions) return;
    for (const subscription of subscriptions.values()) subscription.close();
    bySocket.delete(socket);
  });
}
