import { pino, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/**
 * Structured JSON logs. Fields that may carry secrets are redacted wherever
 * they appear in a logged object, as a second line of defence: code never logs
 * tokens, passwords or their hashes on purpose.
 */
export function createLogger(config: Pick<Config, 'log' | 'env'>, destination?: pino.DestinationStream): Logger {
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
    destination,
  );
}
