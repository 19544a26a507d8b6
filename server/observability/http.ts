/**
 * Operator endpoints.
 *
 *   GET /metrics          Prometheus text format of the app's registry.
 *                         With `METRICS_TOKEN` set: `Authorization: Bearer <METRICS_TOKEN>`
 *                         required (401 otherwise). Unset: open in development and
 *                         test, not served (404) in production.
 *   GET /admin/overview   Live sockets and rooms of this node, and the feed archive's lag, as JSON.
 *                         `Authorization: Bearer <access token>` of an admin user
 *                         (`FEED_ADMIN_USERS`): 401 without a valid token, 403 for
 *                         anyone else. `?limit=` sockets listed (default 100, at most 1000).
 *
 * Both answer `Cache-Control: no-store`. Requests are logged at debug level with
 * their request id, method, path (never the query string) and status.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { Config } from '../config.ts';
import { HttpRoutes } from '../../shared/routes.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { PinroomServer } from '../gateway/create-io.ts';
import { bearer, type HttpServer } from '../http/create-http.ts';
import { Security } from '../http/openapi.ts';

/** The feed as the admin overview shows it: the archive (its lag over every node; dead letters this node's worker wrote) and this node's live channels. */
export interface FeedOverview {
  /** Seconds since the oldest entry not yet archived to PostgreSQL (0: up to date). */
  archiveLagSeconds: number;
  /** Rooms with entries not yet archived. */
  archivePendingRooms: number;
  /** Entries PostgreSQL refused that this node moved to the dead-letter stream. */
  archiveDeadLetters: number;
  /** Feeds this node follows, and subscriptions it holds. */
  channels: number;
  subscriptions: number;
}

export interface AdminOverview {
  node: { pid: number; uptimeSeconds: number; rssBytes: number; heapUsedBytes: number };
  feed: FeedOverview;
  sockets: { connected: number; engineConnections: number; listed: number };
  rooms: { roomId: string; sockets: number }[];
  socketList: {
    id: string;
    userId: string;
    name: string;
    kind: string;
    address: string;
    transport: string;
    connectedAt: string;
    rooms: string[];
  }[];
}

const ROOM_PREFIX = 'room:';

const digest = (value: string) => createHash('sha256').update(value).digest();

export function registerObservabilityRoutes(
  http: HttpServer,
  {
    registry,
    config,
    io,
    authenticate,
    isAdmin,
    feed,
  }: {
    registry: Registry;
    config: Pick<Config, 'env' | 'observability'>;
    io: PinroomServer;
    /** Verify an access token (signature, expiry, session still active); throws `unauthorized`/`token_expired`/`session_revoked`. */
    authenticate(token: unknown): Promise<{ userId: string }>;
    /** Whether a user may see the admin view (the configured admin users). */
    isAdmin(user: { id: string }): boolean | Promise<boolean>;
    /** The feed's archive lag and this node's channels. */
    feed(): Promise<FeedOverview>;
  },
): void {
  const tokenDigest = config.observability.metricsToken ? digest(config.observability.metricsToken) : null;

  http.addHook('onResponse', async (request, reply) => {
    request.log.debug({ reqId: request.id, method: request.method, path: request.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  http.get(HttpRoutes.metrics, { schema: { summary: 'Prometheus metrics of this node (text format)', tags: ['operations'], security: [...Security.bearer] } }, async (request, reply) => {
    if (tokenDigest) {
      const presented = bearer(request);
      // Compared as digests: constant time whatever the lengths.
      if (!presented || !timingSafeEqual(digest(presented), tokenDigest)) {
        throw new AppError(ErrorCode.Unauthorized, 'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>');
      }
    } else if (config.env === 'production') {
      throw new AppError(ErrorCode.NotFound, `No route for GET ${HttpRoutes.metrics}`);
    }
    const text = await registry.metrics();
    return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(text);
  });

  const overviewSchema = {
    summary: "This node's sockets and rooms (the first `limit`, default 100, at most 1000), and the feed archive's lag (admins)",
    tags: ['operations'],
    security: [...Security.bearer],
    querystring: z.object({ limit: z.string().optional() }),
  };
  http.get(HttpRoutes.adminOverview, { schema: overviewSchema }, async (request, reply) => {
    const token = bearer(request);
    if (!token) throw new AppError(ErrorCode.Unauthorized, 'GET /admin/overview needs Authorization: Bearer <access token> of an admin user');
    const claims = await authenticate(token);
    if (!(await isAdmin({ id: claims.userId }))) throw new AppError(ErrorCode.Forbidden, 'Only administrators may see the admin overview');
    const limit = Math.min(1000, Math.max(0, Number.parseInt(request.query.limit ?? '100', 10) || 0));

    const nsp = io.of('/');
    const rooms: AdminOverview['rooms'] = [];
    for (const [name, members] of nsp.adapter.rooms) {
      if (name.startsWith(ROOM_PREFIX)) rooms.push({ roomId: name.slice(ROOM_PREFIX.length), sockets: members.size });
    }
    rooms.sort((a, b) => b.sockets - a.sockets);
    const socketList: AdminOverview['socketList'] = [];
    for (const socket of nsp.sockets.values()) {
      if (socketList.length >= limit) break;
      const user = socket.data.user;
      socketList.push({
        id: socket.id,
        userId: user?.id ?? '',
        name: user?.name ?? '',
        kind: user?.kind ?? '',
        address: socket.data.address ?? socket.handshake.address,
        transport: socket.conn.transport.name,
        connectedAt: new Date(socket.handshake.issued).toISOString(),
        rooms: [...socket.rooms].filter((r) => r.startsWith(ROOM_PREFIX)).map((r) => r.slice(ROOM_PREFIX.length)),
      });
    }
    const memory = process.memoryUsage();
    const overview: AdminOverview = {
      node: { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
      feed: await feed(),
      sockets: { connected: nsp.sockets.size, engineConnections: io.engine.clientsCount, listed: socketList.length },
      rooms,
      socketList,
    };
    return reply.header('cache-control', 'no-store').send(overview);
  });
}
