/**
 * The only module that reads the environment. `loadConfig(env)` is pure: it
 * validates every variable, reports all problems in one `ConfigError`, and
 * returns a frozen `Config`. Defaults make `npm start` work on a machine with
 * a local Redis and PostgreSQL; `NODE_ENV=production` refuses those defaults
 * where they would be insecure.
 *
 * Every variable is declared once in `VARIABLES` with its default and meaning;
 * docs/configuration.md is written from it by `npm run docs` (links in a
 * `doc` are relative to docs/), and a test fails when that page is stale.
 */
import proxyaddr from '@fastify/proxy-addr';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';

export type NodeEnv = 'development' | 'test' | 'production';

/**
 * Which hops of `X-Forwarded-For` are trusted proxies: the nearest `hops`
 * (the peer is hop 0), or every hop whose address is in `cidrs`. The client
 * address is the rightmost untrusted one. `{ hops: 0 }` ignores the header.
 */
export type TrustProxy = { hops: number } | { cidrs: readonly string[] };

export interface Config {
  env: NodeEnv;
  http: {
    port: number;
    host: string;
    /** Allowed browser origins for HTTP CORS and the Socket.IO handshake; `['*']` allows any (development only). */
    corsOrigins: readonly string[];
    /** Which proxies in front may report the client address in `X-Forwarded-For`. @default { hops: 0 } (none) */
    trustProxy: TrustProxy;
    /** Largest HTTP request body, in bytes. */
    bodyLimitBytes: number;
    /** Time allowed for a graceful shutdown before the process exits anyway, in ms. */
    shutdownTimeoutMs: number;
    /** Request headers must arrive within this (slow-header attacks), in ms. @default 10000 */
    headersTimeoutMs: number;
  };
  socket: {
    /** Largest Socket.IO frame (Engine.IO `maxHttpBufferSize`), in bytes. */
    maxPayloadBytes: number;
    pingIntervalMs: number;
    pingTimeoutMs: number;
    /** Events one socket may send per second before `rate_limited`. @default 20 */
    eventsPerSecond: number;
    /** Events in one second past which a socket is disconnected (a flood, not a burst). @default 10 × eventsPerSecond */
    disconnectEventsPerSecond: number;
    /** Open connections (Engine.IO sessions) one client address may hold on this node; more are refused. @default 10000 */
    maxConnectionsPerAddress: number;
    /** Time an Engine.IO connection has to join the namespace (send its CONNECT packet) before it is closed, ms. @default 10000 */
    connectTimeoutMs: number;
    /** Socket.IO Redis adapter between nodes: classic pub/sub or Redis 7 sharded pub/sub. @default 'classic' */
    adapter: 'classic' | 'sharded';
    /** Bytes written to one socket and not yet taken by the client past which its feed delivery ends (transport closed; the client resumes with `since`). @default 1048576 */
    maxBufferedBytes: number;
    /** Limits per user, counted in Redis across all of the user's sockets and every node (behind the per-socket ones). */
    perUser: {
      /** Events one user may send per second, all sockets and events together. @default 50 */
      eventsPerSecond: number;
      /** `feed:publish` per user per room. @default 20/10 */
      feedPublishPerRoom: RateLimit;
      /** `room:signal` per user, all rooms together. @default 20/1 */
      roomSignal: RateLimit;
    };
  };
  /** Processes `npm start` runs on this machine, each a full node. */
  cluster: {
    /** Worker processes; 1 runs the node in the main process. @default 1 */
    workers: number;
  };
  redis: {
    url: string;
    /** Prefix of every Redis key and of the Socket.IO adapter channel. */
    keyPrefix: string;
    /** A Redis command that takes longer fails with `unavailable`, in ms. */
    commandTimeoutMs: number;
    /** Time to reach Redis at start-up before giving up, in ms. */
    connectTimeoutMs: number;
    /**
     * Seed nodes of a Redis Cluster (`REDIS_CLUSTER_NODES`); set, every Redis
     * connection is cluster-aware (credentials and TLS still come from `url`).
     */
    clusterNodes: readonly { host: string; port: number }[] | undefined;
  };
  db: {
    url: string;
    poolMax: number;
    /** Create the database at start-up when it does not exist (development convenience). */
    createIfMissing: boolean;
    /** Server-side statement timeout, in ms. */
    statementTimeoutMs: number;
    /** Time to reach PostgreSQL at start-up before giving up, in ms. */
    connectTimeoutMs: number;
  };
  log: { level: LogLevel };
  observability: {
    /** Bearer token `GET /metrics` requires; unset: open outside production, not served (404) in production. */
    metricsToken: string | undefined;
    /** Error and dependency entries one node may write to the system log. @default 30/60 */
    systemLogRate: RateLimit;
  };
  cache: CacheConfig;
  auth: AuthConfig;
  rooms: RoomsConfig;
  feed: FeedConfig;
}

/** Cache-aside loaders (server/cache). */
export interface CacheConfig {
  /** Fresh TTL of a cached public user profile, seconds (±10% jitter). @default 300 */
  userTtlSeconds: number;
  /** Fresh TTL of cached room state, seconds (±10% jitter). @default 60 */
  roomTtlSeconds: number;
  /** Fresh TTL of a cached "not found", seconds (±10% jitter); creating the row clears it. @default 30 */
  negativeTtlSeconds: number;
  /** How long past its TTL an entry may be served, marked stale, while PostgreSQL is down, seconds; 0 never serves stale. @default 300 */
  hardStaleSeconds: number;
  /** TTL of the cross-process fill lock, ms. @default 2000 */
  lockTtlMs: number;
  /** How long a read waits for another process's fill before querying PostgreSQL itself, ms. @default 1000 */
  lockWaitMs: number;
}

export interface FeedConfig {
  /** Approximate cap of one room's stream (`XADD MAXLEN ~`), entries. @default 10000 */
  roomMaxLen: number;
  /** A room's stream and epoch expire after this long without an entry, seconds. @default 604800 (7 days) */
  roomTtlSeconds: number;
  /** Approximate cap of the global stream (every room's entries, copied by the archive worker), entries. @default 100000 */
  globalMaxLen: number;
  /** Approximate cap of the system log stream, entries. @default 10000 */
  systemMaxLen: number;
  /** How long a `clientMsgId` is remembered per user and room, seconds. @default 86400 */
  idempotencyTtlSeconds: number;
  /**
   * Replicas a room entry must reach (Redis `WAIT`) before `feed:publish` is
   * acknowledged; 0 acknowledges once the master has it. @default 0
   */
  appendWaitReplicas: number;
  /** Longest an append waits for `appendWaitReplicas`, ms; short of them the publish answers `unavailable` (retry with the same `clientMsgId`). @default 1000 */
  appendWaitTimeoutMs: number;
  /** Most entries one `feed:subscribe` replays (stream and archive together); a longer gap answers `recovered: false`. @default 10000 */
  replayMax: number;
  /** A followed feed whose live channel heard nothing this long has its position checked (a lost message is repaired within this), ms. @default 5000 */
  checkIntervalMs: number;
  /** Service API key of `POST /api/rooms/:roomId/events`; unset means the route does not exist (404). */
  apiKey: string | undefined;
  archive: {
    /** Run the archive worker on this node. @default true */
    enabled: boolean;
    /** Entries read from one room per round, and rows per INSERT. @default 200 */
    batchSize: number;
    /** Longest an idle archive worker waits before looking for rooms again, ms. @default 1000 */
    blockMs: number;
    /** A room's new entries are archived this long after the first of them, so a busy room's entries go in one visit, ms. @default 1000 */
    delayMs: number;
    /** A room's archive lease lasts this long (a dead worker's rooms are taken over after it), and the sweep for lost hints runs this often, ms. @default 30000 */
    claimIdleMs: number;
    /** Days of archive kept: day partitions wholly older are dropped. @default 30 */
    retentionDays: number;
    /** Approximate cap of the dead-letter stream (entries PostgreSQL refused), entries. @default 10000 */
    deadLetterMaxLen: number;
  };
}

