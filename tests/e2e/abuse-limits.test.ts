/**
 * Abuse limits at their defaults, against two real nodes on one Redis: limits
 * per user that hold across sockets and nodes, the cap of sockets per
 * session, and input the stores could not hold. Every other client keeps
 * being served.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { ServerErrorNotice } from '../../shared/events.ts';
import { logIn, postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, connectError, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, ok, until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('abuse/limits');
/** The documented defaults these tests hold the server to. */
const DEFAULTS = { publishPerRoom: 20, signalsPerSecond: 20, userEventsPerSecond: 50, socketsPerSession: 10 };
/** The service API key, so the backend publish route exists (`FEED_API_KEY`; not a limit). */
const API_KEY = 'abuse-limits-service-key';

let ctx: TestContext;
let a: TestServer;
let b: TestServer;
let host: { socket: TestSocket; token: string; roomId: string; pin: string };
const sockets: TestSocket[] = [];

const track = (s: TestSocket) => (sockets.push(s), s);
const tag = () => randomBytes(4).toString('hex');

/** `count` sockets of one token, alternating between the two nodes, each in the room. */
async function socketsInRoom(token: string, count: number): Promise<TestSocket[]> {
  const opened = await Promise.all(Array.from({ length: count }, (_, i) => connect(i % 2 === 0 ? a.url : b.url, { token }).then(track)));
  for (const s of opened) ok(await request(s, 'room:join', { pin: host.pin }, 15_000));
  return opened;
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  // Defaults throughout, except sign-ups from this one test address (and the backend route switched on).
  const env = { ...ctx.env, AUTH_RATE_REGISTER_IP: '1000/60', FEED_API_KEY: API_KEY };
  [a, b] = await Promise.all([startTestServer(env), startTestServer(env)]);
  const owner = await signUp(a.url);
  const socket = track(await connect(a.url, { token: owner.accessToken }));
  const { room } = ok(await request(socket, 'room:create', { title: 'Limits', maxMembers: 50 }));
  host = { socket, token: owner.accessToken, roomId: room.id, pin: room.pin };
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await ctx.cleanup();
});

test('ten sockets of one user, on two nodes, are held to the per-user publish limit of a room; other users keep publishing', async () => {
  const user = await signInGuest(a.url, 'Spammer');
  const ten = await socketsInRoom(user.accessToken, 10);
  // 19 per socket stays within the per-socket limit (20 per second, with the join): only the per-user limits can refuse.
  const acks = await Promise.all(
    ten.flatMap((s, i) =>
      Array.from({ length: 19 }, (_, j) => request(s, 'feed:publish', { roomId: host.roomId, type: 'chat.message', payload: { text: `spam ${i}.${j}` }, clientMsgId: `s-${i}-${j}` }, 15_000)),
    ),
  );
  const codes = acks.map(codeOf);
  assert.is(codes.filter((c) => c === 'ok').length, DEFAULTS.publishPerRoom, `exactly the per-user limit is stored (${codes.length} sent)`);
  assert.ok(codes.every((c) => c === 'ok' || c === 'rate_limited'), `only rate_limited refusals: ${[...new Set(codes)].join(', ')}`);
  const refusal = acks.find((ack): ack is Extract<Ack<unknown>, { ok: false }> => !ack.ok && /feed entries/.test(ack.error.message));
  assert.ok(refusal, 'the publish limit (not only the event limit) refused some');
  assert.ok(refusal!.error.retryAfterMs! > 0 && refusal!.error.retryAfterMs! <= 10_000, `retryAfterMs within the window: ${refusal!.error.retryAfterMs}`);

  const history = ok(await request(host.socket, 'feed:history', { roomId: host.roomId, limit: 100 }));
  assert.is(history.entries.filter((e) => e.type === 'chat.message' && e.actor?.id === user.user.id).length, DEFAULTS.publishPerRoom, 'the feed holds what was acknowledged, no more');
  ok(await request(host.socket, 'feed:publish', { roomId: host.roomId, type: 'chat.message', payload: { text: 'the host is not limited by them' }, clientMsgId: `h-${tag()}` }));
});

