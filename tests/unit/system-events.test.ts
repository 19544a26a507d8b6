import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../server/logger.ts';
import { createSystemEvents, type SystemEntry } from '../../server/observability/system-events.ts';

const test = suite('observability/system-events');
const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
const settle = () => new Promise((r) => setImmediate(r));

test('a storm of internal errors writes at most SYSTEM_LOG_RATE entries per window; the next entry counts the suppressed ones', async () => {
  const written: SystemEntry[] = [];
  const clock = { t: 1_000_000 };
  const events = createSystemEvents({ append: async (e) => void written.push(e), rate: { points: 5, durationSeconds: 60 }, logger, now: () => clock.t });
  for (let i = 0; i < 1000; i++) events.internalError({ event: 'feed:publish' });
  await settle();
  assert.is(written.length, 5);
  assert.equal(written[0], { type: 'error.internal', payload: { event: 'feed:publish', at: clock.t } });
  clock.t += 60_000;
  events.internalError({ method: 'POST', route: '/auth/login' });
  await settle();
  assert.is(written.length, 6);
  assert.equal(written[5]!.payload, { method: 'POST', route: '/auth/login', at: clock.t, suppressed: 995 });
});

test('dependency transitions are written once per change, and what could not be appended waits (bounded) and goes out in order when the log is back', async () => {
  const written: SystemEntry[] = [];
  let up = true;
  const events = createSystemEvents({
    append: async (e) => {
      if (!up) throw new Error('Connection is closed.');
      written.push(e);
    },
    rate: { points: 1000, durationSeconds: 60 },
    logger,
  });
  up = false;
  events.transition('redis', 'down', { error: 'ECONNREFUSED' });
  events.transition('redis', 'down', { error: 'ECONNREFUSED' });
  for (let i = 0; i < 150; i++) events.internalError({ event: `e${i}` });
  await settle();
  assert.is(written.length, 0);
  assert.is(events.pendingCount(), 100, 'the buffer is bounded');
  up = true;
  events.transition('redis', 'up');
  await settle();
  await settle();
  assert.is(events.pendingCount(), 0);
  assert.is(written.at(-1)!.type, 'dependency.up');
  assert.equal(written[0], { type: 'dependency.down', payload: { dependency: 'redis', error: 'ECONNREFUSED', at: written[0]!.payload.at } }, 'the outage is written first, once');
  assert.is(written.filter((e) => e.type === 'error.internal').length, 98, 'the oldest errors were dropped from the full buffer');
  assert.is(written.reduce((n, e) => n + Number(e.payload.suppressed ?? 0), 0), 52, 'and counted: the 52 errors dropped to make room');
  events.transition('postgres', 'up');
  await settle();
  assert.is(written.filter((e) => e.payload.dependency === 'postgres').length, 0, 'up without a down before is not a transition');
});

test.run();
