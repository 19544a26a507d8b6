/**
 * The pinroom browser client: everything an app needs to talk to a pinroom
 * server, apart from any page code. It uses the wire contract from `shared/`
 * (the same event names, payload types and error codes as the server) and
 * socket.io-client. It is made of four parts, composed here:
 *
 * - `client/http.ts`: HTTP and tokens. Guest sign-in, sign-up, log-in,
 *   log-out; the refresh token is kept in storage so a page reload keeps the
 *   session; refreshes are serialized (across tabs too, where Web Locks exist)
 *   because a refresh token used twice revokes the whole session;
 * - `client/connection.ts`: the socket, requests typed by event, silent token
 *   refresh (on `auth:expiring` the client rotates its refresh token over HTTP
 *   and hands the new access token to the live socket with `auth:refresh`);
 * - `client/rooms.ts`: the room and its member list;
 * - `client/feed.ts`: entries once each and in order, resumed after a
 *   reconnect from the last entry seen; publishing and the outbox.
 *
 * After a reconnect the client rejoins its room and resumes the feed; errors
 * are `PinroomError`s with a wire code and a message for people.
 */
import type { ErrorCode } from '../../shared/errors.ts';
import { HttpRoutes, pinLookupPath } from '../../shared/routes.ts';
import type { PinLookup, RoomJoined, SessionResponse, UserView } from '../../shared/schemas.ts';
import { createConnection } from './client/connection.ts';
import { PinroomError } from './client/errors.ts';
import { createEmitter, type KeyValueStore, type OutboxItem, type Roster } from './client/events.ts';
import { createFeed } from './client/feed.ts';
import { createSession } from './client/http.ts';
import { createRooms } from './client/rooms.ts';

export type { PinroomSocket } from './client/connection.ts';
export { describeError, PinroomError } from './client/errors.ts';
export type { ClientEvents, ConnectionState, OutboxItem, Roster } from './client/events.ts';

export interface PinroomClientOptions {
  /** Server origin. @default location.origin */
  baseUrl?: string;
  /** Where the refresh token and user are kept between page loads. @default localStorage */
  storage?: KeyValueStore;
  /** Timeout of one request (HTTP or ack), ms. @default 8000 */
  timeoutMs?: number;
  /** Where the outbox is kept (per tab: a reload keeps it). @default sessionStorage */
  outboxStorage?: KeyValueStore;
}

export type PinroomClient = ReturnType<typeof createPinroomClient>;

/** First wait before a failed rejoin is tried again, ms; it doubles on each failure. */
const REJOIN_RETRY_FIRST_MS = 500;
/** Longest wait between rejoin attempts, ms. */
const REJOIN_RETRY_MAX_MS = 15_000;
/** Rejoin failures that may pass, so the rejoin is tried again. */
const REJOIN_RETRY_CODES: readonly (ErrorCode | 'network')[] = ['network', 'unavailable', 'rate_limited', 'internal'];