test('a signal flood from many sockets of one user is held to the per-user signal limit; the senders are told rate_limited', async () => {
  const user = await signInGuest(b.url, 'Signaller');
  const four = await socketsInRoom(user.accessToken, 4);
  const received: string[] = [];
  host.socket.on('room:signal', (s) => {
    if (s.from === user.user.id) received.push(String(s.payload.n));
  });
  const notices: ServerErrorNotice[] = [];
  for (const s of four) s.on('server:error', (n) => notices.push(n));
  // 60 signals, 15 per socket: within the per-socket limit, so only the per-user limits refuse.
  four.forEach((s, i) => {
    for (let j = 0; j < 15; j++) s.emit('room:signal', { roomId: host.roomId, type: 'cursor', payload: { n: `${i}.${j}` } });
  });
  // The limit is per second (a fixed window from the first signal): a burst processed across a window boundary may see two
  // windows, so at least 60 − 2 × the limit are refused. The event limit alone would refuse about 14 (64 events against 50).
  const refusedAtLeast = 60 - 2 * DEFAULTS.signalsPerSecond;
  await until(() => notices.length >= refusedAtLeast, `at least ${refusedAtLeast} refusals`, 20_000);
  assert.ok(notices.every((n) => n.event === 'room:signal' && n.error.code === 'rate_limited'), 'refusals are rate_limited');
  assert.ok(notices.some((n) => /signals/.test(n.error.message)), 'the signal limit (not only the event limit) refused some');
  await until(() => received.length >= 1, 'a signal within the limit to be relayed');
});

test('events of one user over many sockets are held to the per-user event limit', async () => {
  const user = await signInGuest(a.url, 'Chatty');
  const four = await Promise.all(Array.from({ length: 4 }, (_, i) => connect(i % 2 === 0 ? a.url : b.url, { token: user.accessToken }).then(track)));
  // 80 cheap acked events, 20 per socket: within every per-socket limit.
  const started = Date.now();
  const acks = await Promise.all(four.flatMap((s) => Array.from({ length: 20 }, () => request(s, 'feed:unsubscribe', { roomId: host.roomId }, 15_000))));
  const windows = 2 + Math.floor((Date.now() - started) / 1000);
  const codes = acks.map(codeOf);
  const served = codes.filter((c) => c === 'ok').length;
  assert.ok(codes.includes('rate_limited'), 'some were refused');
  assert.ok(served >= DEFAULTS.userEventsPerSecond / 2, `the first ones were served (${served})`);
  assert.ok(served <= DEFAULTS.userEventsPerSecond * windows, `${served} served, at most ${DEFAULTS.userEventsPerSecond} per second over ${windows} windows`);
  const refusal = acks.find((ack) => !ack.ok);
  assert.match(!refusal!.ok ? refusal!.error.message : '', /events/);
});

test('a session holds at most SESSION_MAX_SOCKETS sockets on a node, even when they connect at once; another session of the same user is not affected', async () => {
  const account = await signUp(a.url);
  await Promise.all(Array.from({ length: DEFAULTS.socketsPerSession }, () => connect(a.url, { token: account.accessToken }).then(track)));
  const refused = await connectError(a.url, { token: account.accessToken });
  assert.is(refused.data?.code, 'rate_limited', 'the handshake past the cap is refused');
  const other = await logIn(a.url, account.username, account.password);
  track(await connect(a.url, { token: other.accessToken }));

  // A fresh session, fifteen sockets at once: the ones that race past the handshake check are closed as soon as they are counted.
  const burst = await logIn(a.url, account.username, account.password);
  const attempts = await Promise.allSettled(Array.from({ length: 15 }, () => connect(a.url, { token: burst.accessToken })));
  const opened = attempts.filter((r): r is PromiseFulfilledResult<TestSocket> => r.status === 'fulfilled').map((r) => track(r.value));
  for (const r of attempts) if (r.status === 'rejected') assert.is((r.reason as { data?: { code?: string } }).data?.code, 'rate_limited');
  await until(() => opened.filter((x) => x.connected).length === DEFAULTS.socketsPerSession, `exactly ${DEFAULTS.socketsPerSession} of ${opened.length} opened sockets to stay connected`);
});

