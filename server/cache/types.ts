/**
 * The contract every cache-aside read path uses. Implemented by
 * `createCachedLoader` in `cache-aside.ts`; services depend on this interface.
 */

/** What a read returns: the value (null when the row does not exist) and whether it is stale. */
export interface Loaded<T> {
  value: T | null;
  /**
   * True when PostgreSQL could not be reached and the value came from a cache
   * entry past its TTL (within the configured hard staleness).
   */
  stale: boolean;
}

export interface ReadOptions {
  /**
   * Refuse stale data: with PostgreSQL unreachable, fail with `unavailable`
   * instead. Required for decisions about auth, bans and revocation.
   */
  fresh?: boolean;
}

export interface CachedLoader<T> {
  readonly name: string;
  get(id: string, options?: ReadOptions): Promise<Loaded<T>>;
  /** One MGET for the cached ids, one batched query for the rest. Missing ids are absent from the map. Throws `unavailable` when any id cannot be answered. */
  getMany(ids: readonly string[], options?: ReadOptions): Promise<Map<string, Loaded<T>>>;
  /**
   * Call after the transaction that changed the row has committed, and after
   * one that created it (a cached "not found" would hide it for the negative
   * TTL). Reads that start after it returns see the committed row (a read
   * already in flight in another process may still answer the old one). Never throws:
   * when Redis cannot be reached, this process reads the id from PostgreSQL
   * and retries the invalidation when Redis answers again.
   */
  invalidate(id: string): Promise<void>;
}