export function createPinroomClient(options: PinroomClientOptions = {}) {
  const baseUrl = options.baseUrl ?? globalThis.location.origin;
  const timeoutMs = options.timeoutMs ?? 8000;
  const { emit, on } = createEmitter();

  const session = createSession({ baseUrl, storage: options.storage ?? globalThis.localStorage, timeoutMs, onEnded: (reason) => forgetSession(reason) });
  const connection = createConnection({
    baseUrl,
    timeoutMs,
    session,
    emit,
    hooks: {
      wire: (s) => {
        feed.wire(s);
        rooms.wire(s);
      },
      dropped: () => feed.setReady(false),
      reconnected: () => void rejoin(),
      sessionEnded: (reason) => forgetSession(reason),
    },
  });
  const rooms = createRooms({ connection, emit, roomGone: (roomId) => feed.dropOutbox(roomId) });
  const feed = createFeed({ connection, emit, room: () => rooms.current, outboxStorage: options.outboxStorage ?? globalThis.sessionStorage });

  function forgetSession(reason: ErrorCode | 'logout'): void {
    session.clear();
    rooms.forget();
    feed.clearOutbox();
    connection.close();
    connection.setState({ status: 'offline' });
    emit('signedOut', reason);
  }

  /** Reconnects so far: the retries of a rejoin stop once a later reconnect has started its own. */
  let reconnects = 0;

  /**
   * Back after a drop: rejoin the room and resume the feed from the last entry
   * shown. A failure that may pass (no answer, `unavailable`, `rate_limited`,
   * `internal`) is retried while the socket stays up, after the server's
   * `retryAfterMs` or a backoff doubling from REJOIN_RETRY_FIRST_MS up to
   * REJOIN_RETRY_MAX_MS; until it succeeds the outbox waits.
   */
  async function rejoin(): Promise<void> {
    const run = ++reconnects;
    const roomId = rooms.current?.room.id;
    for (let attempt = 0; ; attempt++) {
      const current = rooms.current;
      if (!current) return connection.setState({ status: 'connected' });
      if (current.room.id !== roomId) return; // the page has moved on to another room
      try {
        await rooms.joinAndLoad(current.room.pin, current.name, { epoch: current.epoch, lastId: current.lastId });
        await feed.subscribe(true);
        feed.setReady(true);
        return;
      } catch (err) {
        if (err instanceof PinroomError && ['room_not_found', 'banned', 'conflict'].includes(err.code)) {
          rooms.forget();
          feed.dropOutbox(current.room.id);
          emit('ended', { roomId: current.room.id, reason: 'expired' });
          return;
        }
        if (!(err instanceof PinroomError) || !REJOIN_RETRY_CODES.includes(err.code)) return;
        await new Promise((r) => setTimeout(r, err.retryAfterMs ?? Math.min(REJOIN_RETRY_MAX_MS, REJOIN_RETRY_FIRST_MS * 2 ** attempt)));
        // Dropped meanwhile: the next reconnect rejoins afresh.
        if (run !== reconnects || !connection.connected) return;
      }
    }
  }

  async function signedIn(response: Promise<SessionResponse>): Promise<UserView> {
    session.save(await response);
    await connection.connect();
    return session.user!;
  }

  return {
    get user() {
      return session.user;
    },
    get state() {
      return connection.state;
    },
    get room() {
      return rooms.current?.room ?? null;
    },
    get role() {
      return rooms.current?.role ?? null;
    },
    /** The name this user goes by in the current room (their nickname there). */
    get memberName() {
      return rooms.current?.name ?? null;
    },
    /** Queued items of the current room, oldest first. */
    get outbox(): OutboxItem[] {
      return feed.pending();
    },

    on,

    /** Resume a stored session (after a page reload). Resolves the user, or null when there is none. */
    async restore(): Promise<UserView | null> {
      if (!session.readStored()) return null;
      try {
        await session.refresh();
      } catch {
        return null;
      }
      await connection.connect();
      return session.user;
    },

    signInGuest(displayName: string): Promise<UserView> {
      return signedIn(session.http<SessionResponse>('POST', HttpRoutes.guest, { displayName }));
    },

    signUp(username: string, password: string, displayName?: string): Promise<UserView> {
      return signedIn(session.http<SessionResponse>('POST', HttpRoutes.register, displayName ? { username, password, displayName } : { username, password }));
    },

    logIn(username: string, password: string): Promise<UserView> {
      return signedIn(session.http<SessionResponse>('POST', HttpRoutes.login, { username, password }));
    },

    async logOut(): Promise<void> {
      const stored = session.readStored();
      if (stored) await session.http('POST', HttpRoutes.logout, { refreshToken: stored.refreshToken }).catch(() => undefined);
      forgetSession('logout');
    },

    /** Check a PIN before asking for a nickname. */
    lookupPin(pin: string): Promise<PinLookup> {
      return session.http<PinLookup>('GET', pinLookupPath(pin));
    },

    createRoom: rooms.createRoom,

    /** The member list and counts as this client knows them. */
    get roster(): Roster {
      return rooms.roster();
    },

    /**
     * Join by PIN going by `nickname` (default: the display name), then
     * subscribe to the room's feed from the position the join returned; the
     * outbox of that room (after a reload) is sent then.
     */
    async joinRoom(pin: string, nickname?: string): Promise<RoomJoined> {
      feed.setReady(false);
      const joined = await rooms.joinAndLoad(pin, nickname, null);
      if (joined.feed) await feed.subscribeFrom(joined.room.id, joined.feed);
      else await feed.subscribe(false);
      feed.setReady(true);
      return joined;
    },

    loadMoreMembers: rooms.loadMoreMembers,

    async leaveRoom(): Promise<void> {
      const roomId = rooms.current?.room.id;
      if (!roomId) return;
      rooms.forget();
      feed.setReady(false);
      feed.dropOutbox(roomId);
      await connection.request('room:leave', { roomId });
    },

    start: rooms.start,
    lock: rooms.lock,
    kick: rooms.kick,
    end: rooms.end,
    setApproval: rooms.setApproval,
    waitlist: rooms.waitlist,
    admit: rooms.admit,
    deny: rooms.deny,

    publish: feed.publish,
    send: feed.send,
    history: feed.history,

    /** Close the socket (the session stays stored). */
    disconnect(): void {
      feed.setReady(false);
      connection.close(true);
      connection.setState({ status: 'offline' });
    },
  };
}
