import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRoomLoader } from '../../server/cache/loaders.ts';
import { createMetrics } from '../../server/metrics.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import type { RoomNotifier } from '../../server/rooms/notifier.ts';
import { createRoomLimits } from '../../server/rooms/limits.ts';
import { createPinStore } from '../../server/rooms/pins.ts';
import { createRoomService, type RoomActor, type RoomFeedEvent } from '../../server/rooms/room-service.ts';
import { createLogger } from '../../server/logger.ts';
import { rejectsWithCode } from '../support/assert.ts';
import { insertUser } from '../support/cache.ts';
import { createTestContext, type TestContext } from '../support/context.ts';

const test = suite('rooms/service');
let ctx: TestContext;
const logger = createLogger({ log: { level: 'silent' }, env: 'test' });

interface Sent {
  target: string;
  event: string;
  payload: unknown;
}

function recorder(): RoomNotifier & { sent: Sent[]; removed: string[] } {
  const sent: Sent[] = [];
  const removed: string[] = [];
  const entered = new Set<string>();
  const to = (target: string) => ({ emit: (event: string, payload: unknown) => void sent.push({ target, event, payload }) });
  return {
    sent,
    removed,
    toRoom: (roomId) => to(`room:${roomId}`) as never,
    toHost: (roomId) => to(`host:${roomId}`) as never,
    toMembers: (roomId) => to(`members:${roomId}`) as never,
    toUser: (userId) => to(`user:${userId}`) as never,
    enter: async (socketId, roomId) => (entered.add(`${socketId}@${roomId}`), true),
    leave: (socketId, roomId) => void entered.delete(`${socketId}@${roomId}`),
    holds: (socketId, roomId) => entered.has(`${socketId}@${roomId}`),
    removeUser: (roomId, userId) => void removed.push(`${userId}@${roomId}`),
    removeAll: (roomId) => void removed.push(`*@${roomId}`),
    follow: () => undefined,
  };
}

/** A service instance as one node would run it, with its own clock offset. */
function node(options: { skewMs?: () => number; events?: RoomFeedEvent[] } = {}) {
  const redis = ctx.redis();
  const scripts = createScripts(redis);
  const keys = createKeys(ctx.keyPrefix);
  const db = ctx.db();
  const notifier = recorder();
  const rooms = createRoomLoader({ db, redis, scripts, keys, metrics: createMetrics(), config: ctx.config });
  const feed = options.events;
  const service = createRoomService({
    config: ctx.config.rooms,
    db,
    redis,
    scripts,
    keys,
    logger,
    rooms,
    notifier,
    now: () => Date.now() + (options.skewMs?.() ?? 0),
    ...(feed ? { events: { emit: async (e: RoomFeedEvent) => void feed.push(e) } } : {}),
  });
  return { service, notifier, keys, scripts };
}

async function registered(name: string): Promise<RoomActor> {
  return { id: await insertUser(ctx.db(), name), name, kind: 'registered', address: '10.0.0.1' };
}
async function guest(name: string, address = '10.0.0.2'): Promise<RoomActor> {
  const row = await ctx.db().insertInto('users').values({ display_name: name, kind: 'guest' }).returning('id').executeTakeFirstOrThrow();
  return { id: row.id, name, kind: 'guest', address };
}

test.before(async () => {
  ctx = createTestContext({
    PIN_DIGITS: '4',
    PIN_FALLBACK_DIGITS: '0',
    PIN_QUARANTINE_SECONDS: '120',
    ROOM_HOST_GRACE_MS: '5000',
    PRESENCE_HEARTBEAT_MS: '1000',
    PRESENCE_NODE_TIMEOUT_MS: '3000',
    ROOM_CREATE_RATE_USER: '1000/60',
    PIN_GUESS_RATE_IP: '1000/60',
    PIN_GUESS_RATE_USER: '1000/60',
    PIN_GUESS_RATE_USER_IP: '1000/60',
  });
  await ctx.migrate();
});
test.after(async () => {
  await ctx.cleanup();
});

