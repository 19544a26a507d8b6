/**
 * The pinroom browser client: everything an app needs to talk to a pinroom
 * server, apart from any page code. It uses the wire contract from `shared/`
 * (the same event names, payload types and error codes as the server) and
 * socket.io-client, and handles:
 *
 * - sessions: guest sign-in, sign-up, log-in, log-out; the refresh token is kept
 *   in storage so a page reload keeps the session;
 * - silent token refresh: on `auth:expiring` the client rotates its refresh token
 *   over HTTP and hands the new access token to the live socket (`auth:refresh`);
 *   refreshes are serialized (across tabs too, where Web Locks exist) because a
 *   refresh token used twice revokes the whole session;
 * - reconnects: after a reconnect it rejoins its room and resumes the feed from
 *   the last entry it saw; entries are delivered to the app once each, in order
 *   (a second guard on top of the server's guarantee);
 * - the member list: the first page comes with the join (or, on a rejoin, from
 *   `room:members`), further pages on demand; `room:presence` keeps it and the
 *   online count current (in big rooms members get counts only, the host
 *   every change); presence that arrives while a join is in flight is applied
 *   after the join's snapshot, not lost;
 * - the outbox: chat messages and reactions are queued with their
 *   `clientMsgId` (kept in sessionStorage, so a reload keeps them) and sent
 *   only while the room is joined and its feed resumed; after a drop they go
 *   once the client has rejoined and caught up. The server's idempotency per
 *   `clientMsgId` makes a resend after a lost ack add nothing: each lands once;
 * - errors: every failure is a `PinroomError` with a wire code and a message for people.
 */
import { io, type Socket } from 'socket.io-client';
import { ERRORS, ErrorCode, type Ack, type ErrorPayload } from '../../shared/errors.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/events.ts';
import { HttpRoutes, pinLookupPath } from '../../shared/routes.ts';
import { compareIds } from '../../shared/stream-ids.ts';
import type {
  FeedEntry,
  FeedHistoryPage,
  MemberView,
  PinLookup,
  RoomDecision,
  RoomEnded,
  RoomJoined,
  RoomKicked,
  RoomMembersPage,
  RoomPresence,
  RoomView,
  RoomWaitingNotice,
  RoomWaitlistPage,
  SessionResponse,
  TokenPair,
  UserView,
} from '../../shared/schemas.ts';

export type PinroomSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** A failed request, with the server's code and a message fit to show a person. */
export class PinroomError extends Error {
  readonly code: ErrorCode | 'network';
  readonly retryAfterMs: number | undefined;
  readonly serverMessage: string;

  constructor(error: ErrorPayload | { code: 'network'; message: string; retryAfterMs?: number }) {
    super(describeError(error.code, error.retryAfterMs));
    this.name = 'PinroomError';
    this.code = error.code;
    this.retryAfterMs = error.retryAfterMs;
    this.serverMessage = error.message;
  }
}

/** A sentence for a person, for each error code (from the shared table), with the wait when the server gave one. */
export function describeError(code: ErrorCode | 'network', retryAfterMs?: number): string {
  if (code === 'network') return 'Cannot reach the server. Check your connection.';
  const message = ERRORS[code]?.message ?? ERRORS.internal.message;
  if (retryAfterMs) return `${message} Try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s.`;
  return code === ErrorCode.RateLimited ? `${message} Wait a moment and try again.` : message;
}

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

interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

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

const STORE_KEY = 'pinroom.session';
const OUTBOX_KEY = 'pinroom.outbox';

interface StoredSession {
  user: UserView;
  refreshToken: string;
}

export type PinroomClient = ReturnType<typeof createPinroomClient>;

