/**
 * Payload schemas of the pinroom wire protocol: every payload that crosses the
 * wire is defined here once, and its TypeScript type is inferred from it.
 * The server validates every inbound payload with these; the browser client
 * uses the same schemas to validate forms before sending.
 */
import * as z from 'zod';

/** Protocol version; bumped on any incompatible change. 2: `room:join` answers one page of members (none on a rejoin), `room:members` pages, `room:presence` carries `online`. */
export const PROTOCOL_VERSION = 2;

/** Fixed bounds of the protocol. Server-side rate and size limits that operators tune live in the server config. */
export const Limits = {
  usernameMin: 3,
  usernameMax: 32,
  displayNameMin: 1,
  displayNameMax: 32,
  passwordMin: 8,
  passwordMax: 128,
  titleMin: 1,
  titleMax: 80,
  pinMinDigits: 3,
  pinMaxDigits: 10,
  maxMembersMin: 2,
  maxMembersMax: 10_000,
  /** Bytes of a `room:signal` payload, JSON-encoded. */
  signalPayloadBytes: 4 * 1024,
  signalTypeMax: 32,
  /** Bytes of a `feed:publish` payload, JSON-encoded. */
  feedPayloadBytes: 8 * 1024,
  chatTextMax: 2_000,
  reactionMax: 16,
  clientMsgIdMax: 64,
  historyPageMax: 100,
  /** Members in one `room:members` page, and at most in the `room:join` answer. */
  membersPageMax: 100,
  /** Users named in one aggregated membership entry (`members.joined`, `members.left`); `count` has them all. */
  membersEntryUsers: 20,
  /** Bytes of an access or refresh token string. */
  tokenMax: 4_096,
} as const;

/** Largest value of PostgreSQL `bigint` (the archive's `id_ms` and `id_seq`, `room_members.seq`); Redis stream ids allow up to 2^64-1, so this is the tighter bound. */
const MAX_ID_PART = 9_223_372_036_854_775_807n;

/** Bytes of `value` encoded as JSON (UTF-8); infinite when it nests too deep to encode. */
export const jsonBytes = (value: unknown): number => {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    // Nesting too deep to encode (a RangeError): certainly over any bound.
    return Number.POSITIVE_INFINITY;
  }
  return text === undefined ? 0 : new TextEncoder().encode(text).length;
};

/** No control characters (C0, DEL, C1), no unpaired surrogates and no surrounding whitespace. */
const printable = /^[^\p{Cc}\p{Cf}\p{Cs}\s](?:[^\p{Cc}\p{Cf}\p{Cs}]*[^\p{Cc}\p{Cf}\p{Cs}\s])?$/u;

/**
 * A NUL character or a UTF-16 surrogate without its pair. PostgreSQL refuses
 * both in `text` and `jsonb` (and a lone surrogate is not valid UTF-8 for
 * Redis readers either), so no text the server stores may hold them.
 */
const unstorable = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const STORABLE = 'no NUL characters or unpaired surrogates';

/** Whether a string can be stored as PostgreSQL text or jsonb. */
export function isStorable(text: string): boolean {
  return !unstorable.test(text);
}

/** Whether every string in a JSON value (object keys included) is storable. Iterative: depth is bounded only by size. */
function allStorable(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'string') {
      if (!isStorable(item)) return false;
    } else if (Array.isArray(item)) {
      for (const inner of item) stack.push(inner);
    } else if (item !== null && typeof item === 'object') {
      for (const [key, inner] of Object.entries(item)) {
        if (!isStorable(key)) return false;
        stack.push(inner);
      }
    }
  }
  return true;
}

/** A string the stores can hold (see `isStorable`). */
const storableString = () => z.string().refine(isStorable, STORABLE);

export const Id = z.uuid();
export const Username = z
  .string()
  .min(Limits.usernameMin)
  .max(Limits.usernameMax)
  .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only');
export const DisplayName = z
  .string()
  .trim()
  .min(Limits.displayNameMin)
  .max(Limits.displayNameMax)
  .regex(printable, 'printable characters only');
export const Password = z.string().min(Limits.passwordMin).max(Limits.passwordMax);
export const Pin = z
  .string()
  .regex(new RegExp(`^[0-9]{${Limits.pinMinDigits},${Limits.pinMaxDigits}}$`), `${Limits.pinMinDigits} to ${Limits.pinMaxDigits} digits`);
export const Token = z.string().min(1).max(Limits.tokenMax);

/** A JSON object payload no larger than `bytes` when encoded. */
const boundedObject = (bytes: number) =>
  z.record(z.string(), z.unknown()).refine((value) => jsonBytes(value) <= bytes, { message: `at most ${bytes} bytes as JSON` });
