/**
 * PostgreSQL through Kysely and a pg pool. The pool is built here and nowhere
 * else; `createDb` does not connect until the first query.
 */
import { Kysely, PostgresDialect, sql, type KyselyPlugin, type LogEvent } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { redactUrl, type Config } from '../config.ts';
import { StartupError } from '../errors.ts';
import type { Database } from './tables.ts';

export type Db = Kysely<Database>;

export interface DbHandle {
  db: Db;
  pool: pg.Pool;
}

export function createDb(config: Pick<Config, 'db'>, logger: Logger, options: { plugins?: KyselyPlugin[]; log?: (event: LogEvent) => void } = {}): DbHandle {
  const pool = new pg.Pool({
    connectionString: config.db.url,
    max: config.db.poolMax,
    statement_timeout: config.db.statementTimeoutMs,
    connectionTimeoutMillis: config.db.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: 'pinroom',
  });
  // An idle client can die (server restart, pg_terminate_backend); the pool
  // replaces it. Without this listener the error would crash the process.
  pool.on('error', (err) => logger.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'idle postgres client error'));
  // A checked-out client whose connection drops emits 'error' too (its query also fails, and the pool discards it on release).
  pool.on('connect', (client) => client.on('error', (err) => logger.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'postgres connection lost')));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), plugins: options.plugins ?? [], ...(options.log ? { log: options.log } : {}) });
  return { db, pool };
}

/** `select 1`: resolves when PostgreSQL answers. */
export async function pingDb(db: Kysely<any>): Promise<void> {
  await sql`select 1`.execute(db);
}

/** Parse the database name out of a PostgreSQL URL. */
function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!name) throw new StartupError(`DATABASE_URL ${redactUrl(url)} names no database`);
  return name;
}

/** The same server's maintenance database (`postgres`), for creating and dropping databases. */
function maintenanceUrl(url: string): string {
  const u = new URL(url);
  u.pathname = '/postgres';
  return u.toString();
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Create the configured database if it does not exist (development convenience).
 * Fails with one clear `StartupError` when PostgreSQL cannot be reached.
 */
export async function ensureDatabase(config: Pick<Config, 'db'>): Promise<void> {
  const name = databaseName(config.db.url);
  const client = new pg.Client({ connectionString: maintenanceUrl(config.db.url), connectionTimeoutMillis: config.db.connectTimeoutMs });
  try {
    await client.connect();
  } catch (err) {
    throw unreachable(config.db.url, err);
  }
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`create database ${quoteIdent(name)}`);
      } catch (err) {
        // Another process created it at the same moment: 42P04 duplicate_database, or
        // 23505 when both passed the catalogue check and collided on its unique index.
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err;
      }
    }
  } finally {
    await client.end();
  }
}

/** Drop a database (tests). Terminates its sessions first. */
export async function dropDatabase(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: maintenanceUrl(url) });
  await client.connect();
  try {
    await client.query(`drop database if exists ${quoteIdent(databaseName(url))} with (force)`);
  } finally {
    await client.end();
  }
}

/** Check PostgreSQL is reachable at start-up, as one clear `StartupError` otherwise. */
export async function connectDb(db: Kysely<any>, config: Pick<Config, 'db'>): Promise<void> {
  try {
    await pingDb(db);
  } catch (err) {
    throw unreachable(config.db.url, err);
  }
}

function unreachable(url: string, err: unknown): StartupError {
  const code = (err as { code?: string }).code;
  const reason = code ?? (err instanceof Error ? err.message : String(err));
  const hint =
    code === '3D000'
      ? 'Create the database (npm run migrate, or DB_CREATE_IF_MISSING=true) or fix DATABASE_URL.'
      : 'Start it (pg_ctlcluster 15 main start, or: docker compose up -d redis postgres) or set DATABASE_URL.';
  return new StartupError(`cannot reach PostgreSQL at ${redactUrl(url)} (${reason}). ${hint}`, { cause: err });
}
