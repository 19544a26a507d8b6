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

export function createFeedHandlers({ router, feed, logger }: { router: EventRouter; feed: FeedService; logger: Logger }) {
  const log = logger.child({ component: 'feed-handlers' });
  const sendEntry = createPreEncoder('feed:entry');

  /** Register the feed events on one socket. */
  return function attach(socket: PinroomSocket): void {
    const subscriptions = new Map<string, FeedSubscription>();
    const drop = (key: string) => {
      subscriptions.get(key)?.close();
      subscriptions.delete(key);
    };

    const user = (): FeedUser => ({ id: socket.data.user.id, name: socket.data.user.name, inRoom: (roomId) => socket.rooms.has(socketRooms.room(roomId)) });

    const sinkFor = (key: string, roomId: string | null): FeedSink => ({
      deliver(entry) {
        if (roomId !== null && !socket.rooms.has(socketRooms.room(roomId))) {
          // Left, kicked or ended (the rooms feature took this connection out of the room on every node).
          drop(key);
          return;
        }
        // Encoded and framed once per entry for all its subscribers on this node.
        sendEntry(socket, entry);
        // A kick, a leave or the room's end is the last entry a member receives.
        if (roomId !== null && endsMembership(entry, socket.data.user.id)) drop(key);
      },
      lost(reason) {
        subscriptions.delete(key);
        log.info({ socketId: socket.id, feed: key, reason }, 'feed position lost; closing the transport so the client resubscribes');
        // A transport close (not a Socket.IO disconnect): the client reconnects by itself and resubscribes with `since`.
        socket.conn.close();
      },
    });

    router.handle(socket, 'feed:publish', FeedPublishPayload, (payload) => feed.publish(user(), payload));

    router.handle(socket, 'feed:subscribe', FeedSubscribePayload, async (payload) => {
      const key = 'roomId' in payload ? `room:${payload.roomId}` : `scope:${payload.scope}`;
      // A second subscribe to the same feed replaces the first (no double delivery).
      drop(key);
      const sink = sinkFor(key, 'roomId' in payload ? payload.roomId : null);
      const { subscription, result } =
        'roomId' in payload
          ? await feed.subscribeRoom(user(), payload.roomId, payload.since, sink)
          : await feed.subscribeScope(user(), payload.scope, payload.since, sink);
      if (socket.disconnected) {
        subscription.close();
        return result;
      }
      drop(key);
      subscriptions.set(key, subscription);
      return result;
    });

    router.handle(socket, 'feed:unsubscribe', FeedUnsubscribePayload, (payload) => {
      drop('roomId' in payload ? `room:${payload.roomId}` : `scope:${payload.scope}`);
      return {};
    });

    router.handle(socket, 'feed:history', FeedHistoryPayload, (payload) => feed.history(user(), payload));

    socket.on('disconnect', () => {
      for (const subscription of subscriptions.values()) subscription.close();
      subscriptions.clear();
    });
  };
}
