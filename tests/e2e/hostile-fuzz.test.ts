/**
 * Property-based fuzzing (fast-check) of every client event against a real
 * server: arbitrary values, near-valid payloads (a valid payload with one
 * field replaced by junk, removed, or joined by an unknown one, Buffers and
 * prototype-polluting keys included), and wrong argument counts. Every ack
 * must be `{ ok: true, data }` or a typed `{ ok: false, error }` whose code is
 * in shared/errors.ts and never `internal` (an unhandled input is a bug), the
 * fuzzing socket must stay connected, and another client must keep being
 * answered.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ERROR_CODES } from '../../shared/errors.ts';
import { ClientEvent } from '../../shared/events.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { EVENT_DEADLINE_MS, connect, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('hostile/fuzz');
/** Runs per event; fast-check prints the seed and the shrunk counterexample of a failure. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 120);

let ctx: TestContext;
let server: TestServer;
let fuzzer: TestSocket;
let bystander: TestSocket;
let samples: Record<ClientEvent, Record<string, unknown>>;

type AnyAck = { ok: boolean; data?: unknown; error?: { code?: unknown; message?: unknown } };

/** What each event looks like when valid; the fuzzer mutates these. Every client event must have one. */
function validSamples(roomId: string, pin: string, token: string, otherUserId: string): Record<ClientEvent, Record<string, unknown>> {
  const elsewhere = randomUUID(); // destructive events aim at a room that does not exist, so the fuzz room lives on
  return {
    'auth:refresh': { token },
    'room:create': { title: 'Fuzzed room', maxMembers: 10 },
    'room:join': { pin },
    'room:leave': { roomId: elsewhere },
    'room:members': { roomId, after: '1', limit: 10 },
    'room:start': { roomId: elsewhere },
    'room:lock': { roomId, locked: false },
    'room:kick': { roomId, userId: otherUserId, banSeconds: 60 },
    'room:update': { roomId: elsewhere, approval: true },
    'room:admit': { roomId: elsewhere, userId: otherUserId },
    'room:deny': { roomId: elsewhere, userId: otherUserId },
    'room:waitlist': { roomId, after: '1', limit: 10 },
    'room:end': { roomId: elsewhere },
    'room:signal': { roomId, type: 'cursor.move', payload: { x: 1, y: 2 } },
    'feed:publish': { roomId, type: 'chat.message', payload: { text: 'hello' }, clientMsgId: 'fuzz-1' },
    'feed:subscribe': { roomId, since: { epoch: 'e', id: '1-0' } },
    'feed:unsubscribe': { roomId },
    'feed:history': { roomId, before: '9999999999999-0', limit: 10 },
  };
}

const polluting = () => JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"toString":"x"}') as Record<string, unknown>;

/** Junk of every kind a JSON or binary Socket.IO packet can carry. */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({ maxDepth: 3, withNullPrototype: true, withBigInt: false }),
  fc.string({ unit: 'grapheme', maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom(null, undefined, true, false, 0, -0, -1, 2 ** 53, Number.MAX_VALUE, '', ' ', '\u0000', '\u202e', '1'.repeat(5000), '0'.repeat(11), '1-1', '-1-0'),
  fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes)),
  fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 5 }),
  fc.constant(null).map(polluting),
);

/** A valid payload with one thing wrong (recursively into nested objects). */
function nearValid(sample: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(sample);
  const replaced = fc.record({ key: fc.constantFrom(...keys), value: junk }).map(({ key, value }) => ({ ...sample, [key]: value }));
  const removed = fc.constantFrom(...keys).map((key) => {
    const copy: Record<string, unknown> = { ...sample };
    delete copy[key];
    return copy;
  });
  const extra = fc.record({ key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'prototype')), value: junk }).map(({ key, value }) => {
    const copy: Record<string, unknown> = { ...sample };
    Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
    return copy;
  });
  const nested = keys
    .filter((k) => sample[k] !== null && typeof sample[k] === 'object' && !Array.isArray(sample[k]))
    .map((k) => nearValidShallow(sample[k] as Record<string, unknown>).map((inner) => ({ ...sample, [k]: inner })));
  return fc.oneof(replaced, removed, extra, ...nested);
}

function nearValidShallow(sample: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(sample);
  return fc.oneof(
    fc.record({ key: fc.constantFrom(...keys), value: junk }).map(({ key, value }) => ({ ...sample, [key]: value })),
    fc.record({ key: fc.string({ maxLength: 8 }), value: junk }).map(({ key, value }) => ({ ...sample, [key]: value })),
  );
}

/** The arguments of one emit: usually one payload, sometimes none or two. */
function argsFor(sample: Record<string, unknown>): fc.Arbitrary<unknown[]> {
  const payload = fc.oneof({ weight: 2, arbitrary: junk }, { weight: 5, arbitrary: nearValid(sample) }, { weight: 1, arbitrary: fc.constant(sample) });
  return fc.oneof(
    { weight: 10, arbitrary: payload.map((p) => [p]) },
    { weight: 1, arbitrary: fc.constant<unknown[]>([]) },
    { weight: 1, arbitrary: fc.tuple(payload, junk).map((pair): unknown[] => [...pair]) },
  );
}

