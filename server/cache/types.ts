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
  /** One MGET for the cached ids, one batched query for the rest. Missing ids are absent from the map. */
  getMany(ids: readonly string[], options?: ReadOptions): Promise<Map<string, Loaded<T>>>;
  /** Call after the transaction that changed the row has committed. */
  invalidate(id: string): Promise<void>;
}
