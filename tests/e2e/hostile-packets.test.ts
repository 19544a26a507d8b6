/**
 * Raw malformed Engine.IO and Socket.IO packets over a plain WebSocket (no
 * socket.io-client to tidy them up): bad attachment counts, absurd ack ids,
 * binary where JSON is expected, Buffers where objects are expected, reserved
 * and prototype event names, deep nesting, garbage frames. Each one either
 * closes only the connection that sent it, or is answered with a typed error
 * and the connection keeps working; the server stays up and another client
 * keeps being answered.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ERROR_CODES } from '../../shared/errors.ts';
import { signInGuest } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { openRawSocket, type RawSocket } from '../support/raw-socket.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('hostile/packets');

let ctx: TestContext;
let server: TestServer;
let token: string;
let bystander: TestSocket;
const raws: RawSocket[] = [];

type Frame = string | Buffer;
interface Case {
  name: string;
  frames: Frame[];
  /** `closes`: the server drops this connection (and only it). `stays`: it keeps serving it. */
  outcome: 'closes' | 'stays';
  /** For `stays`: an ack (`43<id>[...]`) with this id must come back carrying a typed error code. */
  typedAckId?: number;
}

const uuid = () => randomUUID();
const cases: Case[] = [
  // ---- Engine.IO level
  { name: 'an empty text frame', frames: [''], outcome: 'closes' },
  { name: 'an unknown Engine.IO packet type', frames: ['9hello'], outcome: 'closes' },
  { name: 'a text frame of random garbage', frames: [`z${randomBytes(64).toString('latin1')}`], outcome: 'closes' },
  { name: 'a binary frame of random bytes (binary with no event waiting for it)', frames: [randomBytes(512)], outcome: 'closes' },
  { name: 'an Engine.IO close packet (ignored by the server)', frames: ['1'], outcome: 'stays' },
  { name: 'an unsolicited Engine.IO upgrade packet', frames: ['5'], outcome: 'stays' },
  // ---- Socket.IO framing
  { name: 'an unknown Socket.IO packet type', frames: ['49["room:join",{}]'], outcome: 'closes' },
  { name: 'a binary event without an attachment count', frames: ['45["room:join",{}]'], outcome: 'closes' },
  { name: 'a binary event with a negative attachment count', frames: ['45-1-["room:join",{}]'], outcome: 'closes' },
  { name: 'a binary event announcing 999999 attachments', frames: ['45999999-["room:join",{"_placeholder":true,"num":0}]'], outcome: 'closes' },
  { name: 'a binary event whose attachment never comes, followed by text', frames: ['451-["room:join",{"_placeholder":true,"num":0}]', '42["room:join",{}]'], outcome: 'closes' },
  { name: 'a binary event whose placeholder points past its attachments', frames: ['451-["room:join",{"_placeholder":true,"num":7}]', Buffer.from('x')], outcome: 'closes' },
  { name: 'a placeholder with a non-numeric index', frames: ['451-["room:join",{"_placeholder":true,"num":"__proto__"}]', Buffer.from('x')], outcome: 'closes' },
  { name: 'an event whose payload is not an array', frames: ['42{"event":"room:join"}'], outcome: 'closes' },
  { name: 'an event with no name', frames: ['42[]'], outcome: 'closes' },
  { name: 'an event named like a reserved one (connect)', frames: ['42["connect",{}]'], outcome: 'closes' },
  { name: 'an event with a negative ack id', frames: ['42-1["room:join",{"pin":"123"}]'], outcome: 'closes' },
  { name: 'an event with unparseable JSON', frames: ['42["room:join",{"pin":'], outcome: 'closes' },
  { name: 'JSON nested 30,000 levels deep as the payload', frames: [`42909["room:join",${'['.repeat(30_000)}${']'.repeat(30_000)}]`], outcome: 'stays', typedAckId: 909 },
  {
    name: 'JSON nested 30,000 levels deep inside a feed payload (measured as JSON before it is stored)',
    frames: [`42910["feed:publish",{"roomId":"${uuid()}","type":"host.deep","payload":{"a":${'['.repeat(30_000)}${']'.repeat(30_000)}},"clientMsgId":"deep"}]`],
    outcome: 'stays',
    typedAckId: 910,
  },
  { name: 'JSON nested 30,000 levels deep inside a signal', frames: [`42["room:signal",{"roomId":"${uuid()}","type":"deep","payload":{"a":${'['.repeat(30_000)}${']'.repeat(30_000)}}}]`], outcome: 'stays' },
  { name: 'a CONNECT to a namespace that does not exist', frames: ['40/admin,{}'], outcome: 'stays' },
  // ---- well-framed, wrong content: typed answers, connection kept
  { name: 'an absurd ack id (beyond 2^53)', frames: ['4299999999999999999999["room:join",{"pin":"12"}]'], outcome: 'stays' },
  { name: 'an ack for an id the server never sent', frames: ['43123456[{"ok":true}]'], outcome: 'stays' },
  { name: 'a numeric event name', frames: ['42[12345,{}]'], outcome: 'stays' },
  { name: 'an event named "error" (an EventEmitter without an error listener would throw)', frames: ['42["error",{}]', '42911["error",{}]'], outcome: 'stays', typedAckId: 911 },
  { name: 'an unknown event with an ack', frames: ['42912["room:teleport",{}]'], outcome: 'stays', typedAckId: 912 },
  { name: 'events named like Object.prototype members', frames: ['42["__proto__",{}]', '42["constructor",{}]', '42["hasOwnProperty",{}]', '42["toString",{}]'], outcome: 'stays' },
  { name: 'a Buffer where an object payload is expected', frames: ['451-901["room:join",{"_placeholder":true,"num":0}]', randomBytes(32)], outcome: 'stays', typedAckId: 901 },
  { name: 'a Buffer inside a payload field', frames: [`451-902["feed:publish",{"roomId":"${uuid()}","type":"chat.message","payload":{"text":{"_placeholder":true,"num":0}},"clientMsgId":"b"}]`, randomBytes(8)], outcome: 'stays', typedAckId: 902 },
  { name: 'a string where the payload object is expected', frames: ['42903["room:join","123456"]'], outcome: 'stays', typedAckId: 903 },
  { name: 'an array where the payload object is expected', frames: ['42904["room:create",[{"title":"x"}]]'], outcome: 'stays', typedAckId: 904 },
  { name: 'a number where a string field is expected', frames: ['42905["room:join",{"pin":123456}]'], outcome: 'stays', typedAckId: 905 },
  { name: 'an ack id on a second payload argument (a function where a value is expected)', frames: ['42906["room:join",{"pin":"123456"},{"extra":true}]'], outcome: 'stays', typedAckId: 906 },
  { name: 'a prototype-polluting payload', frames: ['42907["room:join",{"__proto__":{"pin":"123456","polluted":true}}]'], outcome: 'stays', typedAckId: 907 },
  { name: 'an acked event with no payload at all', frames: ['42908["feed:history"]'], outcome: 'stays', typedAckId: 908 },
];

