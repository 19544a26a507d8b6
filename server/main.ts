/**
 * Process entry: load config, build the app, start it, and stop it on
 * SIGTERM/SIGINT. With `WORKERS` > 1 this process becomes the cluster primary
 * (server/cluster.ts) and each worker runs this same file as one node.
 */
import cluster from 'node:cluster';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { StartupError } from './errors.ts';
import { createApp } from './app.ts';
import { reportWorkerReady, runPrimary, setupStickyWorker } from './cluster.ts';
import { createLogger } from './logger.ts';

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

if (config.cluster.workers > 1 && cluster.isPrimary) {
  const logger = createLogger(config);
  try {
    await runPrimary(config, logger);
  } catch (err) {
    if (err instanceof StartupError) console.error(`pinroom: ${err.message}`);
    else logger.fatal({ err }, 'start-up failed');
    process.exit(1);
  }
} else {
  await runNode(config);
}

async function runNode(config: Config): Promise<void> {
  const worker = cluster.isWorker;
  // A worker does not listen: the primary hands it connections (@socket.io/sticky).
  const app = createApp(config, { listen: !worker });
  const { logger } = app;

  try {
    await app.start();
    if (worker) {
      setupStickyWorker(app.io);
      reportWorkerReady();
    }
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
      // A worker gets the terminal's SIGINT and the primary's SIGTERM: one drain; the primary enforces the deadline.
      if (worker) return;
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
  process.on('unhandledRejection', (err) => {
    logger.error({ err }, 'unhandled promise rejection');
    app.systemEvents.internalError({ event: 'process:unhandledRejection' });
  });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    app.systemEvents.internalError({ event: 'process:uncaughtException' });
    shutdown('SIGTERM');
  });
}