/** A JSON object the server stores: bounded, and every string in it (keys too) storable. */
const storedObject = (bytes: number) => boundedObject(bytes).refine(allStorable, { message: `every string: ${STORABLE}` });

// ---------------------------------------------------------------- auth (HTTP)

export const RegisterBody = z.object({ username: Username, password: Password, displayName: DisplayName.optional() }).strict();
export const LoginBody = z.object({ username: Username, password: Password }).strict();
export const GuestBody = z.object({ displayName: DisplayName }).strict();
export const RefreshBody = z.object({ refreshToken: Token }).strict();
export const LogoutBody = RefreshBody;

export const UserKind = z.enum(['guest', 'registered']);
export type UserKind = z.infer<typeof UserKind>;

/** The public view of a user: never a password hash or a token. */
export interface UserView {
  id: string;
  name: string;
  kind: UserKind;
  username: string | null;
}

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  /** Seconds until the access token expires. */
  expiresIn: number;
}

export interface SessionResponse extends TokenPair {
  user: UserView;
}

// ---------------------------------------------------------------- auth (socket)

export const AuthRefreshPayload = z.object({ token: Token }).strict();
export interface AuthExpiring {
  /** Seconds until the socket's access token expires. */
  expiresIn: number;
}
/** `auth:closed`: sent just before the server disconnects a socket for an auth reason. */
export interface AuthClosed {
  code: 'token_expired' | 'session_revoked';
}

// ---------------------------------------------------------------- rooms

export const RoomStatus = z.enum(['lobby', 'live', 'ended']);
export type RoomStatus = z.infer<typeof RoomStatus>;
export const MemberRole = z.enum(['host', 'member']);
export type MemberRole = z.infer<typeof MemberRole>;

export interface RoomView {
  id: string;
  pin: string;
  title: string;
  hostId: string;
  status: RoomStatus;
  locked: boolean;
  /** Approval mode (a waiting room): new joiners wait until the host admits them (`room:admit`). */
  approval: boolean;
  maxMembers: number;
  createdAt: string;
}

export interface MemberView {
  userId: string;
  name: string;
  role: MemberRole;
  online: boolean;
}

/** A position in a room's feed: the stream's epoch and the id of the last entry. */
export interface FeedPosition {
  epoch: string;
  lastId: string;
}

export const RoomCreatePayload = z
  .object({
    title: z.string().trim().min(Limits.titleMin).max(Limits.titleMax).regex(printable, 'printable characters only'),
    maxMembers: z.number().int().min(Limits.maxMembersMin).max(Limits.maxMembersMax).optional(),
    /** Approval mode from the start. @default false */
    approval: z.boolean().optional(),
  })
  .strict();
/** `room:join`: `nickname` is the name to go by in this room (default: the display name); unique in the room, case-insensitively. */
export const RoomJoinPayload = z.object({ pin: Pin, nickname: DisplayName.optional() }).strict();
/** An opaque position in a room's member list (`nextAfter` of the previous page). */
export const MembersCursor = z
  .string()
  .regex(/^[0-9]{1,19}$/, 'a cursor from nextAfter')
  // A join-order number (PostgreSQL bigint): 19 digits may still be past its largest value.
  .refine((v) => !/^[0-9]+$/.test(v) || BigInt(v) <= MAX_ID_PART, 'a cursor from nextAfter (at most 9223372036854775807)');
export const RoomMembersPayload = z
  .object({
    roomId: Id,
    after: MembersCursor.optional(),
    limit: z.number().int().min(1).max(Limits.membersPageMax).optional(),
  })
  .strict();
export const RoomRefPayload = z.object({ roomId: Id }).strict();
export const RoomLockPayload = z.object({ roomId: Id, locked: z.boolean() }).strict();
/** `room:update`: the host changes a room's settings. */
export const RoomUpdatePayload = z.object({ roomId: Id, approval: z.boolean() }).strict();
/** `room:admit` / `room:deny`: the host decides about a user in the waiting room. */
export const RoomWaiterPayload = z.object({ roomId: Id, userId: Id }).strict();
/** An opaque position in a room's waiting list (`nextAfter` of the previous page). */
export const WaitlistCursor = z.string().regex(/^[0-9]{1,16}$/, 'a cursor from nextAfter');
export const RoomWaitlistPayload = z
  .object({
    roomId: Id,
    after: WaitlistCursor.optional(),
    limit: z.number().int().min(1).max(Limits.membersPageMax).optional(),
  })
  .strict();
export const RoomKickPayload = z
  .object({ roomId: Id, userId: Id, banSeconds: z.number().int().min(0).max(30 * 24 * 3600).optional() })
  .strict();
export const RoomSignalPayload = z
  .object({
    roomId: Id,
    type: z.string().min(1).max(Limits.signalTypeMax).regex(/^[a-z0-9._-]+$/, 'lowercase letters, digits, ".", "_" and "-" only'),
    payload: boundedObject(Limits.signalPayloadBytes),
  })
  .strict();