function checkAck(event: string, args: unknown[], ack: AnyAck): void {
  const shown = () => `${event} ${JSON.stringify(args)?.slice(0, 300)} → ${JSON.stringify(ack)?.slice(0, 300)}`;
  assert.type(ack, 'object', shown());
  if (ack.ok === true) {
    assert.ok('data' in ack, `success without data: ${shown()}`);
    return;
  }
  assert.is(ack.ok, false, `neither success nor failure: ${shown()}`);
  const code = ack.error?.code;
  assert.ok(typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code), `untyped error: ${shown()}`);
  assert.type(ack.error?.message, 'string', shown());
  assert.is.not(code, 'internal', `an input reached an unhandled path: ${shown()}`);
}

async function bystanderAnswers(): Promise<void> {
  const ack = await request(bystander, 'feed:unsubscribe', { roomId: randomUUID() });
  assert.ok(ack.ok, 'the other client is answered');
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  server = await startTestServer({ ...ctx.env, SOCKET_EVENTS_PER_SECOND: '1000000', ...RAISED_USER_LIMITS, AUTH_RATE_GUEST_IP: '1000/60', AUTH_RATE_REGISTER_IP: '1000/60' });
  const host = await signUp(server.url, { displayName: 'Fuzz host' });
  fuzzer = await connect(server.url, { token: host.accessToken });
  const created = await request(fuzzer, 'room:create', { title: 'Fuzz', maxMembers: 50 });
  if (!created.ok) throw new Error(JSON.stringify(created.error));
  const other = await signInGuest(server.url, 'Bystander');
  samples = validSamples(created.data.room.id, created.data.room.pin, host.accessToken, other.user.id);
  bystander = await connect(server.url, { token: other.accessToken });
});

test.after(async () => {
  fuzzer?.close();
  bystander?.close();
  await server?.stop();
  await ctx.cleanup();
});

test('every client event has a valid sample, so none escapes the fuzzer', () => {
  assert.equal(Object.keys(samples).sort(), Object.values(ClientEvent).sort());
});

for (const event of Object.values(ClientEvent).filter((e) => e !== 'room:signal')) {
  test(`${event}: arbitrary and near-valid payloads always get a typed ack and the socket stays up`, async () => {
    await fc.assert(
      fc.asyncProperty(argsFor(samples[event as ClientEvent]), async (args) => {
        const ack = (await (fuzzer.timeout(EVENT_DEADLINE_MS) as unknown as { emitWithAck(e: string, ...a: unknown[]): Promise<AnyAck> }).emitWithAck(event, ...args)) as AnyAck;
        checkAck(event, args, ack);
        assert.ok(fuzzer.connected, `still connected after ${event} ${JSON.stringify(args)?.slice(0, 200)}`);
      }),
      { numRuns: RUNS },
    );
    await bystanderAnswers();
  });
}

test('room:signal (no ack) with arbitrary payloads answers only typed server:error notices, and the socket stays up', async () => {
  const notices: { event: string; error: { code: string } }[] = [];
  const listener = (n: { event: string; error: { code: string } }) => notices.push(n);
  fuzzer.on('server:error', listener as never);
  await fc.assert(
    fc.asyncProperty(argsFor(samples['room:signal']), fc.boolean(), async (args, withAck) => {
      if (withAck) (fuzzer.emit as (...a: unknown[]) => void)('room:signal', ...args, () => undefined);
      else (fuzzer.emit as (...a: unknown[]) => void)('room:signal', ...args);
    }),
    { numRuns: RUNS },
  );
  await bystanderAnswers();
  // A round trip on the fuzzing socket: everything sent before it has been handled.
  assert.ok((await request(fuzzer, 'feed:unsubscribe', { roomId: randomUUID() })).ok);
  fuzzer.off('server:error', listener as never);
  assert.ok(fuzzer.connected);
  assert.ok(notices.length > 0, 'malformed signals were answered');
  for (const n of notices) {
    assert.is(n.event, 'room:signal');
    assert.ok((ERROR_CODES as readonly string[]).includes(n.error.code), `typed notice: ${JSON.stringify(n)}`);
    assert.is.not(n.error.code, 'internal', JSON.stringify(n));
  }
});

test('well-formed ids that name no room or user get a typed error, never internal', async () => {
  const idKeys = ['roomId', 'userId'];
  for (const event of Object.values(ClientEvent).filter((e) => e !== 'room:signal')) {
    const sample = samples[event as ClientEvent];
    const keys = Object.keys(sample).filter((k) => idKeys.includes(k));
    if (keys.length === 0) continue;
    await fc
      .assert(
        fc.asyncProperty(fc.subarray(keys, { minLength: 1 }), fc.uuid({ version: 4 }), async (replace, id) => {
          const payload = { ...sample, ...Object.fromEntries(replace.map((k) => [k, id])) };
          const ack = (await (fuzzer.timeout(EVENT_DEADLINE_MS) as unknown as { emitWithAck(e: string, p: unknown): Promise<AnyAck> }).emitWithAck(event, payload)) as AnyAck;
          checkAck(event, [payload], ack);
        }),
        { numRuns: 10 },
      )
      .catch((err: Error) => {
        throw new Error(`${event}: ${err.message}`, { cause: err });
      });
  }
  await bystanderAnswers();
});

test('after the fuzzing the fuzz room still works end to end', async () => {
  const { roomId } = samples['feed:publish'] as { roomId: string };
  const published = await request(fuzzer, 'feed:publish', { roomId, type: 'chat.message', payload: { text: 'still here' }, clientMsgId: randomUUID() });
  assert.ok(published.ok, JSON.stringify(published));
  assert.is((await fetch(`${server.url}/readyz`)).status, 200);
});

test.run();
