import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createKeys } from '../../server/redis/keys.ts';
import { PER_KEY_SCRIPTS, SCRIPT_NAMES, type ScriptName } from '../../server/redis/scripts.ts';
import { assertOneSlot, crc16, hashTag, keySlot } from '../../server/redis/slots.ts';

const test = suite('redis/slots');
const keys = createKeys('pinroom:');
const room = '6f1c2a3b-0000-4000-8000-000000000001';
const session = 'c0ffee00-0000-4000-8000-000000000002';
const user = '0badf00d-0000-4000-8000-000000000003';

/**
 * Every script with the keys its callers pass, built by the same key builders
 * (server/redis/keys.ts). A script added without a row here fails the last test.
 */
const SCRIPT_KEYS: Record<ScriptName, string[]> = {
  'compare-and-delete': [keys.cacheLock('room', room)],
  'refresh-issue': [keys.session(session), keys.refreshToken(session, 'a'.repeat(64))],
  'refresh-rotate': [keys.session(session), keys.refreshToken(session, 'a'.repeat(64)), keys.refreshToken(session, 'b'.repeat(64))],
  'refresh-revoke': [keys.session(session), keys.refreshToken(session, 'a'.repeat(64))],
  'refresh-discard': [keys.session(session), keys.refreshToken(session, 'a'.repeat(64))],
  'login-attempt': [keys.loginFailures('ada')],
  'cache-lease': [keys.cache('user', user), keys.cacheVersion('user', user), keys.cacheLock('user', user)],
  'cache-fill': [keys.cache('room', room), keys.cacheVersion('room', room), keys.cacheLock('room', room)],
  'cache-invalidate': [keys.cache('room', room), keys.cacheVersion('room', room)],
  'pin-release': [keys.pin('123456')],
  'pin-renew': [keys.pin('123456')],
  'room-join-probe': [keys.pin('123456')],
  'room-wait': [keys.roomWaiting(room), keys.roomWaitingNames(room)],
  'room-unwait': [keys.roomWaiting(room), keys.roomWaitingNames(room)],
  'presence-join': [keys.roomSockets(room), keys.roomUsers(room), keys.roomHostDeadline(room)],
  'presence-leave': [keys.roomSockets(room), keys.roomUsers(room), keys.roomHostDeadline(room)],
  'presence-remove-user': [keys.roomSockets(room), keys.roomUsers(room)],
  'presence-purge-node': [keys.roomSockets(room), keys.roomUsers(room), keys.roomHostDeadline(room)],
  'presence-host-claim': [keys.roomHostDeadline(room), keys.roomUsers(room)],
  'presence-node-forget': [keys.presenceNodes, keys.presenceNodesPurging],
  'presence-node-purged': [keys.presenceNodesPurging, keys.presenceNodeRooms('node-1')],
  'presence-zrem-stale': [keys.hostDeadlines],
  'feed-append': [keys.feedStream(room), keys.feedMeta(room), keys.feedLive(room), keys.feedMsgId(room, user, 'client-msg-1')],
  'feed-log': [keys.feedSystem, keys.feedSystemMeta, keys.feedSystemLive],
  'feed-global': [keys.feedGlobal, keys.feedGlobalMeta, keys.feedGlobalLive, keys.feedGlobalCopied],
  'feed-position': [keys.feedStream(room), keys.feedMeta(room)],
  'feed-archive-take': [keys.feedArchivePending],
  'feed-archive-claim': [keys.feedMeta(room), keys.feedArchiveLease(room)],
  'feed-archive-commit': [keys.feedMeta(room), keys.feedArchiveLease(room)],
  'session-states': [keys.session(session), keys.session(user)],
};

test('CRC16 and key slots match Redis Cluster\'s reference values', () => {
  assert.is(crc16(Buffer.from('123456789')), 0x31c3, 'the CRC16-XMODEM check value of the cluster spec');
  assert.is(keySlot('foo'), 12182);
  assert.is(keySlot('{user1000}.following'), keySlot('{user1000}.followers'));
  assert.is(keySlot('{user1000}.following'), keySlot('user1000'));
  assert.is(hashTag('foo{}{bar}'), 'foo{}{bar}', 'an empty first tag hashes the whole key');
  assert.is(hashTag('foo{{bar}}zap'), '{bar', 'the tag ends at the first } after the first {');
});

test('the global, system and archive feed keys each share one slot, none of them a room\'s', () => {
  const slot = (...names: string[]) => new Set(names.map(keySlot));
  assert.is(slot(keys.feedGlobal, keys.feedGlobalMeta, keys.feedGlobalLive, keys.feedGlobalCopied).size, 1);
  assert.is(slot(keys.feedSystem, keys.feedSystemMeta, keys.feedSystemLive).size, 1);
  assert.is(slot(keys.feedArchivePending, keys.feedArchiveDead, keys.feedArchiveSweep).size, 1);
  assert.is(slot(keys.feedStream(room), keys.feedMeta(room), keys.feedLive(room), keys.feedMsgId(room, user, 'x'), keys.feedArchiveLease(room)).size, 1);
});

for (const name of SCRIPT_NAMES) {
  const perKey = PER_KEY_SCRIPTS[name];
  test(perKey ? `per-key script ${name} takes keys of several slots, and is split by slot on a cluster` : `script ${name} touches keys of one hash slot`, () => {
    const scriptKeys = SCRIPT_KEYS[name];
    assert.ok(scriptKeys && scriptKeys.length > 0, `no keys listed for ${name}`);
    const slots = new Set(scriptKeys.map(keySlot)).size;
    if (perKey) {
      assert.ok(slots > 1, `${name}: the listed keys are meant to span slots`);
      assert.throws(() => assertOneSlot(name, scriptKeys), /more than one cluster slot/, 'run() refuses it: it goes through runPerKey');
      return;
    }
    assert.is(slots, 1, `${name}: ${scriptKeys.map((k) => `${k} → ${keySlot(k)}`).join(', ')}`);
    assertOneSlot(name, scriptKeys);
  });
}

test('every script is listed, only the session batch read is per-key, and a call with keys in two slots is refused before it reaches Redis', () => {
  assert.equal(Object.keys(SCRIPT_KEYS).sort(), [...SCRIPT_NAMES].sort());
  assert.equal(Object.keys(PER_KEY_SCRIPTS), ['session-states'], 'no multi-key script that changes anything spans slots');
  assert.throws(() => assertOneSlot('feed-append', [keys.feedStream(room), keys.feedGlobal]), /more than one cluster slot/);
  assert.throws(() => assertOneSlot('presence-join', [keys.roomSockets(room), keys.userRooms(user)]), /more than one cluster slot/);
});

test.run();