export interface RoomJoined {
  room: RoomView;
  role: MemberRole;
  /** The name the member goes by in this room: the join's `nickname` (or display name), or on a rejoin the name already held. */
  name: string;
  /** Members holding a seat (joined and not left, online or not), the joiner included. */
  memberCount: number;
  /** Users online in the room (one or more sockets, on any node), the joiner included. */
  online: number;
  /**
   * True when the user already was a member (another tab, a reconnect, a
   * node restart): nothing was recorded and `members` is absent; page with
   * `room:members` if the list is needed.
   */
  rejoined: boolean;
  /** The first page of members in join order (at most `Limits.membersPageMax`); absent on a rejoin. */
  members?: MemberView[];
  /** Present when more members follow `members`: pass it as `after` to `room:members`. */
  nextAfter?: string;
  feed?: FeedPosition;
}

/** `room:members`: one page of a room's members, in join order. */
export interface RoomMembersPage {
  members: MemberView[];
  /** Pass as `after` for the next page; absent on the last page. */
  nextAfter?: string;
}

/**
 * `room:presence`: members whose online state changed (coalesced over
 * `PRESENCE_BATCH_MS`, each with its state when sent), and how many users are
 * online. In rooms with more than `ROOM_ROSTER_BROADCAST_MAX` users online,
 * members get `changes: []` (counts only); the host always gets the changes.
 */
export interface RoomPresence {
  roomId: string;
  changes: MemberView[];
  online: number;
}

/** A user in a room's waiting room (approval mode). */
export interface WaitingUser {
  userId: string;
  name: string;
  /** ISO time they began waiting. */
  since: string;
}

/** `room:waitlist`: one page of the waiting room, longest waiting first. */
export interface RoomWaitlistPage {
  waiting: WaitingUser[];
  /** Users waiting now. */
  count: number;
  /** Pass as `after` for the next page; absent on the last page. */
  nextAfter?: string;
}

/**
 * `room:waiting`, to the host's sockets only: the waiting room changed.
 * `user` is who arrived (absent when someone left it: admitted, denied).
 * One small event per arrival, whatever the room's size; page the list with
 * `room:waitlist`.
 */
export interface RoomWaitingNotice {
  roomId: string;
  count: number;
  user?: { userId: string; name: string };
}

/** `room:admitted` / `room:denied`, to every socket of the waiting user. After `room:admitted`, send `room:join` again. */
export interface RoomDecision {
  roomId: string;
}

export interface RoomKicked {
  roomId: string;
  /** ISO time until which rejoining is refused, when the kick carried a ban. */
  bannedUntil?: string;
}

export const RoomEndReason = z.enum(['host_ended', 'host_left', 'expired']);
export type RoomEndReason = z.infer<typeof RoomEndReason>;
export interface RoomEnded {
  roomId: string;
  reason: RoomEndReason;
}

export interface RoomSignal {
  roomId: string;
  from: string;
  type: string;
  payload: Record<string, unknown>;
}

/** HTTP `GET /rooms/pin/:pin`. */
export interface PinLookup {
  roomId: string;
  title: string;
  status: RoomStatus;
  locked: boolean;
  /** Every seat is taken: a new member would get `room_full` now. */
  full: boolean;
}

// ---------------------------------------------------------------- feed

export const ChatMessage = z.object({ text: storableString().trim().min(1).max(Limits.chatTextMax) }).strict();
export const Reaction = z.object({ emoji: storableString().min(1).max(Limits.reactionMax) }).strict();
/** Types a client may publish; `host.*` is for the room's host only. */
export const ClientFeedType = z.union([
  z.literal('chat.message'),
  z.literal('reaction'),
  z.string().regex(/^host\.[a-z0-9._-]{1,40}$/, 'host.<name>'),
]);
/** Types and payloads of the entries the server writes itself: `shared/feed-entries.ts`. */
export type { MembersEntryPayload } from './feed-entries.ts';

/** A Redis Stream id, `<ms>-<seq>`, whose two numbers fit both Redis and PostgreSQL (signed 64-bit). */
export const StreamId = z
  .string()
  .regex(/^[0-9]{1,20}-[0-9]{1,20}$/, 'a stream id, <ms>-<seq>')
  // Zod runs this even when the format check failed: only digit parts are compared.
  .refine((id) => id.split('-').every((part) => !/^[0-9]+$/.test(part) || BigInt(part) <= MAX_ID_PART), 'a stream id whose ms and seq are at most 9223372036854775807');
export const ClientMsgId = z.string().min(1).max(Limits.clientMsgIdMax).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

