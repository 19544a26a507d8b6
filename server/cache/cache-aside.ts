/**
 * Cache-aside reads: Redis first, PostgreSQL behind, and correct where naive
 * cache-aside is not.
 *
 * An entry is stored under `keys.cache(name, id)` as `<freshUntilMs>:<json>`
 * (`null` for a row that does not exist). It is fresh until `freshUntilMs`
 * (the TTL with ±10% jitter), and stays in Redis for the hard staleness after
 * that, so it can still be served, marked `stale`, while PostgreSQL is down.
 *
 * - **Stampede protection.** Concurrent reads of one id in one process share
 *   one resolution (single-flight). Across processes, the first to miss takes
 *   a short fill lock (`SET NX PX`, in `cache-lease.lua`); the others poll for
 *   the filled entry for at most `lockWaitMs`, then load themselves.
 * - **Stale-set race.** Every miss takes the entry's version token before it
 *   queries (`cache-lease.lua`); `invalidate` replaces the token and deletes
 *   the entry (`cache-invalidate.lua`); the fill stores only when the token is
 *   unchanged (`cache-fill.lua`). A slow reader that queried before an
 *   invalidation therefore cannot write its old value back.
 * - **Redis down** (connection lost, or a command past the command timeout):
 *   reads go straight to PostgreSQL without filling, counted as `redis` errors.
 * - **PostgreSQL down**: an entry past its TTL but within the hard staleness is
 *   served with `stale: true` (never to a `fresh` read); otherwise the read
 *   fails with `unavailable`.
 *
 * Clocks: freshness compares the writer's and the reader's `Date.now()`, so
 * clock skew between nodes shifts a TTL by the skew (milliseconds with NTP).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { mgetBySlot, type RedisClient as Redis } from '../redis/connections.ts';
import type { Logger } from 'pino';
import { AppError, ErrorCode, unavailable } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import { isTransientError, withRetry } from '../retry.ts';
import type { CachedLoader, Loaded, ReadOptions } from './types.ts';

export type { CachedLoader, Loaded, ReadOptions };

/** Settings shared by every loader (from `Config.cache`). */
export interface CacheSettings {
  /** How long past its TTL an entry may still be served (marked stale) while PostgreSQL is down, in seconds. 0 disables stale serving. */
  hardStaleSeconds: number;
  /** TTL of the cross-process fill lock, in ms: longer than a typical load. */
  lockTtlMs: number;
  /** How long a read waits for another process's fill before querying itself, in ms. */
  lockWaitMs: number;
}

export interface CachedLoaderOptions<T> extends CacheSettings {
  /** Loader name: part of every key and the `loader` label of the metrics. */
  name: string;
  /** Fresh TTL of an entry, in seconds, before ±10% jitter. */
  ttlSeconds: number;
  /** Fresh TTL of a not-found entry, in seconds, before ±10% jitter. Creating the row must `invalidate` its id. */
  negativeTtlSeconds: number;
  /**
   * One query for a whole batch (`where id in (...)`). Returns the rows found,
   * by id; absent ids are cached as not found. Values must survive JSON
   * (dates as ISO strings) and hold nothing secret: they are stored in Redis.
   */
  load(ids: readonly string[]): Promise<ReadonlyMap<string, T>>;
  /** Ids that fail this check are answered as not found without touching Redis or PostgreSQL. */
  isValidId?(id: string): boolean;
  /** Largest number of ids in one query; larger `getMany` calls are split. @default 500 */
  maxBatch?: number;
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  metrics: Pick<Metrics, 'cache'>;
  logger?: Pick<Logger, 'warn'>;
  /** Clock, ms since the epoch (tests shift it to age entries). @default Date.now */
  now?: () => number;
  /** @default Math.random */
  random?: () => number;
}

/** What one id resolved to; shared by every caller that joined the same resolution. */
type Outcome<T> =
  | { kind: 'value'; value: T | null }
  | { kind: 'stale'; value: T | null; cause: unknown }
  | { kind: 'failed'; error: unknown };

