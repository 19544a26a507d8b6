/**
 * One of three nodes killed with SIGKILL in the middle of a stream of
 * broadcasts: its clients reconnect to the surviving nodes and resume their
 * feeds with every entry exactly once, in order; the survivors never notice,
 * and the dead node's members are back online on the nodes they moved to.
 */
import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest } from '../support/auth.ts';
import { request } from '../support/client.ts';
import { assertExactlyOnceInOrder, failoverFollower, hostWithRoom, ok, readiness, startThreeNodes, until } from '../support/faults.ts';

const test = suite('faults/node-kill');
const ENTRIES = 300;

let cluster: Awaited<ReturnType<typeof startThreeNodes>>;

test.before(async () => {
  cluster = await startThreeNodes({ PRESENCE_HEARTBEAT_MS: '300', PRESENCE_NODE_TIMEOUT_MS: '1500' });
});

test.after(async () => {
  await cluster?.stop();
});

test('a node killed with -9 during a broadcast: its clients resume on the survivors with every entry once, in order', async () => {
  const { nodes, track } = cluster;
  const [a, b, victim] = nodes;
  const { socket: hostSocket, room } = await hostWithRoom(a.url, 'Kill -9', track);
  const survivors = () => [a.url, b.url];

  // Three followers on the victim, one on a survivor.
  const followers: { f: ReturnType<typeof failoverFollower>; guest: Awaited<ReturnType<typeof signInGuest>> }[] = [];
  for (let i = 0; i < 4; i++) {
    const guest = await signInGuest(a.url, `Follower${i}`);
    const f = failoverFollower(guest.accessToken, room.id, room.pin, survivors, track);
    await f.start(i < 3 ? victim.url : b.url);
    followers.push({ f, guest });
  }

  const expected: string[] = [];
  let heldAtKill: number[] = [];
  for (let n = 1; n <= ENTRIES; n++) {
    const text = `broadcast ${n}`;
    ok(await request(hostSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text }, clientMsgId: randomUUID() }));
    expected.push(text);
    if (n === ENTRIES / 3) {
      heldAtKill = followers.slice(0, 3).map(({ f }) => f.follower.entries.filter((e) => e.type === 'chat.message').length);
      await victim.kill();
    }
  }
  // The fault happened: the victim died of SIGKILL, mid-stream, and its port is closed.
  assert.is(victim.process.signalCode, 'SIGKILL', 'the victim was killed with -9');
  assert.ok(heldAtKill.every((held) => held < ENTRIES), `its followers were mid-stream at the kill (held ${heldAtKill.join(', ')} of ${ENTRIES})`);
  assert.is(await readiness(victim.url), 0, 'the victim no longer answers');
  await Promise.all(followers.map(({ f }) => f.settled()));
  await until(() => followers.every(({ f }) => f.follower.entries.filter((e) => e.type === 'chat.message').length >= ENTRIES), 'every follower holding every entry', 30_000);
  for (const [i, { f }] of followers.entries()) {
    assertExactlyOnceInOrder(f.follower.entries, expected, `follower ${i}`);
    assert.ok(f.follower.recovered.every(Boolean), `follower ${i}: every resume recovered`);
  }
  for (const { f } of followers.slice(0, 3)) assert.equal(f.reasons, ['transport close'], 'the victim\'s clients saw their transport close once');
  assert.equal(followers[3]!.f.reasons, [], 'a survivor\'s client was not disturbed');

  // Presence: the moved members are online (through the survivors), after the dead node's purge.
  await until(async () => {
    const members = ok(await request(hostSocket, 'room:members', { roomId: room.id })).members;
    return followers.every(({ guest }) => members.find((m) => m.userId === guest.user.id)?.online === true);
  }, 'the moved members online again');
  for (const { f } of followers) f.stop();
});

test.run();
