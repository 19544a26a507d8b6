/**
 * Who is online in each room, across every node, in Redis.
 *
 * Per room, `roomSockets` holds one field per member socket
 * (`<node incarnation>|<socket id>` → user id) and `roomUsers` the number of
 * sockets per user: a user is online while that number is above zero, so
 * several tabs count once. Every change goes through one Lua script, which
 * reports the online/offline transitions to announce.
 *
 * Nodes: each process runs under an *incarnation* id and heartbeats it into
 * `presenceNodes`. A node silent for `presenceNodeTimeoutMs` is declared dead
 * by whichever node's sweeper wins `presence-node-forget.lua`; that node then
 * purges the dead incarnation's sockets from every room it had. The members
 * of a killed node therefore go offline within `presenceNodeTimeoutMs` plus
 * one heartbeat. A node that finds itself declared dead (a long pause) takes a
 * fresh incarnation and registers its sockets again, so a late purge of the
 * old incarnation can never remove them.
 *
 * Host grace: when a host's last socket goes, the scripts write the room's
 * `roomHostDeadline`; `hostDeadlines` indexes it for the sweeper that every
 * node runs. The index is written before the deadline (a crash in between
 * leaves only a stale index entry, which the sweeper drops), and a deadline is
 * claimed by one node with `presence-host-claim.lua`.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RoomsConfig } from '../config.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';

export type Presence = ReturnType<typeof createPresence>;

export interface PresenceDeps {
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  config: Pick<RoomsConfig, 'hostGraceMs' | 'presenceHeartbeatMs' | 'presenceNodeTimeoutMs' | 'pinTtlSeconds' | 'sweepIntervalMs'>;
  logger: Pick<Logger, 'warn' | 'info'>;
  /** Clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

/** A user whose online state changed in a room. */
export interface PresenceTransition {
  roomId: string;
  userId: string;
  online: boolean;
}

interface LocalMembership {
  userId: string;
  hostId: string;
}

/** Longest time one node holds a claimed purge or grace deadline before another may take it over, ms. */
const LEASE_FLOOR_MS = 10_000;
/** Dead nodes handled per sweep; the rest wait for the next heartbeat. */
const DEAD_NODES_PER_SWEEP = 10;
/** Grace deadlines handled per sweep. */
const DEADLINES_PER_SWEEP = 100;
/** TTL of bookkeeping keys that only a crash could leave behind, seconds. */
const BOOKKEEPING_TTL_SECONDS = 86_400;

