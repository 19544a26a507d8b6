/**
 * Feed gauges on the app's Prometheus registry, read when scraped:
 * archive lag (entries of the global stream not yet in PostgreSQL) and the
 * relay's streams and subscriptions on this node.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Feed } from './feed.ts';

export function registerFeedMetrics(registry: Registry, feed: Pick<Feed, 'archiveLag' | 'relay'>): void {
  const registers = [registry];
  new Gauge({
    name: 'pinroom_feed_archive_lag',
    help: 'Feed entries in the global stream not yet archived to PostgreSQL (undelivered plus pending).',
    registers,
    async collect() {
      this.set(await feed.archiveLag().catch(() => Number.NaN));
    },
  });
  new Gauge({
    name: 'pinroom_feed_tailed_streams',
    help: 'Feed streams this node tails for its local subscribers.',
    registers,
    collect() {
      this.set(feed.relay.stats().streams);
    },
  });
  new Gauge({
    name: 'pinroom_feed_subscriptions',
    help: 'Feed subscriptions held by this node.',
    registers,
    collect() {
      this.set(feed.relay.stats().subscriptions);
    },
  });
}
