/**
 * The only module that reads the environment. `loadConfig(env)` is pure: it
 * validates every variable, reports all problems in one `ConfigError`, and
 * returns a frozen `Config`. Defaults make `npm start` work on a machine with
 * a local Redis and PostgreSQL; `NODE_ENV=production` refuses those defaults
 * where they would be insecure.
 *
 * Every variable is declared once in `VARIABLES` with its default and meaning;
 * the README's configuration table is checked against this list by a test.
 */
import { z } from 'zod';

export type NodeEnv = 'development' | 'test' | 'production';

export interface Config {
  env: NodeEnv;
  http: {
    port: number;
    host: string;
    /** Allowed browser origins for HTTP CORS and the Socket.IO handshake; `['*']` allows any (development only). */
    corsOrigins: readonly string[];
    /** Trust `X-Forwarded-For` from a reverse proxy for the client address. */
    trustProxy: boolean;
    /** Largest HTTP request body, in bytes. */
    bodyLimitBytes: number;
    /** Time allowed for a graceful shutdown before the process exits anyway, in ms. */
    shutdownTimeoutMs: number;
  };
  socket: {
    /** Largest Socket.IO frame (Engine.IO `maxHttpBufferSize`), in bytes. */
    maxPayloadBytes: number;
    pingIntervalMs: number;
    pingTimeoutMs: number;
  };
  redis: {
    url: string;
    /** Prefix of every Redis key and of the Socket.IO adapter channel. */
    keyPrefix: string;
    /** A Redis command that takes longer fails with `unavailable`, in ms. */
    commandTimeoutMs: number;
    /** Time to reach Redis at start-up before giving up, in ms. */
    connectTimeoutMs: number;
  };
  db: {
    url: string;
    poolMax: number;
    /** Create the database at start-up when it does not exist (development convenience). */
    createIfMissing: boolean;
    /** Server-side statement timeout, in ms. */
    statementTimeoutMs: number;
    /** Time to reach PostgreSQL at start-up before giving up, in ms. */
    connectTimeoutMs: number;
  };
  log: { level: LogLevel };
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

interface Variable {
  /** Default as it would be written in the environment; absent means "unset" is allowed and handled in `build`. */
  default?: string;
  doc: string;
  schema: z.ZodType<unknown, string>;
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
const list = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));
const origins = list.pipe(
  z.array(z.union([z.literal('*'), url(['http:', 'https:']).refine((v) => new URL(v).origin === v, 'an origin has no path: scheme://host[:port]')])),
);

