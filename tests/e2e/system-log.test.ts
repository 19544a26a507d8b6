/**
 * The system log records dependency transitions: Redis killed and restarted
 * (the node's own redis-server), PostgreSQL cut and restored (a TCP proxy).
 * The Redis outage cannot be written while Redis is gone: it waits on the
 * node and is written, before the recovery, once Redis is back.
 * (Rate limiting of a storm is in tests/unit/system-events.test.ts.)
 */
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createKeys } from '../../server/redis/keys.ts';
import { BASE_PG_URL, createTestContext, type TestContext } from '../support/context.ts';
import { readiness, until } from '../support/faults.ts';
import { startRedisServer, type OwnedRedis } from '../support/redis-server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('observability/system-log');
let ctx: TestContext;
let redis: OwnedRedis;
let proxy: TcpProxy;
let server: TestServer;

interface LogEntry {
  type: string;
  payload: Record<string, unknown>;
}

/** The system log stream as stored, oldest first. */
async function systemLog(): Promise<LogEntry[]> {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await client.connect();
    const raw = (await client.xrange(createKeys(ctx.keyPrefix).feedSystem, '-', '+')) as [string, string[]][];
    return raw.map(([, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      return { type: f.t ?? '', payload: JSON.parse(f.p ?? '{}') as Record<string, unknown> };
    });
  } finally {
    client.disconnect();
  }
}

const transitions = (entries: LogEntry[], dependency: string) =>
  entries.filter((e) => e.type.startsWith('dependency.') && e.payload.dependency === dependency).map((e) => e.type);

/**
 * Outages and recoveries alternate, starting with an outage and ending with a
 * recovery. Usually exactly one of each; a connect that also times out on a
 * loaded machine (DB_CONNECT_TIMEOUT_MS is 1 s here) may add a pair.
 */
function assertOutageThenRecovery(types: string[], what: string): void {
  assert.ok(types.length >= 2 && types.length % 2 === 0, `${what}: pairs of down and up (${types.join(', ')})`);
  types.forEach((type, i) => assert.is(type, i % 2 === 0 ? 'dependency.down' : 'dependency.up', `${what}: entry ${i} (${types.join(', ')})`));
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  redis = await startRedisServer();
  const target = new URL(BASE_PG_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  server = await startTestServer({ ...ctx.env, REDIS_URL: redis.url, DATABASE_URL: proxy.url(ctx.databaseUrl), DB_CONNECT_TIMEOUT_MS: '1000' });
});

test.after(async () => {
  proxy?.restore();
  await server?.stop();
  await proxy?.close();
  await redis?.dispose();
  await ctx.cleanup();
});

test('Redis going down and coming back is written to the system log, the outage first, once Redis is back', async () => {
  assert.equal(transitions(await systemLog(), 'redis'), [], 'nothing before the fault');
  await redis.kill();
  await until(async () => (await readiness(server.url)) === 503, 'readiness to notice Redis is gone');
  await redis.start();
  await until(async () => (await readiness(server.url)) === 200, 'readiness to recover');
  await until(async () => transitions(await systemLog(), 'redis').length >= 2, 'the transitions to be written');
  const entries = (await systemLog()).filter((e) => e.payload.dependency === 'redis');
  assertOutageThenRecovery(entries.map((e) => e.type), 'redis');
  assert.ok(Number(entries[0]!.payload.at) < Number(entries[1]!.payload.at), 'each carries the time it happened');
  assert.type(entries[0]!.payload.error, 'string');
});

test('PostgreSQL becoming unreachable and reachable again is written to the system log', async () => {
  proxy.cut();
  await until(async () => (await readiness(server.url)) === 503, 'readiness to notice PostgreSQL is gone');
  await until(async () => transitions(await systemLog(), 'postgres').includes('dependency.down'), 'the outage to be written');
  proxy.restore();
  await until(async () => (await readiness(server.url)) === 200, 'readiness to recover');
  await until(async () => transitions(await systemLog(), 'postgres').includes('dependency.up'), 'the recovery to be written');
  assertOutageThenRecovery(transitions(await systemLog(), 'postgres'), 'postgres');
});

test.run();
