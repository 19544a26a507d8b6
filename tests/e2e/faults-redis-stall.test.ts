/**
 * Redis stalled (a TCP proxy holding every byte both ways, as a hung Redis or
 * a black-holed network does): callers get `unavailable` within the command
 * timeout instead of hanging, readiness turns 503, and nothing is left half
 * done when the stalled commands finally run: no PIN claimed without its
 * room, no feed entry stored twice when the client retries.
 */
import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../server/logger.ts';
import { connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createPinStore } from '../../server/rooms/pins.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, BASE_REDIS_URL, createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, ok, readiness, until } from '../support/faults.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('faults/redis-stall');
const COMMAND_TIMEOUT_MS = 500;
/** A loaded machine may add this on top of the command timeout. */
const SLACK_MS = 3000;
/**
 * How long a test waits for an answer during a stall. The stall lasts until the
 * test restores it, so any answer within this proves the command timeout cut
 * the wait short (a hung call would get no answer at all); how fast is not checked.
 */
const ANSWER_DEADLINE_MS = COMMAND_TIMEOUT_MS + SLACK_MS + 15_000;

let ctx: TestContext;
let proxy: TcpProxy;
let server: TestServer;
const sockets: TestSocket[] = [];

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  const target = new URL(BASE_REDIS_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  server = await startTestServer({
    ...ctx.env,
    REDIS_URL: proxy.url(BASE_REDIS_URL),
    REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
    SOCKET_EVENTS_PER_SECOND: '1000',
    ...RAISED_USER_LIMITS,
    ROOM_CREATE_RATE_USER: '1000/60',
  });
});

test.after(async () => {
  for (const s of sockets) s.close();
  proxy?.restore();
  await server?.stop();
  await proxy?.close();
  await ctx.cleanup();
});

/** A host with a room and a member subscribed to its feed, set up while Redis answers. */
async function roomWithSubscriber(title: string) {
  const host = await signUp(server.url, { displayName: 'Stall host' });
  const hostSocket = await connect(server.url, { token: host.accessToken });
  sockets.push(hostSocket);
  const { room } = ok(await request(hostSocket, 'room:create', { title }));
  const guest = await signInGuest(server.url, 'Stall guest');
  const member = await connect(server.url, { token: guest.accessToken });
  sockets.push(member);
  ok(await request(member, 'room:join', { pin: room.pin }));
  ok(await request(member, 'feed:subscribe', { roomId: room.id }));
  const received: string[] = [];
  member.on('feed:entry', (e) => e.type === 'chat.message' && received.push(String(e.payload.text)));
  const publish = (clientMsgId: string, text: string) =>
    request(hostSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text }, clientMsgId }, ANSWER_DEADLINE_MS);
  return { hostSocket, room, received, publish };
}

test('with Redis stalled, room creations answer unavailable within the command timeout, readiness is 503, and writes work again after it', async () => {
  const { hostSocket } = await roomWithSubscriber('Before the stall');
  proxy.stall();
  const started = Date.now();
  const [creations, ready] = await Promise.all([
    Promise.all(Array.from({ length: 5 }, (_, i) => request(hostSocket, 'room:create', { title: `During the stall ${i}` }, ANSWER_DEADLINE_MS))),
    readiness(server.url),
  ]);
  const elapsed = Date.now() - started;
  console.log(`  creations answered during the stall after ${elapsed} ms (command timeout ${COMMAND_TIMEOUT_MS} ms)`);
  proxy.restore();
  assert.equal(creations.map(codeOf), Array(5).fill('unavailable'), 'every creation: unavailable');
  assert.ok(creations.every((c) => !c.ok && c.error.retryable), 'marked retryable');
  assert.is(ready, 503, 'not ready while Redis does not answer');
  assert.is((await fetch(`${server.url}/healthz`)).status, 200, 'the node itself is alive');
  await until(async () => (await readiness(server.url)) === 200, 'readiness after the stall');
  ok(await request(hostSocket, 'room:create', { title: 'After the stall' }));
});