test('a claimed PIN carries a TTL, and a second allocation never returns a live PIN', async () => {
  const { keys, scripts } = node();
  const pins = createPinStore({ redis: ctx.redis(), scripts, keys, config: ctx.config.rooms, logger, draw: () => '0042' });
  const first = await pins.allocate('room-a', async () => 'inserted');
  assert.is(first, '0042');
  assert.is(await ctx.redis().get(keys.pin('0042')), 'room-a');
  const ttl = await ctx.redis().ttl(keys.pin('0042'));
  assert.ok(ttl > 0 && ttl <= ctx.config.rooms.pinTtlSeconds, `ttl ${ttl}`);
  let inserts = 0;
  await rejectsWithCode(() => pins.allocate('room-b', async () => (inserts++, 'inserted')), 'pin_unavailable');
  assert.is(inserts, 0, 'no insert without a claim');
  assert.is(await ctx.redis().get(keys.pin('0042')), 'room-a');
});

test('when the insert collides on the live-PIN index, the claim is released and the next draw is used', async () => {
  const { keys, scripts } = node();
  const draws = ['0100', '0200'];
  const pins = createPinStore({ redis: ctx.redis(), scripts, keys, config: ctx.config.rooms, logger, draw: () => draws.shift()! });
  const pin = await pins.allocate('room-c', async (candidate) => (candidate === '0100' ? 'pin_taken' : 'inserted'));
  assert.is(pin, '0200');
  assert.is(await ctx.redis().exists(keys.pin('0100')), 0, 'the refused claim is released');
  const failing = createPinStore({ redis: ctx.redis(), scripts, keys, config: ctx.config.rooms, logger, draw: () => '0300' });
  await rejects(() => failing.allocate('room-d', async () => Promise.reject(new Error('insert failed'))));
  assert.is(await ctx.redis().exists(keys.pin('0300')), 0, 'a claim whose insert failed is released');
});

test("release never deletes another room's PIN, and quarantines its own", async () => {
  const { keys, scripts } = node();
  const pins = createPinStore({ redis: ctx.redis(), scripts, keys, config: ctx.config.rooms, logger });
  await ctx.redis().set(keys.pin('0500'), 'room-new', 'EX', 600);
  assert.is(await pins.release('0500', 'room-old'), false);
  assert.is(await ctx.redis().get(keys.pin('0500')), 'room-new');
  assert.is(await pins.release('0500', 'room-new'), true);
  assert.is(await ctx.redis().get(keys.pin('0500')), 'ended:room-new');
  const ttl = await ctx.redis().ttl(keys.pin('0500'));
  assert.ok(ttl > 0 && ttl <= 120, `quarantine ttl ${ttl}`);
  assert.is(await pins.resolve('0500'), null, 'a quarantined PIN resolves to nothing');
  assert.is(await ctx.redis().set(keys.pin('0500'), 'room-x', 'EX', 60, 'NX'), null, 'and cannot be claimed');
});

test('renewal extends only a claim that still names the room, and re-claims a vanished one', async () => {
  const { keys, scripts } = node();
  const pins = createPinStore({ redis: ctx.redis(), scripts, keys, config: ctx.config.rooms, logger });
  await ctx.redis().set(keys.pin('0601'), 'room-1', 'EX', 10);
  await ctx.redis().set(keys.pin('0602'), 'room-other', 'EX', 10);
  const lost = await pins.renew(new Map([['room-1', '0601'], ['room-2', '0602'], ['room-3', '0603']]));
  assert.equal(lost, ['room-2']);
  assert.ok((await ctx.redis().ttl(keys.pin('0601'))) > 10);
  assert.is(await ctx.redis().ttl(keys.pin('0602')) <= 10, true);
  assert.is(await ctx.redis().get(keys.pin('0603')), 'room-3');
});

test('a parallel burst of one user\'s wrong PINs is never evaluated past their limit, and a right PIN costs nothing', async () => {
  const { keys } = node();
  const limits = createRoomLimits({ redis: ctx.redis(), keys, config: { ...ctx.config.rooms, guessRateUserIp: { points: 5, durationSeconds: 60 } } });
  const who = { address: '10.7.7.7', userId: 'u-burst' };
  assert.is(await limits.guess(who, async () => 'room'), 'room'); // a right PIN
  let looked = 0;
  const outcomes = await Promise.allSettled(
    Array.from({ length: 30 }, () =>
      limits.guess(who, async () => {
        looked++;
        return null;
      }),
    ),
  );
  assert.is(looked, 5, 'PINs looked at');
  assert.is(outcomes.filter((o) => o.status === 'fulfilled').length, 5);
  const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
  assert.is((refused.reason as { code: string }).code, 'rate_limited');
  // Blocked: even a right PIN is refused, without being looked at.
  await rejectsWithCode(() => limits.guess(who, async () => 'room'), 'rate_limited');
});

