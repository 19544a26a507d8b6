/**
 * Approval mode's waiting room, in Redis: per room a sorted set of the users
 * waiting (score: when they arrived, ms, made strictly increasing so it is a
 * stable cursor) and a hash of their names, both with a TTL renewed by every
 * arrival and bounded to `waitingMax` users (`room-wait.lua`). Every change is
 * one script call; a page is one pipeline: O(page), whatever the list's size.
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import type { RoomWaitlistPage, WaitingUser } from '../../shared/schemas.ts';
import type { RoomsConfig } from '../config.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';

export type WaitingRoom = ReturnType<typeof createWaitingRoom>;

export function createWaitingRoom({ redis, scripts, keys, config, now }: { redis: Redis; scripts: Scripts; keys: Keys; config: Pick<RoomsConfig, 'waitingMax' | 'waitingTtlSeconds'>; now: () => number }) {
  const keysOf = (roomId: string) => [keys.roomWaiting(roomId), keys.roomWaitingNames(roomId)];

  return {
    /** Put a user in the waiting room: `full` past `waitingMax`; `added` false when they already were waiting (their place kept). */
    async add(roomId: string, user: { id: string; name: string }): Promise<{ full: true } | { full: false; added: boolean; count: number }> {
      const [count, added] = await scripts.run<[number, number]>('room-wait', keysOf(roomId), [user.id, user.name, now(), config.waitingMax, config.waitingTtlSeconds]);
      return count < 0 ? { full: true } : { full: false, added: added === 1, count };
    },

    /** Take a user out (admitted, denied): their name when they were waiting, else null; and how many still wait. */
    async remove(roomId: string, userId: string): Promise<{ name: string | null; count: number }> {
      const [name, count] = await scripts.run<[string | null, number]>('room-unwait', keysOf(roomId), [userId]);
      return { name: name || null, count };
    },

    /** One page, longest waiting first, after the cursor `after` (a previous page's `nextAfter`). */
    async page(roomId: string, after: string | undefined, limit: number): Promise<RoomWaitlistPage> {
      const [setKey, namesKey] = keysOf(roomId);
      const [ranged, count] = await Promise.all([
        redis.zrange(setKey!, after === undefined ? '-inf' : `(${after}`, '+inf', 'BYSCORE', 'LIMIT', 0, limit + 1, 'WITHSCORES'),
        redis.zcard(setKey!),
      ]);
      const ids: string[] = [];
      const scores: string[] = [];
      for (let i = 0; i < ranged.length; i += 2) {
        ids.push(ranged[i]!);
        scores.push(ranged[i + 1]!);
      }
      const shown = ids.slice(0, limit);
      const names = shown.length > 0 ? await redis.hmget(namesKey!, ...shown) : [];
      const waiting: WaitingUser[] = shown.map((userId, i) => ({ userId, name: names[i] ?? '', since: new Date(Number(scores[i])).toISOString() }));
      const page: RoomWaitlistPage = { waiting, count };
      if (ids.length > limit) page.nextAfter = scores[limit - 1]!;
      return page;
    },

    /** Every waiting user's id (at most `waitingMax`), and the room's list emptied: approval turned off, or the room ended. */
    async drain(roomId: string): Promise<string[]> {
      const [setKey, namesKey] = keysOf(roomId);
      const [[, ids]] = (await redis.multi().zrange(setKey!, 0, -1).del(setKey!, namesKey!).exec()) as [[unknown, string[]], [unknown, number]];
      return ids;
    },
  };
}
