import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createCoalescer } from '../../server/rooms/coalesce.ts';

const test = suite('rooms/coalesce');

/** A run that waits until released, recording what each run was given. */
function gated() {
  const runs: { key: string; args: number[]; release: () => void; fail: (err: Error) => void }[] = [];
  const run = (key: string, args: number[]) =>
    new Promise<number[]>((resolve, reject) => {
      runs.push({ key, args, release: () => resolve(args.map((a) => a * 10)), fail: reject });
    });
  return { runs, run };
}

const tick = () => new Promise((r) => setImmediate(r));

test('an idle key runs at once; calls made while it runs go together in the next run, never in the one in flight', async () => {
  const { runs, run } = gated();
  const call = createCoalescer(run);
  const first = call('room', 1);
  await tick();
  assert.equal(runs.map((r) => r.args), [[1]], 'the first call did not wait');
  const later = [call('room', 2), call('room', 3)];
  await tick();
  assert.is(runs.length, 1, 'no second run while the first is in flight');
  runs[0]!.release();
  assert.is(await first, 10);
  await tick();
  assert.equal(runs.map((r) => r.args), [[1], [2, 3]]);
  runs[1]!.release();
  assert.equal(await Promise.all(later), [20, 30]);
});

test('keys run independently, and a failed run rejects only the calls it carried', async () => {
  const { runs, run } = gated();
  const call = createCoalescer(run);
  const a = call('a', 1);
  const b = call('b', 2);
  await tick();
  assert.equal(runs.map((r) => r.key), ['a', 'b'], 'two keys, two runs in flight');
  const a2 = call('a', 3);
  runs[0]!.fail(new Error('down'));
  let failed: unknown;
  await a.catch((err: unknown) => (failed = err));
  assert.is((failed as Error).message, 'down');
  await tick();
  runs[2]!.release();
  runs[1]!.release();
  assert.equal(await Promise.all([a2, b]), [30, 20]);
});

test('a run takes at most maxBatch calls', async () => {
  const { runs, run } = gated();
  const call = createCoalescer(run, 2);
  const first = call('k', 0);
  await tick();
  const rest = [1, 2, 3].map((n) => call('k', n));
  runs[0]!.release();
  await first;
  await tick();
  runs[1]!.release();
  await tick();
  await tick();
  runs[2]!.release();
  assert.equal(await Promise.all(rest), [10, 20, 30]);
  assert.equal(runs.map((r) => r.args), [[0], [1, 2], [3]]);
});

test.run();
