/**
 * Internal errors reach the system log, through a running server. The fault
 * is real and comes from PostgreSQL: triggers the test installs make the
 * database refuse some rows with an error of its own (SQLSTATE P0001), the
 * way a failed constraint, a revoked permission or a full disk would. That is
 * not a connection failure, so the server answers `internal` (a dependency
 * that did not answer is `unavailable`, never `internal`) and the edge writes
 * `error.internal` to the system log: where it happened, never the error text.
 * SYSTEM_LOG_RATE is lowered to 3 per 5 s so a storm shows the rate limit.
 */
import { sql } from 'kysely';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createKeys } from '../../server/redis/keys.ts';
import { postJson, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('observability/system-log-errors');
const RATE = { points: 3, windowMs: 5000 };
/** Titles and usernames the database refuses, and the text it refuses them with (which must stay out of the log). */
const REFUSED_TITLE = 'Refused by the database';
const REFUSED_USERNAME_PREFIX = 'refused_';
const REFUSAL_TEXT = 'the test database refuses this row';

let ctx: TestContext;
let server: TestServer;
let socket: TestSocket;
/** When the latest internal error was answered: every rate window that counted it started no later. */
let lastErrorAt = 0;

interface LogEntry {
  type: string;
  payload: Record<string, unknown>;
}

/** The `error.internal` entries of the system log as stored, oldest first. */
async function internalErrors(): Promise<LogEntry[]> {
  const raw = (await ctx.redis().xrange(createKeys(ctx.keyPrefix).feedSystem, '-', '+')) as [string, string[]][];
  return raw
    .map(([, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      return { type: f.t ?? '', payload: JSON.parse(f.p ?? '{}') as Record<string, unknown> };
    })
    .filter((e) => e.type === 'error.internal');
}

/** A `room:create` the database refuses; asserts it was answered `internal`. */
async function refusedRoom(): Promise<void> {
  const ack = await request(socket, 'room:create', { title: REFUSED_TITLE });
  assert.is(codeOf(ack), 'internal', 'a room the database refuses is an internal error');
  lastErrorAt = Date.now();
}

/** Wait until every rate window that counted an earlier error has ended (a window is a span of time: nothing to wait on but the clock). */
async function freshWindow(): Promise<void> {
  await until(() => Date.now() > lastErrorAt + RATE.windowMs + 250, 'the rate window to end', RATE.windowMs + 5000);
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  const refuse = sql.raw(`'${REFUSAL_TEXT}'`);
  await sql`create function pinroom_test_refuse() returns trigger language plpgsql as $$ begin raise exception ${refuse}; end $$`.execute(ctx.db());
  await sql`create trigger refuse_room before insert on rooms for each row when (new.title = ${sql.lit(REFUSED_TITLE)}) execute function pinroom_test_refuse()`.execute(ctx.db());
  await sql`create trigger refuse_user before insert on users for each row when (new.username like ${sql.lit(`${REFUSED_USERNAME_PREFIX}%`)}) execute function pinroom_test_refuse()`.execute(ctx.db());
  server = await startTestServer({ ...ctx.env, SYSTEM_LOG_RATE: `${RATE.points}/${RATE.windowMs / 1000}` });
  const host = await signUp(server.url);
  socket = await connect(server.url, { token: host.accessToken });
});

test.after(async () => {
  socket?.close();
  await server?.stop();
  await ctx.cleanup();
});

test('an internal error of a socket event or an HTTP route is written to the system log: where it happened, never the error text', async () => {
  await refusedRoom();
  const res = await postJson<{ error: { code: string } }>(`${server.url}/auth/register`, { username: `${REFUSED_USERNAME_PREFIX}ada`, password: 'a-long-enough-password' });
  assert.is(res.status, 500);
  assert.is(res.body.error.code, 'internal');
  lastErrorAt = Date.now();

  await until(async () => (await internalErrors()).length >= 2, 'both internal errors to be written');
  const entries = await internalErrors();
  assert.is(entries.length, 2);
  assert.equal(entries.map(({ payload: { at, ...where } }) => where), [{ event: 'room:create' }, { method: 'POST', route: '/auth/register' }]);
  for (const { payload } of entries) assert.type(payload.at, 'number');
  assert.not.match(JSON.stringify(entries), REFUSAL_TEXT, 'the error text stays in the server log');
  assert.ok(socket.connected, 'the socket is still connected');
});

test('a storm of internal errors writes at most SYSTEM_LOG_RATE entries per window; the first entry of the next window counts the ones left out', async () => {
  await freshWindow();
  const before = (await internalErrors()).length;
  const STORM = 8;
  await Promise.all(Array.from({ length: STORM }, refusedRoom));
  await until(async () => (await internalErrors()).length >= before + RATE.points, 'the first entries of the storm to be written');

  await freshWindow();
  await refusedRoom();
  await until(async () => (await internalErrors()).slice(before).some((e) => e.payload.suppressed !== undefined), 'an entry counting the errors left out');
  const written = (await internalErrors()).slice(before);
  assert.is(written.length, RATE.points + 1, `${RATE.points} entries in the storm's window, then the next error`);
  assert.ok(written.slice(0, RATE.points).every((e) => e.payload.suppressed === undefined && e.payload.event === 'room:create'));
  assert.is(written[RATE.points]!.payload.suppressed, STORM - RATE.points, 'the next entry counts every error of the storm left out');
});

test.run();
