/**
 * Serves the browser demo (client-demo/dist, built by `npm run build:client`)
 * at `/`, with a strict Content-Security-Policy. Files are sent as the build
 * compressed them (`.br`, `.gz`) to browsers that accept that encoding.
 * Content-hashed assets (`app-<hash>.js`, `styles-<hash>.css`) are cached for
 * a year (`immutable`); everything else (`index.html`) is revalidated on every
 * use (`no-cache`), so a new build reaches browsers at once. Source maps are
 * never served.
 */
import { existsSync } from 'node:fs';
import fastifyStatic from '@fastify/static';
import type { Logger } from 'pino';
import type { HttpServer } from './create-http.ts';

/** A build output named by its content (or its compressed copy): it never changes under that name. */
const HASHED = /-[0-9a-f]{12}\.(?:js|css)(?:\.br|\.gz)?$/;
/** `Cache-Control` of hashed assets: one year. */
const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';

const DEMO_DIR = new URL('../../client-demo/dist/', import.meta.url).pathname;

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

/** Whether the demo has been built into `dir`. */
export const demoBuilt = (dir = DEMO_DIR): boolean => existsSync(`${dir}index.html`);

/** Serve the demo from `dir`; false (and a warning) when it is not built. */
export function registerDemoRoutes(http: HttpServer, { logger, dir = DEMO_DIR }: { logger: Logger; dir?: string }): boolean {
  if (!demoBuilt(dir)) {
    logger.warn({ dir }, 'the browser demo is not built (npm run build:client); / will answer 404');
    return false;
  }
  void http.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    wildcard: false,
    index: ['index.html'],
    preCompressed: true,
    cacheControl: false,
    allowedPath: (path) => !path.endsWith('.map'),
    setHeaders: (res, path) => {
      res.header('cache-control', HASHED.test(path) ? IMMUTABLE_CACHE : 'no-cache');
      res.header('content-security-policy', CSP);
      res.header('x-content-type-options', 'nosniff');
      res.header('referrer-policy', 'no-referrer');
    },
  });
  return true;
}
