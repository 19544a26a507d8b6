/**
 * Rooms: creation with a PIN, joining by PIN, presence, host controls, and
 * the timers every node runs (presence heartbeat, dead-node purge, PIN
 * renewal, host grace sweeper).
 *
 * Room state lives in PostgreSQL and is read through the cache-aside loader
 * (`rooms`); every write calls `rooms.invalidate(id)` after it commits.
 * Decisions that must see committed state (join: bans, lock, capacity) are
 * taken in a transaction under the room's row lock. All broadcasts go to the
 * room's Socket.IO group through the Redis adapter (`notifier`).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FeedPosition, MemberRole, MemberView, PinLookup, RoomCreatePayload, RoomEndReason, RoomJoined, RoomKickPayload, RoomView, ServerFeedType, UserKind } from '../../shared/schemas.ts';
import type { RoomRecord } from '../cache/loaders.ts';
import type { CachedLoader } from '../cache/types.ts';
import type { RoomsConfig } from '../config.ts';
import type { Db } from '../db/database.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import { createRoomLimits, type Guesser } from './limits.ts';
import type { RoomNotifier } from './notifier.ts';
import { createPinStore } from './pins.ts';
import { createPresence, type PresenceTransition } from './presence.ts';
import { createRoomRepository } from './room.repository.ts';

/** A server-made entry for a room's activity feed. */
export interface RoomFeedEvent {
  roomId: string;
  type: ServerFeedType;
  /** Who caused it; null when the server did (host grace ran out). */
  actor: { id: string; name: string } | null;
  payload: Record<string, unknown>;
}

/**
 * Where room events go besides the sockets (the activity feed). Called after
 * the state change has committed, once per change, in order for one room:
 * `member.joined` {role} (a new or returning member, not a reconnect),
 * `member.left` {}, `member.kicked` {userId, bannedUntil|null},
 * `room.started` {}, `room.locked` {locked}, `room.ended` {reason}.
 * A failure is logged and does not undo the change.
 */
export interface RoomEventSink {
  emit(event: RoomFeedEvent): Promise<void>;
}

/** The user acting, as the socket authenticated them, and the client address (for guess limits). */
export interface RoomActor {
  id: string;
  name: string;
  kind: UserKind;
  address: string;
}

export interface RoomServiceDeps {
  config: RoomsConfig;
  db: Db;
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  logger: Logger;
  /** Cache-aside room state; written rooms are invalidated after commit. */
  rooms: CachedLoader<RoomRecord>;
  notifier: RoomNotifier;
  /** Optional sink of server-made feed entries (see `RoomEventSink`). */
  events?: RoomEventSink;
  /** Optional: the room feed's current position, added to the `room:join` answer as `feed`. Called after `member.joined` was emitted. */
  feedPosition?: (roomId: string) => Promise<FeedPosition>;
  /** Clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

export type RoomService = ReturnType<typeof createRoomService>;

const toView = (room: RoomRecord): RoomView => ({
  id: room.id,
  pin: room.pin,
  title: room.title,
  hostId: room.hostId,
  status: room.status,
  locked: room.locked,
  maxMembers: room.maxMembers,
  createdAt: room.createdAt,
});

export function createRoomService(deps: RoomServiceDeps) {
  const { config, db, redis, scripts, keys, logger, rooms, notifier, events, feedPosition } = deps;
  const now = deps.now ?? Date.now;
  const repo = createRoomRepository({ db });
  const pins = createPinStore({ redis, scripts, keys, config, logger });
  const presence = createPresence({ redis, scripts, keys, config, logger, now });
  const limits = createRoomLimits({ redis, keys, config });
  /** PINs of rooms with sockets on this node, for renewal. */
  const localPins = new Map<string, string>();
  /** Display names of users seen on this node, for presence announcements. */
  const names = new Map<string, string>();

  async function emitFeed(event: RoomFeedEvent): Promise<void> {
    if (!events) return;
    try {
      await events.emit(event);
    } catch (err) {
      logger.warn({ err, roomId: event.roomId, type: event.type }, 'could not write a room event to the feed');
    }
  }

  async function load(roomId: string, fresh = false): Promise<RoomRecord | null> {
    return (await rooms.get(roomId, fresh ? { fresh: true } : undefined)).value;
  }

  /** The room, for a host control: `room_not_found`, `conflict` when ended, `forbidden` for anyone but its host. */
  async function hostRoom(actor: RoomActor, roomId: string): Promise<RoomRecord> {
    const room = await load(roomId);
    if (!room) throw new AppError(ErrorCode.RoomNotFound, 'No such room');
    if (room.hostId !== actor.id) throw new AppError(ErrorCode.Forbidden, 'Only the host can do this');
    if (room.status === 'ended') throw new AppError(ErrorCode.Conflict, 'The room has ended');
    return room;
  }

