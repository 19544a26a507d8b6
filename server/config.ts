/**
 * The only module that reads the environment. `loadConfig(env)` is pure: it
 * validates every variable, reports all problems in one `ConfigError`, and
 * returns a frozen `Config`. Defaults make `npm start` work on a machine with
 * a local Redis and PostgreSQL; `NODE_ENV=production` refuses those defaults
 * where they would be insecure.
 *
 * Every setting is declared once, in `SETTINGS`: its variable, default,
 * meaning and schema, at the place in the config where its value goes. The
 * `Config` type is inferred from that tree, `VARIABLES` lists its variables,
 * and docs/configuration.md is written from them by `npm run docs` (links in a
 * `doc` are relative to docs/); a test fails when that page is stale.
 */
import proxyaddr from '@fastify/proxy-addr';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';

/**
 * Which hops of `X-Forwarded-For` are trusted proxies: the nearest `hops`
 * (the peer is hop 0), or every hop whose address is in `cidrs`. The client
 * address is the rightmost untrusted one. `{ hops: 0 }` ignores the header.
 */
export type TrustProxy = { hops: number } | { cidrs: readonly string[] };

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

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** One setting; where its value goes in `Config` is its place in `SETTINGS`. */
interface Setting {
  /** The environment variable it is read from (upper case; its literal type is kept, so `VariableName` lists them all). */
  env: Uppercase<string>;
  /** Default as it would be written in the environment. */
  default?: string;
  /** Meaning, for docs/configuration.md (Markdown; links relative to docs/). */
  doc: string;
  /** From the variable's text to the value; its messages are the ones `ConfigError` lists. */
  schema: z.ZodType<unknown, string>;
  /**
   * Instead of `default`: the value when the variable is unset, computed from
   * the parsed values of the others (by variable name). docs/configuration.md
   * then says "(see meaning)", so `doc` says what it is. With neither, an
   * unset setting is `undefined`.
   */
  defaultFrom?: (values: Readonly<Record<string, unknown>>) => unknown;
  /** A secret that may instead be given as a file: the meaning of `<env>_FILE`, which names it. */
  secretFile?: string;
}

interface Settings {
  readonly [key: string]: Setting | Settings;
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
/** A private key (with `d`). */
const privateJwk: z.ZodType<JwkInput, string> = jsonOf(jwkSchema.refine((k) => k.d !== undefined, 'a private key (with `d`)'));
/** Public keys, each with a `kid`. */
const publicJwks: z.ZodType<readonly JwkInput[], string> = jsonOf(z.array(jwkSchema.refine((k) => k.kid !== undefined, 'each key needs a `kid`')).max(16));
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
).readonly();
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
).readonly();
const origins = list.pipe(
  z.array(z.union([z.literal('*'), url(['http:', 'https:']).refine((v) => new URL(v).origin === v, 'an origin has no path: scheme://host[:port]')])),
).readonly();

