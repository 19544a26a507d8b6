import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createScripts, loadScript } from '../../server/redis/scripts.ts';
import { createTestContext, type TestContext } from '../support/context.ts';

const test = suite('redis/scripts');
let ctx: TestContext;

test.before(() => {
  ctx = createTestContext();
});
test.after(async () => {
  await ctx.cleanup();
});

test('a script the server has never seen runs through the NOSCRIPT fallback, then by SHA', async () => {
  const redis = ctx.redis();
  const scripts = createScripts(redis);
  const { sha } = loadScript('compare-and-delete');
  await redis.script('FLUSH');
  const [known] = (await redis.script('EXISTS', sha)) as number[];
  assert.is(known, 0);
  const key = `${ctx.keyPrefix}lock`;
  await redis.set(key, 'me');
  assert.is(await scripts.run<number>('compare-and-delete', [key], ['me']), 1);
  const [cached] = (await redis.script('EXISTS', sha)) as number[];
  assert.is(cached, 1);
});

test('compare-and-delete deletes only the value the caller owns', async () => {
  const redis = ctx.redis();
  const scripts = createScripts(redis);
  const key = `${ctx.keyPrefix}pin`;
  await redis.set(key, 'room-b');
  assert.is(await scripts.run<number>('compare-and-delete', [key], ['room-a']), 0);
  assert.is(await redis.get(key), 'room-b');
  assert.is(await scripts.run<number>('compare-and-delete', [key], ['room-b']), 1);
  assert.is(await redis.exists(key), 0);
});

test.run();
