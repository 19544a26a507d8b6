import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createKeys } from '../../server/redis/keys.ts';

const test = suite('redis/keys');

test('every key starts with the configured prefix', () => {
  const keys = createKeys('p1:');
  assert.ok(keys.pin('123456').startsWith('p1:'));
  assert.ok(keys.cache('user', 'abc').startsWith('p1:'));
  assert.ok(keys.adapterChannel.startsWith('p1:'));
  assert.ok(keys.rateLimit.startsWith('p1:'));
});

test('a room id is wrapped in a hash tag so all its keys share a cluster slot', () => {
  const keys = createKeys('p:');
  assert.match(keys.room('r-1'), '{r-1}');
  assert.match(keys.cache('room', 'r-1'), '{r-1}');
  assert.match(keys.cacheLock('room', 'r-1'), '{r-1}');
});

test.run();