test('right PINs of many users at one address never count against it, however many run at once', async () => {
  const { keys } = node();
  const limits = createRoomLimits({ redis: ctx.redis(), keys, config: { ...ctx.config.rooms, guessRateIp: { points: 3, durationSeconds: 60 } } });
  const address = '10.8.8.8';
  const right = await Promise.all(Array.from({ length: 50 }, (_, i) => limits.guess({ address, userId: `pupil-${i}` }, async () => 'room')));
  assert.is(right.filter((r) => r === 'room').length, 50);
  // Wrong PINs of three users reach the address limit; the next attempt from the address is refused, a right PIN too.
  for (let i = 0; i < 3; i++) assert.is(await limits.guess({ address, userId: `typo-${i}` }, async () => null), null);
  await rejectsWithCode(() => limits.guess({ address, userId: 'pupil-0' }, async () => 'room'), 'rate_limited');
});

test('guests cannot create rooms and maxMembers is capped', async () => {
  const { service } = node();
  await rejectsWithCode(async () => service.create(await guest('Gus'), { title: 'Nope' }, 'sock-g'), 'forbidden');
  const host = await registered('Capped');
  await rejectsWithCode(() => service.create(host, { title: 'Big', maxMembers: ctx.config.rooms.maxMembersCap + 1 }, 'sock-h'), 'bad_request');
});

test('joins are refused when locked, full or banned; a member coming back keeps their role', async () => {
  const events: RoomFeedEvent[] = [];
  const { service, notifier } = node({ events });
  const host = await registered('Host');
  const { room } = await service.create(host, { title: 'Quiz', maxMembers: 3 }, 'h1');
  assert.is(room.status, 'lobby');
  const ann = await guest('Ann');
  const bob = await guest('Bob');
  const cy = await guest('Cy');

  const joined = await service.join(ann, room.pin, 'a1');
  assert.is(joined.role, 'member');
  await service.flushBroadcasts();
  assert.equal(
    joined.members!.map((m) => [m.name, m.role, m.online]),
    [
      ['Host', 'host', true],
      ['Ann', 'member', true],
    ],
  );
  assert.ok(notifier.sent.some((s) => s.event === 'room:presence' && (s.payload as { changes: { userId: string; online: boolean }[] }).changes[0]!.userId === ann.id));

  await service.lock(host, room.id, true);
  await rejectsWithCode(() => service.join(bob, room.pin, 'b1'), 'room_locked');
  // A member already in comes back whatever the lock.
  assert.is((await service.join(ann, room.pin, 'a2')).role, 'member');
  await service.lock(host, room.id, false);

  await service.join(bob, room.pin, 'b1');
  await rejectsWithCode(() => service.join(cy, room.pin, 'c1'), 'room_full');

  await service.kick(host, { roomId: room.id, userId: bob.id, banSeconds: 60 });
  assert.ok(notifier.sent.some((s) => s.target === `user:${bob.id}` && s.event === 'room:kicked'));
  assert.ok(notifier.removed.includes(`${bob.id}@${room.id}`));
  const banned = (await rejectsWithCode(() => service.join(bob, room.pin, 'b2'), 'banned')) as { retryAfterMs: number };
  assert.ok(banned.retryAfterMs > 50_000 && banned.retryAfterMs <= 60_000, String(banned.retryAfterMs));

  await rejectsWithCode(() => service.kick(host, { roomId: room.id, userId: '00000000-0000-4000-8000-000000000000', banSeconds: 60 }), 'not_found');
  await service.join(cy, room.pin, 'c1'); // the kick freed a seat
  await rejectsWithCode(() => service.kick(ann, { roomId: room.id, userId: cy.id }), 'forbidden');
  await rejectsWithCode(() => service.goLive(ann, room.id), 'forbidden');

  // The host is "host" again on rejoin.
  assert.is((await service.join(host, room.pin, 'h2')).role, 'host');
  assert.equal(
    events.map((e) => e.type),
    ['room.created', 'member.joined', 'room.locked', 'room.locked', 'member.joined', 'member.kicked', 'member.joined'],
  );
  await service.end(host, room.id);
  await rejectsWithCode(() => service.end(host, room.id), 'conflict');
  await rejectsWithCode(() => service.join(ann, room.pin, 'a3'), 'room_not_found');
  assert.is(events.at(-1)!.type, 'room.ended');
});

