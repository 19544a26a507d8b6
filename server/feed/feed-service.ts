/**
 * The activity feed's operations, independent of the transport: publishing
 * (members, hosts, the server itself, a backend), positions, subscriptions
 * (delivered by the relay), history and the system log.
 *
 * Cost of a member's `feed:publish`: three Redis round trips, one after the
 * other: the per-user event limit (the router's guard, on every event), the
 * per-user publish limit (`limits.publish`), then the append script. Besides
 * them, one Set lookup (is the connection in the room?), and the role read
 * from the room (a cache-aside GET) once per connection and room, not per
 * publish. Nothing grows with the room.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  jsonBytes,
  Limits,
  type FeedActor,
  type FeedEntry,
  type FeedEventBody,
  type FeedHistoryPage,
  type FeedHistoryPayload,
  type FeedPosition,
  type FeedPublishPayload,
  type FeedScope,
  type FeedSubscribed,
  type MemberRole,
} from '../../shared/schemas.ts';
import type { FeedConfig } from '../config.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { ActivityRepository } from './activity-repository.ts';
import type { FeedRelay, FeedSink, FeedSubscription } from './feed-relay.ts';
import type { FeedStore, LogInput } from './feed-store.ts';
import { compareIds, ZERO_ID } from '../../shared/stream-ids.ts';
import { RoomEventEntry } from '../../shared/feed-entries.ts';

/** Rooms whose role one connection remembers (`FeedUser.roles`); a connection in more rooms asks again for the oldest. */
export const ROLES_REMEMBERED = 64;

/** Who is asking: the socket's user, and the rooms this connection has joined. */
export interface FeedUser extends FeedActor {
  /** The name the user goes by in a room, when it differs from `name` (their nickname there). */
  nameIn?(roomId: string): string | undefined;
  /** Whether this connection is in the room (joined with `room:join` or `room:create`, not kicked, not left). */
  inRoom?(roomId: string): boolean;
  /**
   * Roles this connection was found to have, by room, kept by the caller for
   * the connection's life: asked once, then answered from here while `inRoom`
   * holds (a kick, a leave or the room's end takes the connection out of the
   * room on every node, which revokes it), so a publish costs no Redis read.
   * Bounded: at most `ROLES_REMEMBERED` rooms per connection (the oldest is
   * forgotten first, and asked again if it is used again), and a room the
   * connection is no longer in is forgotten when next asked.
   */
  roles?: Map<string, MemberRole>;
}

/** What the feed needs to know about rooms; implemented with the rooms feature. */
export interface FeedAccess {
  /** The user's role in the room, or null when they are not a member of it (on this connection). */
  roleOf(roomId: string, user: FeedUser): Promise<MemberRole | null>;
  /** Whether a room exists and has not ended. */
  isOpen(roomId: string): Promise<boolean>;
}

/** A server-made entry, as the rooms feature emits it: its type and payload (`RoomEventEntry`), the room and who caused it. */
export type ServerFeedEvent = RoomEventEntry & { roomId: string; actor: FeedActor | null };

/** The idempotency namespace of entries a backend publishes over HTTP. */
const SERVICE_KEY = 'service';

export type FeedService = ReturnType<typeof createFeedService>;

