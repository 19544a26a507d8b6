/**
 * Rooms: creation with a PIN, joining by PIN, presence, host controls, and
 * one turn of each job every node runs (`heartbeatOnce`: presence heartbeat,
 * dead-node purge, PIN renewal, broadcast pacing; `sweepOnce`: host grace),
 * which node-timers.ts schedules.
 *
 * Room state lives in PostgreSQL and is read through the cache-aside loader
 * (`rooms`); every write calls `rooms.invalidate(id)` after it commits.
 * Membership is decided and recorded in PostgreSQL in one statement under the
 * room's row lock (bans, lock, capacity), never across a Redis call. All
 * broadcasts go to the room's Socket.IO groups through the Redis adapter
 * (`notifier`); presence and membership broadcasts are coalesced and paced
 * by `room-broadcasts.ts`. The design, with its numbers, is docs/rooms.md.
 *
 * Cost of one `room:join` (hot path), whatever the room's size; docs/rooms.md
 * "The join path" has it step by step, and this summary agrees with it:
 * - a rejoin (already a member: another tab, a reconnect, a node restart):
 *   Redis 3 round trips (probe script, then presence script alongside feed
 *   position: 2 one after the other), PostgreSQL 2 statements (`room_join`
 *   looking: no lock, no write; the membership re-read once the socket is
 *   in the group), no guess accounting, no member list, no feed entry, no
 *   socket write but the ack;
 * - a first join: Redis 5 round trips one after the other (probe script;
 *   guess check and charge, three commands side by side; refund, two
 *   commands; then two branches side by side, presence script then the
 *   member page's HMGET, and the `member.joined` append (in rooms of at most
 *   `rosterBroadcastMax` members) then the feed position), 7 in all (6 above
 *   `rosterBroadcastMax`); PostgreSQL 3 statements (`room_join`, the
 *   membership re-read once the socket is in the group, one page of at most
 *   100 members); socket writes: the ack,
 *   plus one delivery per subscriber of the `member.joined` entry in a small
 *   room, or a share of the window's paced broadcasts in a big one.
 * Every join also reads the room from the cache (its approval setting),
 * alongside the steps above; in a room in approval mode, a first join adds
 * one indexed PostgreSQL read (the joiner's standing), and a joiner who must
 * wait costs one script call (`room-wait.lua`) and, on arrival, one event to
 * the host's sockets: nothing per member.
 * Joins into one room that queue up on a node share one `room_join`
 * statement and commit, one membership re-read, one page read and one
 * position read (coalesce.ts).
 * A leave: 1 PostgreSQL statement (`room_leave`), 2 Redis round trips (the
 * presence script, the `member.left` append in a small room; a third, the
 * room from the cache, when no socket of the room is on this node) and one
 * adapter PUBLISH (the user's sockets leave the group).
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient as Redis } from '../redis/connections.ts';
import type { Logger } from 'pino';
import { Limits, type FeedPosition, type MemberView, type PinLookup, type RoomCreatePayload, type RoomEndReason, type RoomJoined, type RoomKickPayload, type RoomMembersPage, type RoomWaitlistPage, type RoomView, type UserKind } from '../../shared/schemas.ts';
import type { RoomEventEntry } from '../../shared/feed-entries.ts';
import type { RoomRecord } from '../cache/loaders.ts';
import type { CachedLoader } from '../cache/types.ts';
import type { RoomsConfig } from '../config.ts';
import type { Db } from '../db/database.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import { createCoalescer } from './coalesce.ts';
import { createRoomLimits, type Guesser } from './limits.ts';
import type { RoomNotifier } from './notifier.ts';
import { createPinStore } from './pins.ts';
import { createPresence, type PresenceTransition } from './presence.ts';
import { createWaitingRoom } from './waiting.ts';
import { createRoomBroadcasts } from './room-broadcasts.ts';
import { createRoomRepository, type JoinDecision, type JoinedRoom } from './room.repository.ts';

/** A server-made entry for a room's activity feed: its type and payload (`RoomEventEntry`), the room, and who caused it (null when the server did: host grace ran out). */
export type RoomFeedEvent = RoomEventEntry & { roomId: string; actor: { id: string; name: string } | null };

