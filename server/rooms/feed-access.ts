/**
 * What the activity feed asks about rooms (server/feed/feed-service.ts,
 * `FeedAccess`), answered from the room cache: a connection's role in a room
 * it is in, and whether a room is open. One cache-aside read per question.
 */
import type { RoomRecord } from '../cache/loaders.ts';
import type { CachedLoader } from '../cache/types.ts';
import type { FeedAccess } from '../feed/feed-service.ts';

export function createFeedAccess(rooms: CachedLoader<RoomRecord>): FeedAccess {
  return {
    async roleOf(roomId, user) {
      if (!user.inRoom?.(roomId)) return null;
      const room = (await rooms.get(roomId)).value;
      if (!room || room.status === 'ended') return null;
      return room.hostId === user.id ? 'host' : 'member';
    },
    async isOpen(roomId) {
      const room = (await rooms.get(roomId)).value;
      return room !== null && room.status !== 'ended';
    },
  };
}
