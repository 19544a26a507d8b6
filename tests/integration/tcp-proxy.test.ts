import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { BASE_REDIS_URL } from '../support/context.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

const test = suite('support/tcp-proxy');

test('the proxy forwards, cuts and stalls a real Redis connection', async () => {
  const target = new URL(BASE_REDIS_URL);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  const client = new Redis(proxy.url(BASE_REDIS_URL), { maxRetriesPerRequest: 0, commandTimeout: 300, retryStrategy: () => 100 });
  client.on('error', () => undefined);
  try {
    assert.is(await client.ping(), 'PONG');
    proxy.stall();
    let stalled = false;
    await client.ping().catch((err: Error) => {
      stalled = /timed out/i.test(err.message);
    });
    assert.ok(stalled, 'a stalled connection times out');
    proxy.cut();
    let cut = false;
    await client.ping().catch(() => {
      cut = true;
    });
    assert.ok(cut, 'a cut connection fails');
    proxy.restore();
    for (let i = 0; i < 50 && client.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 100));
    assert.is(await client.ping(), 'PONG');
  } finally {
    client.disconnect();
    await proxy.close();
  }
});

test.run();
