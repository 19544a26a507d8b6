import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { RoomView } from '../../shared/schemas.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { PATIENT_DEADLINES, RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer } from '../support/server.ts';

const test = suite('rooms/pins-e2e');
let ctx: TestContext;
const sockets: TestSocket[] = [];

test.before(() => {
  ctx = createTestContext({ AUTH_RATE_REGISTER_IP: '1000/60', AUTH_RATE_GUEST_IP: '1000/60' });
});
test.after(async () => {
  for (const s of sockets) s.close();
  await ctx.cleanup();
});

const pinKeys = () => ctx.keysMatching(`${ctx.keyPrefix}pin:*`);

test('2,000 concurrent creations in a 3-digit PIN space give unique PINs, the rest pin_unavailable, every PIN key with a TTL', async () => {
  const server = await startTestServer({
    ...ctx.env,
    PIN_DIGITS: '3',
    PIN_FALLBACK_DIGITS: '0',
    SOCKET_EVENTS_PER_SECOND: '100000',
    ...RAISED_USER_LIMITS,
    ROOM_CREATE_RATE_USER: '100000/60',
    DB_POOL_MAX: '20',
    ...PATIENT_DEADLINES,
  });
  try {
    const hosts = 10;
    const perHost = 200;
    const clients = await Promise.all(
      Array.from({ length: hosts }, async () => {
        const session = await signUp(server.url);
        const socket = await connect(server.url, { token: session.accessToken });
        sockets.push(socket);
        return socket;
      }),
    );
    const answers: Ack<{ room: RoomView }>[] = await Promise.all(
      clients.flatMap((socket, h) => Array.from({ length: perHost }, (_, i) => request(socket, 'room:create', { title: `Room ${h}-${i}` }, 120_000))),
    );
    const created = answers.filter((x): x is { ok: true; data: { room: RoomView } } => x.ok).map((x) => x.data.room);
    const failed = answers.filter((x) => !x.ok);
    const codes = new Set(failed.map((x) => (x.ok ? '' : x.error.code)));
    assert.is(created.length + failed.length, 2000);
    assert.equal([...codes], ['pin_unavailable'], `failure codes: ${[...codes]}`);
    const pins = created.map((r) => r.pin);
    assert.is(new Set(pins).size, pins.length, 'no PIN handed out twice');
    assert.ok(pins.every((p) => /^\d{3}$/.test(p)));
    assert.ok(created.length <= 1000 && created.length > 500, `created ${created.length}`);

    const keys = await pinKeys();
    assert.is(keys.length, created.length, 'one claim per room, no leaked claims');
    // Key by key: on the cluster pass the keys are in many slots.
    const ttls = await Promise.all(keys.map((key) => ctx.redis().pttl(key)));
    assert.ok(
      ttls.every((t) => t > 0),
      'every PIN key has a TTL',
    );
    const values = await Promise.all(created.map((r) => ctx.redis().get(`${ctx.keyPrefix}pin:${r.pin}`)));
    assert.equal(values, created.map((r) => r.id), 'each PIN names its room');
    const live = await ctx.db().selectFrom('rooms').select(({ fn }) => fn.countAll<string>().as('n')).where('status', '<>', 'ended').executeTakeFirstOrThrow();
    assert.is(Number(live.n), created.length);
    console.log(`  2000 creations, 3-digit PINs: ${created.length} rooms, ${failed.length} pin_unavailable`);
  } finally {
    await server.stop();
  }
});

test('a burst of wrong PINs from one address hits rate_limited, which then refuses even a right PIN', async () => {
  const server = await startTestServer({ ...ctx.env, PIN_GUESS_RATE_IP: '10/60', PIN_GUESS_RATE_USER: '1000/60', PIN_GUESS_BLOCK_SECONDS: '600' });
  try {
    const host = await signUp(server.url);
    const hostSocket = await connect(server.url, { token: host.accessToken });
    sockets.push(hostSocket);
    const createdAck = await request(hostSocket, 'room:create', { title: 'Target' });
    assert.ok(createdAck.ok);
    const room = createdAck.ok ? createdAck.data.room : undefined!;
    const wrong = (i: number) => {
      let pin = String((Number(room.pin) + 1 + i) % 1_000_000).padStart(6, '0');
      if (pin === room.pin) pin = '000000';
      return pin;
    };

    // Guesses from several guests (so no per-user limit applies) and the HTTP lookup, all from one address.
    const guessers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const s = await signInGuest(server.url);
        const socket = await connect(server.url, { token: s.accessToken });
        sockets.push(socket);
        return socket;
      }),
    );
    const codes: string[] = [];
    for (let i = 0; i < 16; i++) {
      if (i % 2 === 0) {
        const res = await fetch(`${server.url}/rooms/pin/${wrong(i)}`);
        const body = (await res.json()) as { error: { code: string } };
        codes.push(body.error.code);
        if (body.error.code === 'rate_limited') {
          assert.is(res.status, 429);
          assert.ok(Number(res.headers.get('retry-after')) > 60, 'the block outlasts the window');
        }
      } else {
        const ack = await request(guessers[i % guessers.length]!, 'room:join', { pin: wrong(i) });
        codes.push(ack.ok ? 'ok' : ack.error.code);
      }
    }
    assert.equal(codes.slice(0, 10), Array(10).fill('room_not_found'));
    assert.ok(codes.slice(10).every((c) => c === 'rate_limited'), codes.join(','));

    // Blocked: the right PIN is refused too, so the block leaks nothing.
    const right = await request(guessers[0]!, 'room:join', { pin: room.pin });
    assert.ok(!right.ok && right.error.code === 'rate_limited' && right.error.retryAfterMs! > 60_000, JSON.stringify(right));
    assert.is((await fetch(`${server.url}/rooms/pin/${room.pin}`)).status, 429);
  } finally {
    await server.stop();
  }
});

test.run();