/**
 * Where room events go besides the sockets (the activity feed). Called after
 * the state change has committed, in order for one room: `member.joined`
 * (a new or returning member, not a rejoin) and `member.left` in rooms of at
 * most `rosterBroadcastMax` members, `members.joined` / `members.left` once
 * per window above that size, `member.kicked`, `room.started`,
 * `room.locked`, `room.ended` (payloads: `RoomEventEntry`). A failure is
 * logged and does not undo the change.
 */
export interface RoomEventSink {
  emit(event: RoomFeedEvent): Promise<void>;
}

/** The user acting, as the socket authenticated them, and the client address (for guess limits). */
export interface RoomActor {
  id: string;
  /** The name the user goes by: in a room, the name they joined it with (`RoomJoined.name`). */
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
  /** Optional: the room feed's current position, added to the `room:join` answer as `feed`. Called after the membership was recorded (and its `member.joined` emitted, in a small room). */
  feedPosition?: (roomId: string) => Promise<FeedPosition>;
  /** Clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

export type RoomService = ReturnType<typeof createRoomService>;

/** The wire view of a room, as the cache holds it or as `room_join` read it (which does not read `approval`: pass it). */
const toView = (room: RoomRecord | JoinedRoom, approval = 'approval' in room && room.approval === true): RoomView => ({
  id: room.id,
  pin: room.pin,
  title: room.title,
  hostId: room.hostId,
  status: room.status,
  locked: room.locked,
  approval,
  maxMembers: room.maxMembers,
  createdAt: typeof room.createdAt === 'string' ? room.createdAt : room.createdAt.toISOString(),
});

type Admitted = Extract<JoinDecision, { outcome: 'joined' | 'rejoined' }>;

export function createRoomService(deps: RoomServiceDeps) {
  const { config, db, redis, scripts, keys, logger, rooms, notifier, events, feedPosition } = deps;
  const now = deps.now ?? Date.now;
  const repo = createRoomRepository({ db });
  const pins = createPinStore({ redis, scripts, keys, config, logger });
  const presence = createPresence({ redis, scripts, keys, config, logger, now });
  const limits = createRoomLimits({ redis, keys, config });
  const waiting = createWaitingRoom({ redis, scripts, keys, config, now });
  const broadcasts = createRoomBroadcasts({
    config,
    notifier,
    presence,
    ...(events ? { events } : {}),
    names: (roomId, ids) => repo.names(roomId, ids),
    hostsOf: (ids) => hostsOf(ids),
    logger,
    now,
  });
  /** PINs of rooms with sockets on this node, for renewal. */
  const localPins = new Map<string, string>();

  async function emitFeed(event: RoomFeedEvent): Promise<void> {
    if (!events) return;
    try {
      await events.emit(event);
    } catch (err) {
      logger.warn({ err, roomId: event.roomId, type: event.type }, 'could not write a room event to the feed');
    }
  }

  /**
   * A member joined or left a room that has `size` members around the change:
   * one `member.joined` / `member.left` entry in a small room, a share of the
   * window's aggregated entry in a big one.
   */
  async function membershipChanged(roomId: string, change: Extract<RoomEventEntry, { type: 'member.joined' | 'member.left' }>, actor: { id: string; name: string }, size: number): Promise<void> {
    if (broadcasts.aggregates(size)) broadcasts.membership(roomId, change.type === 'member.joined' ? 'joined' : 'left', actor, size);
    else await emitFeed({ roomId, ...change, actor: { id: actor.id, name: actor.name } });
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

  /** Hand presence transitions to the batcher (announced within one window). */
  function announce(transitions: PresenceTransition[]): void {
    const local = presence.localRooms();
    for (const t of transitions) broadcasts.presence(t.roomId, t.userId, t.name, local.get(t.roomId)?.hostId);
  }

  /** One page of members in join order, with their online state: O(limit). */
  async function membersPage(roomId: string, after: string | undefined, limit: number): Promise<RoomMembersPage> {
    const rows = await repo.membersPage(roomId, after, limit + 1);
    const page = rows.length > limit ? rows.slice(0, limit) : rows;
    const { online } = await presence.states(
      roomId,
      page.map((m) => m.userId),
    );
    const members: MemberView[] = page.map((m, i) => ({ userId: m.userId, name: m.name, role: m.role, online: online[i]! }));
    return rows.length > limit ? { members, nextAfter: page[page.length - 1]!.seq } : { members };
  }

  /**
   * What the join answer reads after the joiner was recorded and counted
   * present: the room's first member page and its feed position, each read
   * once for the joins that queued up meanwhile (coalesce.ts): a reader
   * always gets a read that started after its call.
   */
  const firstPages = createCoalescer<null, RoomMembersPage>(async (roomId, args) => {
    const page = await membersPage(roomId, undefined, Limits.membersPageMax);
    return args.map(() => page);
  });
  const positions = createCoalescer<null, FeedPosition>(async (roomId, args) => {
    const position = await feedPosition!(roomId);
    return args.map(() => position);
  });

  /**
   * End a room: mark it ended and empty it (one transaction), then invalidate
   * the cache, release and quarantine its PIN, write the membership entries
   * this node still owed, tell every member, take their sockets out of the
   * room and forget its presence. False when it had already ended.
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
    await broadcasts.finish(roomId);
    notifier.toRoom(roomId).emit('room:ended', { roomId, reason });
    try {
      for (const userId of await waiting.drain(roomId)) notifier.toUser(userId).emit('room:denied', { roomId });
    } catch (err) {
      logger.warn({ err, roomId }, 'could not empty the waiting room of an ended room; it expires by itself');
    }
    notifier.removeAll(roomId);
    await presence.clearRoom(roomId);
    logger.info({ roomId, reason }, 'room ended');
    await emitFeed({ roomId, type: 'room.ended', actor: actor && { id: actor.id, name: actor.name }, payload: { reason } });
    return true;
  }

  /** PIN → live room, for the HTTP lookup: one PIN guess (limits.ts: only a wrong PIN counts). */
  async function resolveLive(pin: string, who: Guesser): Promise<RoomRecord> {
    const room = await limits.guess(who, async () => {
      const roomId = await pins.resolve(pin);
      const found = roomId ? await load(roomId) : null;
      return found && found.status !== 'ended' && found.pin === pin ? found : null;
    });
    if (!room) throw new AppError(ErrorCode.RoomNotFound, 'No live room has this PIN');
    return room;
  }

  /**
   * A join that is not a rejoin: one PIN guess (limits.ts: only a wrong PIN
   * counts, against this user and, past the lookup, this address), and the
   * decision in PostgreSQL. In approval mode, a user who is not a member
   * (and not banned) goes to the waiting room instead: `awaiting_approval`,
   * and the host's sockets get `room:waiting`. `cached` is the room from the
   * cache, read alongside the guess accounting (approval is a room setting).
   */
  async function admit(actor: RoomActor, roomId: string | null, pin: string, cached: Promise<RoomRecord | null>): Promise<Admitted> {
    const decision = await limits.guess({ address: actor.address, userId: actor.id }, async (): Promise<JoinDecision | { outcome: 'waiting'; room: RoomRecord } | null> => {
      if (!roomId) return null;
      const room = await cached;
      if (room?.approval && room.hostId !== actor.id && room.status !== 'ended' && room.pin === pin) {
        const standing = await repo.standing(roomId, actor.id);
        if (standing.bannedUntil) return { outcome: 'banned', bannedUntil: standing.bannedUntil };
        if (!standing.active) return { outcome: 'waiting', room };
      }
      const decided = await repo.join(roomId, actor.id, pin, actor.name, true);
      return decided.outcome === 'not_found' ? null : decided;
    });
    if (!decision) throw new AppError(ErrorCode.RoomNotFound, 'No live room has this PIN');
    switch (decision.outcome) {
      case 'joined':
      case 'rejoined':
        return decision;
      case 'waiting':
        return wait(actor, decision.room);
      case 'banned':
        throw new AppError(ErrorCode.Banned, `You are banned from this room until ${decision.bannedUntil.toISOString()}`, {
          retryAfterMs: Math.max(1000, decision.bannedUntil.getTime() - now()),
        });
      case 'locked':
        throw new AppError(ErrorCode.RoomLocked, 'The host has locked this room');
      case 'full':
        throw new AppError(ErrorCode.RoomFull, `The room is full (${decision.maxMembers} members)`);
      case 'nickname_taken':
        throw new AppError(ErrorCode.NicknameTaken, `Someone in this room already goes by "${actor.name}"; pick another nickname`);
      default:
        throw new AppError(ErrorCode.Internal, `Unexpected join outcome ${decision.outcome}`);
    }
  }

  /** Put the joiner in the waiting room and tell the host (one event to the host's sockets, on an arrival only). Always throws. */
  async function wait(actor: RoomActor, room: RoomRecord): Promise<never> {
    if (room.locked) throw new AppError(ErrorCode.RoomLocked, 'The host has locked this room');
    const placed = await waiting.add(room.id, actor);
    if (placed.full) throw new AppError(ErrorCode.RoomFull, `The waiting room is full (${config.waitingMax} waiting)`);
    if (placed.added) notifier.toHost(room.id).emit('room:waiting', { roomId: room.id, count: placed.count, user: { userId: actor.id, name: actor.name } });
    throw new AppError(ErrorCode.AwaitingApproval, 'The host admits each new member: wait for room:admitted, then join again');
  }

  const removedWhileJoining = () => new AppError(ErrorCode.Forbidden, 'The host removed you from this room while you were joining');

  /**
   * The join's socket is in the room's group: confirm in PostgreSQL that the
   * membership still stands. A kick (on any node) that committed after the
   * join's decision but before the socket entered the group took no socket
   * out (`removeUser` found none); this read sees it, and the socket leaves
   * again. A kick committing after this read finds the socket in the group.
   * Either way no access remains: feed access checks the group.
   */
  async function stillMember(roomId: string, actor: RoomActor, socketId: string): Promise<void> {
    let active: boolean;
    try {
      active = await repo.isActive(roomId, actor.id);
    } catch (err) {
      notifier.leave(socketId, roomId);
      throw err;
    }
    if (active) return;
    notifier.leave(socketId, roomId);
    throw removedWhileJoining();
  }

  // ---- the node's jobs (scheduled by node-timers.ts)
  let running = false;
  let closing = false;
  let following = false;

  async function heartbeatOnce(): Promise<void> {
    announce(await presence.heartbeat());
    announce(await presence.sweepDeadNodes(hostsOf));
    const local = presence.localRooms();
    for (const roomId of localPins.keys()) if (!local.has(roomId)) localPins.delete(roomId);
    await presence.touchRooms([...local.keys()]);
    for (const roomId of await pins.renew(localPins)) localPins.delete(roomId);
    broadcasts.sweep();
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
        (await repo.insertRoom({ id: roomId, pin: candidate, title: payload.title, hostId: actor.id, hostName: actor.name, maxMembers, approval: payload.approval ?? false })) ? 'inserted' : 'pin_taken',
      );
      await rooms.invalidate(roomId);
      localPins.set(roomId, pin);
      if (await notifier.enter(socketId, roomId, true)) await presence.join(roomId, socketId, actor, actor.id);
      const room = await load(roomId, true);
      if (!room) throw new AppError(ErrorCode.Internal, 'The new room could not be read back');
      logger.info({ roomId, hostId: actor.id }, 'room created');
      await emitFeed({ roomId, type: 'room.created', actor: { id: actor.id, name: actor.name }, payload: { title: room.title } });
      return { room: toView(room) };
    },

    /**
     * Join a room by PIN and put `socketId` in it, going by `nickname` there
     * (default: the user's display name). Refusals: `rate_limited` (too many
     * wrong PINs from this address or user), `room_not_found`, `banned` (with
     * `retryAfterMs`), `room_locked`, `room_full`, `nickname_taken` (another
     * active member goes by that name, case-insensitively). A rejoin keeps the
     * name the member already has (`RoomJoined.name`), whatever `nickname` says.
     *
     * A member who already is in the room (another tab, a reconnect, a node
     * restart) takes the rejoin path: the user's rejoin hint (Redis) points at
     * the room, PostgreSQL confirms the membership without a lock, and they
     * are back with their role whatever the lock and the count: no guess
     * accounting, no feed entry, no member list (`rejoined: true`). Everyone
     * else is one PIN guess and one decision under the room's row lock.
     *
     * The socket joins the room's group before presence and the member page
     * are read, so every presence change after the answer's snapshot reaches
     * it; the feed position is read after the membership was recorded.
     */
    async join(user: RoomActor, pin: string, socketId: string, nickname?: string): Promise<RoomJoined> {
      const asked: RoomActor = nickname === undefined ? user : { ...user, name: nickname };
      const probe = await pins.probe(pin, user.id);
      // Read alongside the rest (approval mode is a room setting); a failed read is the join's failure.
      const cachedRoom = probe.roomId ? load(probe.roomId) : Promise.resolve(null);
      cachedRoom.catch(() => undefined);
      let decision: Admitted | undefined;
      if (probe.roomId && probe.hinted) {
        const seen = await repo.join(probe.roomId, user.id, pin, asked.name, false);
        if (seen.outcome === 'rejoined') decision = seen;
      }
      decision ??= await admit(asked, probe.roomId, pin, cachedRoom);
      const room = toView(decision.room, (await cachedRoom)?.approval === true);
      const rejoined = decision.outcome === 'rejoined';
      const { role, memberCount, name } = decision;
      const actor: RoomActor = { ...user, name };
      localPins.set(room.id, room.pin);

      let online = 0;
      let feed: FeedPosition | undefined;
      let page: RoomMembersPage | undefined;
      await Promise.all([
        // The membership entry and the position after it ...
        (async () => {
          if (!rejoined) await membershipChanged(room.id, { type: 'member.joined', payload: { role } }, actor, memberCount);
          if (feedPosition) feed = await positions(room.id, null);
        })(),
        // ... alongside the socket's presence and the member page read after it (so it shows the joiner online).
        (async () => {
          if (await notifier.enter(socketId, room.id, role === 'host')) {
            await stillMember(room.id, actor, socketId);
            const counted = await presence.join(room.id, socketId, actor, room.hostId);
            if (!notifier.holds(socketId, room.id)) {
              // A kick took the socket out after the re-read; its presence removal may have run before this join's.
              await presence.removeUser(room.id, actor.id);
              throw removedWhileJoining();
            }
            online = counted.count;
            if (counted.online) broadcasts.presence(room.id, actor.id, actor.name, room.hostId);
          }
          if (!rejoined) page = await firstPages(room.id, null);
        })(),
      ]);
      const joined: RoomJoined = { room, role, name, memberCount, online, rejoined };
      if (page) {
        joined.members = page.members;
        if (page.nextAfter) joined.nextAfter = page.nextAfter;
      }
      if (feed) joined.feed = feed;
      return joined;
    },

    /**
     * One page of a room's members in join order, after `after` (the
     * `nextAfter` of the previous page). The caller checks that the asker is
     * in the room. O(limit), whatever the room's size.
     */
    members(roomId: string, after: string | undefined, limit: number = Limits.membersPageMax): Promise<RoomMembersPage> {
      return membersPage(roomId, after, limit);
    },

    /**
     * Leave a room: the member's sockets leave it on every node and they go
     * offline. The host leaving ends the room (`host_left`). Leaving a room one
     * is not in is a no-op.
     */
    async leave(actor: RoomActor, roomId: string): Promise<void> {
      // A room with sockets here: its host is known (an ended room has no member left to mark gone).
      let hostId = presence.localRooms().get(roomId)?.hostId;
      if (hostId === undefined) {
        const room = await load(roomId);
        if (!room || room.status === 'ended') return;
        hostId = room.hostId;
      }
      if (hostId === actor.id) {
        await endRoom(roomId, 'host_left', actor);
        return;
      }
      const count = await repo.leave(roomId, actor.id);
      notifier.removeUser(roomId, actor.id);
      if (await presence.removeUser(roomId, actor.id)) broadcasts.presence(roomId, actor.id, actor.name, hostId);
      if (count !== null) await membershipChanged(roomId, { type: 'member.left', payload: {} }, actor, count + 1);
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
      const room = await hostRoom(actor, roomId);
      if (userId === actor.id) throw new AppError(ErrorCode.Conflict, 'The host cannot kick themself; end the room instead');
      const bannedUntil = payload.banSeconds ? new Date(now() + payload.banSeconds * 1000) : null;
      const { name } = await repo.kick(roomId, userId, bannedUntil);
      notifier.toUser(userId).emit('room:kicked', bannedUntil ? { roomId, bannedUntil: bannedUntil.toISOString() } : { roomId });
      notifier.removeUser(roomId, userId);
      if (await presence.removeUser(roomId, userId)) broadcasts.presence(roomId, userId, name, room.hostId);
      await emitFeed({
        roomId,
        type: 'member.kicked',
        actor: { id: actor.id, name: actor.name },
        payload: { userId, name, bannedUntil: bannedUntil ? bannedUntil.toISOString() : null },
      });
    },

    /**
     * Host: change the room's settings (approval mode). Turning approval off
     * lets new joins straight in, and tells everyone waiting `room:admitted`
     * (they join again; at most `ROOM_WAITING_MAX` events, once).
     */
    async update(actor: RoomActor, roomId: string, settings: { approval: boolean }): Promise<{ room: RoomView }> {
      await hostRoom(actor, roomId);
      if (!(await repo.setApproval(roomId, settings.approval))) throw new AppError(ErrorCode.Conflict, 'The room has ended');
      await rooms.invalidate(roomId);
      const room = toView((await load(roomId, true))!);
      notifier.toRoom(roomId).emit('room:updated', { room });
      if (!settings.approval) {
        const released = await waiting.drain(roomId);
        for (const userId of released) notifier.toUser(userId).emit('room:admitted', { roomId });
        if (released.length > 0) notifier.toHost(roomId).emit('room:waiting', { roomId, count: 0 });
      }
      return { room };
    },

    /**
     * Host: admit a user from the waiting room. Their membership is recorded
     * like any join (`room_join`: bans, lock and capacity apply; on
     * `room_locked` or `room_full` they stay waiting), then they get
     * `room:admitted` and join again (a rejoin). `not_found` when the user is
     * not waiting (already decided, or the list expired).
     */
    async admitUser(actor: RoomActor, roomId: string, userId: string): Promise<void> {
      const room = await hostRoom(actor, roomId);
      const { name, count } = await waiting.remove(roomId, userId);
      if (name === null) throw new AppError(ErrorCode.NotFound, 'This user is not in the waiting room');
      const decided = await repo.join(roomId, userId, room.pin, name, true);
      if (decided.outcome === 'locked' || decided.outcome === 'full') {
        await waiting.add(roomId, { id: userId, name });
        throw new AppError(decided.outcome === 'locked' ? ErrorCode.RoomLocked : ErrorCode.RoomFull, decided.outcome === 'locked' ? 'Unlock the room to admit' : 'The room is full');
      }
      if (decided.outcome === 'nickname_taken') throw new AppError(ErrorCode.NicknameTaken, `Someone in this room already goes by "${name}"; they must join again with another nickname`);
      if (decided.outcome === 'banned') throw new AppError(ErrorCode.Banned, 'This user is banned from the room; the ban must end first');
      if (decided.outcome !== 'joined' && decided.outcome !== 'rejoined') throw new AppError(ErrorCode.Conflict, 'The room has ended');
      notifier.toHost(roomId).emit('room:waiting', { roomId, count });
      if (decided.outcome === 'joined') await membershipChanged(roomId, { type: 'member.joined', payload: { role: decided.role } }, { id: userId, name }, decided.memberCount);
      notifier.toUser(userId).emit('room:admitted', { roomId });
    },

    /** Host: turn a user in the waiting room away; they get `room:denied` (and may ask again by joining). `not_found` when not waiting. */
    async denyUser(actor: RoomActor, roomId: string, userId: string): Promise<void> {
      await hostRoom(actor, roomId);
      const { name, count } = await waiting.remove(roomId, userId);
      if (name === null) throw new AppError(ErrorCode.NotFound, 'This user is not in the waiting room');
      notifier.toHost(roomId).emit('room:waiting', { roomId, count });
      notifier.toUser(userId).emit('room:denied', { roomId });
    },

    /** Host: one page of the waiting room, longest waiting first. O(limit). */
    async waitlist(actor: RoomActor, roomId: string, after: string | undefined, limit: number = Limits.membersPageMax): Promise<RoomWaitlistPage> {
      await hostRoom(actor, roomId);
      return waiting.page(roomId, after, limit);
    },

    /** Host: end the room for everyone (`room:ended` with `host_ended`). */
    async end(actor: RoomActor, roomId: string): Promise<void> {
      await hostRoom(actor, roomId);
      if (!(await endRoom(roomId, 'host_ended', actor))) throw new AppError(ErrorCode.Conflict, 'The room has already ended');
    },

    /**
     * `GET /rooms/pin/:pin`: what a join screen shows before asking a nickname
     * (locked or full included, so it can say so first). A PIN that never
     * existed and one whose room ended get the same answer (`room_not_found`)
     * along the same path: one Redis read, then the count of a failed guess.
     * A live room costs one more primary-key read (its member count); when
     * PostgreSQL cannot answer it, `full` is false (the join itself still
     * answers `room_full`) and the lookup is served from the cache as before.
     * `userId`: the asker when the request carried an access token (counted
     * like a join), else the address alone counts.
     */
    async lookup(pin: string, address: string, userId?: string): Promise<PinLookup> {
      const room = await resolveLive(pin, userId ? { address, userId } : { address });
      const full = await repo.memberCount(room.id).then(
        (count) => count >= room.maxMembers,
        (err: unknown) => {
          logger.warn({ err, roomId: room.id }, 'could not read the member count for a PIN lookup; answering full: false');
          return false;
        },
      );
      return { roomId: room.id, title: room.title, status: room.status, locked: room.locked, full };
    },

    /** A socket is closing: it leaves every room it was in; users with no socket left go offline. Call before its groups are left. */
    async socketClosed(socketId: string): Promise<void> {
      if (closing) return;
      announce(await presence.socketGone(socketId));
    },

    /** Follow this node's sockets leaving room groups, and run the first heartbeat (before the node's timers start). */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      if (!following) {
        following = true;
        // A socket of this node leaving a room's group (a leave or kick from any node, the end) is forgotten locally.
        notifier.follow((roomId, socketId) => presence.forget(roomId, socketId));
      }
      await heartbeatOnce().catch((err: unknown) => logger.warn({ err }, 'first presence heartbeat failed'));
    },

    /**
     * Take this node's sockets out of presence now (a graceful shutdown does
     * not wait for the node timeout), and send what the broadcast batches
     * still owe. Run after the node's timers stopped, before the client
     * transports close.
     */
    async stop(): Promise<void> {
      running = false;
      closing = true;
      try {
        announce(await presence.shutdown(hostsOf));
      } catch (err) {
        logger.warn({ err }, 'could not clear this node\'s presence; other nodes will after the node timeout');
      }
      await broadcasts.stop();
    },

    /** One heartbeat and one sweep, now (node-timers.ts; tests drive them by hand). */
    heartbeatOnce,
    sweepOnce,
    /** Send every pending presence batch and owed membership entry now (tests). */
    flushBroadcasts: () => broadcasts.flushAll(),
    /** The presence store (read-only use in tests and handlers). */
    presence,
  };
}