  async function hostsOf(roomIds: string[]): Promise<Map<string, string>> {
    const found = await rooms.getMany(roomIds);
    const hosts = new Map<string, string>();
    for (const [id, loaded] of found) if (loaded.value) hosts.set(id, loaded.value.hostId);
    return hosts;
  }

  /** Announce presence transitions, one `room:presence` per room. */
  async function announce(transitions: PresenceTransition[]): Promise<void> {
    if (transitions.length === 0) return;
    const unknown = [...new Set(transitions.map((t) => t.userId).filter((id) => !names.has(id)))];
    const fetched = unknown.length > 0 ? await repo.names(unknown).catch(() => new Map<string, string>()) : new Map<string, string>();
    const byRoom = new Map<string, PresenceTransition[]>();
    for (const t of transitions) byRoom.set(t.roomId, [...(byRoom.get(t.roomId) ?? []), t]);
    const hosts = await hostsOf([...byRoom.keys()]).catch(() => new Map<string, string>());
    for (const [roomId, list] of byRoom) {
      const changes: MemberView[] = list.map((t) => ({
        userId: t.userId,
        name: names.get(t.userId) ?? fetched.get(t.userId) ?? '',
        role: hosts.get(roomId) === t.userId ? 'host' : 'member',
        online: t.online,
      }));
      notifier.toRoom(roomId).emit('room:presence', { roomId, changes });
    }
  }

  async function membersOf(roomId: string): Promise<MemberView[]> {
    const [members, online] = await Promise.all([repo.activeMembers(roomId), presence.online(roomId)]);
    return members.map((m) => ({ userId: m.userId, name: m.name, role: m.role, online: online.has(m.userId) }));
  }

  /**
   * End a room: mark it ended and empty it (one transaction), then invalidate
   * the cache, release and quarantine its PIN, tell every member, take their
   * sockets out of the room and forget its presence. False when it had already ended.
   */
  async function endRoom(roomId: string, reason: RoomEndReason, actor: RoomActor | null): Promise<boolean> {
    const ended = await repo.endRoom(roomId);
    if (!ended) return false;
    await rooms.invalidate(roomId);
    localPins.delete(roomId);
    try {
      await pins.release(ended.pin, roomId);
    } catch (err) {
      // Resolving the PIN still answers room_not_found (the room reads as ended); the claim expires by itself.
      logger.warn({ err, roomId }, 'could not release the PIN of an ended room');
    }
    notifier.toRoom(roomId).emit('room:ended', { roomId, reason });
    notifier.removeAll(roomId);
    await presence.clearRoom(roomId);
    logger.info({ roomId, reason }, 'room ended');
    await emitFeed({ roomId, type: 'room.ended', actor: actor && { id: actor.id, name: actor.name }, payload: { reason } });
    return true;
  }

  /** PIN → live room. The guess is charged first and refunded only when the PIN was right. */
  async function resolveLive(pin: string, who: Guesser, fresh: boolean): Promise<RoomRecord> {
    await limits.chargeGuess(who);
    const roomId = await pins.resolve(pin);
    const room = roomId ? await load(roomId, fresh) : null;
    if (!room || room.status === 'ended' || room.pin !== pin) throw new AppError(ErrorCode.RoomNotFound, 'No live room has this PIN');
    await limits.refundGuess(who);
    return room;
  }

  // ---- timers
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let running = false;
  let closing = false;

  async function heartbeatOnce(): Promise<void> {
    await announce(await presence.heartbeat());
    await announce(await presence.sweepDeadNodes(hostsOf));
    const local = presence.localRooms();
    for (const roomId of localPins.keys()) if (!local.has(roomId)) localPins.delete(roomId);
    await presence.touchRooms([...local]);
    for (const roomId of await pins.renew(localPins)) localPins.delete(roomId);
  }

  async function sweepOnce(): Promise<void> {
    for (const { roomId, score } of await presence.dueDeadlines()) {
      const room = await load(roomId, true);
      if (!room || room.status === 'ended') {
        await presence.dropDeadline(roomId, score);
        continue;
      }
      if ((await presence.claimDeadline(roomId, room.hostId, score)) === 'claimed') {
        await endRoom(roomId, 'host_left', null);
      }
    }
  }

  const loop = (name: string, intervalMs: number, once: () => Promise<void>, set: (t: NodeJS.Timeout) => void) => {
    const tick = async () => {
      if (!running) return;
      try {
        await once();
      } catch (err) {
        logger.warn({ err }, `${name} failed; retrying next interval`);
      }
      if (running) set(setTimeout(tick, intervalMs));
    };
    return tick;
  };

