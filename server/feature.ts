/**
 * The shape every feature folder (auth, rooms, feed) exports: one
 * `createX(deps)` that is handed its connections and returns a `Feature`.
 * Creating one registers nothing; the composition root calls `register`,
 * then `start` and `stop` in its own order.
 */
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { Db } from './db/database.ts';
import type { EventRouter } from './gateway/ack.ts';
import type { HttpServer } from './http/create-http.ts';
import type { RedisClient as Redis } from './redis/connections.ts';
import type { Keys } from './redis/keys.ts';

/** What every feature is handed. */
export interface FeatureDeps {
  config: Config;
  logger: Logger;
  db: Db;
  redis: Redis;
  keys: Keys;
}

/** The shared edges a feature registers its Socket.IO handlers and HTTP routes on. */
export interface Edges {
  router: EventRouter;
  http: HttpServer;
}

export interface Feature<S> {
  /** The feature's operations, independent of the transport. */
  service: S;
  /** Add the feature's handlers, guards and routes. Once, before `start()`. */
  register(edges: Edges): void;
  /** Start its loops; the connections are up. */
  start(): Promise<void>;
  /** Stop its loops and wait for work in progress. */
  stop(): Promise<void>;
}
