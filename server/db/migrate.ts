import { Migrator, type Kysely, type MigrationResult } from 'kysely';
import type { Logger } from 'pino';
import { migrations } from './migrations/index.ts';

/**
 * Apply every pending migration, in order, under Kysely's migration lock (so
 * several nodes starting at once apply each migration once). A no-op when the
 * schema is current.
 */
export async function migrateToLatest(db: Kysely<any>, logger?: Pick<Logger, 'info'>): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results = [] } = await migrator.migrateToLatest();
  for (const result of results) {
    if (result.status === 'Success') logger?.info({ migration: result.migrationName }, 'migration applied');
  }
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return results;
}