/** A rate limit: at most `points` actions per `durationSeconds`, per key. */
export interface RateLimit {
  points: number;
  durationSeconds: number;
}

/** A JSON Web Key as read from the environment (Ed25519: `kty` OKP, `crv` Ed25519). */
export interface JwkInput {
  kty: string;
  crv?: string;
  x?: string;
  d?: string;
  kid?: string;
  [member: string]: unknown;
}

export interface AuthConfig {
  /** `iss` of access tokens, pinned on verification. */
  issuer: string;
  /** `aud` of access tokens, pinned on verification. */
  audience: string;
  /** Lifetime of an access token, in seconds. @default 600 */
  accessTokenTtlSeconds: number;
  /** Lifetime of one refresh token, in seconds. @default 2592000 (30 days) */
  refreshTokenTtlSeconds: number;
  /** Absolute lifetime of a session (refresh-token family), in seconds. @default 7776000 (90 days) */
  sessionMaxAgeSeconds: number;
  /** A just-rotated token presented again this soon is a race, not a theft (0 to 10 s). @default 5 */
  refreshReuseGraceSeconds: number;
  /** Clock skew accepted on `exp`/`nbf`/`iat`, in seconds (at most 30). @default 5 */
  clockToleranceSeconds: number;
  /**
   * Access tokens this node has verified, remembered by their SHA-256 (never the
   * token) until their `exp`, so that a reconnect with the same token skips the
   * signature check (the session check still runs); 0 disables. Entries, ≈ 0.2 KB each. @default 10000
   */
  tokenCacheSize: number;
  /** The private Ed25519 JWK that signs access tokens; unset in development means a generated key in `dataDir`. */
  signingKey: JwkInput | undefined;
  /** Older public keys still accepted (by `kid`) during a key rotation. */
  verifyKeys: readonly JwkInput[];
  /** Folder of the generated development key pair (git-ignored). */
  dataDir: string;
  /** `auth:expiring` is sent this long before a socket's token expires, in seconds. @default 60 */
  expiringNoticeSeconds: number;
  /** A socket whose token expired is disconnected after this grace, in ms. @default 5000 */
  expiryGraceMs: number;
  /** User ids (lowercase UUIDs) of the administrators: the global and system feeds, `/admin/overview`. @default none */
  adminUserIds: readonly string[];
  /** Sockets one session may hold on one node. @default 10 */
  sessionMaxSockets: number;
  /** How often each node re-reads the state of its sockets' sessions (one batched read) and closes revoked ones, ms. @default 30000 */
  sessionRecheckMs: number;
  /** A guest account and its session last this many days; then a periodic job removes the account. @default 30 */
  guestRetentionDays: number;
  /** How often each node looks for guest accounts past their retention, seconds. @default 3600 */
  guestSweepIntervalSeconds: number;
  /** Failed logins of one account from any address before each further attempt waits a doubling backoff (1 s, 2 s, ...). @default 10/900 */
  loginBackoffAfter: RateLimit;
  /** Longest wait of that backoff, seconds. @default 300 */
  loginBackoffMaxSeconds: number;
  /** First wait of the per-account login backoff, ms. @default 1000 */
  loginBackoffFirstMs: number;
  /** Password hashes (scrypt) at once; the rest wait in a bounded queue. */
  hashing: {
    /** Hashes computed at once on this node. @default half the CPU cores, at least 1 */
    concurrency: number;
    /** Sign-ins waiting for a hash slot; more are refused at once with `rate_limited`. @default 64 */
    queue: number;
    /** How long a sign-in waits for a hash slot before `rate_limited`, ms (a class of 30 logging in at once fits). @default 10000 */
    waitMs: number;
  };
  rateLimits: {
    /** Login attempts per username and client address. */
    loginUserIp: RateLimit;
    /** Login attempts per client address. */
    loginIp: RateLimit;
    /** Account creations per client address. */
    registerIp: RateLimit;
    /** Guest creations per client address. */
    guestIp: RateLimit;
  };
}

