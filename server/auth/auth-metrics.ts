/**
 * Auth series on the app's Prometheus registry, read when scraped (the hot
 * paths only bump plain numbers):
 * - access-token verification: how many verifications the verified-token
 *   cache answered and how many ran the full check, and how many tokens the
 *   cache holds;
 * - password hashing: hashes running and waiting for a slot on this node, and
 *   sign-ins refused because no slot freed up (`AUTH_HASH_*`).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuthService } from './auth-service.ts';
import type { TokenService } from './tokens.ts';

export function registerTokenMetrics(registry: Registry, tokens: Pick<TokenService, 'stats'>): void {
  const registers = [registry];
  const reported = { cached: 0, checked: 0 };
  new Counter({
    name: 'pinroom_auth_token_verifications_total',
    help: 'Access-token verifications: path="cached" answered by the verified-token cache (no signature check), path="checked" by the full check (accepted or refused).',
    labelNames: ['path'],
    registers,
    collect() {
      const { cached, checked } = tokens.stats();
      this.inc({ path: 'cached' }, cached - reported.cached);
      this.inc({ path: 'checked' }, checked - reported.checked);
      reported.cached = cached;
      reported.checked = checked;
    },
  });
  new Gauge({
    name: 'pinroom_auth_verified_tokens',
    help: 'Access tokens in the verified-token cache (at most AUTH_TOKEN_CACHE_SIZE).',
    registers,
    collect() {
      this.set(tokens.stats().entries);
    },
  });
}

export function registerHashMetrics(registry: Registry, auth: Pick<AuthService, 'hashStats'>): void {
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
  const reported = { queue_full: 0, wait: 0 };
  new Counter({
    name: 'pinroom_auth_hash_refusals_total',
    help: 'Sign-ins refused with rate_limited for want of a password-hash slot: the queue was full, or the wait passed AUTH_HASH_WAIT_MS.',
    labelNames: ['reason'],
    registers,
    collect() {
      const stats = auth.hashStats();
      this.inc({ reason: 'queue_full' }, stats.refused - reported.queue_full);
      this.inc({ reason: 'wait' }, stats.timedOut - reported.wait);
      reported.queue_full = stats.refused;
      reported.wait = stats.timedOut;
    },
  });
}