/** Every environment variable pinroom reads, with its default and meaning. */
export const VARIABLES = {
  NODE_ENV: { default: 'development', doc: '`development`, `test` or `production`; production refuses insecure defaults.', schema: z.enum(['development', 'test', 'production']) },
  PORT: { default: '3000', doc: 'HTTP and Socket.IO port (0 picks a free port).', schema: int(0, 65535) },
  HOST: { default: '0.0.0.0', doc: 'Address to listen on.', schema: z.string().trim().min(1) },
  CORS_ORIGINS: { default: '*', doc: 'Comma-separated browser origins allowed for HTTP and the Socket.IO handshake (checked for WebSocket and polling). `*` allows any and is refused in production.', schema: origins },
  TRUST_PROXY: { default: 'false', doc: 'Take the client address from `X-Forwarded-For` (set behind nginx).', schema: bool },
  HTTP_BODY_LIMIT_BYTES: { default: '16384', doc: 'Largest HTTP request body, bytes.', schema: int(1024, 10 * 1024 * 1024) },
  SHUTDOWN_TIMEOUT_MS: { default: '10000', doc: 'Graceful shutdown deadline, ms; the process exits when it passes.', schema: int(100, 120_000) },
  WS_MAX_PAYLOAD_BYTES: { default: '65536', doc: 'Largest Socket.IO frame, bytes; larger frames close the connection.', schema: int(1024, 100 * 1024 * 1024) },
  WS_PING_INTERVAL_MS: { default: '25000', doc: 'Engine.IO heartbeat interval, ms.', schema: int(1000, 300_000) },
  WS_PING_TIMEOUT_MS: { default: '20000', doc: 'Engine.IO heartbeat timeout, ms.', schema: int(1000, 300_000) },
  REDIS_URL: { default: 'redis://127.0.0.1:6379', doc: 'Redis server URL (`redis://` or `rediss://`).', schema: url(['redis:', 'rediss:']) },
  KEY_PREFIX: { default: 'pinroom:', doc: 'Prefix of every Redis key and of the Socket.IO adapter channel.', schema: z.string().min(1).max(64).regex(/^[A-Za-z0-9:_.-]+$/, 'letters, digits and ":_.-" only') },
  REDIS_COMMAND_TIMEOUT_MS: { default: '2000', doc: 'A Redis command slower than this fails with `unavailable`, ms.', schema: int(50, 60_000) },
  REDIS_CONNECT_TIMEOUT_MS: { default: '5000', doc: 'How long start-up waits for Redis, ms.', schema: int(100, 120_000) },
  DATABASE_URL: { default: 'postgres://postgres@127.0.0.1:5432/pinroom', doc: 'PostgreSQL URL.', schema: url(['postgres:', 'postgresql:']) },
  DB_POOL_MAX: { default: '10', doc: 'PostgreSQL pool size per process.', schema: int(1, 500) },
  DB_CREATE_IF_MISSING: { doc: 'Create the database at start-up when missing. Default `true`, `false` in production.', schema: bool },
  DB_STATEMENT_TIMEOUT_MS: { default: '5000', doc: 'PostgreSQL statement timeout, ms.', schema: int(100, 600_000) },
  DB_CONNECT_TIMEOUT_MS: { default: '5000', doc: 'How long start-up waits for PostgreSQL, ms.', schema: int(100, 120_000) },
  LOG_LEVEL: { default: 'info', doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.', schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) },
} satisfies Record<string, Variable>;

export type VariableName = keyof typeof VARIABLES;
type Parsed = { [K in VariableName]: z.output<(typeof VARIABLES)[K]['schema']> | undefined };

/** Load and validate configuration from `env` (default `process.env`). Throws `ConfigError` listing every problem. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const problems: string[] = [];
  const parsed = {} as Record<string, unknown>;
  for (const [name, variable] of Object.entries(VARIABLES) as [VariableName, Variable][]) {
    const given = env[name];
    const raw = given === undefined || given === '' ? variable.default : given;
    if (raw === undefined) continue;
    const result = variable.schema.safeParse(raw);
    if (result.success) parsed[name] = result.data;
    else problems.push(`${name}=${JSON.stringify(raw)}: ${result.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const v = parsed as Parsed;
  const nodeEnv = v.NODE_ENV as NodeEnv;
  const production = nodeEnv === 'production';
  const config: Config = {
    env: nodeEnv,
    http: {
      port: v.PORT!,
      host: v.HOST!,
      corsOrigins: v.CORS_ORIGINS!,
      trustProxy: v.TRUST_PROXY!,
      bodyLimitBytes: v.HTTP_BODY_LIMIT_BYTES!,
      shutdownTimeoutMs: v.SHUTDOWN_TIMEOUT_MS!,
    },
    socket: {
      maxPayloadBytes: v.WS_MAX_PAYLOAD_BYTES!,
      pingIntervalMs: v.WS_PING_INTERVAL_MS!,
      pingTimeoutMs: v.WS_PING_TIMEOUT_MS!,
    },
    redis: {
      url: v.REDIS_URL!,
      keyPrefix: v.KEY_PREFIX!,
      commandTimeoutMs: v.REDIS_COMMAND_TIMEOUT_MS!,
      connectTimeoutMs: v.REDIS_CONNECT_TIMEOUT_MS!,
    },
    db: {
      url: v.DATABASE_URL!,
      poolMax: v.DB_POOL_MAX!,
      createIfMissing: v.DB_CREATE_IF_MISSING ?? !production,
      statementTimeoutMs: v.DB_STATEMENT_TIMEOUT_MS!,
      connectTimeoutMs: v.DB_CONNECT_TIMEOUT_MS!,
    },
    log: { level: v.LOG_LEVEL! },
  };

  if (production) {
    const isSet = (name: VariableName) => env[name] !== undefined && env[name] !== '';
    if (!isSet('CORS_ORIGINS') || config.http.corsOrigins.includes('*')) {
      problems.push('CORS_ORIGINS: production needs an explicit list of allowed origins (not `*`)');
    }
    if (!isSet('REDIS_URL')) problems.push('REDIS_URL: production needs an explicit Redis URL');
    if (!isSet('DATABASE_URL')) problems.push('DATABASE_URL: production needs an explicit PostgreSQL URL');
    if (problems.length > 0) throw new ConfigError(problems);
  }
  return deepFreeze(config);
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
