import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { BASE_REDIS_URL } from '../support/context.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const test = suite('support/tcp-proxy');
const target = new URL(BASE_REDIS_URL);
/** Long enough that a forwarded PING on loopback surely answers within it, even on a loaded machine. */
const COMMAND_TIMEOUT_MS = 1500;

function client(proxy: TcpProxy, options: { lazyConnect?: boolean; enableReadyCheck?: boolean } = {}): Redis {
  const redis = new Redis(proxy.url(BASE_REDIS_URL), { maxRetriesPerRequest: 0, commandTimeout: COMMAND_TIMEOUT_MS, retryStrategy: () => 100, ...options });
  redis.on('error', () => undefined);
  return redis;
}

/** The outcome of one PING: 'PONG', 'timed out' or the error message. */
async function ping(redis: Redis): Promise<string> {
  return redis.ping().catch((err: Error) => (/timed out/i.test(err.message) ? 'timed out' : err.message));
}

test('the proxy forwards, cuts and stalls a real Redis connection', async () => {
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  const redis = client(proxy);
  try {
    assert.is(await redis.ping(), 'PONG');
    proxy.stall();
    assert.is(await ping(redis), 'timed out', 'a stalled connection times out');
    proxy.cut();
    assert.is.not(await ping(redis), 'PONG', 'a cut connection fails');
    proxy.restore();
    for (let i = 0; i < 100 && redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 100));
    assert.is(await redis.ping(), 'PONG');
  } finally {
    redis.disconnect();
    await proxy.close();
  }
});

test('a connection opened during a stall is held too, and its bytes flow once the stall ends', async () => {
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  const before = client(proxy);
  let during: Redis | undefined;
  try {
    assert.is(await before.ping(), 'PONG');
    proxy.stall();
    // Without the ready check, connect() resolves once TCP is up (the proxy accepted it).
    during = client(proxy, { lazyConnect: true, enableReadyCheck: false });
    await during.connect();
    assert.is(proxy.accepted.duringStall, 1, 'the new connection reached the proxy during the stall');
    const [old, fresh] = await Promise.all([ping(before), ping(during)]);
    assert.equal([old, fresh], ['timed out', 'timed out'], 'both the old and the new connection are stalled');
    proxy.restore();
    const id = await during.client('ID');
    assert.ok(Number(id) > 0, 'the connection opened during the stall works after it');
    assert.is(await before.ping(), 'PONG');
  } finally {
    before.disconnect();
    during?.disconnect();
    await proxy.close();
  }
});

test('a connection opened during a cut is reset at once', async () => {
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  proxy.cut();
  const during = client(proxy, { lazyConnect: true });
  try {
    const outcome = await during.connect().then(
      () => during.ping(),
      (err: Error) => err.message,
    );
    assert.is.not(outcome, 'PONG');
    assert.is(proxy.accepted.duringCut >= 1, true, 'the connection reached the proxy during the cut');
    proxy.restore();
  } finally {
    during.disconnect();
    await proxy.close();
  }
});

test.run();