test('a feed publish during a stall answers unavailable; its retry with the same clientMsgId stores and delivers it once', async () => {
  const { room, received, publish } = await roomWithSubscriber('Feed stall');
  proxy.stall();
  const published = await publish('stalled-publish', 'written during the stall');
  // The stalled bytes now reach Redis: the script that timed out on our side runs there.
  proxy.restore();
  assert.is(codeOf(published), 'unavailable');
  await until(async () => (await readiness(server.url)) === 200, 'readiness after the stall');

  const retried = ok(await publish('stalled-publish', 'written during the stall'));
  const again = ok(await publish('stalled-publish', 'written during the stall'));
  assert.is(again.id, retried.id, 'the same id every time');
  await until(() => received.includes('written during the stall'), 'the entry reaching the subscriber');
  // A later entry marks the end: the feed is in order, so a second copy would have come before it.
  ok(await publish('after-the-retry', 'marker'));
  await until(() => received.includes('marker'), 'the marker entry');
  const stream = await ctx.redis().xrange(`${ctx.keyPrefix}room:{${room.id}}:feed`, '-', '+');
  const copies = stream.filter(([, fields]) => fields.some((f) => f.includes('written during the stall')));
  assert.is(copies.length, 1, 'stored once');
  assert.equal(received.filter((t) => t === 'written during the stall'), ['written during the stall'], 'delivered once');
});

/** Every PIN key of this test's prefix and what it holds (a room id, or `ended:...`). */
async function pinClaims(): Promise<{ keys: string[]; values: (string | null)[] }> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await ctx.redis().scan(cursor, 'MATCH', `${ctx.keyPrefix}pin:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return { keys, values: keys.length > 0 ? await ctx.redis().mget(...keys) : [] };
}

test('no PIN is left claimed without its room after creations timed out in a stall', async () => {
  // Every command the node held in the stall went out on its Redis connection before this
  // creation's: once it is answered, they all ran.
  const host = await signUp(server.url, { displayName: 'Marker host' });
  const marker = await connect(server.url, { token: host.accessToken });
  sockets.push(marker);
  ok(await request(marker, 'room:create', { title: 'After everything held' }));
  const { keys, values } = await pinClaims();
  const claimed = values.filter((v): v is string => v !== null && !v.startsWith('ended:'));
  const rows = await ctx.db().selectFrom('rooms').select(['id', 'pin']).where('status', '!=', 'ended').execute();
  const roomIds = new Set(rows.map((r) => r.id));
  const orphans = keys.filter((_, i) => values[i] && !values[i]!.startsWith('ended:') && !roomIds.has(values[i]!));
  assert.equal(orphans, [], `PIN keys naming no room: ${orphans.join(', ')}`);
  assert.is(claimed.length, rows.length, 'one claim per live room');
});

test('a PIN claim that times out in a stall does not stay behind without its room once the stall ends', async () => {
  // The PIN store of a node, on its own connection through the stalled proxy (the claim is the
  // step that stalls here, which the whole room:create cannot pin down from outside).
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const config = ctx.configWith({ REDIS_URL: proxy.url(BASE_REDIS_URL), REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS) });
  const redis = createRedisClient(config, logger, 'command');
  await connectRedis(redis, config);
  const pins = createPinStore({ redis, scripts: createScripts(redis), keys: createKeys(ctx.keyPrefix), config: config.rooms, logger });
  try {
    const roomIds: string[] = Array.from({ length: 5 }, () => randomUUID());
    let inserted = 0;
    proxy.stall();
    const outcomes = await Promise.all(
      roomIds.map((roomId) =>
        pins.allocate(roomId, async () => {
          inserted++;
          return 'inserted';
        }).then(
          () => 'ok',
          (err: { code?: string }) => err.code ?? String(err),
        ),
      ),
    );
    proxy.restore();
    assert.equal(outcomes, Array(5).fill('unavailable'));
    assert.is(inserted, 0, 'no room row was written');
    // The held SET NX commands (and any release sent after their timeout) reach Redis now, ahead of this PING on the same connection.
    assert.is(await redis.ping(), 'PONG');
    const { keys, values } = await pinClaims();
    const orphans = keys.filter((_, i) => roomIds.includes(values[i] ?? ''));
    assert.equal(orphans, [], `PINs claimed for rooms that were never created: ${orphans.join(', ')}`);
  } finally {
    proxy.restore();
    redis.disconnect();
  }
});

test.run();