test('several tabs on several nodes count once; the user goes offline with the last one', async () => {
  const a = node();
  const b = node();
  const host = await registered('Tabs');
  const { room } = await a.service.create(host, { title: 'Tabs' }, 'a-h');
  const dee = await guest('Dee');
  await a.service.join(dee, room.pin, 'a-d1');
  await b.service.join(dee, room.pin, 'b-d2');
  assert.ok((await a.service.presence.online(room.id)).has(dee.id));
  await Promise.all([a.service.flushBroadcasts(), b.service.flushBroadcasts()]);
  const presenceFor = (n: ReturnType<typeof recorder>) => n.sent.filter((s) => s.event === 'room:presence').map((s) => s.payload as { changes: { userId: string; online: boolean }[] });
  assert.is(presenceFor(a.notifier).length + presenceFor(b.notifier).length, 1, 'one online announcement for two tabs');
  await a.service.socketClosed('a-d1');
  assert.ok((await a.service.presence.online(room.id)).has(dee.id), 'still online with one tab');
  await b.service.socketClosed('b-d2');
  await b.service.flushBroadcasts();
  assert.not.ok((await a.service.presence.online(room.id)).has(dee.id));
  assert.equal(presenceFor(b.notifier).at(-1)!.changes.map((c) => [c.userId, c.online]), [[dee.id, false]]);
});

test("a node that stops heartbeating loses its members once another node sweeps past the timeout", async () => {
  let skew = 0;
  const dead = node();
  const alive = node({ skewMs: () => skew });
  const host = await registered('Alive');
  const { room } = await alive.service.create(host, { title: 'Nodes' }, 'alive-h');
  const eve = await guest('Eve');
  await dead.service.heartbeatOnce();
  await dead.service.join(eve, room.pin, 'dead-e');
  await alive.service.heartbeatOnce();
  assert.ok((await alive.service.presence.online(room.id)).has(eve.id));
  assert.ok((await alive.service.presence.online(room.id)).has(host.id));
  // Within the timeout nothing happens.
  skew = ctx.config.rooms.presenceNodeTimeoutMs - 1000;
  await alive.service.heartbeatOnce();
  assert.ok((await alive.service.presence.online(room.id)).has(eve.id));
  skew = ctx.config.rooms.presenceNodeTimeoutMs + 1000;
  await alive.service.heartbeatOnce();
  await alive.service.flushBroadcasts();
  const online = await alive.service.presence.online(room.id);
  assert.not.ok(online.has(eve.id), 'the dead node member is gone');
  assert.ok(online.has(host.id), 'the live node member stays');
  const announced = alive.notifier.sent.filter((s) => s.event === 'room:presence').at(-1)!.payload as { changes: { userId: string; name: string; online: boolean }[] };
  assert.equal(announced.changes, [{ userId: eve.id, name: 'Eve', role: 'member', online: false }]);
});

test('the host grace ends the room when it runs out, and not when the host comes back in time', async () => {
  let skew = 0;
  const n = node({ skewMs: () => skew });
  const other = node({ skewMs: () => skew });
  const host = await registered('Grace');
  const grace = ctx.config.rooms.hostGraceMs;

  const { room: kept } = await n.service.create(host, { title: 'Kept' }, 'g1');
  await n.service.socketClosed('g1');
  skew = grace - 1000;
  await other.service.sweepOnce();
  await n.service.join(host, kept.pin, 'g2'); // back within the grace
  skew = grace + 5000;
  await other.service.sweepOnce();
  assert.is(other.notifier.sent.filter((s) => s.event === 'room:ended').length, 0, 'a host who came back keeps the room');
  assert.ok(await n.service.lookup(kept.pin, '10.1.1.1'));

  skew = 0;
  const { room: lost } = await n.service.create(host, { title: 'Lost' }, 'g3');
  await n.service.socketClosed('g3');
  skew = grace + 1000;
  await Promise.all([n.service.sweepOnce(), other.service.sweepOnce()]);
  const ended = [...n.notifier.sent, ...other.notifier.sent].filter((s) => s.event === 'room:ended');
  assert.equal(
    ended.map((s) => s.payload),
    [{ roomId: lost.id, reason: 'host_left' }],
    'ended exactly once',
  );
  await rejectsWithCode(() => n.service.lookup(lost.pin, '10.1.1.1'), 'room_not_found');
  await n.service.end(host, kept.id);
});

async function rejects(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch {
    return;
  }
  assert.unreachable('expected a rejection');
}

test.run();
