/**
 * Client addresses behind a proxy (TRUST_PROXY=1: one proxy in front, as
 * behind the bundled nginx) and IPv6: a limit binds the address the trusted
 * proxy saw, never what a client wrote into X-Forwarded-For, and an IPv6
 * /64 counts as one client for every per-address limit (HTTP sign-ins, PIN
 * guesses, the connection cap).
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { postJson } from '../support/auth.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { openRawSocket, type RawSocket } from '../support/raw-socket.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('abuse/addresses');
const LIMIT = 3;
let ctx: TestContext;
let server: TestServer;
const raws: RawSocket[] = [];

/** A request as the proxy forwards it: whatever the client sent, then the address the proxy saw. */
const via = (client: string, spoofed?: string) => ({ 'x-forwarded-for': spoofed ? `${spoofed}, ${client}` : client });
const spoof = () => `203.0.113.${1 + Math.floor(Math.random() * 250)}, 2001:db8:ffff::${randomBytes(2).toString('hex')}`;

const guest = async (headers: Record<string, string>) => (await postJson(`${server.url}/auth/guest`, { displayName: 'Guest' }, headers)).status;
const lookup = async (headers: Record<string, string>) => {
  const res = await fetch(`${server.url}/rooms/pin/${String(100000 + Math.floor(Math.random() * 800000))}`, { headers });
  await res.body?.cancel();
  return res.status;
};

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  server = await startTestServer({
    ...ctx.env,
    TRUST_PROXY: '1',
    AUTH_RATE_GUEST_IP: `${LIMIT}/600`,
    PIN_GUESS_RATE_IP: `${LIMIT}/300`,
    SOCKET_MAX_CONNECTIONS_PER_ADDRESS: String(LIMIT),
  });
});

test.after(async () => {
  for (const r of raws) r.close();
  await server?.stop();
  await ctx.cleanup();
});

test('spoofed X-Forwarded-For hops are ignored: a limit binds the address the trusted proxy appended', async () => {
  const statuses: number[] = [];
  for (let i = 0; i <= LIMIT; i++) statuses.push(await guest(via('198.51.100.20', spoof())));
  assert.equal(statuses, [201, 201, 201, 429], 'a fresh forged hop each time does not make a fresh client');
  assert.is(await guest(via('198.51.100.21', '198.51.100.20')), 201, 'naming a blocked address as a forged hop does not block the real client either');
});

test('an IPv6 /64 shares one limit: guest sign-ins, PIN guesses and connections; the next /64 is another client', async () => {
  const net = (host: string) => via(`2001:db8:a:1:${host}`);
  const signIns = [];
  for (const host of ['0:0:0:1', '0:0:0:2', 'ffff:ffff:ffff:ffff', 'abcd:0:0:9']) signIns.push(await guest(net(host)));
  assert.equal(signIns, [201, 201, 201, 429], 'sign-ins from one /64');
  assert.is(await guest(via('2001:db8:a:2::1')), 201, 'the next /64');

  const guesses = [];
  for (const host of ['1:1:1:1', '2:2:2:2', '3:3:3:3', '4:4:4:4']) guesses.push(await lookup(net(host)));
  assert.equal(guesses, [404, 404, 404, 429], 'wrong PINs from one /64');
  assert.is(await lookup(via('2001:db8:a:3::1')), 404, 'another /64 may still look up');

  for (const host of ['0:0:0:a', '0:0:0:b', '0:0:0:c']) raws.push(await openRawSocket(server.url, { headers: net(host) }));
  const refused = (await openRawSocket(server.url, { headers: net('0:0:0:d') }).catch((err: Error & { status?: number }) => err)) as Error & { status?: number };
  assert.is(refused.status, 400, 'the connection cap counts the /64');
  raws.push(await openRawSocket(server.url, { headers: via('2001:db8:a:4::1') }));
});

test.run();
