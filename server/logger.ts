import { pino, type Logger } from 'pino';
import { redactUrl, type Config } from './config.ts';

export type { Logger };

export type LogFormat = 'pretty' | 'json';

/**
 * Readable lines (pino-pretty, through pino's transport) for a person at a
 * terminal in development or test; JSON lines for everything else: production,
 * and output going to a pipe or a file, where a collector reads it.
 */
export function logFormat(env: Config['env'], stdout: { isTTY?: boolean } = process.stdout): LogFormat {
  return env !== 'production' && stdout.isTTY === true ? 'pretty' : 'json';
}

/**
 * Logs in the format `logFormat` picks (`destination`, when given, always gets JSON). Fields that may carry secrets are redacted wherever
 * they appear in a logged object, as a second line of defence: code never logs
 * tokens, passwords or their hashes on purpose.
 */
export function createLogger(config: Pick<Config, 'log' | 'env'>, destination?: pino.DestinationStream): Logger {
  const pretty = !destination && logFormat(config.env) === 'pretty';
  return pino(
    {
      level: config.log.level,
      base: { service: 'pinroom', pid: process.pid },
      redact: {
        paths: [
          'password',
          '*.password',
          'passwordHash',
          '*.passwordHash',
          'password_hash',
          '*.password_hash',
          'token',
          '*.token',
          'accessToken',
          '*.accessToken',
          'refreshToken',
          '*.refreshToken',
          'req.headers.authorization',
          'req.headers.cookie',
          'apiKey',
          '*.apiKey',
        ],
        censor: '[redacted]',
      },
      serializers: { err: pino.stdSerializers.err },
    },
    pretty
      ? pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } })
      : destination,
  );
}

/**
 * The line a started server logs: where to open the demo, and which Redis and
 * PostgreSQL it uses (passwords masked). `url` is the address it listens on,
 * as a client on this machine reaches it.
 */
export function startupLine({ url, demoBuilt, redisUrl, databaseUrl }: { url: string; demoBuilt: boolean; redisUrl: string; databaseUrl: string }): {
  fields: { url: string; demo: string | null; redis: string; postgres: string };
  message: string;
} {
  const address = new URL(url);
  if (address.hostname === '127.0.0.1' || address.hostname === '[::1]') address.hostname = 'localhost';
  const demo = demoBuilt ? address.toString() : null;
  const redis = redactUrl(redisUrl);
  const postgres = redactUrl(databaseUrl);
  const where = demo ? `open ${demo}` : `the demo is not built (npm run build:client), API on ${url}`;
  return { fields: { url, demo, redis, postgres }, message: `pinroom listening: ${where} (Redis ${redis}, PostgreSQL ${postgres})` };
}
