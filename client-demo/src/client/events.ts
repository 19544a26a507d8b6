/** What the pinroom browser client tells the page: its events, and the shapes they carry. */
import type { ErrorCode } from '../../../shared/errors.ts';
import type { FeedEntry, MemberView, RoomDecision, RoomEnded, RoomKicked, RoomView, RoomWaitingNotice } from '../../../shared/schemas.ts';
import type { PinroomError } from './errors.ts';

export type ConnectionState =
  | { status: 'offline' }
  | { status: 'connecting' }
  | { status: 'connected' }
  | { status: 'reconnecting'; attempt: number }
  /** Back after a drop, with every missed entry caught up. */
  | { status: 'resumed'; caughtUp: number }
  /** Back after a drop, but the server could not replay the gap: the feed was reloaded. */
  | { status: 'reloaded' };

export interface ClientEvents {
  state: (state: ConnectionState) => void;
  /** A feed entry, once, in order. `live` is false for entries replayed after a reconnect. */
  entry: (entry: FeedEntry, live: boolean) => void;
  /** The feed was reset (on `recovered: false`): drop what is shown and reload history. */
  reset: () => void;
  /** The member list or the counts changed. */
  presence: (roster: Roster) => void;
  room: (room: RoomView) => void;
  kicked: (event: RoomKicked) => void;
  /** Host: someone arrived in (or left) the waiting room of an approval-mode room. */
  waiting: (notice: RoomWaitingNotice) => void;
  /** This user was admitted from a waiting room: join again (`joinRoom`). */
  admitted: (event: RoomDecision) => void;
  /** This user was turned away from a waiting room. */
  denied: (event: RoomDecision) => void;
  ended: (event: RoomEnded) => void;
  /** The session ended (logout, revocation, expired refresh token). */
  signedOut: (reason: ErrorCode | 'logout') => void;
  /** The outbox of the current room changed (queued, or acknowledged): what is still pending, oldest first. */
  outbox: (pending: OutboxItem[]) => void;
  /** The server refused a queued item for good (not a connection problem); it left the outbox. */
  sendFailed: (item: OutboxItem, error: PinroomError) => void;
}

/** A chat message or reaction waiting to be acknowledged by the server. */
export interface OutboxItem {
  clientMsgId: string;
  roomId: string;
  type: string;
  payload: Record<string, unknown>;
  /** When it was queued, ms since the epoch. */
  queuedAt: number;
}

/** What the client knows of the room's members. */
export interface Roster {
  /** Members known here: the pages loaded so far, and everyone whose presence changed since. */
  members: MemberView[];
  /** Users online in the room now (kept current by `room:presence`). */
  online: number;
  /** Members holding a seat, as of the join (online or not). */
  memberCount: number;
  /** More members can be loaded with `loadMoreMembers()`. */
  hasMore: boolean;
}

export type Emit = <K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>) => void;

/** The client's listeners, by event. */
export function createEmitter() {
  const listeners = new Map<keyof ClientEvents, Set<(...args: never[]) => void>>();
  const emit: Emit = (event, ...args) => {
    for (const listener of listeners.get(event) ?? []) (listener as (...a: typeof args) => void)(...args);
  };
  return {
    emit,
    on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener as (...args: never[]) => void);
      return () => void set.delete(listener as (...args: never[]) => void);
    },
  };
}

/** Where the client keeps what outlives a page (localStorage, sessionStorage). */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}
