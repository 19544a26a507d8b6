/**
 * Prometheus metrics. `createMetrics()` builds one registry per app (never the
 * prom-client global one, so several apps in one process, as in tests, do not
 * collide) and the counters services increment. The HTTP endpoint serves
 * `registry.metrics()`.
 */
import { Counter, Registry } from 'prom-client';

/** Counters of the cache-aside loaders, labelled by loader name (`user`, `room`). */
export interface CacheMetrics {
  /** Ids answered from a fresh Redis entry. */
  hits: Counter<'loader'>;
  /** Ids with no fresh Redis entry at first look (including reads while Redis is down). */
  misses: Counter<'loader'>;
  /** Batched PostgreSQL queries run to fill misses. */
  loads: Counter<'loader'>;
  /**
   * Reads that waited for someone else's load instead of querying:
   * `scope="process"` joined a load in flight in this process,
   * `scope="fill"` waited for another process holding the fill lock.
   */
  coalesced: Counter<'loader' | 'scope'>;
  /** Values served past their TTL because PostgreSQL was unreachable. */
  stale: Counter<'loader'>;
  /** Failures by `source`: `redis` (unreachable, timed out), `db` (a failed load), `decode` (an unreadable entry). */
  errors: Counter<'loader' | 'source'>;
}

export interface Metrics {
  readonly registry: Registry;
  readonly cache: CacheMetrics;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const cache: CacheMetrics = {
    hits: new Counter({ name: 'pinroom_cache_hits_total', help: 'Cache reads answered from a fresh Redis entry.', labelNames: ['loader'], registers }),
    misses: new Counter({ name: 'pinroom_cache_misses_total', help: 'Cache reads with no fresh Redis entry.', labelNames: ['loader'], registers }),
    loads: new Counter({ name: 'pinroom_cache_loads_total', help: 'Batched PostgreSQL queries run by cache loaders.', labelNames: ['loader'], registers }),
    coalesced: new Counter({
      name: 'pinroom_cache_coalesced_total',
      help: 'Cache reads that waited for a load in flight (scope=process) or another process\'s fill (scope=fill) instead of querying.',
      labelNames: ['loader', 'scope'],
      registers,
    }),
    stale: new Counter({ name: 'pinroom_cache_stale_total', help: 'Cached values served past their TTL because PostgreSQL was unreachable.', labelNames: ['loader'], registers }),
    errors: new Counter({ name: 'pinroom_cache_errors_total', help: 'Cache loader failures by source (redis, db, decode).', labelNames: ['loader', 'source'], registers }),
  };
  return { registry, cache };
}
