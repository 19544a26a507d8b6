/**
 * Socket events of the feed: `feed:publish`, `feed:subscribe`,
 * `feed:unsubscribe`, `feed:history`, and `feed:entry` pushed to subscribers.
 */
import type { Logger } from 'pino';
import { FeedHistoryPayload, FeedPublishPayload, FeedSubscribePayload, FeedUnsubscribePayload, type FeedEntry } from '../../shared/schemas.ts';
import type { EventRouter } from '../gateway/ack.ts';
import type { PinroomSocket } from '../gateway/create-io.ts';
import { createPreEncoder } from '../gateway/broadcast.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';
import type { FeedSink, FeedSubscription } from './feed-relay.ts';
import type { FeedService, FeedUser } from './feed-service.ts';

/** An entry after which this user no longer belongs to the room's feed. */
function endsMembership(entry: FeedEntry, userId: string): boolean {
  if (entry.type === 'room.ended') return true;
  if (entry.type !== 'member.kicked' && entry.type !== 'member.left') return false;
  const target = entry.payload.userId ?? entry.actor?.id;
  return target === userId;
}

const keyOf = (payload: { roomId: string } | { scope: string }) => ('roomId' in payload ? `room:${payload.roomId}` : `scope:${payload.scope}`);

const userOf = (socket: PinroomSocket): FeedUser => ({ id: socket.data.user.id, name: socket.data.user.name, inRoom: (roomId) => socket.rooms.has(socketRooms.room(roomId)) });

/** Register the feed events once, for every socket routed by `router`. */
export function registerFeedHandlers({ router, feed, logger }: { router: EventRouter; feed: FeedService; logger: Logger }): void {
  const log = logger.child({ component: 'feed-handlers' });
  const sendEntry = createPreEncoder('feed:entry');
  /** A socket's subscriptions by feed key; only sockets that subscribed have an entry. */
  const bySocket = new WeakMap<PinroomSocket, Map<string, FeedSubscription>>();

  const drop = (socket: PinroomSocket, key: string) => {
    const subscriptions = bySocket.get(socket);
    if (!subscriptions) return;
    subscriptions.get(key)?.close();
    subscriptions.delete(key);
  };

  const sinkFor = (socket: PinroomSocket, key: string, roomId: string | null): FeedSink => ({
    deliver(entry) {
      if (roomId !== null && !socket.rooms.has(socketRooms.room(roomId))) {
        // Left, kicked or ended (the rooms feature took this connection out of the room on every node).
        drop(socket, key);
        return;
      }
      // Encoded and framed once per entry for all its subscribers on this node.
      sendEntry(socket, entry);
      // A kick, a leave or the room's end is the last entry a member receives.
      if (roomId !== null && endsMembership(entry, socket.data.user.id)) drop(socket, key);
    },
    lost(reason) {
      bySocket.get(socket)?.delete(key);
      log.info({ socketId: socket.id, feed: key, reason }, 'feed position lost; closing the transport so the client resubscribes');
      // A transport close (not a Socket.IO disconnect): the client reconnects by itself and resubscribes with `since`.
      socket.conn.close();
    },
  });

  router.handle('feed:publish', FeedPublishPayload, (socket, payload) => feed.publish(userOf(socket), payload));

  router.handle('feed:subscribe', FeedSubscribePayload, async (socket, payload) => {
    const key = keyOf(payload);
    // A second subscribe to the same feed replaces the first (no double delivery).
    drop(socket, key);
    const sink = sinkFor(socket, key, 'roomId' in payload ? payload.roomId : null);
    const { subscription, result } =
      'roomId' in payload
        ? await feed.subscribeRoom(userOf(socket), payload.roomId, payload.since, sink)
        : await feed.subscribeScope(userOf(socket), payload.scope, payload.since, sink);
    if (socket.disconnected) {
      subscription.close();
      return result;
    }
    drop(socket, key);
    let subscriptions = bySocket.get(socket);
    if (!subscriptions) bySocket.set(socket, (subscriptions = new Map()));
    subscriptions.set(key, subscription);
    return result;
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