interface Entry<T> {
  value: T | null;
  freshUntil: number;
}

interface LoadItem {
  id: string;
  /** The version token taken before querying; absent when Redis is bypassed (no fill). */
  version?: string;
  lockToken?: string;
}

type Settle<T> = (id: string, outcome: Outcome<T>) => void;

/** One id's resolution in flight, which concurrent reads of that id join. */
class Flight<T> {
  readonly promise: Promise<Outcome<T>>;
  settle!: (outcome: Outcome<T>) => void;
  done = false;
  constructor() {
    this.promise = new Promise((resolve) => {
      this.settle = resolve;
    });
  }
}

/** Invalidations that could not reach Redis, remembered (up to this many) and retried on reconnect. */
const MAX_PENDING_INVALIDATIONS = 10_000;
const LOG_EVERY_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** SQLSTATE classes that say the query itself is wrong (not that PostgreSQL is unreachable). */
const REQUEST_ERROR_CLASS = /^(21|22|23|2F|42|44)/;

/** True when a load failed because PostgreSQL could not answer (down, unreachable, overloaded, timed out). */
export function isDbUnavailable(err: unknown): boolean {
  if (isTransientError(err)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  if (/^[0-9A-Z]{5}$/.test(code)) return !REQUEST_ERROR_CLASS.test(code);
  return code.startsWith('E'); // a Node system error: ECONNREFUSED, ETIMEDOUT, ...
}

/** Throws on a TTL, lock TTL or wait that cannot work. */
function checkOptions({ name, ttlSeconds, negativeTtlSeconds, lockTtlMs, hardStaleSeconds, lockWaitMs }: CachedLoaderOptions<unknown>): void {
  for (const [field, value] of [
    ['ttlSeconds', ttlSeconds],
    ['negativeTtlSeconds', negativeTtlSeconds],
    ['lockTtlMs', lockTtlMs],
  ] as const) {
    if (!(value > 0)) throw new Error(`cache loader ${name}: ${field} must be positive`);
  }
  if (!(hardStaleSeconds >= 0) || !(lockWaitMs >= 0)) throw new Error(`cache loader ${name}: hardStaleSeconds and lockWaitMs must not be negative`);
}

/** A stored entry, `<freshUntilMs>:<json>`; undefined when it is not one. */
function parseEntry<T>(raw: string): Entry<T> | undefined {
  const colon = raw.indexOf(':');
  const freshUntil = Number(raw.slice(0, colon));
  if (colon <= 0 || !Number.isFinite(freshUntil)) return undefined;
  try {
    return { freshUntil, value: JSON.parse(raw.slice(colon + 1)) as T | null };
  } catch {
    return undefined;
  }
}

/** End a flight once: the first outcome wins, and the id no longer joins it. */
function land<T>(flights: Map<string, Flight<T>>, id: string, flight: Flight<T>, outcome: Outcome<T>): void {
  if (flight.done) return;
  flight.done = true;
  if (flights.get(id) === flight) flights.delete(id);
  flight.settle(outcome);
}

/**
 * Invalidations that could not reach Redis, remembered (up to
 * `MAX_PENDING_INVALIDATIONS`): their ids are read from PostgreSQL until
 * `flush()` (called whenever Redis answers) or the connection's next `ready`
 * has carried them out.
 */
function createPendingInvalidations(redis: Redis, invalidate: (id: string) => Promise<void>, failed: (err: unknown) => void) {
  const ids = new Set<string>();
  let flushing = false;
  let flushOnReady = false;

  /** Retry the invalidations that could not reach Redis (on reconnect, or once Redis answers again). */
  function flush(): void {
    if (flushing || ids.size === 0) return;
    flushing = true;
    void Promise.all(
      [...ids].map((id) =>
        invalidate(id).then(
          () => ids.delete(id),
          (err: unknown) => failed(err),
        ),
      ),
    ).finally(() => {
      flushing = false;
      if (ids.size > 0) waitForReady();
    });
  }

  function waitForReady(): void {
    if (flushOnReady) return;
    flushOnReady = true;
    redis.once('ready', () => {
      flushOnReady = false;
      flush();
    });
  }

  return {
    has: (id: string) => ids.has(id),
    /** Whether any is waiting. */
    any: () => ids.size > 0,
    flush,
    remember(id: string): void {
      if (ids.size < MAX_PENDING_INVALIDATIONS) ids.add(id);
      waitForReady();
    },
    forget: (id: string) => ids.delete(id),
  };
}

export function createCachedLoader<T>(options: CachedLoaderOptions<T>): CachedLoader<T> {
  const { name, redis, scripts, keys, load } = options;
  checkOptions(options as CachedLoaderOptions<unknown>);

  const metrics = options.metrics.cache;
  const labels = { loader: name };
  const processScope = { loader: name, scope: 'process' };
  const fillScope = { loader: name, scope: 'fill' };
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const maxBatch = Math.max(1, options.maxBatch ?? 500);
  const hardStaleMs = options.hardStaleSeconds * 1000;
  // A version token guards the entry for as long as the entry can live.
  const versionTtlMs = Math.max(60_000, Math.ceil(Math.max(options.ttlSeconds, options.negativeTtlSeconds) * 1100 + hardStaleMs));

  /** Resolutions in flight in this process, by id. */
  const flights = new Map<string, Flight<T>>();
  /** Ids whose invalidation has not reached Redis yet: read from PostgreSQL until it has. */
  const pendingInvalidations = createPendingInvalidations(redis, invalidateInRedis, redisFailed);
  let lastLog = 0;

  const entryKeys = (id: string) => [keys.cache(name, id), keys.cacheVersion(name, id), keys.cacheLock(name, id)];

  // Version and lock tokens only need to be unique, not secret (they never leave
  // Redis and this process): a random per-loader prefix and a counter, so that a
  // read that turns out to be a hit does not pay for random bytes.
  const tokenPrefix = randomBytes(9).toString('base64url');
  let tokenCount = 0;
  const token = () => `${tokenPrefix}${(tokenCount++).toString(36)}`;

  function redisFailed(err: unknown): void {
    metrics.errors.inc({ ...labels, source: 'redis' });
    const t = Date.now();
    if (t - lastLog >= LOG_EVERY_MS) {
      lastLog = t;
      options.logger?.warn({ loader: name, err: { message: (err as Error)?.message, code: (err as { code?: unknown })?.code } }, 'cache: redis unavailable, reading from postgres');
    }
  }

  /** False while the connection is known to be down: do not queue commands that cannot run. */
  const redisUsable = () => redis.status !== 'reconnecting' && redis.status !== 'close' && redis.status !== 'end';

  /** `parseEntry`, counting an unreadable entry (the hit path parses without counting: the batch path decodes it again). */
  function decode(raw: string | null | undefined): Entry<T> | undefined {
    if (raw === null || raw === undefined) return undefined;
    const entry = parseEntry<T>(raw);
    if (!entry) metrics.errors.inc({ ...labels, source: 'decode' });
    return entry;
  }

  const fresh = (entry: Entry<T> | undefined): entry is Entry<T> => entry !== undefined && entry.freshUntil > now();
  const servable = (entry: Entry<T>) => now() - entry.freshUntil <= hardStaleMs;

  // ------------------------------------------------------------ load and fill

  async function fill(item: LoadItem, value: T | null): Promise<void> {
    const ttlMs = (value === null ? options.negativeTtlSeconds : options.ttlSeconds) * 1000 * (0.9 + 0.2 * random());
    const entry = `${Math.floor(now() + ttlMs)}:${JSON.stringify(value)}`;
    await scripts.run('cache-fill', entryKeys(item.id), [item.version!, entry, Math.ceil(ttlMs + hardStaleMs), item.lockToken ?? '']);
  }

  /** One query for `items`, then (when they hold a version token) the guarded fills, then settle. */
  async function loadAndSettle(items: LoadItem[], settle: Settle<T>, staleCandidates: Map<string, Entry<T>>): Promise<void> {
    if (items.length === 0) return;
    let rows: ReadonlyMap<string, T>;
    metrics.loads.inc(labels);
    try {
      rows = await load(items.map((item) => item.id));
    } catch (err) {
      metrics.errors.inc({ ...labels, source: 'db' });
      const locked = items.filter((item) => item.lockToken);
      if (locked.length > 0 && redisUsable()) {
        await Promise.all(locked.map((item) => scripts.run('compare-and-delete', [keys.cacheLock(name, item.id)], [item.lockToken!]))).catch(redisFailed);
      }
      const down = isDbUnavailable(err);
      const failure = down ? unavailable('PostgreSQL', err) : err;
      for (const { id } of items) {
        const candidate = staleCandidates.get(id);
        if (down && candidate && servable(candidate)) {
          metrics.stale.inc(labels);
          settle(id, { kind: 'stale', value: candidate.value, cause: err });
        } else {
          settle(id, { kind: 'failed', error: failure });
        }
      }
      return;
    }
    const fills = items.filter((item) => item.version !== undefined);
    if (fills.length > 0) {
      // Settled after the fill so that a read that returned implies the entry is
      // stored (or refused by a newer version); bounded by the command timeout.
      await Promise.all(fills.map((item) => fill(item, rows.get(item.id) ?? null))).catch(redisFailed);
    }
    for (const { id } of items) settle(id, { kind: 'value', value: rows.get(id) ?? null });
  }

  interface Lease {
    id: string;
    entry: Entry<T> | undefined;
    version: string | null;
    lockToken: string | undefined;
  }

  async function lease(ids: readonly string[]): Promise<Lease[]> {
    return Promise.all(
      ids.map(async (id) => {
        const lockToken = token();
        const [raw, version, locked] = await scripts.run<[string | null, string | null, number]>('cache-lease', entryKeys(id), [
          token(),
          lockToken,
          options.lockTtlMs,
          versionTtlMs,
          Math.floor(now()),
        ]);
        return { id, entry: decode(raw), version, lockToken: locked === 1 ? lockToken : undefined };
      }),
    );
  }

  /**
   * Misses that go through Redis: take version tokens and fill locks; load the
   * locked ids now, poll for the others' fills (backing off from 5 to 50 ms) and
   * load whatever is still missing when `lockWaitMs` has passed.
   */
  async function resolveMisses(ids: string[], settle: Settle<T>, staleCandidates: Map<string, Entry<T>>, initial?: Lease[]): Promise<void> {
    const started = performance.now();
    const loads: Promise<void>[] = [];
    let waiting = ids;
    let delay = 5;
    let taken = initial;
    try {
      for (;;) {
        let leases: Lease[];
        try {
          leases = taken ?? (await lease(waiting));
          taken = undefined;
        } catch (err) {
          redisFailed(err);
          loads.push(loadAndSettle(waiting.map((id) => ({ id })), settle, staleCandidates));
          return;
        }
        const locked: LoadItem[] = [];
        const unlocked: LoadItem[] = [];
        for (const { id, entry, version, lockToken } of leases) {
          // No version token means the script found the entry fresh (by its clock reading).
          if (entry && (version === null || fresh(entry))) {
            metrics.coalesced.inc(fillScope);
            settle(id, { kind: 'value', value: entry.value });
            continue;
          }
          if (version === null) {
            // Fresh to the script but unreadable here: load it now, and do not fill.
            locked.push({ id });
            continue;
          }
          if (entry && servable(entry)) staleCandidates.set(id, entry);
          if (lockToken) locked.push({ id, version, lockToken });
          else unlocked.push({ id, version });
        }
        loads.push(loadAndSettle(locked, settle, staleCandidates));
        if (unlocked.length === 0) return;
        const left = options.lockWaitMs - (performance.now() - started);
        if (left <= 0) {
          // Waited long enough: query without the lock. The fill is still guarded by the version token.
          loads.push(loadAndSettle(unlocked, settle, staleCandidates));
          return;
        }
        await sleep(Math.min(delay, left));
        delay = Math.min(delay * 2, 50);
        waiting = unlocked.map((item) => item.id);
      }
    } finally {
      await Promise.all(loads);
    }
  }

  /** Resolve a batch of ids that have no resolution in flight. */
  async function resolveBatch(ids: string[], settle: Settle<T>, read?: (string | null)[]): Promise<void> {
    const staleCandidates = new Map<string, Entry<T>>();
    const direct: string[] = [];
    const misses: string[] = [];
    const viaRedis: string[] = [];
    for (const id of ids) (pendingInvalidations.has(id) ? direct : viaRedis).push(id);

    if (viaRedis.length > 0 && !redisUsable()) {
      redisFailed(new Error(`redis connection is ${redis.status}`));
      direct.push(...viaRedis);
    } else if (viaRedis.length > 0) {
      try {
        // `read`: the entries the single-read fast path already fetched.
        const raws = read ?? (await mgetBySlot(redis, viaRedis.map((id) => keys.cache(name, id))));
        // Redis answers: a good moment to retry invalidations that could not reach it.
        if (pendingInvalidations.any()) pendingInvalidations.flush();
        for (let i = 0; i < viaRedis.length; i++) {
          const id = viaRedis[i]!;
          const entry = decode(raws[i]);
          if (fresh(entry)) {
            metrics.hits.inc(labels);
            settle(id, { kind: 'value', value: entry.value });
          } else {
            if (entry && servable(entry)) staleCandidates.set(id, entry);
            misses.push(id);
          }
        }
      } catch (err) {
        redisFailed(err);
        direct.push(...viaRedis);
      }
    }
    if (direct.length + misses.length === 0) return;
    metrics.misses.inc(labels, direct.length + misses.length);
    await Promise.all([
      loadAndSettle(direct.map((id) => ({ id })), settle, staleCandidates),
      misses.length > 0 ? resolveMisses(misses, settle, staleCandidates) : undefined,
    ]);
  }

  /**
   * Start one resolution for `ids` (none in flight), registered as their
   * flights. `read`: what a single read's GET already found for them.
   */
  function startBatch(ids: string[], read?: (string | null)[]): Map<string, Flight<T>> {
    const batch = new Map<string, Flight<T>>();
    for (const id of ids) {
      const flight = new Flight<T>();
      flights.set(id, flight);
      batch.set(id, flight);
    }
    void runBatch(ids, (id, outcome) => land(flights, id, batch.get(id)!, outcome), (id) => batch.get(id)!.done, read);
    return batch;
  }

  async function runBatch(ids: string[], settle: Settle<T>, settled: (id: string) => boolean, read?: (string | null)[]): Promise<void> {
    let error: unknown;
    try {
      await resolveBatch(ids, settle, read);
    } catch (err) {
      error = err;
    }
    // Anything not settled by now (an unexpected throw) fails rather than hangs. Checked
    // first: building an Error (its stack) for every id of every batch was a large
    // part of a cache hit's CPU time.
    for (const id of ids) {
      if (!settled(id)) settle(id, { kind: 'failed', error: error ?? new Error(`cache loader ${name}: ${id} left unresolved`) });
    }
  }

  const notFound: Outcome<T> = { kind: 'value', value: null };

  /**
   * A single read's resolution: join the one in flight, or start one. `raw`:
   * what this read's GET found (null: nothing; undefined: no GET, or it
   * failed, so the batch path reads again and handles the failure).
   */
  function resolveOne(id: string, raw?: string | null): Promise<Outcome<T>> {
    const flight = flights.get(id);
    if (flight) {
      metrics.coalesced.inc(processScope);
      return flight.promise;
    }
    return startBatch([id], raw === undefined ? undefined : [raw]).get(id)!.promise;
  }

  async function resolve(ids: readonly string[]): Promise<Map<string, Outcome<T>>> {
    const outcomes = new Map<string, Outcome<T>>();
    const waits: Promise<unknown>[] = [];
    const toStart: string[] = [];
    const join = (id: string, flight: Flight<T>) => waits.push(flight.promise.then((outcome) => outcomes.set(id, outcome)));
    for (const id of new Set(ids)) {
      if (options.isValidId && !options.isValidId(id)) {
        outcomes.set(id, notFound);
        continue;
      }
      const flight = flights.get(id);
      if (flight) {
        metrics.coalesced.inc(processScope);
        join(id, flight);
      } else {
        toStart.push(id);
      }
    }
    for (let i = 0; i < toStart.length; i += maxBatch) {
      for (const [id, flight] of startBatch(toStart.slice(i, i + maxBatch))) join(id, flight);
    }
    await Promise.all(waits);
    return outcomes;
  }

  function toLoaded(id: string, outcome: Outcome<T>, read: ReadOptions | undefined): Loaded<T> {
    if (outcome.kind === 'failed') throw outcome.error;
    if (outcome.kind === 'stale') {
      if (read?.fresh) {
        throw new AppError(ErrorCode.Unavailable, `PostgreSQL is unavailable and the cached ${name} ${id} is past its TTL`, { cause: outcome.cause });
      }
      return { value: outcome.value, stale: true };
    }
    return { value: outcome.value, stale: false };
  }

  // ------------------------------------------------------------ invalidation

  async function invalidateInRedis(id: string): Promise<void> {
    if (!redisUsable()) throw new Error(`redis connection is ${redis.status}`);
    await withRetry(() => scripts.run('cache-invalidate', entryKeys(id).slice(0, 2), [token(), versionTtlMs]), {
      idempotent: true,
      attempts: 2,
      name: 'cache-invalidate',
    });
  }

  return {
    name,

    /**
     * The hit path first: a plain GET, answered right there when the entry is
     * fresh (no flight, no closure: a hit's own CPU cost matters as much as its
     * round trip). Concurrent hits each GET; a miss joins the resolution in
     * flight for the id (started by whichever read missed first), so an expired
     * hot key still costs one query per process.
     */
    async get(id, read) {
      if (options.isValidId && !options.isValidId(id)) return { value: null, stale: false };
      let raw: string | null | undefined;
      if (!flights.has(id) && !pendingInvalidations.has(id) && redisUsable()) {
        try {
          raw = await redis.get(keys.cache(name, id));
        } catch {
          raw = undefined; // counted and served from PostgreSQL by the batch path, which reads again
        }
        if (raw) {
          if (pendingInvalidations.any()) pendingInvalidations.flush();
          const entry = parseEntry<T>(raw);
          if (entry && fresh(entry) && !pendingInvalidations.has(id)) {
            metrics.hits.inc(labels);
            return { value: entry.value, stale: false };
          }
        }
      }
      return toLoaded(id, await resolveOne(id, raw), read);
    },

    async getMany(ids, read) {
      const found = new Map<string, Loaded<T>>();
      for (const [id, outcome] of await resolve(ids)) {
        const loaded = toLoaded(id, outcome, read);
        if (loaded.value !== null) found.set(id, loaded);
      }
      return found;
    },

    /**
     * Never throws: when Redis cannot be reached, the id is remembered, read
     * from PostgreSQL by this process, and invalidated when Redis is back.
     * Other processes may serve the old entry until its TTL ends.
     */
    async invalidate(id) {
      // A resolution that started before this call must not answer reads made after it.
      flights.delete(id);
      try {
        await invalidateInRedis(id);
        pendingInvalidations.forget(id);
      } catch (err) {
        redisFailed(err);
        pendingInvalidations.remember(id);
      } finally {
        flights.delete(id);
      }
    },
  };
}
