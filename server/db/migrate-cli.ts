/** `npm run migrate`: create the database when allowed, and apply pending migrations. */
import { loadConfig, ConfigError } from '../config.ts';
import { StartupError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { connectDb, createDb, ensureDatabase } from './database.ts';
import { migrateToLatest } from './migrate.ts';

try {
  const config = loadConfig();
  const logger = createLogger(config);
  if (config.db.createIfMissing) await ensureDatabase(config);
  const { db } = createDb(config, logger);
  try {
    await connectDb(db, config);
    const results = await migrateToLatest(db, logger);
    logger.info({ applied: results.length }, results.length ? 'migrations applied' : 'schema is up to date');
  } finally {
    await db.destroy();
  }
} catch (err) {
  if (err instanceof ConfigError || err instanceof StartupError) {
    console.error(`pinroom: ${err.message}`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
  throw err;
}
