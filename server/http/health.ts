import { HttpRoutes } from '../../shared/routes.ts';
import type { HttpServer } from './create-http.ts';

export interface HealthOptions {
  /** Named dependency checks; each resolves when the dependency answers. */
  checks: Record<string, () => Promise<unknown>>;
  /** True while the node is shutting down: not ready for new traffic. */
  draining: () => boolean;
  /** Longest a check may take before it counts as failed, ms. @default 1000 */
  timeoutMs?: number;
}

/**
 * `GET /healthz`: 200 while the process lives (liveness).
 * `GET /readyz`: 200 only when every dependency answers (readiness), else 503 naming what failed.
 */
export function registerHealthRoutes(http: HttpServer, options: HealthOptions): void {
  const timeoutMs = options.timeoutMs ?? 1000;
  http.get(HttpRoutes.health, { schema: { summary: 'Liveness: 200 while the process lives', tags: ['operations'] } }, async () => ({ status: 'ok' }));
  http.get(HttpRoutes.ready, { schema: { summary: 'Readiness: 200 when Redis (every connection) and PostgreSQL answer and the Socket.IO adapter\'s subscriptions are confirmed; 503 naming what failed, or while draining', tags: ['operations'] } }, async (_request, reply) => {
    if (options.draining()) return reply.status(503).send({ status: 'draining', failed: [] });
    const entries = Object.entries(options.checks);
    const results = await Promise.all(entries.map(([, check]) => withTimeout(check(), timeoutMs).then(() => true, () => false)));
    const failed = entries.filter((_, i) => !results[i]).map(([name]) => name);
    if (failed.length > 0) return reply.status(503).send({ status: 'unavailable', failed });
    return { status: 'ready', failed: [] };
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
