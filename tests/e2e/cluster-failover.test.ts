/**
 * A Redis Cluster failover under traffic: three masters with a replica each
 * (from the machine's redis-server), two pinroom nodes in cluster mode, a
 * host publishing a stream of entries (retrying a failed publish with the
 * same clientMsgId, as a client does) and a member following the feed. The
 * master that holds the room's slot is killed with -9; the cluster promotes
 * its replica and pinroom follows without a restart. The test reports what
 * was acknowledged and what of it the feed lost (the replica made to lag
 * first), with and without
 * `FEED_APPEND_WAIT_REPLICAS=1`; with it, nothing acknowledged is lost.
 */
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { keySlot } from '../../server/redis/slots.ts';
import { request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { signInGuest } from '../support/auth.ts';
import { failoverFollower, hostWithRoom, until } from '../support/faults.ts';
import { startRedisCluster, type OwnedCluster } from '../support/redis-cluster.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('cluster/failover');
const ENTRIES = 200;
/** How long the replica lags (stopped) before its master is killed, ms. */
const LAG_MS = 2000;

let cluster: OwnedCluster;
let ctx: TestContext;
const servers: TestServer[] = [];
const sockets: TestSocket[] = [];
const track = (s: TestSocket) => void sockets.push(s);

test.before(async () => {
  cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 2000 });
  ctx = createTestContext({ REDIS_CLUSTER_NODES: cluster.seeds });
  await ctx.migrate();
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled(servers.map((s) => s.stop()));
  await ctx?.db().destroy();
  await cluster?.stop();
  // The database (the keys went with the cluster).
  await ctx?.cleanup().catch(() => undefined);
});

/** The ports of the master that serves `key`'s slot now and of its first replica. */
async function shardOf(key: string): Promise<{ master: number; replica: number | undefined }> {
  const client = new Cluster(cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
  try {
    const slots = (await client.cluster('SLOTS')) as unknown as [number, number, ...[string, number][]][];
    const slot = keySlot(key);
    const range = slots.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`no master for slot ${slot}`);
    return { master: range[2]![1], replica: range[3]?.[1] };
  } finally {
    client.disconnect();
  }
}