export function createPinroomClient(options: PinroomClientOptions = {}) {
  const baseUrl = options.baseUrl ?? globalThis.location.origin;
  const storage: KeyValueStore = options.storage ?? globalThis.localStorage;
  const timeoutMs = options.timeoutMs ?? 8000;
  const outboxStorage: KeyValueStore = options.outboxStorage ?? globalThis.sessionStorage;

  const listeners = new Map<keyof ClientEvents, Set<(...args: never[]) => void>>();
  function emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const listener of listeners.get(event) ?? []) (listener as (...a: Parameters<ClientEvents[K]>) => void)(...args);
  }

  let user: UserView | null = null;
  let accessToken: string | null = null;
  let socket: PinroomSocket | null = null;
  let state: ConnectionState = { status: 'offline' };
  let refreshing: Promise<void> | null = null;

  /** The room this client is in, the last feed position it has shown, and what it knows of the members. */
  let current: {
    room: RoomView;
    role: MemberView['role'];
    /** The name this user goes by in the room. */
    name: string;
    epoch: string | null;
    lastId: string | null;
    members: Map<string, MemberView>;
    online: number;
    memberCount: number;
    /** Cursor of the next member page; null when every member is loaded. */
    nextAfter: string | null;
  } | null = null;
  let everConnected = false;
  /** Joined and the feed subscribed (or resumed) on the live socket: the outbox may send. */
  let ready = false;
  let outbox: OutboxItem[] = readOutbox();
  let flushing = false;
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** `room:presence` that arrived while a `room:join` was in flight: applied after its snapshot. */
  let heldPresence: RoomPresence[] | null = null;

  const setState = (next: ConnectionState) => {
    state = next;
    emit('state', next);
  };

  // ------------------------------------------------------------------ HTTP

  async function http<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, baseUrl), {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch {
      throw new PinroomError({ code: 'network', message: 'network error' });
    }
    if (res.status === 204) return undefined as T;
    const json = (await res.json().catch(() => null)) as { error?: ErrorPayload } | null;
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('retry-after'));
      const error = json?.error ?? { code: 'internal' as ErrorCode, message: `HTTP ${res.status}` };
      if (error.retryAfterMs === undefined && retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
      throw new PinroomError(error);
    }
    return json as T;
  }

  function saveSession(session: { user: UserView; refreshToken: string; accessToken: string }): void {
    user = session.user;
    accessToken = session.accessToken;
    storage.setItem(STORE_KEY, JSON.stringify({ user: session.user, refreshToken: session.refreshToken } satisfies StoredSession));
  }

  function readStored(): StoredSession | null {
    try {
      const raw = storage.getItem(STORE_KEY);
      return raw ? (JSON.parse(raw) as StoredSession) : null;
    } catch {
      return null;
    }
  }

  function readOutbox(): OutboxItem[] {
    try {
      const raw = outboxStorage.getItem(OUTBOX_KEY);
      return raw ? (JSON.parse(raw) as OutboxItem[]) : [];
    } catch {
      return [];
    }
  }

  function saveOutbox(): void {
    if (outbox.length === 0) outboxStorage.removeItem(OUTBOX_KEY);
    else outboxStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox));
  }

  const pendingIn = (roomId: string | undefined) => outbox.filter((item) => item.roomId === roomId);

  function outboxChanged(): void {
    saveOutbox();
    emit('outbox', pendingIn(current?.room.id));
  }

  /** Drop what was queued for a room this client is no longer in (left, kicked, ended). */
  function dropOutbox(roomId: string): void {
    const before = outbox.length;
    outbox = outbox.filter((item) => item.roomId !== roomId);
    if (outbox.length !== before) outboxChanged();
  }

  function flushLater(ms: number): void {
    clearTimeout(flushTimer);
    flushTimer = setTimeout(() => {
      flushTimer = undefined;
      void flushOutbox();
    }, ms);
  }

  /**
   * Send the current room's queued items, oldest first, one at a time, while
   * the client is ready. A connection problem stops the loop with the item
   * still queued (sent again once the room is rejoined and the feed resumed);
   * the server's answer for a `clientMsgId` it already has is that entry's id,
   * so a resend never adds a second entry. Volatile: a send while the socket
   * is down is dropped by Socket.IO rather than replayed on reconnect ahead of
   * the rejoin (which the server would refuse as not a member).
   */
  async function flushOutbox(): Promise<void> {
    if (flushing) return;
    flushing = true;
    try {
      for (;;) {
        const s = socket;
        const roomId = current?.room.id;
        const item = outbox.find((i) => i.roomId === roomId);
        if (!ready || !s?.connected || !item) return;
        try {
          await (s.volatile.timeout(timeoutMs) as unknown as { emitWithAck(e: string, p: unknown): Promise<Ack<unknown>> })
            .emitWithAck('feed:publish', { roomId: item.roomId, type: item.type, payload: item.payload, clientMsgId: item.clientMsgId })
            .then(
              (ack) => {
                if (!ack.ok) throw new PinroomError(ack.error);
              },
              () => {
                throw new PinroomError({ code: 'network', message: 'no answer from the server' });
              },
            );
          outbox = outbox.filter((i) => i !== item);
          outboxChanged();
        } catch (err) {
          const error = err as PinroomError;
          if (error.code === 'network') return; // tried again after the next rejoin, or by the timer below
          if (error.code === 'rate_limited' || error.code === 'unavailable' || error.code === 'internal') {
            flushLater(error.retryAfterMs ?? 1000);
            return;
          }
          outbox = outbox.filter((i) => i !== item);
          outboxChanged();
          emit('sendFailed', item, error);
        }
      }
    } finally {
      flushing = false;
      // A send that timed out on a live socket: try again soon rather than waiting for a reconnect.
      if (ready && socket?.connected && pendingIn(current?.room.id).length > 0 && !flushTimer) flushLater(2000);
    }
  }

  function setReady(value: boolean): void {
    ready = value;
    if (value) void flushOutbox();
  }

  function forgetSession(reason: ErrorCode | 'logout'): void {
    storage.removeItem(STORE_KEY);
    user = null;
    accessToken = null;
    current = null;
    ready = false;
    outbox = [];
    saveOutbox();
    socket?.close();
    socket = null;
    setState({ status: 'offline' });
    emit('signedOut', reason);
  }

  /** Serialize refreshes within this page and, where Web Locks exist, across tabs. */
  async function withRefreshLock(fn: () => Promise<void>): Promise<void> {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (locks) await locks.request('pinroom-refresh', fn);
    else await fn();
  }

  /** Rotate the refresh token and take a fresh access token. */
  function refresh(): Promise<void> {
    refreshing ??= withRefreshLock(async () => {
      const stored = readStored();
      if (!stored) throw new PinroomError({ code: 'unauthorized', message: 'no session' });
      try {
        const pair = await http<TokenPair>('POST', HttpRoutes.refresh, { refreshToken: stored.refreshToken });
        saveSession({ user: stored.user, ...pair });
      } catch (err) {
        // Another tab rotated the same token a moment ago: take its result.
        if (err instanceof PinroomError && err.code === 'conflict') {
          const again = readStored();
          if (again && again.refreshToken !== stored.refreshToken) {
            user = again.user;
            refreshing = null;
            return refresh();
          }
        }
        if (err instanceof PinroomError && ['unauthorized', 'token_reused', 'session_revoked', 'token_expired'].includes(err.code)) {
          forgetSession(err.code as ErrorCode);
        }
        throw err;
      }
    }).finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  // ------------------------------------------------------------------ socket

  function request<E extends keyof ClientToServerEvents>(event: E, payload: Parameters<ClientToServerEvents[E]>[0]): Promise<unknown> {
    const s = socket;
    if (!s) return Promise.reject(new PinroomError({ code: 'network', message: 'not connected' }));
    return (s.timeout(timeoutMs) as unknown as { emitWithAck(e: string, p: unknown): Promise<Ack<unknown>> })
      .emitWithAck(event, payload)
      .then(
        (ack) => {
          if (!ack.ok) throw new PinroomError(ack.error);
          return ack.data;
        },
        (err: unknown) => {
          if (err instanceof PinroomError) throw err;
          throw new PinroomError({ code: 'network', message: 'no answer from the server' });
        },
      );
  }

  function deliver(entry: FeedEntry, live: boolean): void {
    if (!current || entry.roomId !== current.room.id) return;
    if (current.lastId !== null && compareIds(entry.id, current.lastId) <= 0) return; // seen already
    current.lastId = entry.id;
    emit('entry', entry, live);
  }

  async function subscribeFeed(resume: boolean): Promise<void> {
    if (!current) return;
    const since = resume && current.epoch && current.lastId ? { epoch: current.epoch, id: current.lastId } : undefined;
    const before = current.lastId;
    let caughtUp = 0;
    const count = (entry: FeedEntry) => {
      if (current && entry.roomId === current.room.id && (before === null || compareIds(entry.id, before) > 0)) caughtUp++;
    };
    socket?.on('feed:entry', count);
    try {
      const result = (await request('feed:subscribe', since ? { roomId: current.room.id, since } : { roomId: current.room.id })) as {
        epoch: string;
        lastId: string;
        recovered: boolean;
      };
      if (!current) return;
      if (since && !result.recovered) {
        current.epoch = result.epoch;
        current.lastId = result.lastId;
        emit('reset');
        setState({ status: 'reloaded' });
      } else {
        current.epoch = result.epoch;
        if (!since) current.lastId = result.lastId;
        if (resume) setState({ status: 'resumed', caughtUp });
      }
    } finally {
      socket?.off('feed:entry', count);
    }
  }

  function roster(): Roster {
    if (!current) return { members: [], online: 0, memberCount: 0, hasMore: false };
    return { members: [...current.members.values()], online: current.online, memberCount: current.memberCount, hasMore: current.nextAfter !== null };
  }

  function applyPresence(event: RoomPresence): void {
    if (!current || event.roomId !== current.room.id) return;
    for (const member of event.changes) current.members.set(member.userId, member);
    current.online = event.online;
    emit('presence', roster());
  }

  /**
   * `room:join`, then the room's state from its answer: the first member page
   * (read with `room:members` after a rejoin, whose answer carries none), the
   * counts, and the presence that arrived meanwhile.
   */
  async function joinAndLoad(pin: string, nickname: string | undefined, previous: { epoch: string | null; lastId: string | null } | null): Promise<RoomJoined> {
    heldPresence = [];
    let joined: RoomJoined;
    try {
      joined = (await request('room:join', nickname ? { pin, nickname } : { pin })) as RoomJoined;
      let page: RoomMembersPage | undefined = joined.members ? { members: joined.members, ...(joined.nextAfter ? { nextAfter: joined.nextAfter } : {}) } : undefined;
      page ??= (await request('room:members', { roomId: joined.room.id })) as RoomMembersPage;
      current = {
        room: joined.room,
        role: joined.role,
        name: joined.name,
        epoch: previous ? previous.epoch : (joined.feed?.epoch ?? null),
        lastId: previous ? previous.lastId : (joined.feed?.lastId ?? null),
        members: new Map(page.members.map((m) => [m.userId, m])),
        online: joined.online,
        memberCount: joined.memberCount,
        nextAfter: page.nextAfter ?? null,
      };
    } finally {
      const held = heldPresence;
      heldPresence = null;
      for (const event of held) applyPresence(event);
    }
    emit('room', joined.room);
    emit('presence', roster());
    return joined;
  }

  function connectSocket(): Promise<void> {
    if (socket) return Promise.resolve();
    setState({ status: 'connecting' });
    const s: PinroomSocket = io(baseUrl, {
      transports: ['websocket', 'polling'],
      // A function, so that every reconnect presents the newest access token.
      auth: (cb) => cb({ token: accessToken ?? '' }),
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    socket = s;

    s.on('feed:entry', (entry) => deliver(entry, true));
    s.on('room:presence', (event: RoomPresence) => {
      if (heldPresence) heldPresence.push(event);
      else applyPresence(event);
    });
    s.on('room:updated', ({ room }) => {
      if (current && room.id === current.room.id) {
        current.room = room;
        emit('room', room);
      }
    });
    // Only about the room this client is in: one it has just left (a host's leave ends the room,
    // and the ending reaches its socket too) is no news to the page.
    s.on('room:kicked', (event) => {
      dropOutbox(event.roomId);
      if (!current || event.roomId !== current.room.id) return;
      current = null;
      emit('kicked', event);
    });
    s.on('room:waiting', (notice) => emit('waiting', notice));
    s.on('room:admitted', (event) => emit('admitted', event));
    s.on('room:denied', (event) => emit('denied', event));
    s.on('room:ended', (event) => {
      dropOutbox(event.roomId);
      if (!current || event.roomId !== current.room.id) return;
      current = null;
      emit('ended', event);
    });
    s.on('auth:expiring', () => {
      refresh()
        .then(() => request('auth:refresh', { token: accessToken! }))
        .catch(() => undefined);
    });
    s.on('auth:closed', ({ code }) => {
      if (code === 'session_revoked') forgetSession(code);
    });
    s.io.on('reconnect_attempt', (attempt) => setState({ status: 'reconnecting', attempt }));
    s.on('disconnect', (reason) => {
      ready = false;
      if (reason === 'io client disconnect') return;
      setState({ status: 'reconnecting', attempt: 0 });
      // The server closed the socket on purpose (kick, auth): Socket.IO will not retry by itself.
      if (reason === 'io server disconnect' && accessToken) setTimeout(() => s.connect(), 500);
    });
    s.on('connect_error', (err: Error & { data?: { code?: string } }) => {
      const code = err.data?.code;
      if (code === 'token_expired') {
        refresh().then(
          () => s.connect(),
          () => undefined,
        );
      } else if (code === 'session_revoked' || code === 'unauthorized') {
        refresh().then(
          () => s.connect(),
          () => forgetSession(code as ErrorCode),
        );
      }
    });

    return new Promise<void>((resolve, reject) => {
      s.on('connect', () => {
        const first = !everConnected;
        everConnected = true;
        if (first) {
          setState({ status: 'connected' });
          resolve();
          return;
        }
        // Back after a drop: rejoin the room and resume the feed from the last entry shown.
        void (async () => {
          if (!current) return setState({ status: 'connected' });
          try {
            await joinAndLoad(current.room.pin, current.name, { epoch: current.epoch, lastId: current.lastId });
            await subscribeFeed(true);
            setReady(true);
          } catch (err) {
            if (err instanceof PinroomError && ['room_not_found', 'banned', 'conflict'].includes(err.code)) {
              const roomId = current?.room.id ?? '';
              current = null;
              dropOutbox(roomId);
              emit('ended', { roomId, reason: 'expired' });
            }
          }
        })();
      });
      s.once('connect_error', (err) => {
        if (!everConnected && !(err as { data?: unknown }).data) reject(new PinroomError({ code: 'network', message: err.message }));
      });
    });
  }

  // ------------------------------------------------------------------ API

  return {
    get user() {
      return user;
    },
    get state() {
      return state;
    },
    get room() {
      return current?.room ?? null;
    },
    get role() {
      return current?.role ?? null;
    },
    /** The name this user goes by in the current room (their nickname there). */
    get memberName() {
      return current?.name ?? null;
    },
    /** Queued items of the current room, oldest first. */
    get outbox(): OutboxItem[] {
      return pendingIn(current?.room.id);
    },

    on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener as (...args: never[]) => void);
      return () => void set.delete(listener as (...args: never[]) => void);
    },

    /** Resume a stored session (after a page reload). Resolves the user, or null when there is none. */
    async restore(): Promise<UserView | null> {
      const stored = readStored();
      if (!stored) return null;
      try {
        await refresh();
      } catch {
        return null;
      }
      await connectSocket();
      return user;
    },

    async signInGuest(displayName: string): Promise<UserView> {
      saveSession(await http<SessionResponse>('POST', HttpRoutes.guest, { displayName }));
      await connectSocket();
      return user!;
    },

    async signUp(username: string, password: string, displayName?: string): Promise<UserView> {
      saveSession(await http<SessionResponse>('POST', HttpRoutes.register, displayName ? { username, password, displayName } : { username, password }));
      await connectSocket();
      return user!;
    },

    async logIn(username: string, password: string): Promise<UserView> {
      saveSession(await http<SessionResponse>('POST', HttpRoutes.login, { username, password }));
      await connectSocket();
      return user!;
    },

    async logOut(): Promise<void> {
      const stored = readStored();
      if (stored) await http('POST', HttpRoutes.logout, { refreshToken: stored.refreshToken }).catch(() => undefined);
      forgetSession('logout');
    },

    /** Check a PIN before asking for a nickname. */
    lookupPin(pin: string): Promise<PinLookup> {
      return http<PinLookup>('GET', pinLookupPath(pin));
    },

    async createRoom(title: string, maxMembers?: number, approval = false): Promise<RoomView> {
      const { room } = (await request('room:create', { title, ...(maxMembers ? { maxMembers } : {}), ...(approval ? { approval } : {}) })) as { room: RoomView };
      return room;
    },

    /** The member list and counts as this client knows them. */
    get roster(): Roster {
      return roster();
    },

    /**
     * Join by PIN going by `nickname` (default: the display name), then
     * subscribe to the room's feed from the position the join returned; the
     * outbox of that room (after a reload) is sent then.
     */
    async joinRoom(pin: string, nickname?: string): Promise<RoomJoined> {
      ready = false;
      const joined = await joinAndLoad(pin, nickname, null);
      if (joined.feed) {
        const { epoch, lastId } = joined.feed;
        const result = (await request('feed:subscribe', { roomId: joined.room.id, since: { epoch, id: lastId } })) as { epoch: string; recovered: boolean };
        if (current) current.epoch = result.epoch;
      } else {
        await subscribeFeed(false);
      }
      setReady(true);
      return joined;
    },

    /** Load the next page of members (big rooms); resolves the roster. */
    async loadMoreMembers(): Promise<Roster> {
      if (!current || current.nextAfter === null) return roster();
      const roomId = current.room.id;
      const page = (await request('room:members', { roomId, after: current.nextAfter })) as RoomMembersPage;
      if (!current || current.room.id !== roomId) return roster();
      // Presence seen since is newer than the page: keep it.
      for (const member of page.members) if (!current.members.has(member.userId)) current.members.set(member.userId, member);
      current.nextAfter = page.nextAfter ?? null;
      emit('presence', roster());
      return roster();
    },

    async leaveRoom(): Promise<void> {
      if (!current) return;
      const roomId = current.room.id;
      current = null;
      ready = false;
      dropOutbox(roomId);
      await request('room:leave', { roomId });
    },

    async start(): Promise<void> {
      if (current) await request('room:start', { roomId: current.room.id });
    },
    async lock(locked: boolean): Promise<void> {
      if (current) await request('room:lock', { roomId: current.room.id, locked });
    },
    async kick(userId: string, banSeconds?: number): Promise<void> {
      if (current) await request('room:kick', banSeconds ? { roomId: current.room.id, userId, banSeconds } : { roomId: current.room.id, userId });
    },
    async end(): Promise<void> {
      if (current) await request('room:end', { roomId: current.room.id });
    },
    /** Host: approval mode on or off. */
    async setApproval(approval: boolean): Promise<void> {
      if (current) await request('room:update', { roomId: current.room.id, approval });
    },
    /** Host: one page of the waiting room, longest waiting first. */
    async waitlist(after?: string): Promise<RoomWaitlistPage> {
      if (!current) return { waiting: [], count: 0 };
      return (await request('room:waitlist', after ? { roomId: current.room.id, after } : { roomId: current.room.id })) as RoomWaitlistPage;
    },
    async admit(userId: string): Promise<void> {
      if (current) await request('room:admit', { roomId: current.room.id, userId });
    },
    async deny(userId: string): Promise<void> {
      if (current) await request('room:deny', { roomId: current.room.id, userId });
    },

    /**
     * Publish into the room's feed. The `clientMsgId` makes a retry after a
     * dropped ack safe: the server answers the first id and adds nothing.
     */
    async publish(type: string, payload: Record<string, unknown>, clientMsgId = crypto.randomUUID()): Promise<string> {
      if (!current) throw new PinroomError({ code: 'conflict', message: 'not in a room' });
      const roomId = current.room.id;
      for (let attempt = 1; ; attempt++) {
        try {
          const { id } = (await request('feed:publish', { roomId, type, payload, clientMsgId })) as { id: string };
          return id;
        } catch (err) {
          const retry = err instanceof PinroomError && (err.code === 'network' || err.code === 'unavailable') && attempt < 4;
          if (!retry) throw err;
          await new Promise((r) => setTimeout(r, 300 * attempt));
        }
      }
    },

    /**
     * Queue a chat message or reaction for the current room: it is sent now
     * if the room is joined and the feed live, else once it is again (after a
     * reconnect, or a reload of this tab). Pending until acknowledged (the
     * `outbox` event); lands exactly once.
     */
    send(type: 'chat.message' | 'reaction', payload: Record<string, unknown>): OutboxItem {
      if (!current) throw new PinroomError({ code: 'conflict', message: 'not in a room' });
      const item: OutboxItem = { clientMsgId: crypto.randomUUID(), roomId: current.room.id, type, payload, queuedAt: Date.now() };
      outbox.push(item);
      outboxChanged();
      void flushOutbox();
      return item;
    },

    /** One page of older entries, newest first. */
    async history(before?: string, limit = 50): Promise<FeedHistoryPage> {
      if (!current) return { entries: [] };
      return (await request('feed:history', before ? { roomId: current.room.id, before, limit } : { roomId: current.room.id, limit })) as FeedHistoryPage;
    },

    /** Close the socket (the session stays stored). */
    disconnect(): void {
      ready = false;
      socket?.close();
      socket = null;
      everConnected = false;
      setState({ status: 'offline' });
    },
  };
}
