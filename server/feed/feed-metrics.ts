/**
 * Feed series on the app's Prometheus registry, read when scraped: archive
 * lag (seconds since the oldest entry not yet in PostgreSQL, and rooms
 * waiting), dead letters, entries appended by this node, and the relay's
 * channels and subscriptions on this node. The publish → delivery histogram
 * (`pinroom_feed_delivery_seconds`) is in server/observability/instruments.ts.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Archiver } from './archiver.ts';
import type { FeedRelay } from './feed-relay.ts';
import type { FeedStore } from './feed-store.ts';

export function registerFeedMetrics(
  registry: Registry,
  feed: { archiveLag: Archiver['lag']; relay: Pick<FeedRelay, 'stats'>; archiver: Pick<Archiver, 'stats'>; store: Pick<FeedStore, 'stats'> },
): void {
  const registers = [registry];
  const lag = () => feed.archiveLag().catch(() => ({ seconds: Number.NaN, rooms: Number.NaN }));
  new Gauge({
    name: 'pinroom_feed_archive_lag_seconds',
    help: 'Seconds since the oldest feed entry not yet archived to PostgreSQL was appended (0 when the archive is up to date).',
    registers,
    async collect() {
      this.set((await lag()).seconds);
    },
  });
  new Gauge({
    name: 'pinroom_feed_archive_pending_rooms',
    help: 'Rooms with feed entries not yet archived to PostgreSQL.',
    registers,
    async collect() {
      this.set((await lag()).rooms);
    },
  });
  new Counter({
    name: 'pinroom_feed_archive_dead_letters_total',
    help: 'Feed entries PostgreSQL refused, moved to the dead-letter stream by this node.',
    registers,
    collect() {
      this.reset();
      this.inc(feed.archiver.stats().deadLetters);
    },
  });
  new Counter({
    name: 'pinroom_feed_entries_total',
    help: 'Feed entries appended by this node (an idempotent retry not counted), by feed: a room\'s or the system log.',
    labelNames: ['feed'],
    registers,
    collect() {
      this.reset();
      const appended = feed.store.stats();
      this.inc({ feed: 'room' }, appended.room);
      this.inc({ feed: 'system' }, appended.system);
    },
  });
  new Gauge({
    name: 'pinroom_feed_channels',
    help: 'Feed live channels this node follows (feeds with subscribers here).',
    registers,
    collect() {
      this.set(feed.relay.stats().channels);
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
  new Counter({
    name: 'pinroom_feed_repairs_total',
    help: 'Times a live channel on this node read missed entries back from the stream.',
    registers,
    collect() {
      this.reset();
      this.inc(feed.relay.stats().repairs);
    },
  });
}