export function createFeedService({
  store,
  relay,
  activity,
  access,
  isAdmin,
  limits,
  config,
  logger,
}: {
  store: FeedStore;
  relay: FeedRelay;
  activity: ActivityRepository;
  access: FeedAccess;
  /** Whether a user may follow the global and system feeds (server/auth/admins.ts). */
  isAdmin: (userId: string) => boolean;
  /** The per-user publish limit, shared by every socket and node; throws `rate_limited`. */
  limits?: { publish(userId: string, roomId: string): Promise<void> };
  config: { feed: FeedConfig };
  logger: Logger;
}) {
  const log = logger.child({ component: 'feed' });
  const apiKeyDigest = config.feed.apiKey ? createHash('sha256').update(config.feed.apiKey).digest() : null;

  async function requireMember(roomId: string, user: FeedUser): Promise<MemberRole> {
    // The connection's membership is checked every time; the role (a room's host never changes) is remembered.
    const inRoom = user.inRoom?.(roomId) !== false;
    if (!inRoom) user.roles?.delete(roomId);
    const known = inRoom ? user.roles?.get(roomId) : undefined;
    if (known) return known;
    const role = await access.roleOf(roomId, user);
    if (!role) throw new AppError(ErrorCode.Forbidden, 'Join the room (room:join) before using its feed; members only');
    if (user.roles) {
      // Insertion order: the first key is the oldest remembered room.
      if (user.roles.size >= ROLES_REMEMBERED) user.roles.delete(user.roles.keys().next().value!);
      user.roles.set(roomId, role);
    }
    return role;
  }

  return {
    /** `feed:publish` by a member; `host.*` types by the host only. Idempotent per user and `clientMsgId`. */
    async publish(actor: FeedUser, input: FeedPublishPayload): Promise<{ id: string }> {
      const role = await requireMember(input.roomId, actor);
      if (input.type.startsWith('host.') && role !== 'host') throw new AppError(ErrorCode.Forbidden, 'Only the host may publish host.* entries');
      await limits?.publish(actor.id, input.roomId);
      const { id } = await store.append({
        roomId: input.roomId,
        type: input.type,
        actor: { id: actor.id, name: actor.nameIn?.(input.roomId) ?? actor.name },
        payload: input.payload,
        idempotency: { key: actor.id, clientMsgId: input.clientMsgId },
        // A room that ended refuses, atomically with the append, whatever this node's view of it.
        refuseClosed: true,
      });
      return { id };
    },

    /** A backend publishing over HTTP (actor null); idempotent per `clientMsgId` when given. */
    async publishAsService(roomId: string, body: FeedEventBody): Promise<{ id: string; duplicate: boolean }> {
      if (!(await access.isOpen(roomId))) throw new AppError(ErrorCode.NotFound, 'No open room has this id');
      const result = await store.append({
        roomId,
        type: body.type,
        actor: null,
        payload: body.payload,
        ...(body.clientMsgId ? { idempotency: { key: SERVICE_KEY, clientMsgId: body.clientMsgId } } : {}),
        refuseClosed: true,
      });
      return { id: result.id, duplicate: result.duplicate };
    },

    /** Whether `presented` is the configured service API key (constant time). False when none is configured. */
    checkApiKey(presented: string | undefined): boolean {
      if (!apiKeyDigest || presented === undefined) return false;
      return timingSafeEqual(createHash('sha256').update(presented).digest(), apiKeyDigest);
    },

    /** A server-made entry (`member.joined`, `room.ended`, ...). Also logs room ends to the system feed. */
    async emit(event: ServerFeedEvent): Promise<void> {
      const { type } = RoomEventEntry.parse({ type: event.type, payload: event.payload });
      if (jsonBytes(event.payload) > Limits.feedPayloadBytes) throw new AppError(ErrorCode.BadRequest, `Feed payload over ${Limits.feedPayloadBytes} bytes`);
      await store.append({ roomId: event.roomId, type, actor: event.actor, payload: event.payload });
      // Room lifecycle also goes to the system log.
      if (type === 'room.created' || type === 'room.ended') {
        await store.log({ type, roomId: event.roomId, actor: event.actor, payload: event.payload }).catch((err: unknown) => log.warn({ err }, 'system log append failed'));
      }
    },

    /** The room feed's position (creating its epoch when new): what `room:join` answers. */
    async position(roomId: string): Promise<FeedPosition> {
      const { epoch, lastId } = await store.position({ kind: 'room', roomId });
      return { epoch, lastId };
    },

    /** Append to the system log (never throws: a log line must not fail what it reports). */
    async systemLog(input: LogInput): Promise<void> {
      try {
        await store.log(input);
      } catch (err) {
        log.warn({ err, type: input.type }, 'system log append failed');
      }
    },

    /** Subscribe a member to a room's feed; `signal` stops a replay in progress. */
    async subscribeRoom(
      user: FeedUser,
      roomId: string,
      since: { epoch: string; id: string } | undefined,
      sink: FeedSink,
      signal?: AbortSignal,
    ): Promise<{ subscription: FeedSubscription; result: FeedSubscribed }> {
      await requireMember(roomId, user);
      return relay.subscribe({ kind: 'room', roomId }, since, sink, signal);
    },

    /** Subscribe an admin to the global or system feed; `signal` stops a replay in progress. */
    async subscribeScope(
      user: { id: string },
      scope: FeedScope,
      since: { epoch: string; id: string } | undefined,
      sink: FeedSink,
      signal?: AbortSignal,
    ): Promise<{ subscription: FeedSubscription; result: FeedSubscribed }> {
      if (!isAdmin(user.id)) throw new AppError(ErrorCode.Forbidden, `Only administrators may subscribe to the ${scope} feed`);
      return relay.subscribe({ kind: scope }, since, sink, signal);
    },

    /** A page of a room's feed, newest first: from the stream while it holds the range, then from the archive. */
    async history(user: FeedUser, input: FeedHistoryPayload): Promise<FeedHistoryPage> {
      await requireMember(input.roomId, user);
      return this.page(input.roomId, input.before, input.limit ?? 50);
    },

    /**
     * The history page itself, without the membership check. A page that ends
     * before `limit` is the beginning of the feed, unless its oldest entry
     * links to an entry before it (`prev` is not `0-0`): then older entries
     * existed and are gone (past `FEED_ARCHIVE_RETENTION_DAYS`, or lost), and
     * the page says so with `truncated: true`. An empty page (the one before
     * ended exactly on the oldest entry kept) judges by the oldest entry the
     * stream or the archive still holds: two more reads, on that page only.
     */
    async page(roomId: string, before: string | undefined, limit: number): Promise<FeedHistoryPage> {
      const ref = { kind: 'room' as const, roomId };
      const fromStream = await store.before(ref, before, limit);
      const entries: FeedEntry[] = fromStream.map((s) => s.entry);
      let oldestPrev: string | null = fromStream.at(-1)?.prev ?? null;
      if (entries.length < limit) {
        // Older than anything the stream holds below `before`: the archive (every epoch).
        const boundary = entries.length > 0 ? entries[entries.length - 1]!.id : before;
        const older = await activity.before(roomId, boundary, limit - entries.length);
        for (const row of older) entries.push(row.entry);
        if (older.length > 0) oldestPrev = older[older.length - 1]!.prev;
      }
      if (entries.length === 0 && before !== undefined) {
        // Nothing kept is older than `before`, so the oldest entry kept is at or after it.
        const [first, archived] = await Promise.all([store.first(ref), activity.oldest(roomId)]);
        const oldest = first && (!archived || compareIds(first.id, archived.entry.id) < 0) ? first.prev : archived?.prev;
        oldestPrev = oldest ?? null;
      }
      const page: FeedHistoryPage = { entries };
      if (entries.length === limit) page.nextBefore = entries[entries.length - 1]!.id;
      else if (oldestPrev !== null && oldestPrev !== ZERO_ID) page.truncated = true;
      return page;
    },
  };
}