export interface RoomsConfig {
  /** Digits of a PIN (3 to 10). @default 6 */
  pinDigits: number;
  /** Digits tried after `pinClaimAttempts` draws all collide; 0 means answer `pin_unavailable` instead. @default 7 */
  pinFallbackDigits: number;
  /** Random draws per PIN length before giving up on that length. @default 8 */
  pinClaimAttempts: number;
  /** TTL of a live PIN claim, in seconds; renewed every heartbeat while the room has members online. @default 7200 */
  pinTtlSeconds: number;
  /** How long an ended room's PIN stays unclaimable, in seconds. @default 300 */
  pinQuarantineSeconds: number;
  /** Wrong PINs per client address (an IPv6 /64), all users together: binds a crowd of throwaway guests, not a classroom. @default 300/3600 */
  guessRateIp: RateLimit;
  /** Wrong PINs per user, from any address. @default 30/3600 */
  guessRateUser: RateLimit;
  /** Wrong PINs per user from one address. @default 10/300 */
  guessRateUserIp: RateLimit;
  /** Block after a guess limit is exceeded, in seconds; outlasts the window. @default 900 */
  guessBlockSeconds: number;
  /** Room creations per user. @default 10/60 */
  createRateUser: RateLimit;
  /** `maxMembers` of a room created without one. @default 100 */
  maxMembersDefault: number;
  /** Largest `maxMembers` a host may ask for. @default 1000 */
  maxMembersCap: number;
  /** Users who may wait at once in one room's waiting room (approval mode); past it, `room_full`. @default 500 */
  waitingMax: number;
  /** How long a waiting room is kept after its latest arrival, in seconds. @default 3600 */
  waitingTtlSeconds: number;
  /** Time a host who dropped has to come back before the room ends, in ms. @default 60000 */
  hostGraceMs: number;
  /** How often every node looks for rooms whose host grace ran out, in ms. @default 1000 */
  sweepIntervalMs: number;
  /** How often a node refreshes its presence heartbeat and renews its rooms' PINs, in ms. @default 5000 */
  presenceHeartbeatMs: number;
  /** A node silent this long is dead: its members go offline (within one more heartbeat), in ms. @default 15000 */
  presenceNodeTimeoutMs: number;
  /** Presence changes of one room are coalesced over this window into one `room:presence`, in ms. @default 100 */
  presenceBatchMs: number;
  /**
   * Users online above which members get presence counts only (the host still
   * gets every change), and members above which joins and leaves are recorded
   * as one aggregated feed entry per window. @default 200
   */
  rosterBroadcastMax: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

interface Variable {
  /** Default as it would be written in the environment; absent means "unset" is allowed and handled in `build`. */
  default?: string;
  doc: string;
  schema: z.ZodType<unknown, string>;
}

const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'expected an integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no']))
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const url = (protocols: readonly string[]) =>
  z
    .string()
    .trim()
    .refine((v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    }, `expected a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
/** `N/S`: at most N actions per S seconds. */
const rate = z
  .string()
  .trim()
  .regex(/^\d+\/\d+$/, 'expected <points>/<seconds>, e.g. 10/900')
  .transform((v) => {
    const [points, durationSeconds] = v.split('/').map(Number) as [number, number];
    return { points, durationSeconds };
  })
  .refine((r) => r.points >= 1 && r.durationSeconds >= 1 && r.durationSeconds <= 86_400 * 7, 'points >= 1 and 1 <= seconds <= 604800');
const jwkSchema = z
  .object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string().min(1), d: z.string().min(1).optional(), kid: z.string().min(1).max(128).optional() })
  .loose();
const jsonOf = <S extends z.ZodType>(schema: S) =>
  z
    .string()
    .trim()
    .transform((v, ctx) => {
      try {
        return JSON.parse(v) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'expected JSON' });
        return z.NEVER;
      }
    })
    .pipe(schema);
const list = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));
/** User ids only: a username in this list could be registered by anyone (and case-folded into a match). */
const adminIds = list.pipe(
  z.array(
    z
      .string()
      .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'user ids (UUIDs) only: a username could be registered by anyone; give the id of the existing account')
      .transform((id) => id.toLowerCase()),
  ),
);
/** `false`/`0`, a hop count, or a list of trusted proxy addresses and CIDRs. */
const trustProxy = z
  .string()
  .trim()
  .transform((v, ctx): TrustProxy => {
    const lower = v.toLowerCase();
    if (lower === 'false' || lower === 'no' || lower === '0') return { hops: 0 };
    if (lower === 'true' || lower === 'yes') {
      ctx.addIssue({ code: 'custom', message: 'trusting every hop lets any client choose its address; give the number of proxies in front (1 behind one nginx) or their addresses/CIDRs' });
      return z.NEVER;
    }
    if (/^\d+$/.test(v)) {
      const hops = Number(v);
      if (hops > 10) ctx.addIssue({ code: 'custom', message: 'at most 10 proxy hops' });
      return { hops };
    }
    const cidrs = v.split(',').map((s) => s.trim()).filter(Boolean);
    for (const cidr of cidrs) {
      try {
        proxyaddr.compile(cidr);
      } catch {
        ctx.addIssue({ code: 'custom', message: `${cidr}: not an IP address or CIDR` });
      }
    }
    return { cidrs };
  });
/** `host:port,host:port,...`, at least one. */
const clusterNodes = list.pipe(
  z
    .array(
      z.string().transform((v, ctx) => {
        const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
        const port = m ? Number(m[2]) : 0;
        if (!m || port < 1 || port > 65535) {
          ctx.addIssue({ code: 'custom', message: `${v}: expected host:port` });
          return z.NEVER;
        }
        return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
      }),
    )
    .min(1, 'at least one host:port'),
);
const origins = list.pipe(
  z.array(z.union([z.literal('*'), url(['http:', 'https:']).refine((v) => new URL(v).origin === v, 'an origin has no path: scheme://host[:port]')])),
);

/** Every environment variable pinroom reads, with its default and meaning. */
export const VARIABLES = {
  NODE_ENV: { default: 'development', doc: '`development`, `test` or `production`; production refuses insecure defaults.', schema: z.enum(['development', 'test', 'production']) },
  PORT: { default: '3000', doc: 'HTTP and Socket.IO port (0 picks a free port).', schema: int(0, 65535) },
  HOST: { default: '0.0.0.0', doc: 'Address to listen on.', schema: z.string().trim().min(1) },
  CORS_ORIGINS: { default: '*', doc: 'Comma-separated browser origins allowed for HTTP and the Socket.IO handshake (checked for WebSocket and polling). `*` allows any and is refused in production.', schema: origins },
  TRUST_PROXY: { default: 'false', doc: 'Proxies whose `X-Forwarded-For` is believed: a hop count (`1` behind one nginx) or a comma-separated list of their addresses or CIDRs (`10.0.0.0/8,fd00::/8`); the client address is the rightmost untrusted entry. `false` (or `0`) ignores the header; `true` is refused (it would let a client choose its address). See [security.md](security.md#client-addresses).', schema: trustProxy },
  HTTP_BODY_LIMIT_BYTES: { default: '16384', doc: 'Largest HTTP request body, bytes.', schema: int(1024, 10 * 1024 * 1024) },
  SHUTDOWN_TIMEOUT_MS: { default: '10000', doc: 'Graceful shutdown deadline, ms; the process exits when it passes.', schema: int(100, 120_000) },
  WS_MAX_PAYLOAD_BYTES: { default: '65536', doc: 'Largest Socket.IO frame, bytes; larger frames close the connection.', schema: int(1024, 100 * 1024 * 1024) },
  WS_PING_INTERVAL_MS: { default: '25000', doc: 'Engine.IO heartbeat interval, ms.', schema: int(1000, 300_000) },
  WS_PING_TIMEOUT_MS: { default: '20000', doc: 'Engine.IO heartbeat timeout, ms.', schema: int(1000, 300_000) },
  REDIS_URL: { default: 'redis://127.0.0.1:6379', doc: 'Redis server URL (`redis://` or `rediss://`).', schema: url(['redis:', 'rediss:']) },
  REDIS_CLUSTER_NODES: { doc: 'Comma-separated `host:port` seed nodes of a Redis Cluster (any few masters or replicas; the rest are discovered). Set, pinroom runs in cluster mode: every connection follows the cluster\'s slots, MOVED/ASK redirections and failovers, and `SOCKET_ADAPTER` defaults to (and must be) `sharded`. Credentials and TLS come from `REDIS_URL`\'s user, password and `rediss:` scheme. Unset: the single Redis of `REDIS_URL`. See [scaling.md](scaling.md#redis-cluster).', schema: clusterNodes },
  KEY_PREFIX: { default: 'pinroom:', doc: 'Prefix of every Redis key and of the Socket.IO adapter channel.', schema: z.string().min(1).max(64).regex(/^[A-Za-z0-9:_.-]+$/, 'letters, digits and ":_.-" only') },
  REDIS_COMMAND_TIMEOUT_MS: { default: '2000', doc: 'A Redis command slower than this fails with `unavailable`, ms.', schema: int(50, 60_000) },
  REDIS_CONNECT_TIMEOUT_MS: { default: '5000', doc: 'How long start-up waits for Redis, ms.', schema: int(100, 120_000) },
  DATABASE_URL: { default: 'postgres://postgres@127.0.0.1:5432/pinroom', doc: 'PostgreSQL URL.', schema: url(['postgres:', 'postgresql:']) },
  DB_POOL_MAX: { default: '10', doc: 'PostgreSQL pool size per process.', schema: int(1, 500) },
  DB_CREATE_IF_MISSING: { doc: 'Create the database at start-up when missing. Default `true`, `false` in production.', schema: bool },
  DB_STATEMENT_TIMEOUT_MS: { default: '5000', doc: 'PostgreSQL statement timeout, ms.', schema: int(100, 600_000) },
  DB_CONNECT_TIMEOUT_MS: { default: '5000', doc: 'How long start-up waits for PostgreSQL, ms.', schema: int(100, 120_000) },
  CACHE_USER_TTL_SECONDS: { default: '300', doc: 'Fresh TTL of a cached public user profile, seconds (±10% jitter).', schema: int(1, 86_400) },
  CACHE_ROOM_TTL_SECONDS: { default: '60', doc: 'Fresh TTL of cached room state, seconds (±10% jitter).', schema: int(1, 86_400) },
  CACHE_NEGATIVE_TTL_SECONDS: { default: '30', doc: 'Fresh TTL of a cached "not found", seconds (±10% jitter); creating the row clears it.', schema: int(1, 3600) },
  CACHE_HARD_STALE_SECONDS: { default: '300', doc: 'How long past its TTL a cached entry may still be served, marked `stale`, while PostgreSQL is unreachable, seconds; `0` never serves stale. Auth, ban and revocation checks never use stale data.', schema: int(0, 86_400) },
  CACHE_LOCK_TTL_MS: { default: '2000', doc: 'TTL of the cross-process cache fill lock (one node loads a missing entry while the others wait), ms.', schema: int(50, 60_000) },
  CACHE_LOCK_WAIT_MS: { default: '1000', doc: 'How long a cache read waits for another node\'s fill before querying PostgreSQL itself, ms.', schema: int(0, 60_000) },
  AUTH_ISSUER: { default: 'pinroom', doc: '`iss` of access tokens; verification requires it.', schema: z.string().trim().min(1).max(256) },
  AUTH_AUDIENCE: { default: 'pinroom', doc: '`aud` of access tokens; verification requires it.', schema: z.string().trim().min(1).max(256) },
  ACCESS_TOKEN_TTL_SECONDS: { default: '600', doc: 'Access token lifetime, seconds.', schema: int(2, 86_400) },
  REFRESH_TOKEN_TTL_SECONDS: { default: '2592000', doc: 'Lifetime of one refresh token (30 days), seconds; each rotation issues a fresh one.', schema: int(60, 366 * 86_400) },
  SESSION_MAX_AGE_SECONDS: { default: '7776000', doc: 'Absolute lifetime of a session (refresh-token family, 90 days), seconds; rotation never extends it.', schema: int(60, 3 * 366 * 86_400) },
  REFRESH_REUSE_GRACE_SECONDS: { default: '5', doc: 'A refresh token presented again within this many seconds of its own rotation answers `conflict` instead of revoking the session (concurrent tabs); 0 disables. At most 10.', schema: int(0, 10) },
  AUTH_CLOCK_TOLERANCE_SECONDS: { default: '5', doc: 'Clock skew accepted when verifying access tokens, seconds (at most 30).', schema: int(0, 30) },
  AUTH_TOKEN_CACHE_SIZE: { default: '10000', doc: 'Access tokens a node remembers having verified (by SHA-256, until their `exp`; about 0.2 KB each), so a reconnect with the same token skips the signature check; the session check still runs. `0` disables. See [auth.md](auth.md#the-verified-token-cache).', schema: int(0, 1_000_000) },
  AUTH_SIGNING_KEY: { doc: 'Private Ed25519 JWK (JSON, `kid` optional) that signs access tokens. Required in production; in development a key pair is generated once into `AUTH_DATA_DIR`.', schema: jsonOf(jwkSchema.refine((k) => k.d !== undefined, 'a private key (with `d`)')) },
  AUTH_SIGNING_KEY_FILE: { doc: 'Path of a file holding `AUTH_SIGNING_KEY` (the `_FILE` convention of container secrets: Docker and Kubernetes mount secrets as files); read once at start-up, surrounding whitespace ignored. Set one of the two, not both. `npm run keygen -- <dir>` (compose.yaml\'s `keygen` service) writes one.', schema: z.string().trim().min(1).max(4096) },
  AUTH_VERIFY_KEYS: { doc: 'JSON array of older public Ed25519 JWKs (each with `kid`) still accepted during a key rotation. Default none.', schema: jsonOf(z.array(jwkSchema.refine((k) => k.kid !== undefined, 'each key needs a `kid`')).max(16)) },
  AUTH_DATA_DIR: { default: '.data', doc: 'Folder (git-ignored) of the generated development key pair.', schema: z.string().trim().min(1) },
  AUTH_EXPIRING_NOTICE_SECONDS: { default: '60', doc: '`auth:expiring` is sent this many seconds before a socket\'s access token expires.', schema: int(0, 3600) },
  AUTH_EXPIRY_GRACE_MS: { default: '5000', doc: 'A socket whose access token expired and was not refreshed is disconnected (`token_expired`) after this grace, ms.', schema: int(0, 60_000) },
  AUTH_RATE_LOGIN_USER_IP: { default: '10/900', doc: 'Login attempts per username and client address, `<points>/<seconds>`; a successful login resets it.', schema: rate },
  AUTH_RATE_LOGIN_IP: { default: '100/900', doc: 'Login attempts per client address, `<points>/<seconds>`.', schema: rate },
  AUTH_RATE_REGISTER_IP: { default: '20/3600', doc: 'Account registrations per client address, `<points>/<seconds>`.', schema: rate },
  AUTH_RATE_LOGIN_USER: { default: '10/900', doc: 'Failed logins per account from any address, `<points>/<seconds>`; past it each further attempt must wait a backoff doubling from `AUTH_LOGIN_BACKOFF_FIRST_MS` (up to `AUTH_LOGIN_BACKOFF_MAX_SECONDS`), else `rate_limited`; a successful login resets it.', schema: rate },
  AUTH_LOGIN_BACKOFF_FIRST_MS: { default: '1000', doc: 'First wait of the per-account login backoff, ms; it doubles with every further failure.', schema: int(1, 3_600_000) },
  AUTH_LOGIN_BACKOFF_MAX_SECONDS: { default: '300', doc: 'Longest wait of the per-account login backoff, seconds.', schema: int(1, 86_400) },
  AUTH_HASH_CONCURRENCY: { doc: 'Password hashes (scrypt, 32 MiB each) computed at once on one node; the rest wait. Default half the CPU cores, at least 1.', schema: int(1, 256) },
  AUTH_HASH_QUEUE: { default: '64', doc: 'Sign-ins (login, register) that may wait for a password-hash slot on one node; more are refused at once with `rate_limited`.', schema: int(0, 100_000) },
  AUTH_HASH_WAIT_MS: { default: '10000', doc: 'How long a sign-in waits for a password-hash slot before `rate_limited`, ms.', schema: int(1, 60_000) },
  GUEST_RETENTION_DAYS: { default: '30', doc: 'Days a guest account lives: its session ends by then, and a periodic job removes the account (archived feed entries keep the display name).', schema: int(1, 3650) },
  GUEST_SWEEP_INTERVAL_SECONDS: { default: '3600', doc: 'How often each node removes guest accounts past `GUEST_RETENTION_DAYS`, seconds.', schema: int(1, 86_400) },
  AUTH_RATE_GUEST_IP: { default: '300/600', doc: 'Guest sign-ins per client address (a classroom shares one), `<points>/<seconds>`.', schema: rate },
  SOCKET_EVENTS_PER_SECOND: { default: '20', doc: 'Events one socket may send per second (all events together); more get `rate_limited`.', schema: int(1, 1_000_000) },
  SOCKET_DISCONNECT_EVENTS_PER_SECOND: { doc: 'Events (of any name, handled or not) one socket may send in one second before it is disconnected as a flood (`server:error` `rate_limited`, then a server disconnect). Default 10 × `SOCKET_EVENTS_PER_SECOND`.', schema: int(1, 100_000_000) },
  SOCKET_MAX_CONNECTIONS_PER_ADDRESS: { default: '10000', doc: 'Open Socket.IO connections one client address may hold on one node (one worker); past it the handshake is refused with HTTP 403. High by default so benchmarks from 127.0.0.1 fit; lower it in production (a classroom behind one NAT needs one per pupil).', schema: int(1, 10_000_000) },
  SOCKET_CONNECT_TIMEOUT_MS: { default: '10000', doc: 'An Engine.IO connection that has not joined the namespace (sent its Socket.IO CONNECT) within this is closed, ms.', schema: int(100, 120_000) },
  SOCKET_MAX_BUFFERED_BYTES: { default: '1048576', doc: 'Bytes written to one socket and not yet taken by the client (Engine.IO and WebSocket buffers) past which its feed delivery ends: the transport is closed and the client resumes with `since` ([feed.md](feed.md#bounded-memory-per-subscriber)). Replays wait for the socket below a quarter of it before sending more.', schema: int(16_384, 1024 * 1024 * 1024) },
  USER_EVENTS_PER_SECOND: { default: '50', doc: 'Events one user may send per second over all their sockets on every node (counted in Redis); more get `rate_limited`.', schema: int(1, 100_000_000) },
  FEED_PUBLISH_RATE_USER_ROOM: { default: '20/10', doc: '`feed:publish` per user per room over all their sockets on every node, `<points>/<seconds>`; more get `rate_limited`.', schema: rate },
  ROOM_SIGNAL_RATE_USER: { default: '20/1', doc: '`room:signal` per user over all their sockets on every node, `<points>/<seconds>`; more get `server:error` `rate_limited`.', schema: rate },
  SESSION_MAX_SOCKETS: { default: '10', doc: 'Sockets one session (one sign-in) may hold on one node; past it the handshake is refused with `rate_limited`.', schema: int(1, 1_000_000) },
  SESSION_RECHECK_MS: { default: '30000', doc: 'How often each node re-reads the state of its sockets\' sessions in one batched Redis read and closes those revoked (a missed logout broadcast closes within this), ms.', schema: int(100, 3_600_000) },
  SOCKET_ADAPTER: { doc: 'Socket.IO Redis adapter between nodes: `classic` (pub/sub, one pattern subscription per node) or `sharded` (Redis 7 sharded pub/sub, one channel per room). Default `classic`; `sharded`, and only that, with `REDIS_CLUSTER_NODES` (a classic PUBLISH reaches every master of a cluster). Measured in `bench/scenarios/adapter.ts`; see [scaling.md](scaling.md).', schema: z.enum(['classic', 'sharded']) },
  HTTP_HEADERS_TIMEOUT_MS: { default: '10000', doc: 'Request headers (including the WebSocket upgrade) must arrive within this, ms; slower connections are closed (slow-header attacks).', schema: int(500, 30_000) },
  WORKERS: { default: '1', doc: 'Worker processes `npm start` runs on this machine, each a full node (node:cluster, `@socket.io/sticky` for long-polling, the Redis adapter between them); `1` runs one process.', schema: int(1, 256) },
  PIN_DIGITS: { default: '6', doc: 'Digits of a room PIN (3 to 10), drawn uniformly with crypto randomness.', schema: int(3, 10) },
  PIN_FALLBACK_DIGITS: { default: '7', doc: 'PIN length tried when `PIN_CLAIM_ATTEMPTS` draws at `PIN_DIGITS` all hit live PINs; `0` answers `pin_unavailable` instead.', schema: int(0, 10) },
  PIN_CLAIM_ATTEMPTS: { default: '8', doc: 'Random draws per PIN length before giving up on that length.', schema: int(1, 100) },
  PIN_TTL_SECONDS: { default: '7200', doc: 'TTL of a live PIN claim, seconds; renewed every heartbeat while the room has members online.', schema: int(30, 30 * 86_400) },
  PIN_QUARANTINE_SECONDS: { default: '300', doc: 'How long an ended room\'s PIN cannot be claimed again, seconds (stale clients cannot land in a newer room).', schema: int(0, 86_400) },
  PIN_GUESS_RATE_IP: { default: '300/3600', doc: 'Wrong PINs (lookups and joins) per client address, all users together, `<points>/<seconds>`; past it, every PIN attempt from the address is `rate_limited` for `PIN_GUESS_BLOCK_SECONDS`. Much higher than the per-user limits, so one pupil cannot lock out a classroom.', schema: rate },
  PIN_GUESS_RATE_USER: { default: '30/3600', doc: 'Wrong PINs per user from any address, `<points>/<seconds>`; past it, that user is `rate_limited` for `PIN_GUESS_BLOCK_SECONDS`.', schema: rate },
  PIN_GUESS_RATE_USER_IP: { default: '10/300', doc: 'Wrong PINs per user from one client address, `<points>/<seconds>`; past it, that user is `rate_limited` at that address for `PIN_GUESS_BLOCK_SECONDS`.', schema: rate },
  PIN_GUESS_BLOCK_SECONDS: { default: '900', doc: 'Block after a PIN guess limit is exceeded, seconds.', schema: int(1, 7 * 86_400) },
  ROOM_CREATE_RATE_USER: { default: '10/60', doc: 'Room creations per user, `<points>/<seconds>`.', schema: rate },
  ROOM_MAX_MEMBERS_DEFAULT: { default: '100', doc: 'Member limit of a room created without `maxMembers`.', schema: int(2, 10_000) },
  ROOM_WAITING_MAX: { default: '500', doc: 'Users who may wait at once in one room\'s waiting room (approval mode); past it, `room:join` answers `room_full`.', schema: int(1, 100_000) },
  ROOM_WAITING_TTL_SECONDS: { default: '3600', doc: 'How long a waiting room (approval mode) is kept after its latest arrival, seconds; waiting users not admitted or denied by then must join again.', schema: int(60, 7 * 86_400) },
  ROOM_MAX_MEMBERS_CAP: { default: '1000', doc: 'Largest `maxMembers` a host may ask for (at most 10000); more is `bad_request`.', schema: int(2, 10_000) },
  ROOM_HOST_GRACE_MS: { default: '60000', doc: 'Time a host who dropped has to come back before the room ends by itself, ms.', schema: int(100, 86_400_000) },
  ROOM_SWEEP_INTERVAL_MS: { default: '1000', doc: 'How often every node looks for rooms whose host grace ran out, ms.', schema: int(50, 60_000) },
  PRESENCE_HEARTBEAT_MS: { default: '5000', doc: 'How often a node refreshes its presence heartbeat, sweeps dead nodes and renews its rooms\' PINs, ms.', schema: int(50, 60_000) },
  PRESENCE_BATCH_MS: { default: '100', doc: 'Presence changes of one room are coalesced over this window into one `room:presence` per node, ms. In rooms above `ROOM_ROSTER_BROADCAST_MAX` the counts for members, and the aggregated membership entries, go out once per this × ⌈size / `ROOM_ROSTER_BROADCAST_MAX`⌉. See [rooms.md](rooms.md#coalescing-and-pacing-room-broadcaststs).', schema: int(10, 10_000) },
  ROOM_ROSTER_BROADCAST_MAX: { default: '200', doc: 'Room size (users online, for presence; members, for the feed) above which members get presence counts only (the host still gets every change) and joins and leaves become one aggregated feed entry (`members.joined`, `members.left`) per window.', schema: int(1, 100_000) },
  PRESENCE_NODE_TIMEOUT_MS: { default: '15000', doc: 'A node silent this long is dead; its members go offline within this plus one heartbeat, ms. At least twice the heartbeat.', schema: int(100, 120_000) },
  FEED_ROOM_MAXLEN: { default: '10000', doc: 'Approximate cap of one room\'s feed stream (`XADD MAXLEN ~`), entries; older entries are served from the PostgreSQL archive, which reads this stream, so a room\'s archive lag must stay below it.', schema: int(10, 10_000_000) },
  FEED_ROOM_TTL_SECONDS: { default: '604800', doc: 'A room\'s feed stream and epoch expire after this long without an entry, seconds.', schema: int(60, 366 * 86_400) },
  FEED_GLOBAL_MAXLEN: { default: '100000', doc: 'Approximate cap of the global feed stream (every room\'s entries, copied by the archive worker for the admins\' `global` feed), entries.', schema: int(100, 100_000_000) },
  FEED_SYSTEM_MAXLEN: { default: '10000', doc: 'Approximate cap of the system log stream, entries.', schema: int(10, 10_000_000) },
  FEED_APPEND_WAIT_REPLICAS: { default: '0', doc: 'Replicas a room feed entry must reach (Redis `WAIT`, on the entry\'s master) before a publish is acknowledged. `0`: acknowledged once the master has it, and a failover can lose the last acknowledged entries; `1`: a master killed with -9 loses no acknowledged entry, at the cost measured in [scaling.md](scaling.md#what-each-redis-setup-promises).', schema: int(0, 10) },
  FEED_APPEND_WAIT_TIMEOUT_MS: { default: '1000', doc: 'Longest a publish waits for `FEED_APPEND_WAIT_REPLICAS`, ms; short of them it answers `unavailable` (the entry is stored; a retry with the same `clientMsgId` is acknowledged once replicated, never stored twice).', schema: int(10, 60_000) },
  FEED_IDEMPOTENCY_TTL_SECONDS: { default: '86400', doc: 'How long a `clientMsgId` is remembered per user and room, seconds.', schema: int(1, 30 * 86_400) },
  FEED_REPLAY_MAX: { default: '10000', doc: 'Most entries one `feed:subscribe` replays (from the stream and the archive together); a longer gap answers `recovered: false` and replays nothing.', schema: int(1, 1_000_000) },
  FEED_CHECK_INTERVAL_MS: { default: '5000', doc: 'A feed a node follows whose live channel heard nothing this long has its position checked (one `HMGET`); a lost live message is repaired within this, ms.', schema: int(100, 600_000) },
  FEED_ADMIN_USERS: { default: '', doc: 'Comma-separated user ids (UUIDs) of the administrators: the `global` and `system` feeds and `/admin/overview`. Ids only: a username is refused at start-up, since anyone could register it. Default none.', schema: adminIds },
  FEED_API_KEY: { doc: 'Service API key (at least 16 characters) for `POST /api/rooms/:roomId/events` (header `x-api-key`). Unset: the route answers 404.', schema: z.string().trim().min(16).max(512) },
  FEED_ARCHIVE_ENABLED: { default: 'true', doc: 'Run the feed archive worker (Redis Stream to PostgreSQL) on this node.', schema: bool },
  FEED_ARCHIVE_BATCH: { default: '200', doc: 'Entries the archive worker reads from one room per round, and rows per `INSERT`.', schema: int(1, 10_000) },
  FEED_ARCHIVE_BLOCK_MS: { default: '1000', doc: 'Longest an idle archive worker waits before looking for rooms to archive again, ms.', schema: int(10, 60_000) },
  FEED_ARCHIVE_DELAY_MS: { default: '1000', doc: 'A room\'s new entries are archived this long after the first of them, so that a busy room\'s entries go to PostgreSQL in one visit (the archive\'s lag, and the global feed\'s), ms.', schema: int(0, 60_000) },
  FEED_ARCHIVE_CLAIM_IDLE_MS: { default: '30000', doc: 'A room\'s archive lease lasts this long (a dead worker\'s rooms are taken over after it), and one node sweeps open rooms for lost archive hints this often, ms.', schema: int(100, 3_600_000) },
  FEED_ARCHIVE_RETENTION_DAYS: { default: '30', doc: 'Days the PostgreSQL archive keeps: its day partitions wholly older are dropped. History and resume past it answer without those entries (`truncated`, `recovered: false`).', schema: int(1, 3650) },
  FEED_ARCHIVE_DEAD_LETTER_MAXLEN: { default: '10000', doc: 'Approximate cap of the dead-letter stream, where entries PostgreSQL refused are kept, entries.', schema: int(10, 10_000_000) },
  METRICS_TOKEN: { doc: 'Bearer token (at least 16 characters) that `GET /metrics` requires (`Authorization: Bearer <token>`). Unset: open in development and test, not served (404) in production.', schema: z.string().trim().min(16).max(512) },
  SYSTEM_LOG_RATE: { default: '30/60', doc: 'Internal-error and dependency (Redis, PostgreSQL down/up) entries one node writes to the system log, `<points>/<seconds>`; the rest are counted into the next entry (`suppressed`).', schema: rate },
  LOG_LEVEL: { default: 'info', doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.', schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) },
} satisfies Record<string, Variable>;

export type VariableName = keyof typeof VARIABLES;
type Parsed = { [K in VariableName]: z.output<(typeof VARIABLES)[K]['schema']> | undefined };

/** Secrets that may instead be given as a file, `<NAME>_FILE` (declared in `VARIABLES` too); their values are never printed. */
export const FILE_VARIABLES = ['AUTH_SIGNING_KEY'] as const satisfies readonly VariableName[];

/**
 * Load and validate configuration from `env` (default `process.env`). Throws
 * `ConfigError` listing every problem. The only I/O: reading the files that
 * `FILE_VARIABLES`' `<NAME>_FILE` name, through `readSecretFile`.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
  readSecretFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): Config {
  const problems: string[] = [];
  const parsed = {} as Record<string, unknown>;
  env = withSecretFiles(env, readSecretFile, problems);
  const secret = new Set<string>(FILE_VARIABLES);
  for (const [name, variable] of Object.entries(VARIABLES) as [VariableName, Variable][]) {
    const given = env[name];
    const raw = given === undefined || given === '' ? variable.default : given;
    if (raw === undefined) continue;
    const result = variable.schema.safeParse(raw);
    if (result.success) parsed[name] = result.data;
    else problems.push(`${secret.has(name) ? name : `${name}=${JSON.stringify(raw)}`}: ${result.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const v = parsed as Parsed;
  const nodeEnv = v.NODE_ENV as NodeEnv;
  const production = nodeEnv === 'production';
  const config: Config = {
    env: nodeEnv,
    http: {
      port: v.PORT!,
      host: v.HOST!,
      corsOrigins: v.CORS_ORIGINS!,
      trustProxy: v.TRUST_PROXY!,
      bodyLimitBytes: v.HTTP_BODY_LIMIT_BYTES!,
      shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS!,
      headersTimeoutMs: v.HTTP_HEADERS_TIMEOUT_MS!,
    },
    socket: {
      maxPayloadBytes: v.WS_MAX_PAYLOAD_BYTES!,
      pingIntervalMs: v.WS_PING_INTERVAL_MS!,
      pingTimeoutMs: v.WS_PING_TIMEOUT_MS!,
      eventsPerSecond: v.SOCKET_EVENTS_PER_SECOND!,
      disconnectEventsPerSecond: v.SOCKET_DISCONNECT_EVENTS_PER_SECOND ?? 10 * v.SOCKET_EVENTS_PER_SECOND!,
      maxConnectionsPerAddress: v.SOCKET_MAX_CONNECTIONS_PER_ADDRESS!,
      connectTimeoutMs: v.SOCKET_CONNECT_TIMEOUT_MS!,
      adapter: v.SOCKET_ADAPTER ?? (v.REDIS_CLUSTER_NODES ? 'sharded' : 'classic'),
      maxBufferedBytes: v.SOCKET_MAX_BUFFERED_BYTES!,
      perUser: {
        eventsPerSecond: v.USER_EVENTS_PER_SECOND!,
        feedPublishPerRoom: v.FEED_PUBLISH_RATE_USER_ROOM!,
        roomSignal: v.ROOM_SIGNAL_RATE_USER!,
      },
    },
    cluster: { workers: v.WORKERS! },
    redis: {
      url: v.REDIS_URL!,
      keyPrefix: v.KEY_PREFIX!,
      commandTimeoutMs: v.REDIS_COMMAND_TIMEOUT_MS!,
      connectTimeoutMs: v.REDIS_CONNECT_TIMEOUT_MS!,
      clusterNodes: v.REDIS_CLUSTER_NODES,
    },
    db: {
      url: v.DATABASE_URL!,
      poolMax: v.DB_POOL_MAX!,
      createIfMissing: v.DB_CREATE_IF_MISSING ?? !production,
      statementTimeoutMs: v.DB_STATEMENT_TIMEOUT_MS!,
      connectTimeoutMs: v.DB_CONNECT_TIMEOUT_MS!,
    },
    log: { level: v.LOG_LEVEL! },
    observability: { metricsToken: v.METRICS_TOKEN, systemLogRate: v.SYSTEM_LOG_RATE! },
    cache: {
      userTtlSeconds: v.CACHE_USER_TTL_SECONDS!,
      roomTtlSeconds: v.CACHE_ROOM_TTL_SECONDS!,
      negativeTtlSeconds: v.CACHE_NEGATIVE_TTL_SECONDS!,
      hardStaleSeconds: v.CACHE_HARD_STALE_SECONDS!,
      lockTtlMs: v.CACHE_LOCK_TTL_MS!,
      lockWaitMs: v.CACHE_LOCK_WAIT_MS!,
    },
    feed: {
      roomMaxLen: v.FEED_ROOM_MAXLEN!,
      roomTtlSeconds: v.FEED_ROOM_TTL_SECONDS!,
      globalMaxLen: v.FEED_GLOBAL_MAXLEN!,
      systemMaxLen: v.FEED_SYSTEM_MAXLEN!,
      idempotencyTtlSeconds: v.FEED_IDEMPOTENCY_TTL_SECONDS!,
      appendWaitReplicas: v.FEED_APPEND_WAIT_REPLICAS!,
      appendWaitTimeoutMs: v.FEED_APPEND_WAIT_TIMEOUT_MS!,
      replayMax: v.FEED_REPLAY_MAX!,
      checkIntervalMs: v.FEED_CHECK_INTERVAL_MS!,
      apiKey: v.FEED_API_KEY,
      archive: {
        enabled: v.FEED_ARCHIVE_ENABLED!,
        batchSize: v.FEED_ARCHIVE_BATCH!,
        blockMs: v.FEED_ARCHIVE_BLOCK_MS!,
        delayMs: v.FEED_ARCHIVE_DELAY_MS!,
        claimIdleMs: v.FEED_ARCHIVE_CLAIM_IDLE_MS!,
        retentionDays: v.FEED_ARCHIVE_RETENTION_DAYS!,
        deadLetterMaxLen: v.FEED_ARCHIVE_DEAD_LETTER_MAXLEN!,
      },
    },
    rooms: {
      pinDigits: v.PIN_DIGITS!,
      pinFallbackDigits: v.PIN_FALLBACK_DIGITS!,
      pinClaimAttempts: v.PIN_CLAIM_ATTEMPTS!,
      pinTtlSeconds: v.PIN_TTL_SECONDS!,
      pinQuarantineSeconds: v.PIN_QUARANTINE_SECONDS!,
      guessRateIp: v.PIN_GUESS_RATE_IP!,
      guessRateUser: v.PIN_GUESS_RATE_USER!,
      guessRateUserIp: v.PIN_GUESS_RATE_USER_IP!,
      guessBlockSeconds: v.PIN_GUESS_BLOCK_SECONDS!,
      createRateUser: v.ROOM_CREATE_RATE_USER!,
      maxMembersDefault: v.ROOM_MAX_MEMBERS_DEFAULT!,
      maxMembersCap: v.ROOM_MAX_MEMBERS_CAP!,
      waitingMax: v.ROOM_WAITING_MAX!,
      waitingTtlSeconds: v.ROOM_WAITING_TTL_SECONDS!,
      hostGraceMs: v.ROOM_HOST_GRACE_MS!,
      sweepIntervalMs: v.ROOM_SWEEP_INTERVAL_MS!,
      presenceHeartbeatMs: v.PRESENCE_HEARTBEAT_MS!,
      presenceNodeTimeoutMs: v.PRESENCE_NODE_TIMEOUT_MS!,
      presenceBatchMs: v.PRESENCE_BATCH_MS!,
      rosterBroadcastMax: v.ROOM_ROSTER_BROADCAST_MAX!,
    },
    auth: {
      issuer: v.AUTH_ISSUER!,
      audience: v.AUTH_AUDIENCE!,
      accessTokenTtlSeconds: v.ACCESS_TOKEN_TTL_SECONDS!,
      refreshTokenTtlSeconds: v.REFRESH_TOKEN_TTL_SECONDS!,
      sessionMaxAgeSeconds: v.SESSION_MAX_AGE_SECONDS!,
      refreshReuseGraceSeconds: v.REFRESH_REUSE_GRACE_SECONDS!,
      clockToleranceSeconds: v.AUTH_CLOCK_TOLERANCE_SECONDS!,
      tokenCacheSize: v.AUTH_TOKEN_CACHE_SIZE!,
      signingKey: v.AUTH_SIGNING_KEY as JwkInput | undefined,
      verifyKeys: (v.AUTH_VERIFY_KEYS ?? []) as JwkInput[],
      dataDir: v.AUTH_DATA_DIR!,
      expiringNoticeSeconds: v.AUTH_EXPIRING_NOTICE_SECONDS!,
      expiryGraceMs: v.AUTH_EXPIRY_GRACE_MS!,
      adminUserIds: v.FEED_ADMIN_USERS ?? [],
      sessionMaxSockets: v.SESSION_MAX_SOCKETS!,
      sessionRecheckMs: v.SESSION_RECHECK_MS!,
      guestRetentionDays: v.GUEST_RETENTION_DAYS!,
      guestSweepIntervalSeconds: v.GUEST_SWEEP_INTERVAL_SECONDS!,
      loginBackoffAfter: v.AUTH_RATE_LOGIN_USER!,
      loginBackoffMaxSeconds: v.AUTH_LOGIN_BACKOFF_MAX_SECONDS!,
      loginBackoffFirstMs: v.AUTH_LOGIN_BACKOFF_FIRST_MS!,
      hashing: {
        concurrency: v.AUTH_HASH_CONCURRENCY ?? Math.max(1, Math.floor(availableParallelism() / 2)),
        queue: v.AUTH_HASH_QUEUE!,
        waitMs: v.AUTH_HASH_WAIT_MS!,
      },
      rateLimits: {
        loginUserIp: v.AUTH_RATE_LOGIN_USER_IP!,
        loginIp: v.AUTH_RATE_LOGIN_IP!,
        registerIp: v.AUTH_RATE_REGISTER_IP!,
        guestIp: v.AUTH_RATE_GUEST_IP!,
      },
    },
  };

  const rooms = config.rooms;
  if (rooms.pinFallbackDigits !== 0 && rooms.pinFallbackDigits <= rooms.pinDigits) problems.push('PIN_FALLBACK_DIGITS: must be 0 or more than PIN_DIGITS');
  if (rooms.maxMembersDefault > rooms.maxMembersCap) problems.push('ROOM_MAX_MEMBERS_DEFAULT: must not exceed ROOM_MAX_MEMBERS_CAP');
  if (rooms.presenceNodeTimeoutMs < 2 * rooms.presenceHeartbeatMs) problems.push('PRESENCE_NODE_TIMEOUT_MS: must be at least twice PRESENCE_HEARTBEAT_MS');
  if (config.socket.disconnectEventsPerSecond < config.socket.eventsPerSecond) problems.push('SOCKET_DISCONNECT_EVENTS_PER_SECOND: must not be below SOCKET_EVENTS_PER_SECOND');
  if (config.redis.clusterNodes && config.socket.adapter === 'classic') problems.push('SOCKET_ADAPTER=classic: not with REDIS_CLUSTER_NODES (every classic PUBLISH goes to every master of the cluster); use sharded, the default in cluster mode');
  if (problems.length > 0) throw new ConfigError(problems);

  if (production) {
    const isSet = (name: VariableName) => env[name] !== undefined && env[name] !== '';
    if (!isSet('CORS_ORIGINS') || config.http.corsOrigins.includes('*')) {
      problems.push('CORS_ORIGINS: production needs an explicit list of allowed origins (not `*`)');
    }
    if (!isSet('REDIS_URL') && !config.redis.clusterNodes) problems.push('REDIS_URL: production needs an explicit Redis URL (or REDIS_CLUSTER_NODES)');
    if (!isSet('DATABASE_URL')) problems.push('DATABASE_URL: production needs an explicit PostgreSQL URL');
    if (!config.auth.signingKey) problems.push('AUTH_SIGNING_KEY: production needs a signing key (a private Ed25519 JWK, or AUTH_SIGNING_KEY_FILE naming a file with one); it never generates one');
    if (problems.length > 0) throw new ConfigError(problems);
  }
  return deepFreeze(config);
}

/** `env` with each `<NAME>_FILE` of `FILE_VARIABLES` read into `<NAME>`; setting both, or an unreadable file, is a problem. */
function withSecretFiles(
  env: Readonly<Record<string, string | undefined>>,
  read: (path: string) => string,
  problems: string[],
): Readonly<Record<string, string | undefined>> {
  let out = env;
  for (const name of FILE_VARIABLES) {
    const file = env[`${name}_FILE`]?.trim();
    if (!file) continue;
    if (env[name]) {
      problems.push(`${name} and ${name}_FILE are both set: set one of them`);
      continue;
    }
    try {
      out = { ...out, [name]: read(file).trim() };
    } catch (err) {
      problems.push(`${name}_FILE=${JSON.stringify(file)}: cannot be read (${(err as { code?: string }).code ?? (err as Error).message})`);
    }
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** `scheme://user:****@host/...`: a URL safe to print. */
export function redactUrl(value: string): string {
  try {
    const u = new URL(value);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}
