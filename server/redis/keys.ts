/**
 * Every Redis key pinroom uses is built here, from the configured prefix.
 * Room and user ids sit inside `{}` hash tags so that all keys of one room
 * (or one session) share a Redis Cluster slot and a Lua script may touch them together.
 */
export type Keys = ReturnType<typeof createKeys>;

export function createKeys(prefix: string) {
  const room = (roomId: string) => `${prefix}room:{${roomId}}`;
  return {
    prefix,
    /** Channel prefix of the Socket.IO Redis adapter. */
    adapterChannel: `${prefix}socket.io`,
    /** Key prefix handed to rate-limiter-flexible; it appends `:<name>:<key>`. */
    rateLimit: `${prefix}rl`,

    // ---- cache-aside
    /** A cached value of loader `name`. */
    cache: (name: string, id: string) => `${prefix}cache:${name}:{${id}}`,
    /** The short fill lock of a cached value. */
    cacheLock: (name: string, id: string) => `${prefix}cache:${name}:{${id}}:lock`,
    /** The version token of a cached value, replaced on every invalidation; a fill stores only under the token it saw. */
    cacheVersion: (name: string, id: string) => `${prefix}cache:${name}:{${id}}:ver`,

    // ---- auth
    /**
     * A session (refresh-token family): user, state, current head, absolute expiry.
     * Expires with the session; a revoked one stays until then so that access
     * tokens of the session are refused everywhere.
     */
    session: (sessionId: string) => `${prefix}auth:session:{${sessionId}}`,
    /** One refresh token of a session, by the SHA-256 of the token; expires with the token. */
    refreshToken: (sessionId: string, tokenHash: string) => `${prefix}auth:session:{${sessionId}}:rt:${tokenHash}`,

    /**
     * Failed logins of one account from any address (hash `{n, last}`), keyed
     * by the lowercased username whether or not it exists; expires after the
     * backoff window. Deleted by a successful login.
     */
    loginFailures: (username: string) => `${prefix}auth:login-fails:{${username.toLowerCase()}}`,

    // ---- rooms
    /**
     * The claim of a live PIN: its value is the room id, with a TTL renewed while
     * the room has members online. After the room ends it holds `ended:<roomId>`
     * for the quarantine period, so it can be neither resolved nor claimed.
     */
    pin: (pin: string) => `${prefix}pin:${pin}`,
    /** Per-room keys share the room's hash tag. */
    room,
    /** Presence of a room: hash `<nodeId>|<socketId>` → user id, one field per member socket. */
    roomSockets: (roomId: string) => `${room(roomId)}:presence:sockets`,
    /** Presence of a room: hash user id → that user's fields in `roomSockets`, space-separated; a user is online while they have a field here. */
    roomUsers: (roomId: string) => `${room(roomId)}:presence:users`,
    /** Approval mode's waiting room: sorted set user id → ms when they began waiting; bounded (`ROOM_WAITING_MAX`), with a TTL. */
    roomWaiting: (roomId: string) => `${room(roomId)}:waiting`,
    /** The waiting users' display names: hash user id → name, kept with `roomWaiting`. */
    roomWaitingNames: (roomId: string) => `${room(roomId)}:waiting:names`,
    /** When the host's grace period ends, ms since the epoch; exists only while the host is offline. */
    roomHostDeadline: (roomId: string) => `${room(roomId)}:host-deadline`,
    /** Index of host grace deadlines: sorted set room id → deadline ms. A hint for the sweeper; the room key is the truth. */
    hostDeadlines: `${prefix}rooms:host-deadlines`,
    /** Live gateway node incarnations: sorted set id → last heartbeat, ms since the epoch. */
    presenceNodes: `${prefix}{presence}:nodes`,
    /** Dead node incarnations being purged: sorted set id → end of the purging sweeper's lease, ms. */
    presenceNodesPurging: `${prefix}{presence}:purging`,
    /**
     * Set of rooms a user joined and did not leave, as far as this node saw: a
     * hint that picks the rejoin fast path of `room:join` (PostgreSQL still
     * decides). Written by every join, trimmed by leaves and kicks; expires a
     * day after the user's last join.
     */
    userRooms: (userId: string) => `${prefix}user:{${userId}}:rooms`,
    /** Rooms in which a node incarnation has (or had) member sockets, for the purge after it dies. */
    presenceNodeRooms: (nodeId: string) => `${prefix}{presence}:node:${nodeId}:rooms`,

    // ---- feed
    // Every feed script touches the keys of one hash slot only: a room's feed
    // keys carry the room's tag; the global, system and archive keys each have
    // a tag of their own (`{feed:global}`, `{feed:system}`, `{feed:archive}`).
    /** A room's activity stream, capped with `XADD MAXLEN ~` and expiring when idle. */
    feedStream: (roomId: string) => `${room(roomId)}:feed`,
    /**
     * Hash of a room's stream, same TTL: `epoch` (random, created with the stream),
     * `last` (id of its last entry), `n` (entries appended in this epoch),
     * `archived` (id of the last entry the archive stored), `closed` (set by `room.ended`).
     */
    feedMeta: (roomId: string) => `${room(roomId)}:feed:meta`,
    /** Sharded pub/sub channel on which the append script publishes each entry of the room (SPUBLISH). */
    feedLive: (roomId: string) => `${room(roomId)}:feed:live`,
    /** The id an entry published with `clientMsgId` got; expires after the idempotency window. */
    feedMsgId: (roomId: string, userId: string, clientMsgId: string) => `${room(roomId)}:feed:msg:${userId}:${clientMsgId}`,
    /** The archive worker holding a room (value: its name), with a TTL: one worker archives a room at a time. */
    feedArchiveLease: (roomId: string) => `${room(roomId)}:feed:archiving`,
    /** The global activity stream (every room's entries, copied by the archive worker), capped. */
    feedGlobal: `${prefix}{feed:global}`,
    /** Hash `{epoch, last, n}` of the global stream. */
    feedGlobalMeta: `${prefix}{feed:global}:meta`,
    /** Sharded pub/sub channel of the global stream. */
    feedGlobalLive: `${prefix}{feed:global}:live`,
    /** Hash room id → id of the last entry of that room copied into the global stream (no copy twice). */
    feedGlobalCopied: `${prefix}{feed:global}:copied`,
    /** The system log stream (rooms created and ended, sign-ins, revocations), capped. */
    feedSystem: `${prefix}{feed:system}`,
    /** Hash `{epoch, last, n}` of the system log stream. */
    feedSystemMeta: `${prefix}{feed:system}:meta`,
    /** Sharded pub/sub channel of the system log stream. */
    feedSystemLive: `${prefix}{feed:system}:live`,
    /** Rooms with entries not yet archived: sorted set room id → when the oldest of them was hinted, ms. */
    feedArchivePending: `${prefix}{feed:archive}:pending`,
    /** Entries PostgreSQL refused, kept for an operator (capped stream). */
    feedArchiveDead: `${prefix}{feed:archive}:dead`,
    /** Lock of the periodic archive sweep (one node sweeps at a time). */
    feedArchiveSweep: `${prefix}{feed:archive}:sweep`,
  };
}
