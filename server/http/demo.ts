/**
 * Serves the browser demo (client-demo/dist, built by `npm run build:client`)
 * at `/`, with a strict Content-Security-Policy.
 */
import { existsSync } from 'node:fs';
import fastifyStatic from '@fastify/static';
import type { Logger } from 'pino';
import type { HttpServer } from './create-http.ts';

export const DEMO_DIR = new URL('../../client-demo/dist/', import.meta.url).pathname;

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

export function registerDemoRoutes(http: HttpServer, { logger, dir = DEMO_DIR }: { logger: Logger; dir?: string }): void {
  if (!existsSync(`${dir}index.html`)) {
    logger.warn({ dir }, 'the browser demo is not built (npm run build:client); / will answer 404');
    return;
  }
  void http.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    wildcard: false,
    index: ['index.html'],
    cacheControl: true,
    maxAge: 0,
    setHeaders: (res) => {
      res.header('content-security-policy', CSP);
      res.header('x-content-type-options', 'nosniff');
      res.header('referrer-policy', 'no-referrer');
    },
  });
}