  return {
    /** Create a room hosted by `actor` (registered users only), claim its PIN, and count `socketId` present in it. */
    async create(actor: RoomActor, payload: RoomCreatePayload, socketId: string): Promise<{ room: RoomView }> {
      if (actor.kind !== 'registered') throw new AppError(ErrorCode.Forbidden, 'Guests cannot create rooms; sign up first');
      const maxMembers = payload.maxMembers ?? config.maxMembersDefault;
      if (maxMembers > config.maxMembersCap) {
        throw new AppError(ErrorCode.BadRequest, `maxMembers: at most ${config.maxMembersCap}`, { issues: [`maxMembers: at most ${config.maxMembersCap}`] });
      }
      await limits.creation(actor.id);
      const roomId = randomUUID();
      const pin = await pins.allocate(roomId, async (candidate) =>
        (await repo.insertRoom({ id: roomId, pin: candidate, title: payload.title, hostId: actor.id, maxMembers })) ? 'inserted' : 'pin_taken',
      );
      await rooms.invalidate(roomId);
      names.set(actor.id, actor.name);
      localPins.set(roomId, pin);
      await presence.join(roomId, socketId, actor.id, actor.id);
      const room = await load(roomId, true);
      if (!room) throw new AppError(ErrorCode.Internal, 'The new room could not be read back');
      logger.info({ roomId, hostId: actor.id }, 'room created');
      await emitFeed({ roomId, type: 'room.created', actor: { id: actor.id, name: actor.name }, payload: { title: room.title } });
      return { room: toView(room) };
    },

    /**
     * Join a room by PIN. Refusals: `rate_limited` (too many wrong PINs from
     * this address or user), `room_not_found`, `banned` (with `retryAfterMs`),
     * `room_locked`, `room_full`. An active member coming back (another tab,
     * a reconnect) keeps their role and is never refused for lock or capacity.
     */
    async join(actor: RoomActor, pin: string, socketId: string): Promise<RoomJoined> {
      // Fresh: a ban or an end must not be missed because of a stale cache entry.
      const room = await resolveLive(pin, { address: actor.address, userId: actor.id }, true);
      const decision = await repo.join(room.id, actor.id);
      switch (decision.refused) {
        case 'not_found':
          throw new AppError(ErrorCode.RoomNotFound, 'No live room has this PIN');
        case 'banned':
          throw new AppError(ErrorCode.Banned, `You are banned from this room until ${decision.bannedUntil.toISOString()}`, {
            retryAfterMs: Math.max(1000, decision.bannedUntil.getTime() - now()),
          });
        case 'locked':
          throw new AppError(ErrorCode.RoomLocked, 'The host has locked this room');
        case 'full':
          throw new AppError(ErrorCode.RoomFull, `The room is full (${room.maxMembers} members)`);
      }
      names.set(actor.id, actor.name);
      localPins.set(room.id, room.pin);
      const { online } = await presence.join(room.id, socketId, actor.id, room.hostId);
      if (online) await announce([{ roomId: room.id, userId: actor.id, online: true }]);
      if (decision.newlyJoined) {
        await emitFeed({ roomId: room.id, type: 'member.joined', actor: { id: actor.id, name: actor.name }, payload: { role: decision.role } });
      }
      const members = await membersOf(room.id);
      const joined: RoomJoined = { room: toView(room), members, role: decision.role };
      if (feedPosition) joined.feed = await feedPosition(room.id);
      return joined;
    },

    /**
     * Leave a room: the member's sockets leave it on every node and they go
     * offline. The host leaving ends the room (`host_left`). Leaving a room one
     * is not in is a no-op.
     */
    async leave(actor: RoomActor, roomId: string): Promise<void> {
      const room = await load(roomId);
      if (!room || room.status === 'ended') return;
      if (room.hostId === actor.id) {
        await endRoom(roomId, 'host_left', actor);
        return;
      }
      const left = await repo.leave(roomId, actor.id);
      notifier.removeUser(roomId, actor.id);
      if (await presence.removeUser(roomId, actor.id)) await announce([{ roomId, userId: actor.id, online: false }]);
      if (left) await emitFeed({ roomId, type: 'member.left', actor: { id: actor.id, name: actor.name }, payload: {} });
    },

    /** Host: lobby → live. `conflict` when the room is not in the lobby. */
    async goLive(actor: RoomActor, roomId: string): Promise<{ room: RoomView }> {
      await hostRoom(actor, roomId);
      if (!(await repo.setStatus(roomId, 'lobby', 'live'))) throw new AppError(ErrorCode.Conflict, 'The room is not in the lobby');
      await rooms.invalidate(roomId);
      const room = toView((await load(roomId, true))!);
      notifier.toRoom(roomId).emit('room:updated', { room });
      await emitFeed({ roomId, type: 'room.started', actor: { id: actor.id, name: actor.name }, payload: {} });
      return { room };
    },

    /** Host: lock (no new members; members already in may come back) or unlock. */
    async lock(actor: RoomActor, roomId: string, locked: boolean): Promise<{ room: RoomView }> {
      await hostRoom(actor, roomId);
      if (!(await repo.setLocked(roomId, locked))) throw new AppError(ErrorCode.Conflict, 'The room has ended');
      await rooms.invalidate(roomId);
      const room = toView((await load(roomId, true))!);
      notifier.toRoom(roomId).emit('room:updated', { room });
      await emitFeed({ roomId, type: 'room.locked', actor: { id: actor.id, name: actor.name }, payload: { locked } });
      return { room };
    },

    /**
     * Host: remove a member. Their sockets get `room:kicked` and leave the room
     * on every node; with `banSeconds`, joining again is refused with `banned`
     * until then. The host cannot kick themself (`conflict`).
     */
    async kick(actor: RoomActor, payload: RoomKickPayload): Promise<void> {
      const { roomId, userId } = payload;
      await hostRoom(actor, roomId);
      if (userId === actor.id) throw new AppError(ErrorCode.Conflict, 'The host cannot kick themself; end the room instead');
      const bannedUntil = payload.banSeconds ? new Date(now() + payload.banSeconds * 1000) : null;
      await repo.kick(roomId, userId, bannedUntil);
      notifier.toUser(userId).emit('room:kicked', bannedUntil ? { roomId, bannedUntil: bannedUntil.toISOString() } : { roomId });
      notifier.removeUser(roomId, userId);
      if (await presence.removeUser(roomId, userId)) await announce([{ roomId, userId, online: false }]);
      await emitFeed({
        roomId,
        type: 'member.kicked',
        actor: { id: actor.id, name: actor.name },
        payload: { userId, bannedUntil: bannedUntil ? bannedUntil.toISOString() : null },
      });
    },

    /** Host: end the room for everyone (`room:ended` with `host_ended`). */
    async end(actor: RoomActor, roomId: string): Promise<void> {
      await hostRoom(actor, roomId);
      if (!(await endRoom(roomId, 'host_ended', actor))) throw new AppError(ErrorCode.Conflict, 'The room has already ended');
    },

    /**
     * `GET /rooms/pin/:pin`: what a join screen shows before asking a nickname.
     * A PIN that never existed and one whose room ended get the same answer
     * (`room_not_found`) along the same path: one Redis read, then the count
     * of a failed guess.
     */
    async lookup(pin: string, address: string): Promise<PinLookup> {
      const room = await resolveLive(pin, { address }, false);
      return { roomId: room.id, title: room.title, status: room.status, locked: room.locked };
    },

    /** A socket closed: it leaves every room it was in; users with no socket left go offline. */
    async socketClosed(socketId: string): Promise<void> {
      if (closing) return;
      await announce(await presence.socketGone(socketId));
    },

    /** Begin the node's timers: heartbeat (with dead-node purge and PIN renewal) and the host grace sweeper. */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      await heartbeatOnce().catch((err: unknown) => logger.warn({ err }, 'first presence heartbeat failed'));
      const beat = loop('presence heartbeat', config.presenceHeartbeatMs, heartbeatOnce, (t) => (heartbeatTimer = t));
      const sweep = loop('host grace sweep', config.sweepIntervalMs, sweepOnce, (t) => (sweepTimer = t));
      heartbeatTimer = setTimeout(beat, config.presenceHeartbeatMs);
      sweepTimer = setTimeout(sweep, config.sweepIntervalMs);
    },

    /**
     * Stop the timers and take this node's sockets out of presence now (a
     * graceful shutdown does not wait for the node timeout). Run before the
     * client transports close.
     */
    async stop(): Promise<void> {
      running = false;
      closing = true;
      clearTimeout(heartbeatTimer);
      clearTimeout(sweepTimer);
      try {
        await announce(await presence.shutdown(hostsOf));
      } catch (err) {
        logger.warn({ err }, 'could not clear this node\'s presence; other nodes will after the node timeout');
      }
    },

    /** One heartbeat and one sweep, now (tests drive the timers by hand). */
    heartbeatOnce,
    sweepOnce,
    /** The presence store (read-only use in tests and handlers). */
    presence,
  };
}
