/**
 * Socket.IO event names and their typed signatures. Names are `domain:verb`.
 * Client-to-server events that expect an answer take an ack callback as their
 * last argument; the answer is always an `Ack<T>`.
 */
import type { Ack, ErrorPayload } from './errors.ts';
import type {
  AuthClosed,
  AuthExpiring,
  AuthRefreshPayload,
  FeedEntry,
  FeedHistoryPage,
  FeedHistoryPayload,
  FeedPublishPayload,
  FeedSubscribePayload,
  FeedSubscribed,
  FeedUnsubscribePayload,
  RoomCreatePayload,
  RoomDecision,
  RoomUpdatePayload,
  RoomWaiterPayload,
  RoomWaitingNotice,
  RoomWaitlistPage,
  RoomWaitlistPayload,
  RoomEnded,
  RoomJoinPayload,
  RoomJoined,
  RoomKickPayload,
  RoomKicked,
  RoomLockPayload,
  RoomMembersPage,
  RoomMembersPayload,
  RoomPresence,
  RoomRefPayload,
  RoomSignal,
  RoomSignalPayload,
  RoomView,
} from './schemas.ts';

/** Events a client sends. */
export const ClientEvent = {
  AuthRefresh: 'auth:refresh',
  RoomCreate: 'room:create',
  RoomJoin: 'room:join',
  RoomLeave: 'room:leave',
  RoomMembers: 'room:members',
  RoomStart: 'room:start',
  RoomLock: 'room:lock',
  RoomKick: 'room:kick',
  RoomUpdate: 'room:update',
  RoomAdmit: 'room:admit',
  RoomDeny: 'room:deny',
  RoomWaitlist: 'room:waitlist',
  RoomEnd: 'room:end',
  RoomSignal: 'room:signal',
  FeedPublish: 'feed:publish',
  FeedSubscribe: 'feed:subscribe',
  FeedUnsubscribe: 'feed:unsubscribe',
  FeedHistory: 'feed:history',
} as const;
export type ClientEvent = (typeof ClientEvent)[keyof typeof ClientEvent];

/** Events the server sends. */
export const ServerEvent = {
  AuthExpiring: 'auth:expiring',
  /** Sent just before an auth disconnect, with its reason; do not reconnect with the same token. */
  AuthClosed: 'auth:closed',
  RoomPresence: 'room:presence',
  RoomUpdated: 'room:updated',
  RoomKicked: 'room:kicked',
  RoomWaiting: 'room:waiting',
  RoomAdmitted: 'room:admitted',
  RoomDenied: 'room:denied',
  RoomEnded: 'room:ended',
  RoomSignal: 'room:signal',
  FeedEntry: 'feed:entry',
  ServerError: 'server:error',
} as const;
export type ServerEvent = (typeof ServerEvent)[keyof typeof ServerEvent];

/** Sent as `server:error` when a client event that needs an ack arrived without one, or could not be decoded. */
export interface ServerErrorNotice {
  event: string;
  error: ErrorPayload;
}

type Acked<P, R> = (payload: P, ack: (response: Ack<R>) => void) => void;

export interface ClientToServerEvents {
  'auth:refresh': Acked<AuthRefreshPayload, { expiresIn: number }>;
  'room:create': Acked<RoomCreatePayload, { room: RoomView }>;
  'room:join': Acked<RoomJoinPayload, RoomJoined>;
  'room:leave': Acked<RoomRefPayload, Record<string, never>>;
  'room:members': Acked<RoomMembersPayload, RoomMembersPage>;
  'room:start': Acked<RoomRefPayload, { room: RoomView }>;
  'room:lock': Acked<RoomLockPayload, { room: RoomView }>;
  'room:kick': Acked<RoomKickPayload, Record<string, never>>;
  'room:update': Acked<RoomUpdatePayload, { room: RoomView }>;
  'room:admit': Acked<RoomWaiterPayload, Record<string, never>>;
  'room:deny': Acked<RoomWaiterPayload, Record<string, never>>;
  'room:waitlist': Acked<RoomWaitlistPayload, RoomWaitlistPage>;
  'room:end': Acked<RoomRefPayload, Record<string, never>>;
  /** Volatile: no ack, not stored; dropped under back-pressure. Errors come back as `server:error`. */
  'room:signal': (payload: RoomSignalPayload) => void;
  'feed:publish': Acked<FeedPublishPayload, { id: string }>;
  'feed:subscribe': Acked<FeedSubscribePayload, FeedSubscribed>;
  'feed:unsubscribe': Acked<FeedUnsubscribePayload, Record<string, never>>;
  'feed:history': Acked<FeedHistoryPayload, FeedHistoryPage>;
}

/** Client events that expect an ack (every one but the volatile `room:signal`). */
export type AckedEvent = {
  [E in keyof ClientToServerEvents]: Parameters<ClientToServerEvents[E]> extends [unknown, (response: Ack<infer _R>) => void] ? E : never;
}[keyof ClientToServerEvents];
/** The payload a client sends with `E`. */
export type EventPayload<E extends keyof ClientToServerEvents> = Parameters<ClientToServerEvents[E]>[0];
/** The `data` of a successful ack of `E`. */
export type AckResult<E extends AckedEvent> = Parameters<ClientToServerEvents[E]>[1] extends (response: Ack<infer R>) => void ? R : never;

export interface ServerToClientEvents {
  'auth:expiring': (payload: AuthExpiring) => void;
  'auth:closed': (payload: AuthClosed) => void;
  'room:presence': (payload: RoomPresence) => void;
  'room:updated': (payload: { room: RoomView }) => void;
  'room:kicked': (payload: RoomKicked) => void;
  'room:waiting': (payload: RoomWaitingNotice) => void;
  'room:admitted': (payload: RoomDecision) => void;
  'room:denied': (payload: RoomDecision) => void;
  'room:ended': (payload: RoomEnded) => void;
  'room:signal': (payload: RoomSignal) => void;
  'feed:entry': (payload: FeedEntry) => void;
  'server:error': (payload: ServerErrorNotice) => void;
}

/** Reasons carried by `connect_error` (as `err.data.code`) and server-side disconnects. */
export const DisconnectReason = {
  /** The node is shutting down: reconnect (to any node). */
  ServerShutdown: 'server_shutdown',
  Unauthorized: 'unauthorized',
  TokenExpired: 'token_expired',
  SessionRevoked: 'session_revoked',
  Kicked: 'kicked',
  RateLimited: 'rate_limited',
} as const;
export type DisconnectReason = (typeof DisconnectReason)[keyof typeof DisconnectReason];
