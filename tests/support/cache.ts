/** Helpers for cache-aside tests: seeding users and rooms, reading counters. */
import type { Counter } from 'prom-client';
import { createCachedLoader, type CachedLoader } from '../../server/cache/cache-aside.ts';
import { loadUserProfiles, type LoaderDeps } from '../../server/cache/loaders.ts';
import type { Db } from '../../server/db/database.ts';
import type { UserView } from '../../shared/schemas.ts';

/** A registered user with a password hash, so tests can prove the hash never reaches Redis. */
export async function insertUser(db: Db, name: string, fields: { id?: string; passwordHash?: string } = {}): Promise<string> {
  const row = await db
    .insertInto('users')
    .values({
      ...(fields.id ? { id: fields.id } : {}),
      username: `${name.toLowerCase().replace(/[^a-z0-9]/g, '')}${Math.random().toString(36).slice(2, 8)}`,
      display_name: name,
      password_hash: fields.passwordHash ?? 'scrypt$N=16384$c2FsdHNhbHQ$not-a-real-hash-but-secret',
      kind: 'registered',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

export async function insertRoom(db: Db, hostId: string, fields: { pin?: string; title?: string } = {}): Promise<string> {
  const row = await db
    .insertInto('rooms')
    .values({ pin: fields.pin ?? String(100000 + Math.floor(Math.random() * 900000)), title: fields.title ?? 'Quiz', host_id: hostId, max_members: 50 })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** The current value of a counter for some labels (0 when never incremented). */
export async function counterValue(counter: Counter<string>, labels: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  const found = values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return found?.value ?? 0;
}

/**
 * A user-profile loader whose load waits `slowMs` before its query, so that
 * concurrent readers in several processes surely overlap with it.
 */
export function createSlowUserLoader(deps: LoaderDeps, slowMs: number): CachedLoader<UserView> {
  return createCachedLoader<UserView>({
    ...deps.config.cache,
    name: 'user',
    ttlSeconds: deps.config.cache.userTtlSeconds,
    redis: deps.redis,
    scripts: deps.scripts,
    keys: deps.keys,
    metrics: deps.metrics,
    load: async (ids) => {
      await new Promise((resolve) => setTimeout(resolve, slowMs));
      return loadUserProfiles(deps.db, ids);
    },
  });
}
