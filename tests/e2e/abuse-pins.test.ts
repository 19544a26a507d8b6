/**
 * PIN guessing at the default limits, fair to a classroom: every client here
 * shares one address (127.0.0.1), as pupils behind one NAT do. Only wrong
 * PINs count; a right PIN is never refused for someone else's guesses; one
 * user's guessing blocks that user, not the address. The HTTP lookup follows
 * the same rules.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, ok } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('abuse/pins');
/** The documented defaults (PIN_GUESS_RATE_USER_IP, PIN_GUESS_BLOCK_SECONDS). */
const DEFAULTS = { wrongPerUserAndAddress: 10, blockSeconds: 900 };

let ctx: TestContext;
let server: TestServer;
let room: { id: string; pin: string };
const sockets: TestSocket[] = [];
const track = (s: TestSocket) => (sockets.push(s), s);

/** A PIN of the same length that names no room of this test. */
const wrongPin = (i: number) => {
  const pin = String((Number(room.pin) + 1 + i) % 1_000_000).padStart(room.pin.length, '0');
  return pin === room.pin ? '0'.repeat(room.pin.length) : pin;
};
const lookup = (pin: string, token?: string) => fetch(`${server.url}/rooms/pin/${pin}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  // Defaults throughout, except sign-ups from this one test address.
  server = await startTestServer({ ...ctx.env, AUTH_RATE_REGISTER_IP: '1000/60' });
  const owner = await signUp(server.url);
  const socket = track(await connect(server.url, { token: owner.accessToken }));
  ({ room } = ok(await request(socket, 'room:create', { title: 'Classroom', maxMembers: 100 })));
});

test.after(async () => {
  for (const s of sockets) s.close();
  await server?.stop();
  await ctx.cleanup();
});

test('30 pupils behind one address looking up and joining the right PIN at the same moment all get in', async () => {
  const pupils = await Promise.all(Array.from({ length: 30 }, (_, i) => signInGuest(server.url, `Pupil ${i}`)));
  const looked = await Promise.all(pupils.map((p, i) => lookup(room.pin, i % 2 ? p.accessToken : undefined)));
  assert.equal(
    looked.map((r) => r.status),
    Array(30).fill(200),
    'every lookup answered',
  );
  const socketsOf = await Promise.all(pupils.map((p) => connect(server.url, { token: p.accessToken }).then(track)));
  const joins = await Promise.all(socketsOf.map((s) => request(s, 'room:join', { pin: room.pin }, 30_000)));
  assert.equal(
    joins.map((a) => (a.ok ? 'ok' : a.error.code)),
    Array(30).fill('ok'),
  );
  assert.ok(joins.every((a) => a.ok && a.data.room.id === room.id));
});

test('one user\'s 40 wrong PINs block that user, not the others at the same address; the HTTP lookup follows the same rules', async () => {
  const guesser = await signInGuest(server.url, 'Guesser');
  // Three sockets of the guesser, so the per-socket event limit (20 per second) never answers for the guess limits.
  const three = await Promise.all([0, 1, 2].map(() => connect(server.url, { token: guesser.accessToken }).then(track)));
  const socket = three[0]!;
  const codes: string[] = [];
  for (let i = 0; i < 40; i++) {
    if (i % 4 === 3) {
      const res = await lookup(wrongPin(i), guesser.accessToken);
      codes.push(((await res.json()) as { error: { code: string } }).error.code);
    } else {
      codes.push(codeOf(await request(three[i % 3]!, 'room:join', { pin: wrongPin(i) })));
    }
  }
  assert.equal(codes.slice(0, DEFAULTS.wrongPerUserAndAddress), Array(DEFAULTS.wrongPerUserAndAddress).fill('room_not_found'));
  assert.equal(codes.slice(DEFAULTS.wrongPerUserAndAddress), Array(40 - DEFAULTS.wrongPerUserAndAddress).fill('rate_limited'));

  // The guesser is blocked even for the right PIN, on both doors, past the window: a block leaks nothing.
  const right = await request(socket, 'room:join', { pin: room.pin });
  assert.ok(!right.ok && right.error.code === 'rate_limited' && right.error.retryAfterMs! > 300_000, JSON.stringify(right));
  const blocked = await lookup(room.pin, guesser.accessToken);
  assert.is(blocked.status, 429);
  assert.ok(Number(blocked.headers.get('retry-after')) > 300 && Number(blocked.headers.get('retry-after')) <= DEFAULTS.blockSeconds);

  // Another user at the same address: free to look up (signed in or not) and to join.
  const other = await signInGuest(server.url, 'Classmate');
  assert.is((await lookup(room.pin, other.accessToken)).status, 200);
  assert.is((await lookup(room.pin)).status, 200);
  const otherSocket = track(await connect(server.url, { token: other.accessToken }));
  const joined = await request(otherSocket, 'room:join', { pin: room.pin });
  assert.ok(joined.ok, JSON.stringify(joined));
  // A wrong PIN from them is still an honest miss.
  assert.is(codeOf(await request(otherSocket, 'room:join', { pin: wrongPin(99) })), 'room_not_found');
});

test('an access token that does not verify is refused by the lookup, not counted as anonymous', async () => {
  const res = await lookup(room.pin, 'not-a-token');
  assert.is(res.status, 401);
});

test.run();
