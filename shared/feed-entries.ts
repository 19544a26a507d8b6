/**
 * Feed entries by type: the payload of every entry the server writes itself
 * (room events in a room's feed, operational and audit entries in the system
 * log) and of the entries clients publish with a fixed shape. One
 * discriminated union by `type`; the server's emit sites are typed with it,
 * the demo reads entries through `readEntry`, and an end-to-end test
 * (tests/e2e/feed-entries.test.ts) checks what a real server sends against it.
 * A `FeedEntry` carries `type` and `payload` as they are on the wire; these
 * types say what each known `type` holds.
 */
import * as z from 'zod';
import { ChatMessage, Limits, MemberRole, Reaction, RoomEndReason, UserKind, type FeedEntry } from './schemas.ts';

const Actor = z.object({ id: z.string(), name: z.string() }).strict();
const Empty = z.object({}).strict();
const entry = <T extends string, P extends z.ZodType>(type: T, payload: P) => z.object({ type: z.literal(type), payload }).strict();

/**
 * `members.joined` / `members.left`: the members who joined (or left) a big
 * room within one window, the first `Limits.membersEntryUsers` by name and
 * how many in all.
 */
export const MembersEntryPayload = z.object({ users: z.array(Actor).max(Limits.membersEntryUsers), count: z.number().int().min(1) }).strict();
export type MembersEntryPayload = z.infer<typeof MembersEntryPayload>;

/** Entries the server writes into a room's feed (clients cannot publish these types). Actor: who caused it, null when the server did. */
export const RoomEventEntry = z.discriminatedUnion('type', [
  /** The first entry of every room; actor: the host. */
  entry('room.created', z.object({ title: z.string() }).strict()),
  /** One per join in a room of at most `ROOM_ROSTER_BROADCAST_MAX` members; actor: the member. A rejoin writes none. */
  entry('member.joined', z.object({ role: MemberRole }).strict()),
  /** One per leave in a room of at most `ROOM_ROSTER_BROADCAST_MAX` members; actor: the member. */
  entry('member.left', Empty),
  /** Above `ROOM_ROSTER_BROADCAST_MAX` members: the joins of one window; actor null. */
  entry('members.joined', MembersEntryPayload),
  /** Above `ROOM_ROSTER_BROADCAST_MAX` members: the leaves of one window; actor null. */
  entry('members.left', MembersEntryPayload),
  /** Actor: the host. `name`: what the removed member went by in the room; `bannedUntil` (ISO) null for a kick without ban. */
  entry('member.kicked', z.object({ userId: z.string(), name: z.string(), bannedUntil: z.string().nullable() }).strict()),
  entry('room.started', Empty),
  entry('room.locked', z.object({ locked: z.boolean() }).strict()),
  /** Actor: the host, or null when the server ended it (host grace ran out, expiry). */
  entry('room.ended', z.object({ reason: RoomEndReason }).strict()),
]);
export type RoomEventEntry = z.infer<typeof RoomEventEntry>;
/** Types the server itself writes into a room's feed. */
export type ServerFeedType = RoomEventEntry['type'];

/** How many entries over `SYSTEM_LOG_RATE` were left out before this one, when any. */
const operational = <S extends z.ZodRawShape>(shape: S) => z.object({ ...shape, at: z.number(), suppressed: z.number().int().min(1).optional() }).strict();
const Dependency = z.enum(['redis', 'postgres']);
const Address = z.string();

/** Operational entries of the system log: written by each node, rate-limited, each with the time it happened (`at`, ms). */
export const OperationalEntry = z.discriminatedUnion('type', [
  /** A request answered `internal`: where (socket event or HTTP route), never the error text (that is in the server log). */
  entry('error.internal', z.union([operational({ event: z.string() }), operational({ method: z.string(), route: z.string() })])),
  /** `error`: the error's code or name. */
  entry('dependency.down', operational({ dependency: Dependency, error: z.string().optional() })),
  entry('dependency.up', operational({ dependency: Dependency })),
]);
export type OperationalEntry = z.infer<typeof OperationalEntry>;

/** The sign-in audit in the system log, each with the client address. */
export const AuthAuditEntry = z.discriminatedUnion('type', [
  entry('auth.signed_in', z.object({ method: z.enum(['guest', 'register', 'login']), userId: z.string(), sessionId: z.string(), kind: UserKind, address: Address }).strict()),
  /** `username` lower-cased as typed. */
  entry('auth.login_failed', z.object({ username: z.string(), address: Address }).strict()),
  /** `limit`: the name of the rate limit hit. */
  entry('auth.rate_limited', z.object({ limit: z.string(), address: Address }).strict()),
  entry('auth.logged_out', z.object({ userId: z.string(), sessionId: z.string(), address: Address }).strict()),
  /** A rotated refresh token was replayed: the session was revoked. */
  entry('auth.token_reused', z.object({ userId: z.string(), sessionId: z.string(), address: Address }).strict()),
]);
export type AuthAuditEntry = z.infer<typeof AuthAuditEntry>;

/** Every entry the server writes itself: room events (also in the system log: `room.created`, `room.ended`), operational entries, the audit. */
export const ServerEntry = z.discriminatedUnion('type', [RoomEventEntry, OperationalEntry, AuthAuditEntry]);
export type ServerEntry = z.infer<typeof ServerEntry>;

/** Every entry type whose payload has a fixed shape: the server's and the clients' `chat.message` and `reaction` (`host.*` is any object). */
export const KnownEntry = z.discriminatedUnion('type', [ServerEntry, entry('chat.message', ChatMessage), entry('reaction', Reaction)]);
export type KnownEntry = z.infer<typeof KnownEntry>;

/** A feed entry with its payload typed by its `type`; null for `host.*` entries, unknown types and payloads that do not match their type. */
export function readEntry(feedEntry: Pick<FeedEntry, 'type' | 'payload'>): KnownEntry | null {
  const result = KnownEntry.safeParse({ type: feedEntry.type, payload: feedEntry.payload });
  return result.success ? result.data : null;
}
