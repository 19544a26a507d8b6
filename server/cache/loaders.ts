/**
 * The cached read paths: public user profiles and room state, by id.
 * Every write path that changes a user or a room (including creating one: a
 * not-found answer is cached for the negative TTL) calls
 * `loaders.users.invalidate(id)` / `loaders.rooms.invalidate(id)` after its
 * transaction commits.
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { Metrics } from '../metrics.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import type { RoomView, UserView } from '../../shared/schemas.ts';
import { createCachedLoader, type CachedLoader, type CachedLoaderOptions } from './cache-aside.ts';

export interface LoaderDeps {
  db: Db;
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  metrics: Pick<Metrics, 'cache'>;
  config: Pick<Config, 'cache'>;
  logger?: Pick<Logger, 'warn'>;
  /** Clock, ms since the epoch. @default Date.now */
  now?: () => number;
}

/** Room state as cached: the wire `RoomView` plus when the room ended (ISO 8601, null while open). */
export interface RoomRecord extends RoomView {
  endedAt: string | null;
}

export type Loaders = {
  users: CachedLoader<UserView>;
  rooms: CachedLoader<RoomRecord>;
};

/** Ids are PostgreSQL uuids; anything else is not found (and never reaches a `uuid` column as a query error). */
const isUuid = (id: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);

/** Public profiles of users by id, in one query. Selects public columns only: the password hash never leaves PostgreSQL. */
export async function loadUserProfiles(db: Db, ids: readonly string[]): Promise<Map<string, UserView>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('users').select(['id', 'display_name', 'kind', 'username']).where('id', 'in', ids).execute();
  return new Map(rows.map((row) => [row.id, { id: row.id, name: row.display_name, kind: row.kind, username: row.username }]));
}

/** Room state by id, in one query. */
async function loadRooms(db: Db, ids: readonly string[]): Promise<Map<string, RoomRecord>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('rooms')
    .select(['id', 'pin', 'title', 'host_id', 'status', 'locked', 'approval', 'max_members', 'created_at', 'ended_at'])
    .where('id', 'in', ids)
    .execute();
  return new Map(
    rows.map((row) => [
      row.id,
      {
        id: row.id,
        pin: row.pin,
        title: row.title,
        hostId: row.host_id,
        status: row.status,
        locked: row.locked,
        approval: row.approval,
        maxMembers: row.max_members,
        createdAt: new Date(row.created_at).toISOString(),
        endedAt: row.ended_at === null ? null : new Date(row.ended_at).toISOString(),
      },
    ]),
  );
}

function common(deps: LoaderDeps): Omit<CachedLoaderOptions<never>, 'name' | 'ttlSeconds' | 'load'> {
  const { cache } = deps.config;
  return {
    negativeTtlSeconds: cache.negativeTtlSeconds,
    hardStaleSeconds: cache.hardStaleSeconds,
    lockTtlMs: cache.lockTtlMs,
    lockWaitMs: cache.lockWaitMs,
    isValidId: isUuid,
    redis: deps.redis,
    scripts: deps.scripts,
    keys: deps.keys,
    metrics: deps.metrics,
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  };
}

/** Public user profiles by id (`UserView`: id, name, kind, username), loader name `user`. */
export function createUserProfileLoader(deps: LoaderDeps): CachedLoader<UserView> {
  return createCachedLoader<UserView>({
    ...common(deps),
    name: 'user',
    ttlSeconds: deps.config.cache.userTtlSeconds,
    load: (ids) => loadUserProfiles(deps.db, ids),
  });
}

/** Room state by id (`RoomRecord`), loader name `room`. */
export function createRoomLoader(deps: LoaderDeps): CachedLoader<RoomRecord> {
  return createCachedLoader<RoomRecord>({
    ...common(deps),
    name: 'room',
    ttlSeconds: deps.config.cache.roomTtlSeconds,
    load: (ids) => loadRooms(deps.db, ids),
  });
}

/** Both loaders, as the app exposes them. */
export function createLoaders(deps: LoaderDeps): Loaders {
  return { users: createUserProfileLoader(deps), rooms: createRoomLoader(deps) };
}