export function createPresence({ redis, scripts, keys, config, logger, now = Date.now }: PresenceDeps) {
  let incarnation = randomUUID();
  let beaten = false;
  /** Sockets of this node and the rooms they are present in. */
  const local = new Map<string, Map<string, LocalMembership>>();
  const presenceTtl = Math.max(config.pinTtlSeconds, Math.ceil(config.presenceNodeTimeoutMs / 1000) * 4);
  const deadlineTtl = Math.ceil(config.hostGraceMs / 1000) + BOOKKEEPING_TTL_SECONDS;
  const leaseMs = Math.max(LEASE_FLOOR_MS, config.presenceNodeTimeoutMs, config.sweepIntervalMs * 5);
  const roomKeys = (roomId: string) => [keys.roomSockets(roomId), keys.roomUsers(roomId), keys.roomHostDeadline(roomId)];
  const field = (socketId: string) => `${incarnation}|${socketId}`;

  async function register(roomId: string, socketId: string, m: LocalMembership): Promise<{ online: boolean; hostBack: boolean }> {
    const nodeRooms = keys.presenceNodeRooms(incarnation);
    // The node's room list is written first, so a purge after a crash always finds the room.
    await redis.pipeline().sadd(nodeRooms, roomId).expire(nodeRooms, BOOKKEEPING_TTL_SECONDS).exec();
    const [online, hostBack] = await scripts.run<[number, number]>('presence-join', roomKeys(roomId), [field(socketId), m.userId, m.hostId, presenceTtl]);
    return { online: online === 1, hostBack: hostBack === 1 };
  }

  async function indexDeadline(roomId: string, deadline: number): Promise<void> {
    await redis.zadd(keys.hostDeadlines, deadline, roomId);
  }

  /** Purge every socket of incarnation `nodeId` from its rooms. */
  async function purgeIncarnation(nodeId: string, hostOf: (roomIds: string[]) => Promise<Map<string, string>>): Promise<PresenceTransition[]> {
    const roomIds = await redis.smembers(keys.presenceNodeRooms(nodeId));
    const hosts = await hostOf(roomIds);
    const deadline = now() + config.hostGraceMs;
    // Index first (see the module comment); entries for rooms whose host was elsewhere are dropped by the sweeper.
    if (roomIds.length > 0) await redis.zadd(keys.hostDeadlines, 'NX', ...roomIds.flatMap((id) => [deadline, id]));
    const transitions: PresenceTransition[] = [];
    for (const roomId of roomIds) {
      const offline = await scripts.run<string[]>('presence-purge-node', roomKeys(roomId), [nodeId, hosts.get(roomId) ?? '', deadline, deadlineTtl]);
      for (const userId of offline) transitions.push({ roomId, userId, online: false });
    }
    await scripts.run('presence-node-purged', [keys.presenceNodesPurging, keys.presenceNodeRooms(nodeId)], [nodeId]);
    return transitions;
  }

  return {
    /** The current incarnation id of this node. */
    get nodeId(): string {
      return incarnation;
    },

    /** Count a socket as present; `online` when its user just came online, `hostBack` when a host grace was cancelled. */
    async join(roomId: string, socketId: string, userId: string, hostId: string): Promise<{ online: boolean; hostBack: boolean }> {
      let rooms = local.get(socketId);
      if (!rooms) local.set(socketId, (rooms = new Map()));
      const membership = { userId, hostId };
      rooms.set(roomId, membership);
      return register(roomId, socketId, membership);
    },

    /** Remove one socket from one room; reports the user going offline (and, for a host, the grace deadline). */
    async leave(roomId: string, socketId: string): Promise<PresenceTransition | null> {
      const rooms = local.get(socketId);
      const membership = rooms?.get(roomId);
      if (!rooms || !membership) return null;
      rooms.delete(roomId);
      if (rooms.size === 0) local.delete(socketId);
      const deadline = now() + config.hostGraceMs;
      if (membership.userId === membership.hostId) await indexDeadline(roomId, deadline);
      const [userId, offline] = await scripts.run<[string | null, number, number]>('presence-leave', roomKeys(roomId), [
        field(socketId),
        membership.hostId,
        deadline,
        deadlineTtl,
      ]);
      return userId && offline === 1 ? { roomId, userId, online: false } : null;
    },

    /** A socket closed: remove it from every room it was in. */
    async socketGone(socketId: string): Promise<PresenceTransition[]> {
      const rooms = local.get(socketId);
      if (!rooms) return [];
      const transitions: PresenceTransition[] = [];
      for (const roomId of [...rooms.keys()]) {
        const t = await this.leave(roomId, socketId);
        if (t) transitions.push(t);
      }
      return transitions;
    },

    /** Remove every socket of a user from a room, on every node (leave, kick). True when the user was online. */
    async removeUser(roomId: string, userId: string): Promise<boolean> {
      for (const [socketId, rooms] of local) {
        if (rooms.get(roomId)?.userId === userId) {
          rooms.delete(roomId);
          if (rooms.size === 0) local.delete(socketId);
        }
      }
      return (await scripts.run<number>('presence-remove-user', [keys.roomSockets(roomId), keys.roomUsers(roomId)], [userId])) === 1;
    },

    /** Online users of a room. */
    async online(roomId: string): Promise<Set<string>> {
      return new Set(Object.keys(await redis.hgetall(keys.roomUsers(roomId))));
    },

    /** Forget a room that ended: its presence, its grace deadline and this node's local entries. */
    async clearRoom(roomId: string): Promise<void> {
      for (const [socketId, rooms] of local) {
        rooms.delete(roomId);
        if (rooms.size === 0) local.delete(socketId);
      }
      await redis.del(...roomKeys(roomId));
      await redis.zrem(keys.hostDeadlines, roomId);
    },

    /** Renew the TTL of the presence hashes of rooms with sockets on this node. */
    async touchRooms(roomIds: readonly string[]): Promise<void> {
      if (roomIds.length === 0) return;
      const batch = redis.pipeline();
      for (const roomId of roomIds) batch.expire(keys.roomSockets(roomId), presenceTtl).expire(keys.roomUsers(roomId), presenceTtl);
      await batch.exec();
    },

    /** Rooms with at least one socket on this node. */
    localRooms(): Set<string> {
      const rooms = new Set<string>();
      for (const memberships of local.values()) for (const roomId of memberships.keys()) rooms.add(roomId);
      return rooms;
    },

    /**
     * Refresh this node's heartbeat. When the node finds it was declared dead
     * meanwhile, it takes a new incarnation and registers its sockets again;
     * the users that come back online are returned.
     */
    async heartbeat(): Promise<PresenceTransition[]> {
      const added = await redis.zadd(keys.presenceNodes, now(), incarnation);
      const first = !beaten;
      beaten = true;
      await redis.expire(keys.presenceNodeRooms(incarnation), BOOKKEEPING_TTL_SECONDS);
      if (Number(added) === 0 || first) return [];
      const old = incarnation;
      incarnation = randomUUID();
      await redis.pipeline().zrem(keys.presenceNodes, old).zadd(keys.presenceNodes, now(), incarnation).exec();
      logger.warn({ old, incarnation }, 'this node was declared dead (missed heartbeats); registering its sockets again');
      const transitions: PresenceTransition[] = [];
      for (const [socketId, rooms] of local) {
        for (const [roomId, m] of rooms) {
          const { online } = await register(roomId, socketId, m);
          if (online) transitions.push({ roomId, userId: m.userId, online: true });
        }
      }
      return transitions;
    },

    /**
     * Find node incarnations silent for longer than the timeout (and purges
     * whose sweeper died), win them one at a time and purge their sockets.
     * `hostOf` gives the host id of each room (for the grace deadline).
     */
    async sweepDeadNodes(hostOf: (roomIds: string[]) => Promise<Map<string, string>>): Promise<PresenceTransition[]> {
      const at = now();
      const cutoff = at - config.presenceNodeTimeoutMs;
      const [silent, stalled] = await Promise.all([
        redis.zrangebyscore(keys.presenceNodes, '-inf', cutoff, 'LIMIT', 0, DEAD_NODES_PER_SWEEP),
        redis.zrangebyscore(keys.presenceNodesPurging, '-inf', at, 'LIMIT', 0, DEAD_NODES_PER_SWEEP),
      ]);
      const transitions: PresenceTransition[] = [];
      for (const nodeId of new Set([...silent, ...stalled])) {
        if (nodeId === incarnation) continue;
        const won = await scripts.run<number>('presence-node-forget', [keys.presenceNodes, keys.presenceNodesPurging], [nodeId, cutoff, at, leaseMs]);
        if (won !== 1) continue;
        logger.info({ node: nodeId }, 'purging the presence of a dead node');
        transitions.push(...(await purgeIncarnation(nodeId, hostOf)));
      }
      return transitions;
    },

    /** Host grace deadlines that are due (index entries, possibly stale). */
    async dueDeadlines(): Promise<Array<{ roomId: string; score: number }>> {
      const flat = await redis.zrangebyscore(keys.hostDeadlines, '-inf', now(), 'WITHSCORES', 'LIMIT', 0, DEADLINES_PER_SWEEP);
      const due: Array<{ roomId: string; score: number }> = [];
      for (let i = 0; i < flat.length; i += 2) due.push({ roomId: flat[i]!, score: Number(flat[i + 1]) });
      return due;
    },

    /**
     * Try to win a due grace deadline. `claimed`: this node must end the room
     * now (another node takes over after the lease if it dies first);
     * `later`: not due yet; `none`: the host is back or nothing is pending.
     * Keeps the index in step either way.
     */
    async claimDeadline(roomId: string, hostId: string, score: number): Promise<'claimed' | 'later' | 'none'> {
      const [state, when] = await scripts.run<[number, number]>('presence-host-claim', [keys.roomHostDeadline(roomId), keys.roomUsers(roomId)], [
        now(),
        hostId,
        leaseMs,
      ]);
      if (state === -1) {
        await scripts.run('presence-zrem-stale', [keys.hostDeadlines], [roomId, score]);
        return 'none';
      }
      await redis.zadd(keys.hostDeadlines, 'XX', when, roomId);
      return state === 1 ? 'claimed' : 'later';
    },

    /** Drop an index entry whose room no longer exists or already ended. */
    async dropDeadline(roomId: string, score: number): Promise<void> {
      await redis.del(keys.roomHostDeadline(roomId));
      await scripts.run('presence-zrem-stale', [keys.hostDeadlines], [roomId, score]);
    },

    /** Graceful shutdown: leave the live set and purge this node's sockets now, instead of after the timeout. */
    async shutdown(hostOf: (roomIds: string[]) => Promise<Map<string, string>>): Promise<PresenceTransition[]> {
      const self = incarnation;
      await redis.zrem(keys.presenceNodes, self);
      await redis.zadd(keys.presenceNodesPurging, now() + leaseMs, self);
      const transitions = await purgeIncarnation(self, hostOf);
      local.clear();
      return transitions;
    },
  };
}
