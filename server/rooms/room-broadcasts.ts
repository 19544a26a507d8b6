/**
 * Room-wide messages caused by people coming and going, coalesced per room
 * and paced by the room's size, so that filling a room of N costs O(N)
 * deliveries in all, never O(N²). Per node, per room:
 *
 * - **Presence.** Changes within one window (`presenceBatchMs`) go out as one
 *   `room:presence { roomId, changes, online }`, each change carrying the
 *   user's state when it is sent (read from Redis then: a user who flipped
 *   twice within the window, on two nodes, ends up right). With at most
 *   `rosterBroadcastMax` users online, it goes to every member. Above, the
 *   host's sockets still get every window's changes, and members get
 *   `changes: []` with the count, at most once per `interval(size)`.
 * - **Membership entries of big rooms.** The room service hands joins and
 *   leaves of rooms with more than `rosterBroadcastMax` members here; each
 *   window's become one `members.joined` / `members.left` entry (the first
 *   `Limits.membersEntryUsers` users and the count), appended through the feed
 *   (stored and archived like any entry) at most once per `interval(size)`.
 *
 * `interval(size) = presenceBatchMs × ⌈size / rosterBroadcastMax⌉`, so a room
 * gets at most `rosterBroadcastMax × 1000 / presenceBatchMs` count deliveries
 * and as many entry deliveries a second from each node, however big it is.
 *
 * Cost per flush: one Redis round trip (HMGET of the changed users and HLEN),
 * one PostgreSQL query only for names this node does not know (users of a
 * dead node), one or two adapter broadcasts, at most two feed appends.
 * Nothing per member. Memory: one small state per room with recent changes,
 * dropped once the room has been quiet for its interval.
 */
import type { Logger } from 'pino';
import { Limits, type FeedActor, type MemberView } from '../../shared/schemas.ts';
import type { MembersEntryPayload } from '../../shared/feed-entries.ts';
import type { RoomsConfig } from '../config.ts';
import type { RoomNotifier } from './notifier.ts';
import type { Presence } from './presence.ts';
import type { RoomEventSink } from './room-service.ts';

export interface RoomBroadcastsDeps {
  config: Pick<RoomsConfig, 'presenceBatchMs' | 'rosterBroadcastMax'>;
  notifier: RoomNotifier;
  presence: Pick<Presence, 'states'>;
  events?: RoomEventSink;
  /** The names in a room of users this node did not see (one query per flush). */
  names(roomId: string, userIds: readonly string[]): Promise<Map<string, string>>;
  /** Host ids of rooms whose host this node does not know. */
  hostsOf(roomIds: string[]): Promise<Map<string, string>>;
  logger: Pick<Logger, 'warn'>;
  /** Clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

export type RoomBroadcasts = ReturnType<typeof createRoomBroadcasts>;

interface Aggregate {
  users: FeedActor[];
  count: number;
}

interface RoomState {
  hostId: string | undefined;
  /** Users whose state changed since the last flush, with their names when known. */
  changes: Map<string, string | undefined>;
  /** Members of a big room are owed a count. */
  countsOwed: boolean;
  lastCountsAt: number;
  countsSize: number;
  joined: Aggregate;
  left: Aggregate;
  /** Members around the latest aggregated change (paces the entries). */
  feedSize: number;
  lastFeedAt: number;
  timer: NodeJS.Timeout | undefined;
  dueAt: number;
  flushing: boolean;
}

const emptyAggregate = (): Aggregate => ({ users: [], count: 0 });

