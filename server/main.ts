/** Process entry: load config, build the app, start it, and stop it on SIGTERM/SIGINT. */
import { ConfigError, loadConfig, type Config } from './config.ts';
import { StartupError } from './errors.ts';
import { createApp } from './app.ts';

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`pinroom: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

const app = createApp(config);
const { logger } = app;

try {
  await app.start();
} catch (err) {
  if (err instanceof StartupError) {
    console.error(`pinroom: ${err.message}`);
  } else {
    logger.fatal({ err }, 'start-up failed');
  }
  process.exit(1);
}

let stopping = false;
function shutdown(signal: NodeJS.Signals): void {
  if (stopping) {
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal }, 'signal received');
  setTimeout(() => {
    logger.error({ timeoutMs: config.http.shutdownTimeoutMs }, 'graceful shutdown timed out');
    process.exit(1);
  }, config.http.shutdownTimeoutMs).unref();
  app.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled promise rejection'));
process.on('uncaughtException', (err) => {
  logger.fatal({ err }, 'uncaught exception');
  shutdown('SIGTERM');
});
