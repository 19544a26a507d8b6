/**
 * A pinroom server for a socket benchmark: its own database and key prefix
 * (a test context, removed by `cleanup`), the limits that guard a public
 * server against one address raised through environment variables only
 * (the benchmark opens thousands of sockets from 127.0.0.1), pinned to the
 * server core.
 */
import { sql } from 'kysely';
import { createTestContext, type TestContext } from '../../tests/support/context.ts';
import type { EioSocket } from './eio-client.ts';
import type { SessionResponse } from '../../shared/schemas.ts';
import { startPinnedServer, type Pinned } from './procs.ts';

/** Limits raised for load from one address; every other setting keeps its default. */
export const BENCH_LIMITS: Record<string, string> = {
  SOCKET_EVENTS_PER_SECOND: '1000000',
  SOCKET_DISCONNECT_EVENTS_PER_SECOND: '100000000',
  SOCKET_MAX_CONNECTIONS_PER_ADDRESS: '1000000',
  AUTH_RATE_GUEST_IP: '1000000/600',
  PIN_GUESS_RATE_IP: '1000000/300',
  USER_EVENTS_PER_SECOND: '100000000',
  FEED_PUBLISH_RATE_USER_ROOM: '100000000/1',
  ROOM_SIGNAL_RATE_USER: '100000000/1',
  SESSION_MAX_SOCKETS: '1000000',
  ROOM_MAX_MEMBERS_CAP: '10000',
  LOG_LEVEL: 'info',
};

export interface PinroomUnderTest {
  ctx: TestContext;
  server: Pinned;
  /** Start another server process on the same database and prefix (the first one must be stopped first when measuring memory). */
  restart(): Promise<Pinned>;
  /** Start one more node (same database, Redis and prefix) pinned to `core`; the caller stops it before `cleanup`. */
  another(core?: number): Promise<Pinned>;
  cleanup(): Promise<void>;
}

/**
 * Start pinroom for a benchmark. `BENCH_PROFILE_DIR` set: the server writes a
 * V8 CPU profile there when it exits (for finding where a scenario's time goes).
 */
export async function startPinroom(extra: Record<string, string> = {}, args: string[] = [], { core }: { core?: number | string } = {}): Promise<PinroomUnderTest> {
  const profileDir = process.env.BENCH_PROFILE_DIR;
  const nodeArgs = profileDir ? [...args, '--cpu-prof', `--cpu-prof-dir=${profileDir}`] : args;
  const ctx = createTestContext({ ...BENCH_LIMITS, ...extra });
  let server: Pinned | undefined;
  try {
    server = await startPinnedServer('server/main.ts', ctx.env, { readyPath: '/readyz', nodeArgs, ...(core === undefined ? {} : { core }) });
  } catch (err) {
    await ctx.cleanup();
    throw err;
  }
  const under: PinroomUnderTest = {
    ctx,
    server,
    async restart() {
      await under.server.stop();
      under.server = await startPinnedServer('server/main.ts', ctx.env, { readyPath: '/readyz', nodeArgs, ...(core === undefined ? {} : { core }) });
      return under.server;
    },
    another(at) {
      return startPinnedServer('server/main.ts', ctx.env, { readyPath: '/readyz', nodeArgs, ...(at !== undefined ? { core: at } : {}) });
    },
    async cleanup() {
      await under.server.stop();
      await ctx.cleanup();
    },
  };
  return under;
}

/**
 * Sign in `count` guests over HTTP, `concurrency` at a time, named
 * `<name> 0`, `<name> 1`, ... (nicknames are unique within a room: guests who
 * may share a room with another batch need another name).
 */
export async function signInGuests(url: string, count: number, concurrency = 32, name = 'Bench'): Promise<SessionResponse[]> {
  const sessions: SessionResponse[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        const res = await fetch(`${url}/auth/guest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ displayName: `${name} ${i}` }) });
        if (res.status !== 201) throw new Error(`POST /auth/guest: ${res.status} ${await res.text()}`);
        sessions[i] = (await res.json()) as SessionResponse;
      }
    }),
  );
  return sessions;
}

/** Run `fn(i)` for i < count, `concurrency` at a time. */
export async function forEachLimit(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

/** Throw unless an ack is `{ ok: true }`; return its data. */
export function okData<T>(ack: unknown, what: string): T {
  const a = ack as { ok: boolean; data?: T; error?: unknown };
  if (!a || a.ok !== true) throw new Error(`${what}: ${JSON.stringify(a)}`);
  return a.data as T;
}

/**
 * Turn guest sessions into hosts: only registered users create rooms, and
 * registering hashes a password with scrypt (~100 ms of CPU each), which
 * would dominate a benchmark of hundreds of hosts. The users are made
 * registered in PostgreSQL directly (with an unusable password hash), then
 * each session is refreshed over HTTP so its access token carries the new kind.
 */
export async function promoteToHosts(pr: PinroomUnderTest, sessions: SessionResponse[], concurrency = 32): Promise<SessionResponse[]> {
  const db = pr.ctx.db();
  const ids = sessions.map((s) => s.user.id);
  await db
    .updateTable('users')
    .set({ kind: 'registered', username: sql<string>`'benchhost_' || id::text`, password_hash: '!' })
    .where('id', 'in', ids)
    .execute();
  const url = pr.server.url;
  const out: SessionResponse[] = new Array(sessions.length);
  await forEachLimit(sessions.length, concurrency, async (i) => {
    const res = await fetch(`${url}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: sessions[i]!.refreshToken }) });
    if (res.status !== 200) throw new Error(`POST /auth/refresh: ${res.status} ${await res.text()}`);
    const pair = (await res.json()) as { accessToken: string; refreshToken: string };
    out[i] = { ...sessions[i]!, ...pair };
  });
  return out;
}

/**
 * An acked request that must succeed: retried (up to 5 times, 50 ms apart) when
 * the server answers a retryable error, as a real client does; returns the data.
 */
export async function requestOk<T>(socket: EioSocket, event: string, payload: unknown): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ack = (await socket.request(event, payload)) as { ok: boolean; data?: T; error?: { retryable?: boolean } };
    if (ack?.ok === true || attempt >= 5 || ack?.error?.retryable !== true) return okData<T>(ack, event);
    await new Promise((r) => setTimeout(r, 50));
  }
}
