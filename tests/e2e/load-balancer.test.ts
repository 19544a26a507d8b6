/**
 * deploy/nginx.conf run for real (Debian's nginx, its upstreams templated to
 * two local pinroom nodes): the nodes see the client's address (not nginx's,
 * nor a forged X-Forwarded-For), WebSocket clients and long-polling clients from
 * several addresses of one /24 are spread over both nodes, polling sessions
 * stay on their node, a node killed with -9 sends its clients to the other
 * with every feed entry once and in order, and when the node returns the
 * polling clients hashed to it move back with one reconnect each, not a loop
 * of "Session ID unknown".
 */
import { randomUUID } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { accountInDatabase, logIn, signInGuest } from '../support/auth.ts';
import { connect, request, type ConnectOptions, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { assertExactlyOnceInOrder, failoverFollower, hostWithRoom, ok, readiness, until } from '../support/faults.ts';
import { startNginx, type OwnedNginx } from '../support/nginx.ts';
import { freePort } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('deploy/load-balancer');

let ctx: TestContext;
let nodeEnv: Record<string, string>;
let ports: [number, number];
let nodes: [TestServer, TestServer];
let nginx: OwnedNginx;
/** An administrator (named in FEED_ADMIN_USERS), to read the nodes' /admin/overview. */
let admin: { id: string; username: string; password: string };
const sockets: TestSocket[] = [];
const agents: Agent[] = [];
const track = (s: TestSocket) => void sockets.push(s);

const startNode = (port: number) => startTestServer({ ...nodeEnv, PORT: String(port) });

/** Addresses of one /24 (127.0.0.10 and up), by the node nginx's sticky hash sends their polling clients to. */
const homes: Record<'a' | 'b', string[]> = { a: [], b: [] };

/** A GET (or a POST of `body`, text unless `headers` say otherwise) from `agent`'s address: status and body. */
function httpFrom(agent: Agent, url: string, body?: string, extraHeaders: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { ...(body === undefined ? {} : { 'content-type': 'text/plain;charset=UTF-8' }), ...extraHeaders };
    const req = httpRequest(url, { agent, method: body === undefined ? 'GET' : 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The node nginx sends polling clients from `address` to: an Engine.IO
 * handshake through nginx, then the session's close packet posted to each node
 * directly; only the node that holds the session accepts it.
 */
async function homeOf(address: string): Promise<'a' | 'b'> {
  const agent = new Agent({ localAddress: address });
  try {
    const handshake = await httpFrom(agent, `${nginx.url}/socket.io/?EIO=4&transport=polling`);
    assert.is(handshake.status, 200, `handshake from ${address}: ${handshake.body}`);
    const { sid } = JSON.parse(handshake.body.slice(1)) as { sid: string };
    for (const [name, node] of [['a', nodes[0]], ['b', nodes[1]]] as const) {
      const res = await httpFrom(agent, `${node.url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, '1');
      if (res.status === 200) return name;
    }
    throw new Error(`neither node holds the polling session of ${address}`);
  } finally {
    agent.destroy();
  }
}

/** Sockets connected to a node, from its own /metrics. */
async function socketsOn(node: TestServer): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const match = /^pinroom_sockets_connected (\d+)/m.exec(text);
  if (!match) throw new Error('no pinroom_sockets_connected in /metrics');
  return Number(match[1]);
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  admin = await accountInDatabase(ctx.db());
  nodeEnv = {
    ...ctx.env,
    FEED_ADMIN_USERS: admin.id,
    ...RAISED_USER_LIMITS,
    TRUST_PROXY: '1',
    SOCKET_EVENTS_PER_SECOND: '10000',
    AUTH_RATE_GUEST_IP: '1000/60',
    AUTH_RATE_REGISTER_IP: '1000/60',
  };
  ports = [await freePort(), await freePort()];
  nodes = [await startNode(ports[0]), await startNode(ports[1])];
  nginx = await startNginx(ports);
});

test.after(async () => {
  for (const s of sockets) s.close();
  for (const a of agents) a.destroy();
  await nginx?.stop();
  await Promise.allSettled((nodes ?? []).map((n) => n.stop()));
  await ctx?.cleanup();
});

test('HTTP routes and sockets answer through nginx, which forwards the client address to the node and drops a forged X-Forwarded-For', async () => {
  const res = await fetch(`${nginx.url}/readyz`);
  assert.is(res.status, 200);
  await res.body?.cancel();
  // nginx reaches the nodes from 127.0.0.1; the client comes from another loopback address and forges the header.
  const clientAddress = '127.0.0.200';
  const forged = { 'x-forwarded-for': '203.0.113.7' };
  const agent = new Agent({ localAddress: clientAddress });
  agents.push(agent);

  // HTTP: the node's sign-in audit line names the address the node took for the request.
  const signedIn = await httpFrom(agent, `${nginx.url}/auth/guest`, JSON.stringify({ displayName: 'Through nginx' }), { 'content-type': 'application/json', ...forged });
  assert.is(signedIn.status, 201, `POST /auth/guest through nginx: ${signedIn.body}`);
  const guest = JSON.parse(signedIn.body) as { accessToken: string; user: { id: string } };
  const audited = () =>
    nodes
      .flatMap((node) => node.output().split('\n'))
      .flatMap((line) => {
        try {
          const entry = JSON.parse(line) as { audit?: { type?: string; userId?: string; address?: string } };
          return entry.audit?.type === 'auth.signed_in' && entry.audit.userId === guest.user.id ? [entry.audit] : [];
        } catch {
          return [];
        }
      });
  await until(() => audited().length > 0, "the guest's sign-in in a node's log");
  assert.is(audited()[0]!.address, clientAddress, 'the node took the address nginx connected from, not 127.0.0.1 nor the forged one');

  // Socket.IO: the node lists the socket under the client's address in its admin overview.
  const socket = await connect(nginx.url, { token: guest.accessToken, agent, extraHeaders: forged });
  track(socket);
  const adminToken = (await logIn(nodes[0].url, admin.username, admin.password)).accessToken;
  const listed = [];
  for (const node of nodes) {
    const overview = await fetch(`${node.url}/admin/overview`, { headers: { authorization: `Bearer ${adminToken}` } });
    assert.is(overview.status, 200);
    const body = (await overview.json()) as { socketList: { id: string; address: string }[] };
    listed.push(...body.socketList.filter((s) => s.id === socket.id));
  }
  assert.is(listed.length, 1, 'one node holds the socket');
  assert.is(listed[0]!.address, clientAddress, 'the node lists the socket under the address nginx connected from');
  socket.close();
});

test("nginx's hash spreads polling clients from the addresses of one /24 over both nodes", async () => {
  // ip_hash keys on the first three octets: it sent a whole /24 (a school's NAT, a proxy pool) to one node.
  // Which node an address lands on depends on the upstreams' names (their ports), so 32 addresses are tried.
  for (let i = 0; i < 32; i++) {
    const address = `127.0.0.${10 + i}`;
    homes[await homeOf(address)].push(address);
  }
  assert.ok(homes.a.length > 0 && homes.b.length > 0, `addresses of one /24 on both nodes (a: ${homes.a.length}, b: ${homes.b.length})`);
  // The same address keeps its node.
  assert.is(await homeOf(homes.a[0]!), 'a', `${homes.a[0]} hashed to node A again`);
  assert.is(await homeOf(homes.b[0]!), 'b', `${homes.b[0]} hashed to node B again`);
});

test('clients are spread over both nodes, polling sessions stay on theirs, a node killed with -9 loses no entry, and its return costs one reconnect', async () => {
  const [a, b] = nodes;
  // The host talks to node B directly: its publishes go on while A is dead.
  const { socket: hostSocket, room } = await hostWithRoom(b.url, 'Behind nginx', track);

  type Follower = { f: ReturnType<typeof failoverFollower>; transport: 'websocket' | 'polling'; node?: 'a' | 'b'; home?: 'a' | 'b' };
  const followers: Follower[] = [];
  const lb = () => [nginx.url];
  for (let i = 0; i < 12; i++) {
    const polling = i % 2 === 1;
    const options: ConnectOptions = polling ? { transports: ['polling'] } : { transports: ['websocket'] };
    // Polling clients come from addresses hashed to node A and to node B in turn (the previous test sorted them).
    const home = polling ? (['a', 'b'] as const)[((i - 1) / 2) % 2]! : undefined;
    if (home) {
      const address = homes[home][Math.floor((i - 1) / 4)];
      assert.ok(address, `an address of the /24 hashed to node ${home}`);
      const agent = new Agent({ keepAlive: true, localAddress: address });
      agents.push(agent);
      options.agent = agent;
    }
    const guest = await signInGuest(nginx.url, `Follower${i}`);
    const before = [await socketsOn(a), await socketsOn(b)];
    const f = failoverFollower(guest.accessToken, room.id, room.pin, lb, track, options);
    await f.start(nginx.url);
    const after = [await socketsOn(a), await socketsOn(b)];
    const node = after[0]! > before[0]! ? 'a' : after[1]! > before[1]! ? 'b' : undefined;
    followers.push({ f, transport: polling ? 'polling' : 'websocket', node, home });
  }
  for (const [i, x] of followers.entries()) if (x.home) assert.is(x.node, x.home, `polling follower ${i} is on the node its address hashes to`);
  for (const transport of ['websocket', 'polling'] as const) {
    const on = (node: 'a' | 'b') => followers.filter((x) => x.transport === transport && x.node === node).length;
    assert.ok(on('a') > 0 && on('b') > 0, `${transport} clients on both nodes (a: ${on('a')}, b: ${on('b')})`);
  }
  // Polling sessions made several requests each (join, subscribe, acks) without a "Session ID unknown".
  assert.ok(followers.every((x) => x.f.reasons.length === 0), 'no client lost its session while the nodes were up');

  const expected: string[] = [];
  const publish = async (n: number) => {
    const text = `entry ${n}`;
    ok(await request(hostSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text }, clientMsgId: randomUUID() }));
    expected.push(text);
  };
  const holdingAll = () => followers.every(({ f }) => f.follower.entries.filter((e) => e.type === 'chat.message').length >= expected.length);

  // Kill -9 node A a third of the way through a stream of entries.
  for (let n = 1; n <= 150; n++) {
    await publish(n);
    if (n === 50) await a.kill();
  }
  assert.is(a.process.signalCode, 'SIGKILL', 'node A was killed with -9');
  assert.is(await readiness(a.url), 0, 'node A no longer answers');
  await until(holdingAll, 'every follower holding every entry after the kill', 60_000);
  for (const [i, { f }] of followers.entries()) assertExactlyOnceInOrder(f.follower.entries, expected, `follower ${i}`);
  const movedA = followers.filter((x) => x.node === 'a');
  assert.ok(movedA.every((x) => x.f.reasons.length >= 1), 'the clients of the dead node reconnected');
  assert.ok(followers.filter((x) => x.node === 'b').every((x) => x.f.reasons.length === 0), 'the clients of the surviving node were not disturbed');
  await until(async () => (await socketsOn(b)) >= followers.length + 1, 'every follower on node B');

  // Node A returns on its port; entries keep coming for longer than nginx's fail_timeout (5 s).
  const reasonsAtReturn = followers.map((x) => x.f.reasons.length);
  nodes[0] = await startNode(ports[0]);
  const returned = nodes[0];
  let n = 150;
  const backOnA = async () => (await socketsOn(returned)) > 0;
  const end = Date.now() + 60_000;
  // Publish until nginx sends polling clients back to A, then 100 more.
  while (!(await backOnA())) {
    if (Date.now() > end) throw new Error('no client reached the returned node within 60 s');
    await publish(++n);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (let i = 0; i < 100; i++) {
    await publish(++n);
    await new Promise((r) => setTimeout(r, 20));
  }
  await until(holdingAll, 'every follower holding every entry after the node returned', 60_000);
  await Promise.all(followers.map(({ f }) => f.settled()));
  for (const [i, { f }] of followers.entries()) {
    assertExactlyOnceInOrder(f.follower.entries, expected, `follower ${i}`);
    const after = f.reasons.length - reasonsAtReturn[i]!;
    assert.ok(after <= 1, `follower ${i} (${followers[i]!.transport}) reconnected ${after} times after the node returned: no "Session ID unknown" loop`);
  }
  const pollingBack = followers.filter((x) => x.transport === 'polling' && x.node === 'a');
  assert.ok(pollingBack.every((x) => x.f.reasons.length - reasonsAtReturn[followers.indexOf(x)]! === 1), 'polling clients hashed to the returned node moved back to it, once');
  for (const { f } of followers) f.stop();
});

test.run();
