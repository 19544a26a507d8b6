import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createDeadlines } from '../../server/gateway/deadlines.ts';

const test = suite('gateway/deadlines');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A clock the test moves by hand; the timer still ticks in real time (10 ms). */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('an item fires once its deadline has passed, never before', async () => {
  const c = clock();
  const fired: string[] = [];
  const d = createDeadlines<string>({ now: c.now, resolutionMs: 10, onDue: (x) => fired.push(x) });
  d.add(c.now() + 55, 'a');
  await sleep(40);
  c.advance(50);
  await sleep(40);
  assert.equal(fired, [], 'not at 50 ms');
  c.advance(10);
  await sleep(40);
  assert.equal(fired, ['a']);
  c.advance(1000);
  await sleep(40);
  assert.equal(fired, ['a'], 'once');
  assert.is(d.size(), 0);
  d.clear();
});

test('a deadline already passed fires on the next tick', async () => {
  const c = clock();
  const fired: string[] = [];
  const d = createDeadlines<string>({ now: c.now, resolutionMs: 10, onDue: (x) => fired.push(x) });
  d.add(c.now() - 5000, 'late');
  c.advance(10);
  await sleep(40);
  assert.equal(fired, ['late']);
  d.clear();
});

test('a removed item does not fire, and moving a deadline keeps one', async () => {
  const c = clock();
  const fired: string[] = [];
  const d = createDeadlines<string>({ now: c.now, resolutionMs: 10, onDue: (x) => fired.push(x) });
  const at = c.now() + 30;
  d.add(at, 'gone');
  d.add(at, 'moved');
  d.remove(at, 'gone');
  d.remove(at, 'moved');
  d.add(at + 100, 'moved');
  assert.is(d.size(), 1);
  c.advance(50);
  await sleep(40);
  assert.equal(fired, []);
  c.advance(100);
  await sleep(40);
  assert.equal(fired, ['moved']);
  d.clear();
});

test('items sharing a bucket all fire, and removing one that already fired changes nothing', async () => {
  const c = clock();
  const fired: number[] = [];
  const d = createDeadlines<number>({ now: c.now, resolutionMs: 10, onDue: (x) => fired.push(x) });
  const at = c.now() + 20;
  for (let i = 0; i < 100; i++) d.add(at, i);
  c.advance(20);
  await sleep(40);
  assert.is(fired.length, 100);
  d.remove(at, 5);
  d.add(c.now() + 20, 5);
  assert.is(d.size(), 1);
  c.advance(20);
  await sleep(40);
  assert.is(fired.length, 101);
  d.clear();
});

test.run();
