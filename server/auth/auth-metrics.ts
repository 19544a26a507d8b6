/**
 * Auth gauges on the app's Prometheus registry, read when scraped: password
 * hashes running and waiting for a slot on this node, and sign-ins refused
 * because no slot freed up (`AUTH_HASH_*`).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuthService } from './auth-service.ts';

export function registerAuthMetrics(registry: Registry, auth: Pick<AuthService, 'hashStats'>): void {
  const registers = [registry];
  new Gauge({
    name: 'pinroom_auth_hashes',
    help: 'Password hashes on this node: running (at most AUTH_HASH_CONCURRENCY) and waiting for a slot (at most AUTH_HASH_QUEUE).',
    labelNames: ['state'],
    registers,
    collect() {
      const stats = auth.hashStats();
      this.set({ state: 'running' }, stats.running);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
  const counted = { queue_full: 0, wait: 0 };
  new Counter({
    name: 'pinroom_auth_hash_refusals_total',
    help: 'Sign-ins refused with rate_limited for want of a password-hash slot: the queue was full, or the wait passed AUTH_HASH_WAIT_MS.',
    labelNames: ['reason'],
    registers,
    collect() {
      const stats = auth.hashStats();
      this.inc({ reason: 'queue_full' }, stats.refused - counted.queue_full);
      this.inc({ reason: 'wait' }, stats.timedOut - counted.wait);
      counted.queue_full = stats.refused;
      counted.wait = stats.timedOut;
    },
  });
}
