/**
 * The HTTP server (Fastify). Socket.IO attaches to its underlying Node server.
 * One error handler turns every failure into `{ error: { code, message } }`
 * with a stable code; nothing unknown leaks beyond a generic `internal`.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { ERRORS } from '../../shared/errors.ts';
import { AppError, ErrorCode, toErrorPayload } from '../errors.ts';
import { compileTrust } from '../gateway/address.ts';
import { setUpOpenApi } from './openapi.ts';

/** The Fastify instance; route schemas are zod schemas (request types are inferred from them). */
export type HttpServer = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>;

/** A route as the server registered it; `hidden` routes (static files, CORS preflight) are not in the OpenAPI document. */
export interface RegisteredRoute {
  method: string;
  url: string;
  hidden: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered so far, in order (HEAD routes Fastify adds for GET included). */
    registeredRoutes(): readonly RegisteredRoute[];
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The token of an `Authorization: Bearer <token>` header, if the request has one. */
export function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  return match?.[1];
}

export function createHttp({
  config,
  logger,
  onInternal,
}: {
  config: Config;
  logger: Logger;
  /** A request was answered `internal` (an unexpected fault, logged with its cause). */
  onInternal?: (where: { method: string; route: string }) => void;
}): HttpServer {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.http.bodyLimitBytes,
    // The same trust function as Socket.IO handshakes (server/gateway/address.ts): `request.ip` is the rightmost untrusted hop.
    trustProxy: compileTrust(config.http.trustProxy) || false,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // Slow or stalled requests are cut off instead of holding a socket for ever.
    connectionTimeout: 60_000,
    requestTimeout: 30_000,
    return503OnClosing: true,
    forceCloseConnections: true,
    // Node checks header and request timeouts on this interval (30 s by default):
    // a fraction of the headers timeout, so a slow sender is cut close to it.
    http: { connectionsCheckingInterval: Math.max(250, Math.min(5000, Math.floor(config.http.headersTimeoutMs / 4))) },
  });
  // Headers (including a WebSocket upgrade request) must arrive quickly (slowloris).
  app.server.headersTimeout = config.http.headersTimeoutMs;

  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, hidden: route.schema?.hide === true });
  });
  app.decorate('registeredRoutes', () => routes);
  setUpOpenApi(app, { version: VERSION });

  const anyOrigin = config.http.corsOrigins.includes('*');
  void app.register(cors, {
    origin: anyOrigin ? true : [...config.http.corsOrigins],
    methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['content-type', 'authorization', 'x-api-key'],
    maxAge: 600,
  });

  app.setErrorHandler((err, request, reply) => {
    const error = toHttpError(err);
    const payload = toErrorPayload(error, request.log, { reqId: request.id, url: request.url });
    if (payload.code === ErrorCode.Internal) onInternal?.({ method: request.method, route: request.routeOptions.url ?? 'unknown' });
    if (payload.retryAfterMs !== undefined) void reply.header('retry-after', Math.ceil(payload.retryAfterMs / 1000));
    void reply.status(ERRORS[payload.code].http).send({ error: payload });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: ErrorCode.NotFound, message: `No route for ${request.method} ${request.url.split('?')[0]}` } });
  });
  return app;
}

/** Map Fastify's own client errors (bad JSON, body too large, wrong media type) onto wire codes. */
function toHttpError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    if (e.statusCode === 413) return new AppError(ErrorCode.PayloadTooLarge, 'Request body is too large');
    if (e.statusCode === 429) return new AppError(ErrorCode.RateLimited, 'Too many requests');
    const message = e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'Send a JSON body (content-type: application/json)' : `Malformed request: ${e.message ?? 'bad input'}`;
    return new AppError(ErrorCode.BadRequest, message);
  }
  return err;
}