export function createRoomBroadcasts(deps: RoomBroadcastsDeps) {
  const { config, notifier, presence, events, logger } = deps;
  const now = deps.now ?? Date.now;
  const states = new Map<string, RoomState>();
  let stopped = false;

  const interval = (size: number) => config.presenceBatchMs * Math.max(1, Math.ceil(size / config.rosterBroadcastMax));

  function stateOf(roomId: string, hostId: string | undefined): RoomState {
    let state = states.get(roomId);
    if (!state) {
      state = {
        hostId,
        changes: new Map(),
        countsOwed: false,
        lastCountsAt: 0,
        countsSize: 0,
        joined: emptyAggregate(),
        left: emptyAggregate(),
        feedSize: 0,
        lastFeedAt: 0,
        timer: undefined,
        dueAt: 0,
        flushing: false,
      };
      states.set(roomId, state);
    } else if (hostId !== undefined) {
      state.hostId = hostId;
    }
    return state;
  }

  function schedule(roomId: string, state: RoomState, at: number): void {
    if (stopped) return;
    if (state.timer && state.dueAt <= at) return;
    clearTimeout(state.timer);
    state.dueAt = at;
    state.timer = setTimeout(() => void flush(roomId), Math.max(0, at - now()));
    state.timer.unref?.();
  }

  async function flushPresence(roomId: string, state: RoomState, t: number, force: boolean): Promise<void> {
    if (state.changes.size === 0 && !state.countsOwed) return;
    const changed = state.changes;
    state.changes = new Map();
    const ids = [...changed.keys()];
    let online: { online: boolean[]; count: number };
    try {
      online = await presence.states(roomId, ids);
    } catch (err) {
      // Tried again next window.
      for (const [id, name] of changed) if (!state.changes.has(id)) state.changes.set(id, name);
      schedule(roomId, state, now() + config.presenceBatchMs);
      throw err;
    }
    const unknownNames = ids.filter((id) => changed.get(id) === undefined);
    const fetched = unknownNames.length > 0 ? await deps.names(roomId, unknownNames).catch(() => new Map<string, string>()) : undefined;
    const hostId = state.hostId ?? (state.hostId = (await deps.hostsOf([roomId]).catch(() => new Map<string, string>())).get(roomId));
    const changes: MemberView[] = ids.map((userId, i) => ({
      userId,
      name: changed.get(userId) ?? fetched?.get(userId) ?? '',
      role: userId === hostId ? 'host' : 'member',
      online: online.online[i]!,
    }));
    const count = online.count;
    if (count <= config.rosterBroadcastMax) {
      notifier.toRoom(roomId).emit('room:presence', { roomId, changes, online: count });
      state.lastCountsAt = t;
      state.countsSize = count;
      state.countsOwed = false;
      return;
    }
    if (changes.length > 0) notifier.toHost(roomId).emit('room:presence', { roomId, changes, online: count });
    const due = state.lastCountsAt + interval(Math.max(count, state.countsSize));
    if (force || t >= due) {
      notifier.toMembers(roomId).emit('room:presence', { roomId, changes: [], online: count });
      state.lastCountsAt = t;
      state.countsSize = count;
      state.countsOwed = false;
    } else {
      state.countsOwed = true;
      schedule(roomId, state, due);
    }
  }

  async function emitAggregate(roomId: string, type: 'members.joined' | 'members.left', aggregate: Aggregate): Promise<void> {
    if (!events || aggregate.count === 0) return;
    const payload: MembersEntryPayload = { users: aggregate.users, count: aggregate.count };
    try {
      await events.emit({ roomId, type, actor: null, payload: { ...payload } });
    } catch (err) {
      logger.warn({ err, roomId, type, count: aggregate.count }, 'could not write an aggregated membership entry to the feed');
    }
  }

  async function flushFeed(roomId: string, state: RoomState, t: number, force: boolean): Promise<void> {
    if (state.joined.count === 0 && state.left.count === 0) return;
    const due = state.lastFeedAt + interval(state.feedSize);
    if (!force && t < due) {
      schedule(roomId, state, due);
      return;
    }
    const { joined, left } = state;
    state.joined = emptyAggregate();
    state.left = emptyAggregate();
    state.lastFeedAt = t;
    await emitAggregate(roomId, 'members.joined', joined);
    await emitAggregate(roomId, 'members.left', left);
  }

  async function flush(roomId: string, force = false): Promise<void> {
    const state = states.get(roomId);
    if (!state) return;
    clearTimeout(state.timer);
    state.timer = undefined;
    if (state.flushing) {
      // One flush per room at a time; this one's work is picked up right after.
      schedule(roomId, state, now() + config.presenceBatchMs);
      return;
    }
    state.flushing = true;
    const t = now();
    try {
      await flushPresence(roomId, state, t, force);
    } catch (err) {
      logger.warn({ err, roomId }, 'could not send presence; retrying next window');
    }
    try {
      await flushFeed(roomId, state, t, force);
    } finally {
      state.flushing = false;
    }
  }

  return {
    /** A user's online state changed in the room (announced within one window). */
    presence(roomId: string, userId: string, name: string | undefined, hostId: string | undefined): void {
      const state = stateOf(roomId, hostId);
      state.changes.set(userId, name ?? state.changes.get(userId));
      schedule(roomId, state, now() + config.presenceBatchMs);
    },

    /**
     * A member joined or left a room of `size` members (the larger of before
     * and after): recorded in the window's aggregated entry. Only for rooms
     * above `rosterBroadcastMax`; smaller rooms get one entry per change.
     */
    membership(roomId: string, kind: 'joined' | 'left', user: FeedActor, size: number): void {
      const state = stateOf(roomId, undefined);
      const aggregate = kind === 'joined' ? state.joined : state.left;
      if (aggregate.users.length < Limits.membersEntryUsers) aggregate.users.push({ id: user.id, name: user.name });
      aggregate.count++;
      state.feedSize = Math.max(state.feedSize, size);
      schedule(roomId, state, Math.max(now() + config.presenceBatchMs, state.lastFeedAt + interval(state.feedSize)));
    },

    /** Whether membership changes of a room this size are aggregated. */
    aggregates(size: number): boolean {
      return size > config.rosterBroadcastMax;
    },

    /** The room ended: append its owed membership entries now (before `room.ended`) and forget it. */
    async finish(roomId: string): Promise<void> {
      const state = states.get(roomId);
      if (!state) return;
      clearTimeout(state.timer);
      states.delete(roomId);
      state.changes.clear();
      state.countsOwed = false;
      await flushFeed(roomId, state, now(), true);
    },

    /** Drop the state of rooms quiet for longer than their interval (called every heartbeat). */
    sweep(): void {
      const t = now();
      for (const [roomId, state] of states) {
        const quiet = !state.timer && !state.flushing && state.changes.size === 0 && !state.countsOwed && state.joined.count === 0 && state.left.count === 0;
        const paced = Math.max(state.lastCountsAt + interval(state.countsSize), state.lastFeedAt + interval(state.feedSize));
        if (quiet && t >= paced) states.delete(roomId);
      }
    },

    /** Send everything owed now (graceful shutdown: the adapter is still up), then stop scheduling. */
    async stop(): Promise<void> {
      stopped = true;
      for (const state of states.values()) clearTimeout(state.timer);
      await Promise.all([...states.keys()].map((roomId) => flush(roomId, true)));
      states.clear();
    },

    /** Flush every room now (tests). */
    async flushAll(): Promise<void> {
      await Promise.all([...states.keys()].map((roomId) => flush(roomId, true)));
    },
  };
}