/** Per-type payload rules: `chat.message` and `reaction` have fixed shapes; `host.*` is any object within the size bound. */
const checkFeedPayload = (value: { type: string; payload: Record<string, unknown> }, ctx: z.RefinementCtx) => {
  const check = value.type === 'chat.message' ? ChatMessage : value.type === 'reaction' ? Reaction : null;
  if (!check) return;
  const result = check.safeParse(value.payload);
  if (!result.success) {
    for (const issue of result.error.issues) ctx.addIssue({ ...issue, path: ['payload', ...issue.path] } as never);
  }
};

export const FeedPublishPayload = z
  .object({
    roomId: Id,
    type: ClientFeedType,
    payload: storedObject(Limits.feedPayloadBytes),
    clientMsgId: ClientMsgId,
  })
  .strict()
  .superRefine(checkFeedPayload);

/** HTTP `POST /api/rooms/:roomId/events` body: a backend publishing into a room's feed (actor `null`). */
export const FeedEventBody = z
  .object({
    type: ClientFeedType,
    payload: storedObject(Limits.feedPayloadBytes),
    /** Optional idempotency key, remembered for the service like a user's `clientMsgId`. */
    clientMsgId: ClientMsgId.optional(),
  })
  .strict()
  .superRefine(checkFeedPayload);

export const FeedScope = z.enum(['global', 'system']);
export type FeedScope = z.infer<typeof FeedScope>;

export const FeedPositionSchema = z.object({ epoch: z.string().min(1).max(64), id: StreamId }).strict();
export const FeedSubscribePayload = z.union([
  z.object({ roomId: Id, since: FeedPositionSchema.optional() }).strict(),
  z.object({ scope: z.enum(['global', 'system']), since: FeedPositionSchema.optional() }).strict(),
]);
export const FeedUnsubscribePayload = z.union([
  z.object({ roomId: Id }).strict(),
  z.object({ scope: z.enum(['global', 'system']) }).strict(),
]);
export const FeedHistoryPayload = z
  .object({
    roomId: Id,
    before: StreamId.optional(),
    limit: z.number().int().min(1).max(Limits.historyPageMax).optional(),
  })
  .strict();

export interface FeedActor {
  id: string;
  name: string;
}

export interface FeedEntry {
  /** Set for room feeds; the global and system feeds carry the room an entry concerns, when any. */
  roomId: string | null;
  /** Set on entries of the global and system feeds. */
  scope?: 'global' | 'system';
  /** The Redis Stream id: strictly increasing within a feed epoch. */
  id: string;
  type: string;
  actor: FeedActor | null;
  payload: Record<string, unknown>;
  /** Milliseconds since the epoch, server time. */
  ts: number;
}

export interface FeedSubscribed {
  /** The feed's current epoch (compare with `since.epoch`). */
  epoch: string;
  /** The feed's last id when the subscription was made. Without recovery, live delivery starts after it. */
  lastId: string;
  /** True when every entry after `since` was replayed (before this answer); false when the client must reload history. */
  recovered: boolean;
}

export interface FeedHistoryPage {
  entries: FeedEntry[];
  /** Pass as `before` to read the next (older) page; absent at the beginning of the feed. */
  nextBefore?: string;
  /** On the last page (which may be empty): older entries existed but are gone (past the archive's retention). */
  truncated?: true;
}

// ---------------------------------------------------------------- inferred payload types

export type RegisterBody = z.infer<typeof RegisterBody>;
export type LoginBody = z.infer<typeof LoginBody>;
export type GuestBody = z.infer<typeof GuestBody>;
export type RefreshBody = z.infer<typeof RefreshBody>;
export type AuthRefreshPayload = z.infer<typeof AuthRefreshPayload>;
export type RoomCreatePayload = z.infer<typeof RoomCreatePayload>;
export type RoomJoinPayload = z.infer<typeof RoomJoinPayload>;
export type RoomMembersPayload = z.infer<typeof RoomMembersPayload>;
export type RoomRefPayload = z.infer<typeof RoomRefPayload>;
export type RoomLockPayload = z.infer<typeof RoomLockPayload>;
export type RoomKickPayload = z.infer<typeof RoomKickPayload>;
export type RoomUpdatePayload = z.infer<typeof RoomUpdatePayload>;
export type RoomWaiterPayload = z.infer<typeof RoomWaiterPayload>;
export type RoomWaitlistPayload = z.infer<typeof RoomWaitlistPayload>;
export type RoomSignalPayload = z.infer<typeof RoomSignalPayload>;
export type FeedPublishPayload = z.infer<typeof FeedPublishPayload>;
export type FeedSubscribePayload = z.infer<typeof FeedSubscribePayload>;
export type FeedUnsubscribePayload = z.infer<typeof FeedUnsubscribePayload>;
export type FeedHistoryPayload = z.infer<typeof FeedHistoryPayload>;
export type FeedEventBody = z.infer<typeof FeedEventBody>;
