/**
 * Access-token verification series on the app's Prometheus registry, read when
 * scraped (verification only bumps plain numbers): how many verifications the
 * verified-token cache answered and how many ran the full check, and how many
 * tokens the cache holds.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
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
