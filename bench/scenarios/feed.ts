/**
 * Activity feed, side by side with its baselines in the same run:
 *
 * - append rate: `feed.append` (one Lua script: idempotency check, epoch, XADD
 *   with `MAXLEN ~` into the room stream, the `prev` link and count, SPUBLISH
 *   on the room's live channel) from CONCURRENCY concurrent callers over ROOMS rooms, against
 *   `redis-benchmark` running a bare `XADD ... MAXLEN ~` at the same
 *   concurrency over the same number of keys, and against ioredis sending the
 *   same bare XADD (which separates the script's cost from the client's);
 * - append-to-receipt latency: from the append call to the entry reaching a
 *   subscriber through the relay (the append script's SPUBLISH on the room's
 *   live channel, received on the node's subscriber connection), against raw
 *   Redis pub/sub (PUBLISH to message receipt), the lower bound of any push path;
 * - archive throughput: rows/s the archive worker stores (room streams read
 *   through hints, one multi-row INSERT per FEED_ARCHIVE_BATCH rows, the copy
 *   into the global feed, cursors moved), against a raw `pg` multi-row INSERT
 *   of the same rows in batches of the same size into the same table.
 *
 * Uses its own database and key prefix and removes both.
 *
 *   node --import tsx bench/scenarios/feed.ts
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { FeedEntry } from '../../shared/schemas.ts';
import pg from 'pg';
import { createActivityRepository } from '../../server/feed/activity-repository.ts';
import { createArchiveHints, createArchiver } from '../../server/feed/archiver.ts';
import { createFeedRelay } from '../../server/feed/feed-relay.ts';
import { createFeedStore, type ArchiveRecord, type Delivery } from '../../server/feed/feed-store.ts';
import { createLogger } from '../../server/logger.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createTestContext } from '../../tests/support/context.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const CONCURRENCY = 50;
const ROOMS = 50;
const APPEND_DURATION_MS = 3000;
const BENCH_REQUESTS = 100_000;
const LATENCY_SAMPLES = 2000;
const MAXLEN = 10_000;
const ARCHIVE_ROOMS = 50;
const ARCHIVE_PER_ROOM = 400;

const run = promisify(execFile);
const round2 = (n: number) => Math.round(n * 100) / 100;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function measure(concurrency: number, op: (i: number) => Promise<unknown>, durationMs: number) {
  let next = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await op(next++);
    }),
  );
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  return { perSecond: Math.round((next / ms) * 1000), cpu: Math.round(((cpu.user + cpu.system) / 1000 / ms) * 100) };
}

/** `redis-benchmark` XADD at `concurrency` over `keys` keys; requests per second. */
async function redisBenchmarkXadd(url: string, prefix: string, concurrency: number, keys: number): Promise<number> {
  const { hostname, port } = new URL(url);
  const { stdout } = await run('redis-benchmark', [
    '-h', hostname, '-p', port || '6379', '-c', String(concurrency), '-n', String(BENCH_REQUESTS), '-r', String(keys), '--csv',
    'XADD', `${prefix}bench:xadd:{__rand_int__}`, 'MAXLEN', '~', String(MAXLEN), '*', 't', 'chat.message', 'p', '{"text":"hello"}',
  ]);
  const row = stdout.trim().split('\n').find((l) => l.startsWith('"XADD'));
  const match = row && /","([0-9.]+)","/.exec(row);
  if (!match) throw new Error(`unexpected redis-benchmark output: ${stdout}`);
  return Math.round(Number(match[1]));
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const ctx = createTestContext({ LOG_LEVEL: 'silent', FEED_ROOM_MAXLEN: String(MAXLEN), FEED_GLOBAL_MAXLEN: '100000', FEED_ARCHIVE_DELAY_MS: '0' });
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  await ctx.migrate();
  const config = ctx.config;
  const redis = createRedisClient(config, logger, 'bench-feed');
  const raw = createRedisClient(config, logger, 'bench-raw');
  const live = createRedisClient(config, logger, 'subscriber');
  const sub = createRedisClient(config, logger, 'subscriber');
  const keys = createKeys(config.redis.keyPrefix);
  const scripts = createScripts(redis);
  const hints = createArchiveHints({ redis, keys, logger });
  const store = createFeedStore({ redis, scripts, keys, config });
  // The archive phase's entries only are hinted: the append phases' rooms are not archived.
  const archiveStore = createFeedStore({ redis, scripts, keys, config, onAppended: hints.add });
  const activity = createActivityRepository(ctx.db());
  const relay = createFeedRelay({ store, subscriber: live, archive: activity, replayMax: config.feed.replayMax, logger });
  const archiver = createArchiver({ redis, scripts, store, activity, db: ctx.db(), keys, config, logger });
  try {
    await Promise.all([redis, raw, live, sub].map((c) => connectRedis(c, config)));
    relay.start();
    hints.start();
    const rooms = Array.from({ length: ROOMS }, () => randomUUID());
    const actor = { id: randomUUID(), name: 'Bench' };
    const append = (i: number) => store.append({ roomId: rooms[i % ROOMS]!, type: 'chat.message', actor, payload: { text: 'hello' } });
    const rawXadd = (i: number) => raw.xadd(`${config.redis.keyPrefix}bench:ioredis:{${i % ROOMS}}`, 'MAXLEN', '~', MAXLEN, '*', 't', 'chat.message', 'p', '{"text":"hello"}');

    // ---- append rate (warm-up first, then the measured runs back to back)
    await measure(CONCURRENCY, append, 500);
    await measure(CONCURRENCY, rawXadd, 500);
    const feedAppend = await measure(CONCURRENCY, append, APPEND_DURATION_MS);
    const ioredisXadd = await measure(CONCURRENCY, rawXadd, APPEND_DURATION_MS);
    const benchXadd = await redisBenchmarkXadd(config.redis.url, config.redis.keyPrefix, CONCURRENCY, ROOMS);

    // ---- append-to-receipt latency: one subscriber per room through the relay
    const sent = new Map<string, number>();
    const feedLatencies: number[] = [];
    let waiting: (() => void) | undefined;
    for (const roomId of rooms) {
      await relay.subscribe({ kind: 'room', roomId }, undefined, {
        deliver: (d: Delivery) => {
          const entry = JSON.parse(d.json) as FeedEntry;
          const at = sent.get(String(entry.payload.k));
          if (at === undefined) return;
          feedLatencies.push(performance.now() - at);
          waiting?.();
        },
        lost: () => undefined,
      });
    }
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const got = new Promise<void>((r) => (waiting = r));
      sent.set(String(i), performance.now());
      await store.append({ roomId: rooms[i % ROOMS]!, type: 'chat.message', actor, payload: { text: 'hello', k: i } });
      await got;
    }

    const channel = `${config.redis.keyPrefix}bench:pubsub`;
    const pubsubLatencies: number[] = [];
    let pubsubWaiting: (() => void) | undefined;
    await sub.subscribe(channel);
    sub.on('message', (_channel: string, message: string) => {
      const at = Number(message.split('|')[0]);
      pubsubLatencies.push(performance.now() - at);
      pubsubWaiting?.();
    });
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const got = new Promise<void>((r) => (pubsubWaiting = r));
      await raw.publish(channel, `${performance.now()}|{"text":"hello"}`);
      await got;
    }

    // ---- archive throughput: the worker against raw multi-row INSERTs of the same rows
    const db = ctx.db();
    const host = await db.insertInto('users').values({ display_name: 'Bench', kind: 'guest' }).returning('id').executeTakeFirstOrThrow();
    let pins = 1_000_000;
    const newRooms = async () => {
      const ids = Array.from({ length: ARCHIVE_ROOMS }, () => randomUUID());
      await db.insertInto('rooms').values(ids.map((id) => ({ id, pin: String(pins++), title: 'bench', host_id: host.id, max_members: 10 }))).execute();
      return ids;
    };
    const archiveRooms = await newRooms();
    for (let i = 0; i < ARCHIVE_PER_ROOM; i += 10) {
      await Promise.all(archiveRooms.flatMap((roomId) => Array.from({ length: 10 }, (_, k) => archiveStore.append({ roomId, type: 'chat.message', actor, payload: { text: `archive ${i + k}` } }))));
    }
    await hints.stop();
    const total = ARCHIVE_ROOMS * ARCHIVE_PER_ROOM;
    const archiveCpu = process.cpuUsage();
    const archiveStart = performance.now();
    await archiver.start();
    while ((await archiver.lag()).rooms > 0 || archiver.stats().archived < total) {
      if (performance.now() - archiveStart > 60_000) throw new Error(`archive did not finish: ${archiver.stats().archived} of ${total}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const archiveMs = performance.now() - archiveStart;
    const archiveUsage = process.cpuUsage(archiveCpu);
    await archiver.stop();
    const archiveRate = Math.round((total / archiveMs) * 1000);

    const records: ArchiveRecord[] = [];
    for (const roomId of archiveRooms) {
      const { epoch } = await store.position({ kind: 'room', roomId });
      records.push(...(await store.records(roomId, epoch, '0-0', ARCHIVE_PER_ROOM)));
    }
    const rawRooms = await newRooms();
    const swap = new Map<string, string>(archiveRooms.map((id, i) => [id, rawRooms[i]!]));
    const client = new pg.Client({ connectionString: ctx.databaseUrl });
    await client.connect();
    const batch = config.feed.archive.batchSize;
    const rawStart = performance.now();
    for (let i = 0; i < records.length; i += batch) {
      const chunk = records.slice(i, i + batch);
      const values: unknown[] = [];
      const rows = chunk.map((r, j) => {
        values.push(swap.get(r.roomId), r.entryId, r.epoch, r.prev, r.type, r.actor?.id ?? null, r.actor?.name ?? null, r.payload, new Date(r.ts));
        const o = j * 9;
        return `($${o + 1}, $${o + 2}, $${o + 3}, $${o + 4}, $${o + 5}, $${o + 6}, $${o + 7}, $${o + 8}::jsonb, $${o + 9})`;
      });
      await client.query(`insert into activity (room_id, entry_id, epoch, prev_id, type, actor_id, actor_name, payload, created_at) values ${rows.join(', ')}`, values);
    }
    const rawMs = performance.now() - rawStart;
    await client.end();
    const rawRate = Math.round((records.length / rawMs) * 1000);

    const sortedFeed = [...feedLatencies].sort((x, y) => x - y);
    const sortedPubsub = [...pubsubLatencies].sort((x, y) => x - y);
    const ms = (n: number) => Math.round(n * 1000) / 1000;
    const rows: BenchRow[] = [
      {
        metric: `append rate, ${CONCURRENCY} concurrent appends over ${ROOMS} rooms`,
        unit: 'appends/s',
        pinroom: feedAppend.perSecond,
        baseline: benchXadd,
        baselineName: `redis-benchmark -c ${CONCURRENCY} -r ${ROOMS}: XADD key MAXLEN ~ ${MAXLEN} * (2 fields)`,
        ratio: round2(feedAppend.perSecond / benchXadd),
        target: 0.5,
        cpu: { server: feedAppend.cpu },
        note: 'one append = one Lua script: idempotency check, epoch, XADD room stream, prev link and count, TTLs, SPUBLISH on the room\'s live channel',
      },
      {
        metric: `append rate, ${CONCURRENCY} concurrent appends over ${ROOMS} rooms`,
        unit: 'appends/s',
        pinroom: feedAppend.perSecond,
        baseline: ioredisXadd.perSecond,
        baselineName: 'ioredis sending the same bare XADD from the same process',
        ratio: round2(feedAppend.perSecond / ioredisXadd.perSecond),
        cpu: { server: feedAppend.cpu },
      },
      {
        metric: 'append-to-receipt latency p50, sequential appends, one subscriber per room',
        unit: 'ms',
        pinroom: ms(percentile(sortedFeed, 50)),
        baseline: ms(percentile(sortedPubsub, 50)),
        baselineName: 'raw Redis PUBLISH to message receipt (ioredis)',
        ratio: round2(percentile(sortedPubsub, 50) / percentile(sortedFeed, 50)),
        lowerIsBetter: true,
        note: 'append script with SPUBLISH on the room\'s live channel + the message on the relay\'s subscriber connection + header parse',
      },
      {
        metric: 'append-to-receipt latency p99, sequential appends, one subscriber per room',
        unit: 'ms',
        pinroom: ms(percentile(sortedFeed, 99)),
        baseline: ms(percentile(sortedPubsub, 99)),
        baselineName: 'raw Redis PUBLISH to message receipt (ioredis)',
        ratio: round2(percentile(sortedPubsub, 99) / percentile(sortedFeed, 99)),
        lowerIsBetter: true,
      },
      {
        metric: `archive inserts/s, ${total.toLocaleString('en-US')} entries over ${ARCHIVE_ROOMS} rooms`,
        unit: 'rows/s',
        pinroom: archiveRate,
        baseline: rawRate,
        baselineName: `raw pg multi-row INSERT of the same rows, ${batch} per statement, same table`,
        ratio: round2(archiveRate / rawRate),
        cpu: { server: Math.round(((archiveUsage.user + archiveUsage.system) / 1000 / archiveMs) * 100) },
        note: `archive worker: take script for due room hints, claim script, XRANGE per room, one INSERT … ON CONFLICT per ${batch} rows, copy into the global feed, commit script; ${Math.round(archiveMs)} ms against ${Math.round(rawMs)} ms`,
      },
    ];
    return { scenario: 'feed', rows };
  } finally {
    await relay.stop();
    await hints.stop();
    await archiver.stop();
    await Promise.allSettled([closeRedis(redis), closeRedis(raw), closeRedis(sub), closeRedis(live)]);
    await ctx.cleanup();
  }
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
