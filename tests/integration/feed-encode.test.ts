/**
 * A feed entry is serialised once per node, whatever the number of local
 * subscribers: every WebSocket frame ws builds is counted (`Sender.frame`,
 * which the pre-encoded send and every plain `socket.emit` go through), and
 * an entry delivered to many sockets of one node must be framed once.
 *
 * `Sender.frame` is wrapped before the server is imported, because
 * server/gateway/broadcast.ts takes the function when it loads.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ws from 'ws';
import type { FeedEntry } from '../../shared/schemas.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';

type FrameOptions = { mask: boolean };
const frames: string[] = [];
// `Sender` is exported by ws but not typed by @types/ws.
const sender = (ws as unknown as { Sender: { frame: (data: Buffer, options: FrameOptions) => Buffer[] } }).Sender;
const realFrame = sender.frame;
sender.frame = (data, options) => {
  // Server frames only (a client masks its own); read before ws may mask the data in place.
  if (!options.mask) frames.push(Buffer.from(data).toString());
  return realFrame.call(sender, data, options);
};
const { createApp } = await import('../../server/app.ts');

const test = suite('feed/encode-once');
let ctx: TestContext;
let app: ReturnType<typeof createApp>;
let url: string;
const sockets: TestSocket[] = [];

function ok<T>(ack: { ok: true; data: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!ack.ok) throw new Error(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
  return ack.data;
}

async function open(token: string): Promise<TestSocket> {
  const socket = await connect(url, { token });
  sockets.push(socket);
  return socket;
}

async function until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test.before(async () => {
  ctx = createTestContext({ SOCKET_EVENTS_PER_SECOND: '1000000', ...RAISED_USER_LIMITS });
  await ctx.migrate();
  app = createApp(ctx.config);
  ({ url } = await app.start());
});

test.after(async () => {
  for (const socket of sockets) socket.disconnect();
  await app?.stop();
  sender.frame = realFrame;
  await ctx.cleanup();
});

test('an entry delivered to many subscribers of one node is framed once, and every subscriber gets it', async () => {
  const host = await signUp(url);
  const hostSocket = await open(host.accessToken);
  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Encode once', maxMembers: 50 }));
  const received: FeedEntry[][] = [];
  for (let i = 0; i < 12; i++) {
    const socket = await open((await signInGuest(url)).accessToken);
    ok(await request(socket, 'room:join', { pin: room.pin }));
    const entries: FeedEntry[] = [];
    socket.on('feed:entry', (e) => void (e.roomId === room.id && entries.push(e)));
    ok(await request(socket, 'feed:subscribe', { roomId: room.id }));
    received.push(entries);
  }

  const marker = `marker-${randomBytes(6).toString('hex')}`;
  const { id } = ok(await request(hostSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text: marker }, clientMsgId: marker }));
  await until(() => received.every((entries) => entries.some((e) => e.id === id)), 'every subscriber to get the entry');

  for (const entries of received) assert.equal(entries.filter((e) => e.id === id).map((e) => e.payload), [{ text: marker }]);
  const framed = frames.filter((f) => f.includes('"feed:entry"') && f.includes(marker));
  assert.is(framed.length, 1, `the entry was framed ${framed.length} times for ${received.length} subscribers`);
});

test.run();
