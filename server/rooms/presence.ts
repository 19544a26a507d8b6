/**
 * Who is online in each room, across every node, in Redis.
 *
 * Per room, `roomSockets` holds one field per member socket
 * (`<node incarnation>|<socket id>` → user id) and `roomUsers` one field per
 * user online, whose value lists that user's socket fields: several tabs count
 * once, and removing a user (leave, kick) costs O(their sockets), never O(the
 * room). Every change goes through one Lua script, which reports the
 * online/offline transitions to announce.
 *
 * Cost per event: a socket joining is one script call (`presence-join`) and,
 * in the same round trip, two small MULTIs recording the room in this node's
 * room set and in the user's rejoin hint (other slots); a socket closing is
 * one `presence-leave` per room it was in; a leave or kick is one
 * `presence-remove-user` and an SREM of the hint. None reads the room's other members.
 * Per node, a member socket costs one small object here (its room, user id and
 * name, shared with the socket's own strings) and one map entry.
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
 * Local bookkeeping follows the Socket.IO groups: whenever a socket leaves a
 * room's group on this node (a leave or kick made on any node, the room's end),
 * `forget` drops it here, so a re-registration never brings back someone who
 * is gone.
 *
 * Host grace: when a host's last socket goes, the scripts write the room's
 * `roomHostDeadline`; `hostDeadlines` indexes it for the sweeper that every
 * node runs. The index is written before the deadline (a crash in between
 * leaves only a stale index entry, which the sweeper drops), and a deadline is
 * claimed by one node with `presence-host-claim.lua`.
 */
import { randomUUID } from 'node:crypto';
import { execOk, pipelineBySlot, type RedisClient as Redis } from '../redis/connections.ts';
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

/** A user whose online state changed in a room; `name` when this node knows it. */
export interface PresenceTransition {
  roomId: string;
  userId: string;
  online: boolean;
  name?: string;
}

/** A room with member sockets on this node. */
interface LocalRoom {
  readonly id: string;
  readonly hostId: string;
  sockets: number;
}

/** One room a local socket is present in; a socket in several rooms has a chain. */
interface Membership {
  readonly room: LocalRoom;
  readonly userId: string;
  readonly name: string;
  next: Membership | undefined;
}

/** Longest time one node holds a claimed purge or grace deadline before another may take it over, ms. */
const LEASE_FLOOR_MS = 10_000;
/** Dead nodes handled per sweep; the rest wait for the next heartbeat. */
const DEAD_NODES_PER_SWEEP = 10;
/** Grace deadlines handled per sweep. */
const DEADLINES_PER_SWEEP = 100;
/** TTL of bookkeeping keys that only a crash could leave behind, and of users' rejoin hints, seconds. */
const BOOKKEEPING_TTL_SECONDS = 86_400;

