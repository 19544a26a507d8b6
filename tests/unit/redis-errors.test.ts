/**
 * A Redis error that reaches a client is `unavailable` (retryable), never
 * `internal`: transient ones (a failover's CLUSTERDOWN, TRYAGAIN, READONLY),
 * cluster redirections that were not followed (MOVED, CROSSSLOT), a Lua error
 * reply, and ioredis Cluster giving up. Other errors stay `internal`.
 */
import { ReplyError } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { toErrorPayload } from '../../server/errors.ts';
import { clusterModeHint, isClusterRedirect } from '../../server/redis/connections.ts';
import { isTransientError } from '../../server/retry.ts';
import { loadConfig } from '../../server/config.ts';

const test = suite('redis/errors');
const logger = { warn: () => undefined, error: () => undefined } as unknown as Parameters<typeof toErrorPayload>[1];

const reply = (message: string) => new ReplyError(message);

test('MOVED, CROSSSLOT, CLUSTERDOWN, TRYAGAIN and a script error reply answer unavailable, never internal', () => {
  for (const message of ['MOVED 6165 127.0.0.1:7002', "CROSSSLOT Keys in request don't hash to the same slot", 'CLUSTERDOWN The cluster is down', 'TRYAGAIN Multiple keys request during rehashing of slot', 'READONLY You can\'t write against a read only replica.', 'ERR user_script:1: Script attempted to access a non local key in a cluster node']) {
    const payload = toErrorPayload(reply(message), logger);
    assert.is(payload.code, 'unavailable', message);
    assert.is(payload.retryable, true);
    assert.not.match(payload.message, /MOVED|CROSSSLOT|127\.0\.0\.1/, 'no Redis detail reaches the client');
  }
});

test('ioredis Cluster failures (no node reachable, slots not refreshed, too many redirections) are transient', () => {
  for (const message of ['Command aborted due to connection close', 'Failed to refresh slots cache.', 'Too many Cluster redirections. Last error: MOVED 1 127.0.0.1:1', 'None of startup nodes is available']) {
    assert.ok(isTransientError(new Error(message)), message);
    assert.is(toErrorPayload(new Error(message), logger).code, 'unavailable', message);
  }
  const all = Object.assign(new Error('Failed to refresh slots cache.'), { name: 'ClusterAllFailedError' });
  assert.is(toErrorPayload(all, logger).code, 'unavailable');
});

test('a reply error wrapped as a cause is still unavailable; an ordinary bug is still internal', () => {
  assert.is(toErrorPayload(new Error('outer', { cause: reply('CROSSSLOT x') }), logger).code, 'unavailable');
  assert.is(toErrorPayload(new TypeError('undefined is not a function'), logger).code, 'internal');
});

test('a cluster redirection at start-up is recognised and answered with one line naming REDIS_CLUSTER_NODES', () => {
  assert.ok(isClusterRedirect(reply('MOVED 6165 127.0.0.1:7002')));
  assert.ok(isClusterRedirect(reply('CROSSSLOT Keys in request don\'t hash to the same slot')));
  assert.not.ok(isClusterRedirect(reply('WRONGTYPE Operation against a key holding the wrong kind of value')));
  const line = clusterModeHint(loadConfig({ REDIS_URL: 'redis://:secret@10.0.0.5:7001' }), 'MOVED 6165 10.0.0.5:7002');
  assert.match(line, 'REDIS_CLUSTER_NODES=');
  assert.not.match(line, 'secret', 'the password is not printed');
  assert.not.match(line, '\n');
});

test('REDIS_CLUSTER_NODES parses host:port lists, picks the sharded adapter, and refuses the classic one', () => {
  const config = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.5:7001, redis-2:7002,[::1]:7003' });
  assert.equal(config.redis.clusterNodes, [{ host: '10.0.0.5', port: 7001 }, { host: 'redis-2', port: 7002 }, { host: '::1', port: 7003 }]);
  assert.is(config.socket.adapter, 'sharded');
  assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis-1' }), /expected host:port/);
  assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis-1:7001', SOCKET_ADAPTER: 'classic' }), /SOCKET_ADAPTER=classic/);
  assert.is(loadConfig({}).socket.adapter, 'classic');
  assert.is(loadConfig({}).redis.clusterNodes, undefined);
});

test.run();
