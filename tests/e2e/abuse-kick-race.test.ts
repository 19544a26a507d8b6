/**
 * A kick racing an in-flight join, on two nodes: the join runs on node B,
 * whose PostgreSQL connections go through a TCP proxy; the kick runs on node
 * A. The race is provoked for real and observed, not hoped for: the join's
 * `room_join` is held behind the room's row lock, the proxy is stalled, the
 * lock is released so the join commits in PostgreSQL while node B cannot see
 * the answer yet, and the kick commits and is broadcast in that window (the
 * joiner's client receives `room:kicked` before its join is answered). Then
 * the proxy flows again and the join finishes. No access may remain.
 */
import pg from 'pg';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { BASE_PG_URL, createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, ok, until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const test = suite('abuse/kick-race');
let ctx: TestContext;
let proxy: TcpProxy;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];
const track = (s: TestSocket) => (sockets.push(s), s);

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  const target = new URL(BASE_PG_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  [a, b] = await Promise.all([
    startTestServer({ ...ctx.env, AUTH_RATE_REGISTER_IP: '1000/60' }),
    // Generous statement timeout: node B's join waits on a row lock and a stalled proxy on purpose.
    startTestServer({ ...ctx.env, DATABASE_URL: proxy.url(ctx.databaseUrl), DB_STATEMENT_TIMEOUT_MS: '60000' }),
  ]);
});

test.after(async () => {
  for (const s of sockets) s.close();
  proxy?.restore();
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await proxy?.close();
  await ctx.cleanup();
});

test('a kick that commits between a join\'s decision and its socket entering the room leaves that socket no access', async () => {
  const owner = await signUp(a.url);
  const host = track(await connect(a.url, { token: owner.accessToken }));
  const { room } = ok(await request(host, 'room:create', { title: 'Race' }));
  const guest = await signInGuest(a.url, 'Racer');
  const joiner = track(await connect(b.url, { token: guest.accessToken }));
  const seen: string[] = [];
  joiner.on('room:kicked', () => seen.push('room:kicked'));

  // Hold the room's row lock, so node B's room_join waits for it.
  const locker = new pg.Client({ connectionString: ctx.databaseUrl });
  const watcher = new pg.Client({ connectionString: ctx.databaseUrl });
  await Promise.all([locker.connect(), watcher.connect()]);
  try {
    await locker.query('begin');
    await locker.query('select 1 from rooms where id = $1 for update', [room.id]);
    const joining = request(joiner, 'room:join', { pin: room.pin }, 60_000).then((ack) => (seen.push('join answered'), ack));
    joining.catch(() => undefined); // awaited below; a failure before that is reported there, not as an unhandled rejection
    await until(async () => {
      // Asked outside the locker's transaction, which would keep reading one snapshot of pg_stat_activity.
      const { rows } = await watcher.query(
        "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%room_join(%'",
      );
      return rows[0].n === 1;
    }, 'node B\'s room_join waiting on the room\'s row lock');

    // Node B will not see room_join's answer until the proxy flows again; the join commits meanwhile.
    proxy.stall();
    await locker.query('commit');
    await until(async () => {
      const row = await ctx.db().selectFrom('room_members').select('left_at').where('room_id', '=', room.id).where('user_id', '=', guest.user.id).executeTakeFirst();
      return row !== undefined && row.left_at === null;
    }, 'the join committed in PostgreSQL');

    // The kick, on node A, commits and is broadcast while the join is still in flight on node B.
    ok(await request(host, 'room:kick', { roomId: room.id, userId: guest.user.id }));
    await until(() => seen.includes('room:kicked'), 'the joiner receiving room:kicked');
    assert.equal(seen, ['room:kicked'], 'the kick reached the joiner before its join was answered: the race happened');

    proxy.restore();
    const joined = await joining;
    assert.equal(seen, ['room:kicked', 'join answered']);
    assert.is(codeOf(joined), 'forbidden', 'the join is refused: the host removed the joiner meanwhile');
  } finally {
    proxy.restore();
    await Promise.all([locker.end(), watcher.end()]);
  }

  // No access remains on node B: the feed, the member list, signals.
  assert.is(codeOf(await request(joiner, 'feed:subscribe', { roomId: room.id })), 'forbidden');
  assert.is(codeOf(await request(joiner, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text: 'still here?' }, clientMsgId: 'race-1' })), 'forbidden');
  assert.is(codeOf(await request(joiner, 'room:members', { roomId: room.id })), 'forbidden');
  const row = await ctx.db().selectFrom('room_members').select('left_at').where('room_id', '=', room.id).where('user_id', '=', guest.user.id).executeTakeFirstOrThrow();
  assert.ok(row.left_at !== null, 'the membership stays ended');

  // Without a ban, joining again afterwards is an ordinary join.
  ok(await request(joiner, 'room:join', { pin: room.pin }, 30_000));
  ok(await request(joiner, 'feed:subscribe', { roomId: room.id }));
});

test.run();