/** The port of the master that serves `key`'s slot now. */
async function masterOf(key: string): Promise<number> {
  const client = new Cluster(cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
  try {
      const slots = (await client.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
      const slot = keySlot(key);
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no master for slot ${slot}`);
      return range[2][1];
  } finally {
    client.disconnect();
  }
}

async function run(label: string, env: Record<string, string>): Promise<{ acknowledged: number; lost: number; failedAttempts: number; received: number }> {
  await cluster.waitHealthy();
  // No archive: the Redis stream is the feed's only copy, so the test sees what Redis itself keeps
  // (the archive copies entries to PostgreSQL FEED_ARCHIVE_DELAY_MS after they are appended).
  const nodeEnv = { ...ctx.env, ...RAISED_USER_LIMITS, FEED_ARCHIVE_ENABLED: 'false', SOCKET_EVENTS_PER_SECOND: '10000', AUTH_RATE_REGISTER_IP: '1000/60', AUTH_RATE_GUEST_IP: '1000/60', REDIS_COMMAND_TIMEOUT_MS: '3000', ...env };
  const [a, b] = await Promise.all([startTestServer(nodeEnv), startTestServer(nodeEnv)]);
  servers.push(a, b);
  const { socket: hostSocket, room } = await hostWithRoom(a.url, `Failover ${label}`, track);
  const guest = await signInGuest(b.url, 'Follower');
  const follower = failoverFollower(guest.accessToken, room.id, room.pin, () => [b.url], track);
  await follower.start(b.url);

  const feedKey = `${ctx.keyPrefix}room:{${room.id}}:feed`;
  // A replica shows in CLUSTER SLOTS once it has attached to its master, a moment after the cluster is made.
  let shard = await shardOf(feedKey);
  await until(async () => (shard = await shardOf(feedKey)).replica !== undefined, "the room's master to list its replica", 30_000);
  const victimPort = shard.master;
  const victim = cluster.nodes.find((n) => n.port === victimPort)!;
  const replica = cluster.nodes.find((n) => n.port === shard.replica);
  assert.ok(replica, 'the room\'s master has a replica');
  const acknowledged: string[] = [];
  let failedAttempts = 0;
  let returned: Promise<void> | undefined;
  try {
    for (let n = 1; n <= ENTRIES; n++) {
      if (n === ENTRIES / 4) {
        // The replica falls behind: stopped, and its replication link cut by the master (so nothing
        // more reaches it, not even into its socket buffer), for LAG_MS while publishes go on. Then the
        // master is killed with -9 and the replica comes back and takes over. Once it has, the dead node comes back
        // (empty), as an orchestrator would restart it, and rejoins as the new master's replica; until
        // then the shard has no replica at all. (Back before the promotion, it would return as the
        // master of its slots, empty: no persistence here.)
        replica!.pause();
        const direct = new Redis(victimPort, '127.0.0.1', { maxRetriesPerRequest: 1 });
        await direct.call('CLIENT', 'KILL', 'TYPE', 'replica');
        direct.disconnect();
        returned = (async () => {
          await new Promise((r) => setTimeout(r, LAG_MS));
          await victim.kill();
          replica!.resume();
          await until(async () => (await masterOf(feedKey).catch(() => victimPort)) !== victimPort, 'the replica\'s promotion', 60_000);
          await victim.start();
        })();
      }
      const text = `${label} ${n}`;
      const clientMsgId = randomUUID();
      // A client retries a failed publish with the same clientMsgId until it is acknowledged.
      const end = Date.now() + 60_000;
      for (;;) {
        const ack = await request(hostSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text }, clientMsgId }, 15_000).catch(() => null);
        if (ack?.ok) break;
        failedAttempts++;
        if (ack && !ack.ok && ack.error.code !== 'unavailable') {
          const why = [a, b].flatMap((s) => s.output().split('\n')).filter((l) => l.includes('"level":50')).slice(-3).join('\n');
          assert.unreachable(`a failed publish is unavailable, not ${ack.error.code}:\n${why}`);
        }
        if (Date.now() > end) throw new Error(`${text} was not acknowledged within 60 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
      acknowledged.push(text);
    }
    await returned;
    await cluster.waitHealthy(60_000);
    assert.ok((await masterOf(feedKey)) !== victimPort, 'the replica was promoted');

    // What the feed holds now, from its history (newest first, in pages).
    const stored = new Set<string>();
    let before: string | undefined;
    do {
      const page = await request(hostSocket, 'feed:history', { roomId: room.id, limit: 100, ...(before ? { before } : {}) }, 15_000);
      if (!page.ok) throw new Error(`history: ${page.error.code}`);
      for (const e of page.data.entries) if (e.type === 'chat.message') stored.add(String(e.payload.text));
      before = page.data.nextBefore;
    } while (before);
    const lost = acknowledged.filter((t) => !stored.has(t)).length;
    // The follower, resubscribing when needed, ends up with the entries the feed holds.
    const texts = () => new Set(follower.follower.entries.filter((e) => e.type === 'chat.message').map((e) => String(e.payload.text)));
    await until(() => [...stored].every((t) => texts().has(t)), 'the follower to hold what the feed holds', 60_000).catch(() => undefined);
    const received = texts().size;
    console.log(`  ${label}: ${acknowledged.length} acknowledged, ${lost} of them lost, ${failedAttempts} failed attempts retried, follower holds ${received}`);
    return { acknowledged: acknowledged.length, lost, failedAttempts, received };
  } finally {
    follower.stop();
    await returned?.catch(() => undefined);
    await Promise.all([a.stop(), b.stop()]);
  }
}

test('a master killed with -9 while its replica lags: the replica is promoted, pinroom follows without a restart, and without WAIT the entries acknowledged meanwhile are lost', async () => {
  const result = await run('no WAIT', {});
  assert.is(result.acknowledged, ENTRIES, 'every publish is acknowledged in the end');
  assert.ok(result.lost > 0, 'asynchronous replication: what the master acknowledged and the replica never got is gone');
});

test('with FEED_APPEND_WAIT_REPLICAS=1 no acknowledged entry is lost when the master is killed with -9', async () => {
  const result = await run('WAIT 1', { FEED_APPEND_WAIT_REPLICAS: '1', FEED_APPEND_WAIT_TIMEOUT_MS: '1000' });
  assert.is(result.acknowledged, ENTRIES);
  assert.is(result.lost, 0, 'every acknowledged entry is on the promoted replica');
  assert.is(result.received, ENTRIES, 'the follower holds every entry');
});

test.run();
