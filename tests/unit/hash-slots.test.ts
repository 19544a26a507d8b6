import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHashSlots } from '../../server/auth/hash-slots.ts';
import { AppError } from '../../server/errors.ts';

const test = suite('auth/hash-slots');

/** A task that runs until released, recording how many run at once. */
function gate() {
  let running = 0;
  let peak = 0;
  const releases: (() => void)[] = [];
  return {
    task: () => {
      running++;
      peak = Math.max(peak, running);
      return new Promise<string>((resolve) =>
        releases.push(() => {
          running--;
          resolve('hashed');
        }),
      );
    },
    releaseAll: () => releases.splice(0).forEach((r) => r()),
    get peak() {
      return peak;
    },
    get started() {
      return releases.length;
    },
  };
}

const codeOf = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'ok' : r.reason instanceof AppError ? r.reason.code : String(r.reason));

test('no more hashes than the concurrency run at once; the queue waits its turn; the rest are refused at once with rate_limited', async () => {
  const slots = createHashSlots({ concurrency: 2, queue: 3, waitMs: 10_000 });
  const g = gate();
  const settled = Promise.allSettled(Array.from({ length: 10 }, () => slots.run(g.task)));
  await new Promise((r) => setImmediate(r));
  assert.is(g.started, 2, 'two running');
  assert.equal(slots.stats(), { running: 2, waiting: 3, refused: 5, timedOut: 0 });
  // Each release hands its slot to a waiter: never more than two at once.
  for (let round = 0; round < 3; round++) {
    g.releaseAll();
    await new Promise((r) => setImmediate(r));
  }
  const outcomes = (await settled).map(codeOf);
  assert.equal(outcomes.filter((c) => c === 'ok').length, 5);
  assert.equal(outcomes.filter((c) => c === 'rate_limited').length, 5);
  assert.is(g.peak, 2);
  assert.equal(slots.stats(), { running: 0, waiting: 0, refused: 5, timedOut: 0 });
});

test('a sign-in that waits longer than waitMs for a slot is refused with rate_limited and leaves the queue', async () => {
  const slots = createHashSlots({ concurrency: 1, queue: 5, waitMs: 50 });
  const g = gate();
  const first = slots.run(g.task);
  const waiter = slots.run(g.task);
  const refused = await waiter.then(
    () => 'ok',
    (err: unknown) => (err instanceof AppError ? `${err.code} ${err.retryAfterMs}` : String(err)),
  );
  assert.is(refused, 'rate_limited 1000');
  assert.equal(slots.stats(), { running: 1, waiting: 0, refused: 0, timedOut: 1 });
  g.releaseAll();
  assert.is(await first, 'hashed');
  assert.is(slots.stats().running, 0, 'the slot is free again');
  assert.is(await slots.run(async () => 'next'), 'next');
});

test('a failing hash frees its slot', async () => {
  const slots = createHashSlots({ concurrency: 1, queue: 0, waitMs: 10 });
  await slots.run(() => Promise.reject(new Error('boom'))).catch(() => undefined);
  assert.is(await slots.run(async () => 'after'), 'after');
});

test.run();
