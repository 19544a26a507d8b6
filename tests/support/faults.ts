/**
 * Helpers shared by the cluster and fault tests: unwrap acks, poll for a
 * condition, and a feed follower that resumes from the last entry it saw on
 * whichever node it is sent to.
 */
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { FeedEntry, FeedPosition } from '../../shared/schemas.ts';
import { signUp } from './auth.ts';
import { connect, request, type ConnectOptions, type TestSocket } from './client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from './context.ts';
import { startTestServer, type TestServer } from './server.ts';

export function ok<T>(ack: Ack<T>): T {
  if (!ack.ok) throw new Error(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
  return ack.data;
}

/** The error code of a failed ack, or 'ok'. */
export function codeOf(ack: Ack<unknown>): string {
  return ack.ok ? 'ok' : ack.error.code;
}

/** Poll `check` every 25 ms until it holds; throw naming `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Three pinroom nodes on one fresh database and key prefix, with the per-address
 * limits raised for a test's load (plus `env`, and `perNode[i]` for node i). `track` registers a client
 * socket; `stop` closes the tracked sockets, the nodes and the context.
 */
export async function startThreeNodes(env: Record<string, string> = {}, perNode: Record<string, string>[] = []) {
  const ctx: TestContext = createTestContext();
  await ctx.migrate();
  const nodeEnv = { ...ctx.env, ...RAISED_USER_LIMITS, SOCKET_EVENTS_PER_SECOND: '10000', AUTH_RATE_GUEST_IP: '1000/60', AUTH_RATE_REGISTER_IP: '1000/60', ...env };
  const nodes = await Promise.all([0, 1, 2].map((i) => startTestServer({ ...nodeEnv, ...perNode[i] })));
  const sockets: TestSocket[] = [];
  return {
    ctx,
    nodes: nodes as [TestServer, TestServer, TestServer],
    track: (s: TestSocket) => void sockets.push(s),
    async stop() {
      for (const s of sockets) s.close();
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await ctx.cleanup();
    },
  };
}

/** A registered host connected to `url` with a new room (up to 50 members). */
export async function hostWithRoom(url: string, title: string, track: (s: TestSocket) => void) {
  const host = await signUp(url, { displayName: 'Host' });
  const socket = await connect(url, { token: host.accessToken });
  track(socket);
  const { room } = ok(await request(socket, 'room:create', { title, maxMembers: 50 }));
  return { host, socket, room };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** GET `/readyz` and return its status (0 when the node does not answer). */
export async function readiness(url: string): Promise<number> {
  try {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

/** `GET /readyz`: its HTTP status and the body's `status` (`ready`, `draining`, `unavailable`), or `[0, 'no answer']`. */
export async function readyz(url: string): Promise<[number, string]> {
  try {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json().catch(() => ({}))) as { status?: string };
    return [res.status, body.status ?? ''];
  } catch {
    return [0, 'no answer'];
  }
}

/**
 * A member following a room's feed across reconnects: `attach(url)` opens a
 * socket on that node, joins by PIN and subscribes from the last entry it
 * holds (or the join position), collecting `feed:entry` events. `recovered`
 * of every subscribe is kept.
 */
export function feedFollower(token: string, roomId: string, pin: string, track: (s: TestSocket) => void = () => undefined, options: ConnectOptions = {}) {
  const entries: FeedEntry[] = [];
  const recovered: boolean[] = [];
  let epoch = '';
  let socket: TestSocket | undefined;
  return {
    entries,
    recovered,
    get socket(): TestSocket {
      return socket!;
    },
    /** The feed epoch of the last subscription. */
    get epoch(): string {
      return epoch;
    },
    async attach(url: string, start?: FeedPosition): Promise<void> {
      socket?.close();
      socket = await connect(url, { ...options, token });
      track(socket);
      socket.on('feed:entry', (e) => {
        if (e.roomId === roomId) entries.push(e);
      });
      const joined = ok(await request(socket, 'room:join', { pin }, 15_000));
      const last = entries[entries.length - 1];
      const since = last ? { epoch, id: last.id } : { epoch: (start ?? joined.feed!).epoch, id: (start ?? joined.feed!).lastId };
      const subscribed = ok(await request(socket, 'feed:subscribe', { roomId, since }, 15_000));
      recovered.push(subscribed.recovered);
      epoch = subscribed.epoch;
    },
  };
}

/** Assert `entries` hold exactly `expected` texts (chat messages), each once, in order. */
export function assertExactlyOnceInOrder(entries: FeedEntry[], expected: string[], who: string): void {
  const texts = entries.filter((e) => e.type === 'chat.message').map((e) => String(e.payload.text));
  const ids = entries.map((e) => e.id);
  assert.is(new Set(ids).size, ids.length, `${who}: no entry delivered twice`);
  assert.equal(texts, expected, `${who}: every entry once, in order`);
}

/**
 * A feed follower that, when its socket drops, reattaches by itself to the
 * next node of `urls` that is not `avoid()` (as a load balancer would send a
 * reconnecting client elsewhere) and resumes from its last entry.
 */
export function failoverFollower(token: string, roomId: string, pin: string, urls: () => string[], track: (s: TestSocket) => void = () => undefined, options: ConnectOptions = {}) {
  const follower = feedFollower(token, roomId, pin, track, options);
  const reasons: string[] = [];
  let attaching: Promise<void> = Promise.resolve();
  let turn = 0;
  let closed = false;
  const watch = () => {
    follower.socket.once('disconnect', (reason) => {
      if (closed) return;
      reasons.push(reason);
      attaching = (async () => {
        for (let attempt = 0; attempt < 50; attempt++) {
          if (closed) return;
          const candidates = urls();
          const url = candidates[turn++ % candidates.length]!;
          try {
            await follower.attach(url);
            watch();
            return;
          } catch {
            await sleep(200);
          }
        }
        throw new Error('could not reattach to any node');
      })();
      // Seen by settled(); a test that failed before awaiting it must not crash its file.
      attaching.catch(() => undefined);
    });
  };
  return {
    follower,
    /** Disconnect reasons seen, in order. */
    reasons,
    async start(url: string) {
      await follower.attach(url);
      watch();
    },
    /** Resolves when the latest reattachment (if any) is done. */
    settled: () => attaching,
    stop() {
      closed = true;
      follower.socket.close();
    },
  };
}
