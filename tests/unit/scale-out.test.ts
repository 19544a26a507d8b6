/**
 * Scale-out and hostile-input settings and the pieces that need no I/O: the
 * new configuration variables, the per-address connection cap, and the
 * deployment files (compose.yaml, deploy/nginx.conf) agreeing with each other.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, loadConfig } from '../../server/config.ts';
import { createConnectionCap } from '../../server/gateway/connection-cap.ts';

const test = suite('scale-out/config-and-deploy');
const root = new URL('../..', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

test('defaults: one process, the classic adapter, a high per-address cap, and a flood limit ten times the rate limit', () => {
  const config = loadConfig({});
  assert.is(config.cluster.workers, 1);
  assert.is(config.socket.adapter, 'classic');
  assert.is(config.socket.maxConnectionsPerAddress, 10_000);
  assert.is(config.socket.disconnectEventsPerSecond, 10 * config.socket.eventsPerSecond);
  assert.is(config.socket.connectTimeoutMs, 10_000);
  assert.is(config.http.headersTimeoutMs, 10_000);
  assert.is(loadConfig({ SOCKET_EVENTS_PER_SECOND: '50' }).socket.disconnectEventsPerSecond, 500);
});

test('bad scale-out settings are refused: an unknown adapter, a flood limit below the rate limit, zero workers', () => {
  for (const [env, name] of [
    [{ SOCKET_ADAPTER: 'cluster' }, 'SOCKET_ADAPTER'],
    [{ SOCKET_EVENTS_PER_SECOND: '100', SOCKET_DISCONNECT_EVENTS_PER_SECOND: '50' }, 'SOCKET_DISCONNECT_EVENTS_PER_SECOND'],
    [{ WORKERS: '0' }, 'WORKERS'],
    [{ SOCKET_MAX_CONNECTIONS_PER_ADDRESS: '0' }, 'SOCKET_MAX_CONNECTIONS_PER_ADDRESS'],
    [{ HTTP_HEADERS_TIMEOUT_MS: '60000' }, 'HTTP_HEADERS_TIMEOUT_MS'],
  ] as const) {
    assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.message.includes(name), name);
  }
});

/** A fake Engine.IO connection from `address`. */
function conn(address: string, forwarded?: string) {
  const emitter = new EventEmitter();
  let closed = false;
  const request = { socket: { remoteAddress: address }, headers: forwarded ? { 'x-forwarded-for': forwarded } : {} } as unknown as IncomingMessage;
  return {
    request,
    once: (event: 'close', listener: () => void) => emitter.once(event, listener),
    close: () => {
      closed = true;
      emitter.emit('close');
    },
    get closed() {
      return closed;
    },
  };
}

test('the connection cap admits up to max per address, closes the overshoot of simultaneous handshakes, and frees slots on close', () => {
  const cap = createConnectionCap({ max: 2, trustProxy: { hops: 0 } });
  const a = [conn('10.0.0.1'), conn('::ffff:10.0.0.1'), conn('10.0.0.1')];
  assert.ok(cap.admits(a[0]!.request));
  // All three passed `admits` before any was counted (simultaneous handshakes): the third is closed when counted.
  assert.equal(a.map((c) => cap.track(c)), [true, true, false]);
  assert.ok(a[2]!.closed);
  assert.is(cap.count('10.0.0.1'), 2, 'IPv4 and mapped IPv6 count as one address');
  assert.not.ok(cap.admits(conn('10.0.0.1').request));
  assert.ok(cap.admits(conn('10.0.0.2').request), 'another address is not affected');
  a[0]!.close();
  assert.is(cap.count('10.0.0.1'), 1);
  assert.ok(cap.admits(conn('10.0.0.1').request), 'a freed slot admits again');
  a[1]!.close();
  assert.is(cap.count('10.0.0.1'), 0);
});

test('behind a trusted proxy the cap counts the forwarded client address, not the proxy', () => {
  const cap = createConnectionCap({ max: 1, trustProxy: { hops: 1 } });
  assert.ok(cap.track(conn('172.18.0.5', '198.51.100.7')));
  assert.ok(cap.track(conn('172.18.0.5', '198.51.100.8')), 'two clients behind one proxy');
  assert.not.ok(cap.admits(conn('172.18.0.5', '198.51.100.7').request));
});

test('compose.yaml runs Redis, PostgreSQL, two pinroom nodes behind nginx, each with a healthcheck, and nginx routes to exactly those nodes', () => {
  const compose = read('compose.yaml');
  const services = [...compose.matchAll(/^ {2}([a-z0-9-]+):/gm)].map((m) => m[1]!);
  for (const name of ['redis', 'postgres', 'pinroom-1', 'pinroom-2', 'nginx']) assert.ok(services.includes(name), `service ${name}`);
  const blocks = compose.split(/^ {2}(?=[a-z0-9-]+:)/m);
  for (const name of ['redis', 'postgres', 'pinroom-1', 'nginx']) {
    assert.ok(blocks.find((b) => b.startsWith(`${name}:`))?.includes('healthcheck:'), `${name} has a healthcheck`);
  }
  assert.ok(blocks.find((b) => b.startsWith('pinroom-2:'))?.includes('<<: *pinroom'), 'pinroom-2 is pinroom-1 (healthcheck included)');
  assert.match(compose, /TRUST_PROXY: "1"/);
  assert.match(compose, /\.\/deploy\/nginx\.conf:\/etc\/nginx\/nginx\.conf:ro/);

  const nginx = read('deploy/nginx.conf');
  // Polling sticky by the whole client address; direct WebSockets and HTTP spread; workers share peer state.
  const sticky = /upstream pinroom_sticky \{([^}]*)\}/.exec(nginx)?.[1] ?? '';
  const spread = /upstream pinroom_spread \{([^}]*)\}/.exec(nginx)?.[1] ?? '';
  assert.match(sticky, /^\s*hash \$remote_addr consistent;/m, 'polling sticky by the full client address');
  assert.not.match(nginx, /^\s*ip_hash;/m, 'not ip_hash (first three octets only)');
  assert.match(spread, /^\s*least_conn;/m);
  for (const upstream of [sticky, spread]) {
    assert.match(upstream, /^\s*zone /m, 'shared peer state across workers');
    const servers = [...upstream.matchAll(/server ([a-z0-9-]+):3000/g)].map((m) => m[1]);
    assert.equal(servers, ['pinroom-1', 'pinroom-2']);
  }
  assert.match(nginx, /proxy_set_header Upgrade \$http_upgrade;/);
  assert.match(nginx, /proxy_set_header Connection \$connection_upgrade;/);
  assert.match(nginx, /proxy_http_version 1\.1;/);
  assert.match(nginx, /proxy_set_header X-Forwarded-For \$remote_addr;/);
  const readTimeout = Number(/proxy_read_timeout (\d+)s;/.exec(nginx)?.[1]);
  const config = loadConfig({});
  assert.ok(readTimeout * 1000 > config.socket.pingIntervalMs + config.socket.pingTimeoutMs, 'idle WebSockets outlive a heartbeat');
});

test.run();
