/**
 * Graceful shutdown of one of three nodes under load (SIGTERM while its
 * clients both receive and publish): it answers 503 `draining`, closes its client
 * transports (clients reconnect, here to the other nodes), and exits 0. The
 * moved clients resume their feeds and retry their unanswered publishes with
 * the same clientMsgId: every acknowledged entry is stored once and delivered
 * once to everyone, in the stream's order.
 *
 * The leaving node reaches Redis through a TCP proxy that is stalled from just
 * before the signal until its readiness said `draining`: that holds the drain
 * open long enough to be seen (it is otherwise a few milliseconds), at the
 * cost of a short stall of that node's Redis traffic, which clients ride out
 * by retrying.
 */
import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest } from '../support/auth.ts';
import { request, type TestSocket } from '../support/client.ts';
import { BASE_REDIS_URL } from '../support/context.ts';
import { failoverFollower, hostWithRoom, ok, readyz, sleep, startThreeNodes, until } from '../support/faults.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const test = suite('faults/graceful-shutdown');

let cluster: Awaited<ReturnType<typeof startThreeNodes>>;
let proxy: TcpProxy;

test.before(async () => {
  const target = new URL(BASE_REDIS_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  cluster = await startThreeNodes({}, [{}, {}, { REDIS_URL: proxy.url(BASE_REDIS_URL) }]);
});

test.after(async () => {
  proxy?.restore();
  await cluster?.stop();
  await proxy?.close();
});

test('SIGTERM on a loaded node: it drains and exits 0, its clients move to the other nodes, and nothing is lost or doubled', async () => {
  const { ctx, nodes, track } = cluster;
  const [a, b, leaving] = nodes;
  const { socket: hostSocket, room } = await hostWithRoom(a.url, 'Drain', track);
  const others = () => [a.url, b.url];

  // Four members on the leaving node and one on b: all follow the feed, all publish.
  const members: ReturnType<typeof failoverFollower>[] = [];
  for (let i = 0; i < 5; i++) {
    const guest = await signInGuest(a.url, `Member${i}`);
    const f = failoverFollower(guest.accessToken, room.id, room.pin, others, track);
    await f.start(i < 4 ? leaving.url : b.url);
    members.push(f);
  }

  /** Publish `count` entries, each retried with its clientMsgId until acknowledged (through whatever node the member is on now). */
  const acknowledged = new Map<string, string>(); // text → id
  const publisher = async (name: string, socketOf: () => TestSocket, count: number) => {
    for (let n = 1; n <= count; n++) {
      const text = `${name} #${n}`;
      const clientMsgId = randomUUID();
      for (let attempt = 0; ; attempt++) {
        const ack = await request(socketOf(), 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text }, clientMsgId }, 3000).catch(() => null);
        if (ack?.ok) {
          const previous = acknowledged.get(text);
          assert.ok(previous === undefined || previous === ack.data.id, `a retry of ${text} returned its first id`);
          acknowledged.set(text, ack.data.id);
          break;
        }
        assert.ok(attempt < 100, `${text} acknowledged within 100 attempts`);
        await sleep(50);
      }
    }
  };
  const load = Promise.all([publisher('host', () => hostSocket, 120), ...members.map((m, i) => publisher(`member${i}`, () => m.follower.socket, 40))]);

  await until(() => acknowledged.size >= 80, 'load before the shutdown');
  assert.equal(await readyz(leaving.url), [200, 'ready']);
  proxy.stall();
  const stopped = leaving.stop('SIGTERM');
  const readinessDuring: [number, string][] = [];
  await until(async () => {
    readinessDuring.push(await readyz(leaving.url));
    return readinessDuring.some(([, status]) => status === 'draining');
  }, 'readiness 503 draining on the leaving node', 30_000);
  proxy.restore();
  const code = await stopped;
  assert.is(code, 0, 'the node exits 0 after draining');
  const drainingFrom = readinessDuring.findIndex(([, status]) => status === 'draining');
  assert.equal(readinessDuring[drainingFrom], [503, 'draining']);
  assert.ok(readinessDuring.slice(drainingFrom).every(([status]) => status !== 200), `never ready again once draining (${readinessDuring.join('; ')})`);

  await load;
  await Promise.all(members.map((m) => m.settled()));
  for (const [i, m] of members.entries()) {
    if (i < 4) assert.equal(m.reasons, ['transport close'], `member ${i} saw a transport close (reconnectable), once`);
    else assert.equal(m.reasons, [], 'the member on another node was not disturbed');
  }

  // The stream holds each acknowledged entry once; every member received exactly the stream, in order.
  const stream = await ctx.redis().xrange(`${ctx.keyPrefix}room:{${room.id}}:feed`, '-', '+');
  const chat = stream.filter(([, fields]) => fields.includes('chat.message'));
  const storedIds = chat.map(([id]) => id);
  assert.is(chat.length, acknowledged.size, `one stored entry per acknowledged publish (${chat.length} stored, ${acknowledged.size} acknowledged)`);
  assert.equal(new Set(storedIds), new Set(acknowledged.values()), 'the stored ids are the acknowledged ids');
  await until(() => members.every((m) => m.follower.entries.filter((e) => e.type === 'chat.message').length >= chat.length), 'every member holding every entry', 30_000);
  for (const [i, m] of members.entries()) {
    const got = m.follower.entries.filter((e) => e.type === 'chat.message').map((e) => e.id);
    assert.equal(got, storedIds, `member ${i}: every entry once, in stream order`);
    assert.ok(m.follower.recovered.every(Boolean), `member ${i}: every resume recovered`);
  }
  for (const m of members) m.stop();
});

test.run();