/** Send a well-formed acked request and wait for its ack: proves the connection still serves. */
async function probe(raw: RawSocket, id: number): Promise<void> {
  raw.send(`42${id}["feed:unsubscribe",{"roomId":"${uuid()}"}]`);
  const ack = await raw.next((f) => typeof f === 'string' && f.startsWith(`43${id}[`));
  assert.equal(JSON.parse((ack as string).slice(`43${id}`.length)), [{ ok: true, data: {} }]);
}

async function bystanderAnswers(): Promise<void> {
  const ack = await request(bystander, 'feed:unsubscribe', { roomId: uuid() });
  assert.ok(ack.ok, 'the other client is answered');
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  // One session opens a raw socket per case and keeps them all open.
  server = await startTestServer({ ...ctx.env, SOCKET_EVENTS_PER_SECOND: '1000', ...RAISED_USER_LIMITS, SESSION_MAX_SOCKETS: '1000', AUTH_RATE_GUEST_IP: '1000/60' });
  token = (await signInGuest(server.url, 'Raw')).accessToken;
  bystander = await connect(server.url, { token: (await signInGuest(server.url, 'Bystander')).accessToken });
});

test.after(async () => {
  bystander?.close();
  for (const r of raws) r.close();
  await server?.stop();
  await ctx.cleanup();
});

for (const c of cases) {
  test(`${c.name}: ${c.outcome === 'closes' ? 'closes that connection only' : 'gets a typed answer or is ignored, and the connection keeps serving'}`, async () => {
    const raw = await openRawSocket(server.url, { token });
    raws.push(raw);
    for (const frame of c.frames) raw.send(frame);
    if (c.outcome === 'closes') {
      const outcome = await Promise.race([raw.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('open'), 5000))]);
      assert.is(outcome, 'closed', 'the offending connection is closed');
    } else {
      if (c.typedAckId !== undefined) {
        const ack = (await raw.next((f) => typeof f === 'string' && f.startsWith(`43${c.typedAckId}[`))) as string;
        const [answer] = JSON.parse(ack.slice(`43${c.typedAckId}`.length)) as [{ ok: boolean; error?: { code: string } }];
        assert.is(answer.ok, false, ack);
        assert.ok((ERROR_CODES as readonly string[]).includes(answer.error!.code), `typed: ${ack}`);
        assert.is.not(answer.error!.code, 'internal', ack);
      }
      await probe(raw, 7000 + cases.indexOf(c));
      assert.ok(raw.isOpen());
      // Notices for events that had no ack (`server:error`) are typed too.
      for (const frame of raw.frames) {
        if (typeof frame !== 'string' || !frame.startsWith('42["server:error"')) continue;
        const [, notice] = JSON.parse(frame.slice(2)) as [string, { error: { code: string } }];
        assert.ok((ERROR_CODES as readonly string[]).includes(notice.error.code), frame);
        assert.is.not(notice.error.code, 'internal', frame);
      }
    }
    await bystanderAnswers();
  });
}

test('a prototype-polluting payload leaves no trace: an empty join is still refused for its missing PIN', async () => {
  const ack = await request(bystander, 'room:join', {} as never);
  assert.is(ack.ok, false);
  if (!ack.ok) {
    assert.is(ack.error.code, 'bad_request');
    assert.match(JSON.stringify(ack.error.issues), 'pin');
  }
});

test('after every malformed packet the server process is alive, ready, and logged no crash', async () => {
  assert.is(server.process.exitCode, null);
  assert.is((await fetch(`${server.url}/readyz`)).status, 200);
  assert.not.match(server.output(), /uncaught exception|unhandled promise rejection/);
});

test.run();