/** Every setting pinroom reads, at its place in `Config`. */
const SETTINGS = {
  env: { env: 'NODE_ENV', default: 'development', doc: '`development`, `test` or `production`; production refuses insecure defaults.', schema: z.enum(['development', 'test', 'production']) },
  http: {
    port: { env: 'PORT', default: '3000', doc: 'HTTP and Socket.IO port (0 picks a free port).', schema: int(0, 65535) },
    host: { env: 'HOST', default: '0.0.0.0', doc: 'Address to listen on.', schema: z.string().trim().min(1) },
    corsOrigins: { env: 'CORS_ORIGINS', default: '*', doc: 'Comma-separated browser origins allowed for HTTP and the Socket.IO handshake (checked for WebSocket and polling). `*` allows any and is refused in production.', schema: origins },
    trustProxy: { env: 'TRUST_PROXY', default: 'false', doc: 'Proxies whose `X-Forwarded-For` is believed: a hop count (`1` behind one nginx) or a comma-separated list of their addresses or CIDRs (`10.0.0.0/8,fd00::/8`); the client address is the rightmost untrusted entry. `false` (or `0`) ignores the header; `true` is refused (it would let a client choose its address). See [security.md](security.md#client-addresses).', schema: trustProxy },
    bodyLimitBytes: { env: 'HTTP_BODY_LIMIT_BYTES', default: '16384', doc: 'Largest HTTP request body, bytes.', schema: int(1024, 10 * 1024 * 1024) },
    shutdownTimeoutMs: { env: 'SHUTDOWN_TIMEOUT_MS', default: '10000', doc: 'Graceful shutdown deadline, ms; the process exits when it passes.', schema: int(100, 120_000) },
    headersTimeoutMs: { env: 'HTTP_HEADERS_TIMEOUT_MS', default: '10000', doc: 'Request headers (including the WebSocket upgrade) must arrive within this, ms; slower connections are closed (slow-header attacks).', schema: int(500, 30_000) },
  },
  socket: {
    maxPayloadBytes: { env: 'WS_MAX_PAYLOAD_BYTES', default: '65536', doc: 'Largest Socket.IO frame (Engine.IO `maxHttpBufferSize`), bytes; larger frames close the connection.', schema: int(1024, 100 * 1024 * 1024) },
    pingIntervalMs: { env: 'WS_PING_INTERVAL_MS', default: '25000', doc: 'Engine.IO heartbeat interval, ms.', schema: int(1000, 300_000) },
    pingTimeoutMs: { env: 'WS_PING_TIMEOUT_MS', default: '20000', doc: 'Engine.IO heartbeat timeout, ms.', schema: int(1000, 300_000) },
    eventsPerSecond: { env: 'SOCKET_EVENTS_PER_SECOND', default: '20', doc: 'Events one socket may send per second (all events together); more get `rate_limited`.', schema: int(1, 1_000_000) },
    disconnectEventsPerSecond: { env: 'SOCKET_DISCONNECT_EVENTS_PER_SECOND', doc: 'Events (of any name, handled or not) one socket may send in one second before it is disconnected as a flood (`server:error` `rate_limited`, then a server disconnect). Default 10 × `SOCKET_EVENTS_PER_SECOND`.', schema: int(1, 100_000_000), defaultFrom: (values) => 10 * (values.SOCKET_EVENTS_PER_SECOND as number) },
    maxConnectionsPerAddress: { env: 'SOCKET_MAX_CONNECTIONS_PER_ADDRESS', default: '10000', doc: 'Open Socket.IO connections one client address may hold on one node (one worker); past it the handshake is refused with HTTP 403. High by default so benchmarks from 127.0.0.1 fit; lower it in production (a classroom behind one NAT needs one per pupil).', schema: int(1, 10_000_000) },
    connectTimeoutMs: { env: 'SOCKET_CONNECT_TIMEOUT_MS', default: '10000', doc: 'An Engine.IO connection that has not joined the namespace (sent its Socket.IO CONNECT) within this is closed, ms.', schema: int(100, 120_000) },
    maxBufferedBytes: { env: 'SOCKET_MAX_BUFFERED_BYTES', default: '1048576', doc: 'Bytes written to one socket and not yet taken by the client (Engine.IO and WebSocket buffers) past which its feed delivery ends: the transport is closed and the client resumes with `since` ([feed.md](feed.md#bounded-memory-per-subscriber)). Replays wait for the socket below a quarter of it before sending more.', schema: int(16_384, 1024 * 1024 * 1024) },
    perUser: {
      eventsPerSecond: { env: 'USER_EVENTS_PER_SECOND', default: '50', doc: 'Events one user may send per second over all their sockets on every node (counted in Redis); more get `rate_limited`.', schema: int(1, 100_000_000) },
      feedPublishPerRoom: { env: 'FEED_PUBLISH_RATE_USER_ROOM', default: '20/10', doc: '`feed:publish` per user per room over all their sockets on every node, `<points>/<seconds>`; more get `rate_limited`.', schema: rate },
      roomSignal: { env: 'ROOM_SIGNAL_RATE_USER', default: '20/1', doc: '`room:signal` per user over all their sockets on every node, `<points>/<seconds>`; more get `server:error` `rate_limited`.', schema: rate },
    },
    adapter: { env: 'SOCKET_ADAPTER', doc: 'Socket.IO Redis adapter between nodes: `classic` (pub/sub, one pattern subscription per node) or `sharded` (Redis 7 sharded pub/sub, one channel per room). Default `classic`; `sharded`, and only that, with `REDIS_CLUSTER_NODES` (a classic PUBLISH reaches every master of a cluster). Measured in `bench/scenarios/adapter.ts`; see [scaling.md](scaling.md).', schema: z.enum(['classic', 'sharded']), defaultFrom: (values) => (values.REDIS_CLUSTER_NODES ? 'sharded' : 'classic') },
  },
  cluster: {
    workers: { env: 'WORKERS', default: '1', doc: 'Worker processes `npm start` runs on this machine, each a full node (node:cluster, `@socket.io/sticky` for long-polling, the Redis adapter between them); `1` runs one process.', schema: int(1, 256) },
  },
  redis: {
    url: { env: 'REDIS_URL', default: 'redis://127.0.0.1:6379', doc: 'Redis server URL (`redis://` or `rediss://`).', schema: url(['redis:', 'rediss:']) },
    clusterNodes: { env: 'REDIS_CLUSTER_NODES', doc: 'Comma-separated `host:port` seed nodes of a Redis Cluster (any few masters or replicas; the rest are discovered). Set, pinroom runs in cluster mode: every connection follows the cluster\'s slots, MOVED/ASK redirections and failovers, and `SOCKET_ADAPTER` defaults to (and must be) `sharded`. Credentials and TLS come from `REDIS_URL`\'s user, password and `rediss:` scheme. Unset: the single Redis of `REDIS_URL`. See [scaling.md](scaling.md#redis-cluster).', schema: clusterNodes },
    keyPrefix: { env: 'KEY_PREFIX', default: 'pinroom:', doc: 'Prefix of every Redis key and of the Socket.IO adapter channel.', schema: z.string().min(1).max(64).regex(/^[A-Za-z0-9:_.-]+$/, 'letters, digits and ":_.-" only') },
    commandTimeoutMs: { env: 'REDIS_COMMAND_TIMEOUT_MS', default: '2000', doc: 'A Redis command slower than this fails with `unavailable`, ms.', schema: int(50, 60_000) },
    connectTimeoutMs: { env: 'REDIS_CONNECT_TIMEOUT_MS', default: '5000', doc: 'How long start-up waits for Redis, ms.', schema: int(100, 120_000) },
  },
  db: {
    url: { env: 'DATABASE_URL', default: 'postgres://postgres@127.0.0.1:5432/pinroom', doc: 'PostgreSQL URL.', schema: url(['postgres:', 'postgresql:']) },
    poolMax: { env: 'DB_POOL_MAX', default: '10', doc: 'PostgreSQL pool size per process.', schema: int(1, 500) },
    createIfMissing: { env: 'DB_CREATE_IF_MISSING', doc: 'Create the database at start-up when missing. Default `true`, `false` in production.', schema: bool, defaultFrom: (values) => values.NODE_ENV !== 'production' },
    statementTimeoutMs: { env: 'DB_STATEMENT_TIMEOUT_MS', default: '5000', doc: 'PostgreSQL statement timeout, ms.', schema: int(100, 600_000) },
    connectTimeoutMs: { env: 'DB_CONNECT_TIMEOUT_MS', default: '5000', doc: 'How long start-up waits for PostgreSQL, ms.', schema: int(100, 120_000) },
  },
  cache: {
    userTtlSeconds: { env: 'CACHE_USER_TTL_SECONDS', default: '300', doc: 'Fresh TTL of a cached public user profile, seconds (±10% jitter).', schema: int(1, 86_400) },
    roomTtlSeconds: { env: 'CACHE_ROOM_TTL_SECONDS', default: '60', doc: 'Fresh TTL of cached room state, seconds (±10% jitter).', schema: int(1, 86_400) },
    negativeTtlSeconds: { env: 'CACHE_NEGATIVE_TTL_SECONDS', default: '30', doc: 'Fresh TTL of a cached "not found", seconds (±10% jitter); creating the row clears it.', schema: int(1, 3600) },
    hardStaleSeconds: { env: 'CACHE_HARD_STALE_SECONDS', default: '300', doc: 'How long past its TTL a cached entry may still be served, marked `stale`, while PostgreSQL is unreachable, seconds; `0` never serves stale. Auth, ban and revocation checks never use stale data.', schema: int(0, 86_400) },
    lockTtlMs: { env: 'CACHE_LOCK_TTL_MS', default: '2000', doc: 'TTL of the cross-process cache fill lock (one node loads a missing entry while the others wait), ms.', schema: int(50, 60_000) },
    lockWaitMs: { env: 'CACHE_LOCK_WAIT_MS', default: '1000', doc: 'How long a cache read waits for another node\'s fill before querying PostgreSQL itself, ms.', schema: int(0, 60_000) },
  },
  auth: {
    issuer: { env: 'AUTH_ISSUER', default: 'pinroom', doc: '`iss` of access tokens; verification requires it.', schema: z.string().trim().min(1).max(256) },
    audience: { env: 'AUTH_AUDIENCE', default: 'pinroom', doc: '`aud` of access tokens; verification requires it.', schema: z.string().trim().min(1).max(256) },
    accessTokenTtlSeconds: { env: 'ACCESS_TOKEN_TTL_SECONDS', default: '600', doc: 'Access token lifetime, seconds.', schema: int(2, 86_400) },
    refreshTokenTtlSeconds: { env: 'REFRESH_TOKEN_TTL_SECONDS', default: '2592000', doc: 'Lifetime of one refresh token (30 days), seconds; each rotation issues a fresh one.', schema: int(60, 366 * 86_400) },
    sessionMaxAgeSeconds: { env: 'SESSION_MAX_AGE_SECONDS', default: '7776000', doc: 'Absolute lifetime of a session (refresh-token family, 90 days), seconds; rotation never extends it.', schema: int(60, 3 * 366 * 86_400) },
    refreshReuseGraceSeconds: { env: 'REFRESH_REUSE_GRACE_SECONDS', default: '5', doc: 'A refresh token presented again within this many seconds of its own rotation answers `conflict` instead of revoking the session (concurrent tabs); 0 disables. At most 10.', schema: int(0, 10) },
    clockToleranceSeconds: { env: 'AUTH_CLOCK_TOLERANCE_SECONDS', default: '5', doc: 'Clock skew accepted when verifying access tokens, seconds (at most 30).', schema: int(0, 30) },
    tokenCacheSize: { env: 'AUTH_TOKEN_CACHE_SIZE', default: '10000', doc: 'Access tokens a node remembers having verified (by SHA-256, until their `exp`; about 0.2 KB each), so a reconnect with the same token skips the signature check; the session check still runs. `0` disables. See [auth.md](auth.md#the-verified-token-cache).', schema: int(0, 1_000_000) },
    signingKey: { env: 'AUTH_SIGNING_KEY', doc: 'Private Ed25519 JWK (JSON, `kid` optional) that signs access tokens. Required in production; in development a key pair is generated once into `AUTH_DATA_DIR`.', schema: privateJwk, secretFile: 'Path of a file holding `AUTH_SIGNING_KEY` (the `_FILE` convention of container secrets: Docker and Kubernetes mount secrets as files); read once at start-up, surrounding whitespace ignored. Set one of the two, not both. `npm run keygen -- <dir>` (compose.yaml\'s `keygen` service) writes one.' },
    verifyKeys: { env: 'AUTH_VERIFY_KEYS', doc: 'JSON array of older public Ed25519 JWKs (each with `kid`) still accepted during a key rotation. Default none.', schema: publicJwks, defaultFrom: () => [] },
    dataDir: { env: 'AUTH_DATA_DIR', default: '.data', doc: 'Folder (git-ignored) of the generated development key pair.', schema: z.string().trim().min(1) },
    expiringNoticeSeconds: { env: 'AUTH_EXPIRING_NOTICE_SECONDS', default: '60', doc: '`auth:expiring` is sent this many seconds before a socket\'s access token expires.', schema: int(0, 3600) },
    expiryGraceMs: { env: 'AUTH_EXPIRY_GRACE_MS', default: '5000', doc: 'A socket whose access token expired and was not refreshed is disconnected (`token_expired`) after this grace, ms.', schema: int(0, 60_000) },
    rateLimits: {
      loginUserIp: { env: 'AUTH_RATE_LOGIN_USER_IP', default: '10/900', doc: 'Login attempts per username and client address, `<points>/<seconds>`; a successful login resets it.', schema: rate },
      loginIp: { env: 'AUTH_RATE_LOGIN_IP', default: '100/900', doc: 'Login attempts per client address, `<points>/<seconds>`.', schema: rate },
      registerIp: { env: 'AUTH_RATE_REGISTER_IP', default: '20/3600', doc: 'Account registrations per client address, `<points>/<seconds>`.', schema: rate },
      guestIp: { env: 'AUTH_RATE_GUEST_IP', default: '300/600', doc: 'Guest sign-ins per client address (a classroom shares one), `<points>/<seconds>`.', schema: rate },
    },
    loginBackoffAfter: { env: 'AUTH_RATE_LOGIN_USER', default: '10/900', doc: 'Failed logins per account from any address, `<points>/<seconds>`; past it each further attempt must wait a backoff doubling from `AUTH_LOGIN_BACKOFF_FIRST_MS` (up to `AUTH_LOGIN_BACKOFF_MAX_SECONDS`), else `rate_limited`; a successful login resets it.', schema: rate },
    loginBackoffFirstMs: { env: 'AUTH_LOGIN_BACKOFF_FIRST_MS', default: '1000', doc: 'First wait of the per-account login backoff, ms; it doubles with every further failure.', schema: int(1, 3_600_000) },
    loginBackoffMaxSeconds: { env: 'AUTH_LOGIN_BACKOFF_MAX_SECONDS', default: '300', doc: 'Longest wait of the per-account login backoff, seconds.', schema: int(1, 86_400) },
    hashing: {
      concurrency: { env: 'AUTH_HASH_CONCURRENCY', doc: 'Password hashes (scrypt, 32 MiB each) computed at once on one node; the rest wait. Default half the CPU cores, at least 1.', schema: int(1, 256), defaultFrom: () => Math.max(1, Math.floor(availableParallelism() / 2)) },
      queue: { env: 'AUTH_HASH_QUEUE', default: '64', doc: 'Sign-ins (login, register) that may wait for a password-hash slot on one node; more are refused at once with `rate_limited`.', schema: int(0, 100_000) },
      waitMs: { env: 'AUTH_HASH_WAIT_MS', default: '10000', doc: 'How long a sign-in waits for a password-hash slot before `rate_limited`, ms (a class of 30 logging in at once fits).', schema: int(1, 60_000) },
    },
    guestRetentionDays: { env: 'GUEST_RETENTION_DAYS', default: '30', doc: 'Days a guest account lives: its session ends by then, and a periodic job removes the account (archived feed entries keep the display name).', schema: int(1, 3650) },
    guestSweepIntervalSeconds: { env: 'GUEST_SWEEP_INTERVAL_SECONDS', default: '3600', doc: 'How often each node removes guest accounts past `GUEST_RETENTION_DAYS`, seconds.', schema: int(1, 86_400) },
    sessionMaxSockets: { env: 'SESSION_MAX_SOCKETS', default: '10', doc: 'Sockets one session (one sign-in) may hold on one node; past it the handshake is refused with `rate_limited`.', schema: int(1, 1_000_000) },
    sessionRecheckMs: { env: 'SESSION_RECHECK_MS', default: '30000', doc: 'How often each node re-reads the state of its sockets\' sessions in batched Redis reads (1,000 sessions per read) and closes those revoked (a missed logout broadcast closes within this), ms.', schema: int(100, 3_600_000) },
    adminUserIds: { env: 'FEED_ADMIN_USERS', default: '', doc: 'Comma-separated user ids (UUIDs) of the administrators: the `global` and `system` feeds and `/admin/overview`. Ids only: a username is refused at start-up, since anyone could register it. Default none.', schema: adminIds },
  },
  rooms: {
    pinDigits: { env: 'PIN_DIGITS', default: '6', doc: 'Digits of a room PIN (3 to 10), drawn uniformly with crypto randomness.', schema: int(3, 10) },
    pinFallbackDigits: { env: 'PIN_FALLBACK_DIGITS', default: '7', doc: 'PIN length tried when `PIN_CLAIM_ATTEMPTS` draws at `PIN_DIGITS` all hit live PINs; `0` answers `pin_unavailable` instead.', schema: int(0, 10) },
    pinClaimAttempts: { env: 'PIN_CLAIM_ATTEMPTS', default: '8', doc: 'Random draws per PIN length before giving up on that length.', schema: int(1, 100) },
    pinTtlSeconds: { env: 'PIN_TTL_SECONDS', default: '7200', doc: 'TTL of a live PIN claim, seconds; renewed every heartbeat while the room has members online.', schema: int(30, 30 * 86_400) },
    pinQuarantineSeconds: { env: 'PIN_QUARANTINE_SECONDS', default: '300', doc: 'How long an ended room\'s PIN cannot be claimed again, seconds (stale clients cannot land in a newer room).', schema: int(0, 86_400) },
    guessRateIp: { env: 'PIN_GUESS_RATE_IP', default: '300/3600', doc: 'Wrong PINs (lookups and joins) per client address, all users together, `<points>/<seconds>`; past it, every PIN attempt from the address is `rate_limited` for `PIN_GUESS_BLOCK_SECONDS` or the limit\'s window, whichever is longer. Much higher than the per-user limits, so one pupil cannot lock out a classroom.', schema: rate },
    guessRateUser: { env: 'PIN_GUESS_RATE_USER', default: '30/3600', doc: 'Wrong PINs per user from any address, `<points>/<seconds>`; past it, that user is `rate_limited` for `PIN_GUESS_BLOCK_SECONDS` or the limit\'s window, whichever is longer.', schema: rate },
    guessRateUserIp: { env: 'PIN_GUESS_RATE_USER_IP', default: '10/300', doc: 'Wrong PINs per user from one client address, `<points>/<seconds>`; past it, that user is `rate_limited` at that address for `PIN_GUESS_BLOCK_SECONDS` or the limit\'s window, whichever is longer.', schema: rate },
    guessBlockSeconds: { env: 'PIN_GUESS_BLOCK_SECONDS', default: '900', doc: 'Block after a PIN guess limit is exceeded, seconds; a limit whose window is longer blocks for its window (a shorter block would hand out a fresh allowance early).', schema: int(1, 7 * 86_400) },
    createRateUser: { env: 'ROOM_CREATE_RATE_USER', default: '10/60', doc: 'Room creations per user, `<points>/<seconds>`.', schema: rate },
    maxMembersDefault: { env: 'ROOM_MAX_MEMBERS_DEFAULT', default: '100', doc: 'Member limit of a room created without `maxMembers`.', schema: int(2, 10_000) },
    waitingMax: { env: 'ROOM_WAITING_MAX', default: '500', doc: 'Users who may wait at once in one room\'s waiting room (approval mode); past it, `room:join` answers `room_full`.', schema: int(1, 100_000) },
    waitingTtlSeconds: { env: 'ROOM_WAITING_TTL_SECONDS', default: '3600', doc: 'How long a waiting room (approval mode) is kept after its latest arrival, seconds; waiting users not admitted or denied by then must join again.', schema: int(60, 7 * 86_400) },
    maxMembersCap: { env: 'ROOM_MAX_MEMBERS_CAP', default: '1000', doc: 'Largest `maxMembers` a host may ask for (at most 10000); more is `bad_request`.', schema: int(2, 10_000) },
    hostGraceMs: { env: 'ROOM_HOST_GRACE_MS', default: '60000', doc: 'Time a host who dropped has to come back before the room ends by itself, ms.', schema: int(100, 86_400_000) },
    sweepIntervalMs: { env: 'ROOM_SWEEP_INTERVAL_MS', default: '1000', doc: 'How often every node looks for rooms whose host grace ran out, ms.', schema: int(50, 60_000) },
    presenceHeartbeatMs: { env: 'PRESENCE_HEARTBEAT_MS', default: '5000', doc: 'How often a node refreshes its presence heartbeat, sweeps dead nodes and renews its rooms\' PINs, ms.', schema: int(50, 60_000) },
    presenceBatchMs: { env: 'PRESENCE_BATCH_MS', default: '100', doc: 'Presence changes of one room are coalesced over this window into one `room:presence` per node, ms. In rooms above `ROOM_ROSTER_BROADCAST_MAX` the counts for members, and the aggregated membership entries, go out once per this × ⌈size / `ROOM_ROSTER_BROADCAST_MAX`⌉. See [rooms.md](rooms.md#coalescing-and-pacing-room-broadcaststs).', schema: int(10, 10_000) },
    rosterBroadcastMax: { env: 'ROOM_ROSTER_BROADCAST_MAX', default: '200', doc: 'Room size (users online, for presence; members, for the feed) above which members get presence counts only (the host still gets every change) and joins and leaves become one aggregated feed entry (`members.joined`, `members.left`) per window.', schema: int(1, 100_000) },
    presenceNodeTimeoutMs: { env: 'PRESENCE_NODE_TIMEOUT_MS', default: '15000', doc: 'A node silent this long is dead; its members go offline within this plus one heartbeat, ms. At least twice the heartbeat.', schema: int(100, 120_000) },
  },
  feed: {
    roomMaxLen: { env: 'FEED_ROOM_MAXLEN', default: '10000', doc: 'Approximate cap of one room\'s feed stream (`XADD MAXLEN ~`), entries; older entries are served from the PostgreSQL archive, which reads this stream, so a room\'s archive lag must stay below it.', schema: int(10, 10_000_000) },
    roomTtlSeconds: { env: 'FEED_ROOM_TTL_SECONDS', default: '604800', doc: 'A room\'s feed stream and epoch expire after this long without an entry, seconds.', schema: int(60, 366 * 86_400) },
    globalMaxLen: { env: 'FEED_GLOBAL_MAXLEN', default: '100000', doc: 'Approximate cap of the global feed stream (every room\'s entries, copied by the archive worker for the admins\' `global` feed), entries.', schema: int(100, 100_000_000) },
    systemMaxLen: { env: 'FEED_SYSTEM_MAXLEN', default: '10000', doc: 'Approximate cap of the system log stream, entries.', schema: int(10, 10_000_000) },
    appendWaitReplicas: { env: 'FEED_APPEND_WAIT_REPLICAS', default: '0', doc: 'Replicas a room feed entry must reach (Redis `WAIT`, on the entry\'s master) before a publish is acknowledged. `0`: acknowledged once the master has it, and a failover can lose the last acknowledged entries; `1`: a master killed with -9 loses no acknowledged entry, at the cost measured in [scaling.md](scaling.md#what-each-redis-setup-promises).', schema: int(0, 10) },
    appendWaitTimeoutMs: { env: 'FEED_APPEND_WAIT_TIMEOUT_MS', default: '1000', doc: 'Longest a publish waits for `FEED_APPEND_WAIT_REPLICAS`, ms; short of them it answers `unavailable` (the entry is stored; a retry with the same `clientMsgId` is acknowledged once replicated, never stored twice).', schema: int(10, 60_000) },
    idempotencyTtlSeconds: { env: 'FEED_IDEMPOTENCY_TTL_SECONDS', default: '86400', doc: 'How long a `clientMsgId` is remembered per user and room, seconds.', schema: int(1, 30 * 86_400) },
    replayMax: { env: 'FEED_REPLAY_MAX', default: '10000', doc: 'Most entries one `feed:subscribe` replays (from the stream and the archive together); a longer gap answers `recovered: false` and replays nothing.', schema: int(1, 1_000_000) },
    checkIntervalMs: { env: 'FEED_CHECK_INTERVAL_MS', default: '5000', doc: 'A feed a node follows whose live channel heard nothing this long has its position checked (one `HMGET`); a lost live message is repaired within this, ms.', schema: int(100, 600_000) },
    apiKey: { env: 'FEED_API_KEY', doc: 'Service API key (at least 16 characters) for `POST /api/rooms/:roomId/events` (header `x-api-key`). Unset: the route answers 404.', schema: z.string().trim().min(16).max(512) },
    archive: {
      enabled: { env: 'FEED_ARCHIVE_ENABLED', default: 'true', doc: 'Run the feed archive worker (Redis Stream to PostgreSQL) on this node. The global feed is written by this worker: at least one node must run it.', schema: bool },
      batchSize: { env: 'FEED_ARCHIVE_BATCH', default: '200', doc: 'Entries the archive worker reads from one room per round, and rows per `INSERT`.', schema: int(1, 10_000) },
      blockMs: { env: 'FEED_ARCHIVE_BLOCK_MS', default: '1000', doc: 'Longest an idle archive worker waits before looking for rooms to archive again, ms.', schema: int(10, 60_000) },
      delayMs: { env: 'FEED_ARCHIVE_DELAY_MS', default: '1000', doc: 'A room\'s new entries are archived this long after the first of them, so that a busy room\'s entries go to PostgreSQL in one visit (the archive\'s lag, and the global feed\'s), ms.', schema: int(0, 60_000) },
      claimIdleMs: { env: 'FEED_ARCHIVE_CLAIM_IDLE_MS', default: '30000', doc: 'A room\'s archive lease lasts this long (a dead worker\'s rooms are taken over after it), and one node sweeps open rooms for lost archive hints this often, ms.', schema: int(100, 3_600_000) },
      retentionDays: { env: 'FEED_ARCHIVE_RETENTION_DAYS', default: '30', doc: 'Days the PostgreSQL archive keeps: its day partitions wholly older are dropped. History and resume past it answer without those entries (`truncated`, `recovered: false`).', schema: int(1, 3650) },
      deadLetterMaxLen: { env: 'FEED_ARCHIVE_DEAD_LETTER_MAXLEN', default: '10000', doc: 'Approximate cap of the dead-letter stream, where entries PostgreSQL refused are kept, entries.', schema: int(10, 10_000_000) },
    },
  },
  observability: {
    metricsToken: { env: 'METRICS_TOKEN', doc: 'Bearer token (at least 16 characters) that `GET /metrics` requires (`Authorization: Bearer <token>`). Unset: open in development and test, not served (404) in production.', schema: z.string().trim().min(16).max(512) },
    systemLogRate: { env: 'SYSTEM_LOG_RATE', default: '30/60', doc: 'Internal-error and dependency (Redis, PostgreSQL down/up) entries one node writes to the system log, `<points>/<seconds>`; the rest are counted into the next entry (`suppressed`).', schema: rate },
  },
  log: {
    level: { env: 'LOG_LEVEL', default: 'info', doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.', schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) },
  },
} satisfies Settings;

/** The value of a setting: `undefined` only when it may be unset. */
type ValueOf<S extends Setting> = S extends { default: string } | { defaultFrom: unknown } ? z.output<S['schema']> : z.output<S['schema']> | undefined;
type Resolved<T> = T extends Setting ? ValueOf<T> : { [K in keyof T]: Resolved<T[K]> };

export type Config = Resolved<typeof SETTINGS>;
export type NodeEnv = Config['env'];
export type LogLevel = Config['log']['level'];
/** Cache-aside loaders (server/cache). */
export type CacheConfig = Config['cache'];
export type AuthConfig = Config['auth'];
export type RoomsConfig = Config['rooms'];
export type FeedConfig = Config['feed'];

type Leaves<T> = T extends Setting ? T : { [K in keyof T]: Leaves<T[K]> }[keyof T];
/** The settings whose `defaultFrom` returns something else than their schema does: none may (`Config` types them by their schema). */
type MistypedDefaultFrom = Extract<Leaves<typeof SETTINGS>, { defaultFrom: unknown }> extends infer S
  ? S extends { env: infer Name; schema: z.ZodType; defaultFrom: (...args: never) => infer V } ? ([V] extends [z.output<S['schema']>] ? never : Name) : never
  : never;
const defaultsFromFit: [MistypedDefaultFrom] extends [never] ? true : MistypedDefaultFrom = true;
void defaultsFromFit;

export type VariableName = Leaves<typeof SETTINGS>['env'] | `${Extract<Leaves<typeof SETTINGS>, { secretFile: string }>['env']}_FILE`;
/** An environment variable: a setting's, or the `<NAME>_FILE` that names a file holding one. */
export type Variable = Omit<Setting, 'env' | 'secretFile'>;

const isSetting = (node: Setting | Settings): node is Setting => typeof node.env === 'string';

/** The settings in declaration order. */
function leavesOf(settings: Settings): Setting[] {
  return Object.values(settings).flatMap((node) => (isSetting(node) ? [node] : leavesOf(node)));
}

const filePath = z.string().trim().min(1).max(4096);

/** Every environment variable pinroom reads, by name, in declaration order (each `<NAME>_FILE` after its `<NAME>`). */
export const VARIABLES: Readonly<Record<VariableName, Variable>> = Object.fromEntries(
  leavesOf(SETTINGS).flatMap(({ env, secretFile, ...variable }) => [
    [env, variable],
    ...(secretFile === undefined ? [] : [[`${env}_FILE`, { doc: secretFile, schema: filePath }]]),
  ]),
) as Record<VariableName, Variable>;

/** Secrets that may instead be given as a file, `<NAME>_FILE` (declared in `VARIABLES` too); their values are never printed. */
export const FILE_VARIABLES: readonly VariableName[] = leavesOf(SETTINGS).flatMap((s) => (s.secretFile === undefined ? [] : [s.env as VariableName]));

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
  const values: Record<string, unknown> = {};
  env = withSecretFiles(env, readSecretFile, problems);
  const secret = new Set<string>(FILE_VARIABLES);
  for (const [name, variable] of Object.entries(VARIABLES) as [VariableName, Variable][]) {
    const given = env[name];
    const raw = given === undefined || given === '' ? variable.default : given;
    if (raw === undefined) continue;
    const result = variable.schema.safeParse(raw);
    if (result.success) values[name] = result.data;
    else problems.push(`${secret.has(name) ? name : `${name}=${JSON.stringify(raw)}`}: ${result.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const config = resolve(SETTINGS, values) as Config;
  const rooms = config.rooms;
  if (rooms.pinFallbackDigits !== 0 && rooms.pinFallbackDigits <= rooms.pinDigits) problems.push('PIN_FALLBACK_DIGITS: must be 0 or more than PIN_DIGITS');
  if (rooms.maxMembersDefault > rooms.maxMembersCap) problems.push('ROOM_MAX_MEMBERS_DEFAULT: must not exceed ROOM_MAX_MEMBERS_CAP');
  if (rooms.presenceNodeTimeoutMs < 2 * rooms.presenceHeartbeatMs) problems.push('PRESENCE_NODE_TIMEOUT_MS: must be at least twice PRESENCE_HEARTBEAT_MS');
  if (config.socket.disconnectEventsPerSecond < config.socket.eventsPerSecond) problems.push('SOCKET_DISCONNECT_EVENTS_PER_SECOND: must not be below SOCKET_EVENTS_PER_SECOND');
  if (config.redis.clusterNodes && config.socket.adapter === 'classic') problems.push('SOCKET_ADAPTER=classic: not with REDIS_CLUSTER_NODES (every classic PUBLISH goes to every master of the cluster); use sharded, the default in cluster mode');
  if (problems.length > 0) throw new ConfigError(problems);

  if (config.env === 'production') {
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

/** `settings` with each setting replaced by its value: the parsed variable, else its `defaultFrom`, else `undefined`. */
function resolve(settings: Settings, values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(settings).map(([key, node]) => [key, isSetting(node) ? (values[node.env] ?? node.defaultFrom?.(values)) : resolve(node, values)]),
  );
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