test('text the stores cannot hold (NUL, unpaired surrogates) is bad_request wherever the server stores text; well-formed text is accepted', async () => {
  const writer = await signInGuest(a.url, 'Writer');
  const [s] = await socketsInRoom(writer.accessToken, 1);
  // The host's doors go through a second socket of theirs, so the host socket's own event limit is left to the next test.
  const [hostSocket] = await socketsInRoom(host.token, 1);
  // Not yet in the room: its join is the door for nicknames.
  const joiner = track(await connect(b.url, { token: (await signInGuest(b.url, 'Joiner')).accessToken }));
  type Answer = { code: string; why: string };
  const fromAck = (ack: Ack<unknown>): Answer => (ack.ok ? { code: 'ok', why: '' } : { code: ack.error.code, why: `${ack.error.message} ${ack.error.issues?.join() ?? ''}` });
  const fromHttp = (res: { status: number; body: unknown }): Answer => {
    const error = (res.body as { error?: { code: string; message: string; issues?: string[] } } | null)?.error;
    return res.status < 300 ? { code: 'ok', why: '' } : { code: error?.code ?? `HTTP ${res.status}`, why: `${error?.message ?? ''} ${error?.issues?.join() ?? ''}` };
  };
  const publish = (socket: TestSocket, type: string, payload: Record<string, unknown>) =>
    request(socket, 'feed:publish', { roomId: host.roomId, type, payload, clientMsgId: `t-${tag()}` }).then(fromAck);
  // Free text is checked for what the stores can hold; names also for being printable (which excludes the same characters).
  const storable = /NUL|surrogate/;
  const printable = /printable/;
  const doors: { where: string; send: (text: string) => Promise<Answer>; good: string; reason: RegExp }[] = [
    { where: 'a chat text', send: (text) => publish(s!, 'chat.message', { text }), good: 'emoji 😀 and 𝄞 are fine', reason: storable },
    { where: 'a reaction', send: (emoji) => publish(s!, 'reaction', { emoji }), good: '😀', reason: storable },
    { where: 'a string deep in a host payload', send: (text) => publish(hostSocket!, 'host.quiz', { question: { choices: ['a', [text]] } }), good: 'deep 𝄞', reason: storable },
    { where: 'an object key in a host payload', send: (text) => publish(hostSocket!, 'host.quiz', { [text]: 1 }), good: 'key 😀', reason: storable },
    {
      where: 'an event a backend publishes (POST /api/rooms/:roomId/events)',
      send: async (text) => fromHttp(await postJson(`${b.url}/api/rooms/${host.roomId}/events`, { type: 'host.announcement', payload: { text }, clientMsgId: `api-${tag()}` }, { 'x-api-key': API_KEY })),
      good: 'from the backend 😀',
      reason: storable,
    },
    { where: 'a room title', send: async (title) => fromAck(await request(hostSocket!, 'room:create', { title })), good: 'Quiz 𝄞', reason: printable },
    { where: 'a room nickname (room:join)', send: async (nickname) => fromAck(await request(joiner, 'room:join', { pin: host.pin, nickname })), good: 'Ada 😀', reason: printable },
    { where: 'a guest display name', send: async (displayName) => fromHttp(await postJson(`${a.url}/auth/guest`, { displayName })), good: 'Ada 𝄞', reason: printable },
    {
      where: 'a display name given at register',
      send: async (displayName) => fromHttp(await postJson(`${a.url}/auth/register`, { username: `u_${tag()}`, password: `pw-${tag()}-${tag()}`, displayName })),
      good: 'Grace 😀',
      reason: printable,
    },
  ];
  // Each short enough for every door (a reaction is at most 16 characters).
  const unstorable = ['nul \u0000 in', 'high \uD83D', 'low \uDE00 in', '\uDE00\uD83D'];
  for (const door of doors) {
    for (const text of unstorable) {
      const answer = await door.send(text);
      assert.is(answer.code, 'bad_request', `${door.where}: ${JSON.stringify(text)}`);
      assert.match(answer.why, door.reason, `${door.where}: the refusal names the reason`);
    }
    assert.is((await door.send(door.good)).code, 'ok', `${door.where}: well-formed text ${JSON.stringify(door.good)} is accepted`);
  }
  assert.ok(hostSocket!.connected && s!.connected && joiner.connected, 'nobody was disconnected');
});

test('stream ids and member cursors beyond what PostgreSQL and Redis hold are bad_request (feed:history, feed:subscribe, room:members), never internal', async () => {
  for (const id of ['99999999999999999999-0', '9223372036854775808-0', '1-9223372036854775808', '18446744073709551616-18446744073709551616']) {
    const history = await request(host.socket, 'feed:history', { roomId: host.roomId, before: id });
    assert.is(codeOf(history), 'bad_request', `history before ${id}`);
    const subscribe = await request(host.socket, 'feed:subscribe', { roomId: host.roomId, since: { epoch: 'e', id } });
    assert.is(codeOf(subscribe), 'bad_request', `subscribe since ${id}`);
  }
  assert.is(codeOf(await request(host.socket, 'feed:history', { roomId: host.roomId, before: '9223372036854775807-9223372036854775807' })), 'ok', 'the largest valid id is served');
  assert.is(codeOf(await request(host.socket, 'room:members', { roomId: host.roomId, after: '9999999999999999999' })), 'bad_request', 'a 19-digit member cursor past bigint');
  assert.is(codeOf(await request(host.socket, 'room:members', { roomId: host.roomId, after: '9223372036854775807' })), 'ok', 'the largest cursor is served');
});

test.run();