export function createPresence({ redis, scripts, keys, config, logger, now = Date.now }: PresenceDeps) {
  let incarnation = randomUUID();
  let beaten = false;
  /** Rooms with sockets on this node. */
  const rooms = new Map<string, LocalRoom>();
  /** Sockets of this node and the rooms they are present in. */
  const bySocket = new Map<string, Membership>();
  const presenceTtl = Math.max(config.pinTtlSeconds, Math.ceil(config.presenceNodeTimeoutMs / 1000) * 4);
  const deadlineTtl = Math.ceil(config.hostGraceMs / 1000) + BOOKKEEPING_TTL_SECONDS;
  const leaseMs = Math.max(LEASE_FLOOR_MS, config.presenceNodeTimeoutMs, config.sweepIntervalMs * 5);
  const roomKeys = (roomId: string) => [keys.roomSockets(roomId), keys.roomUsers(roomId), keys.roomHostDeadline(roomId)];
  const field = (socketId: string) => `${incarnation}|${socketId}`;

  async function register(socketId: string, m: Membership): Promise<{ online: boolean; hostBack: boolean; count: number }> {
    const { room } = m;
    // The node's room set and the user's rejoin hint (other slots) are sent first, in the same
    // turn: on one connection to one Redis they are applied before the socket appears.
    const nodeRooms = keys.presenceNodeRooms(incarnation);
    const hint = keys.userRooms(m.userId);
    const bookkeeping = Promise.all([
      redis.multi().sadd(nodeRooms, room.id).expire(nodeRooms, BOOKKEEPING_TTL_SECONDS).exec().then(execOk),
      redis.multi().sadd(hint, room.id).expire(hint, BOOKKEEPING_TTL_SECONDS).exec().then(execOk),
    ]);
    const joined = scripts.run<[number, number, number]>('presence-join', roomKeys(room.id), [field(socketId), m.userId, room.hostId, presenceTtl]);
    const [, [online, hostBack, count]] = await Promise.all([bookkeeping, joined]);
    return { online: online === 1, hostBack: hostBack === 1, count };
  }

  /** Unlink the membership of `socketId` in `roomId`; returns it, or undefined when there was none. */
  function unlink(socketId: string, roomId: string): Membership | undefined {
    let previous: Membership | undefined;
    for (let m = bySocket.get(socketId); m; previous = m, m = m.next) {
      if (m.room.id !== roomId) continue;
      if (previous) previous.next = m.next;
      else if (m.next) bySocket.set(socketId, m.next);
      else bySocket.delete(socketId);
      if (--m.room.sockets === 0 && rooms.get(roomId) === m.room) rooms.delete(roomId);
      return m;
    }
    return undefined;
  }

  async function leaveOne(socketId: string, m: Membership): Promise<PresenceTransition | null> {
    const { room } = m;
    const deadline = now() + config.hostGraceMs;
    if (m.userId === room.hostId) await redis.zadd(keys.hostDeadlines, deadline, room.id);
    const [userId, offline] = await scripts.run<[string | null, number, number]>('presence-leave', roomKeys(room.id), [field(socketId), room.hostId, deadline, deadlineTtl]);
    return userId && offline === 1 ? { roomId: room.id, userId, online: false, name: m.name } : null;
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

    /**
     * Count a socket as present: `online` when its user just came online,
     * `hostBack` when a host grace was cancelled, `count` the users online in
     * the room now. Also records the room in the user's rejoin hint.
     */
    async join(roomId: string, socketId: string, user: { id: string; name: string }, hostId: string): Promise<{ online: boolean; hostBack: boolean; count: number }> {
      let m: Membership | undefined;
      for (let at = bySocket.get(socketId); at; at = at.next) if (at.room.id === roomId) m = at;
      if (!m) {
        let room = rooms.get(roomId);
        if (!room) rooms.set(roomId, (room = { id: roomId, hostId, sockets: 0 }));
        room.sockets++;
        m = { room, userId: user.id, name: user.name, next: bySocket.get(socketId) };
        bySocket.set(socketId, m);
      }
      return register(socketId, m);
    },

    /** A socket closed: remove it from every room it was in; reports the users who went offline. */
    async socketGone(socketId: string): Promise<PresenceTransition[]> {
      // Detached at once, before any await: the socket's groups are left right
      // after this is called (`forget` must then find nothing to drop).
      const memberships: Membership[] = [];
      for (let m = bySocket.get(socketId); m; m = bySocket.get(socketId)) memberships.push(unlink(socketId, m.room.id)!);
      const transitions: PresenceTransition[] = [];
      for (const m of memberships) {
        const t = await leaveOne(socketId, m);
        if (t) transitions.push(t);
      }
      return transitions;
    },

    /**
     * This node's socket left the room's group (a leave or kick from any node,
     * or the room's end): drop it from the local bookkeeping only. Redis was
     * (or is being) changed by whoever removed it.
     */
    forget(roomId: string, socketId: string): void {
      unlink(socketId, roomId);
    },

    /** Remove every socket of a user from a room, on every node (leave, kick). True when the user was online. */
    async removeUser(roomId: string, userId: string): Promise<boolean> {
      // The rejoin hint (the user's slot) alongside the room's presence (the room's slot).
      const [removed] = await Promise.all([
        scripts.run<number>('presence-remove-user', [keys.roomSockets(roomId), keys.roomUsers(roomId)], [userId]),
        redis.srem(keys.userRooms(userId), roomId),
      ]);
      return removed === 1;
    },

    /** Online users of a room (O(online): for tests and small rooms). */
    async online(roomId: string): Promise<Set<string>> {
      return new Set(await redis.hkeys(keys.roomUsers(roomId)));
    },

    /** Whether each of `userIds` is online in the room, and how many users are online: one round trip, O(userIds). */
    async states(roomId: string, userIds: readonly string[]): Promise<{ online: boolean[]; count: number }> {
      const batch = redis.pipeline();
      if (userIds.length > 0) batch.hmget(keys.roomUsers(roomId), ...userIds);
      batch.hlen(keys.roomUsers(roomId));
      const results = (await batch.exec()) ?? [];
      for (const [err] of results) if (err) throw err;
      const lists = userIds.length > 0 ? (results[0]![1] as (string | null)[]) : [];
      return { online: lists.map((l) => l !== null), count: Number(results[results.length - 1]![1]) };
    },

    /** Forget a room that ended: its presence, its grace deadline and this node's local entries. */
    async clearRoom(roomId: string): Promise<void> {
      rooms.delete(roomId);
      await redis.del(...roomKeys(roomId));
      await redis.zrem(keys.hostDeadlines, roomId);
    },

    /** Renew the TTL of the presence hashes of rooms with sockets on this node. */
    async touchRooms(roomIds: readonly string[]): Promise<void> {
      if (roomIds.length === 0) return;
      await pipelineBySlot(redis, roomIds, keys.roomSockets, (batch, roomId) => {
        batch.expire(keys.roomSockets(roomId), presenceTtl).expire(keys.roomUsers(roomId), presenceTtl);
      }, 2);
    },

    /** Rooms with at least one socket on this node, and their hosts. */
    localRooms(): ReadonlyMap<string, { readonly hostId: string }> {
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
      for (const [socketId, first] of [...bySocket]) {
        for (let m: Membership | undefined = first; m; m = m.next) {
          // A room that ended meanwhile is no longer local: do not bring its presence back.
          if (rooms.get(m.room.id) !== m.room) continue;
          const { online } = await register(socketId, m);
          if (online) transitions.push({ roomId: m.room.id, userId: m.userId, online: true, name: m.name });
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
      bySocket.clear();
      rooms.clear();
      return transitions;
    },
  };
}
