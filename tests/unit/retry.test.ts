import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from '../support/assert.ts';
import { isTransientError, withRetry } from '../../server/retry.ts';

const test = suite('retry');

const transient = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
const noSleep = { sleep: async () => undefined };

test('an idempotent operation is retried after transient failures until it succeeds', async () => {
  let calls = 0;
  const result = await withRetry(
    async () => {
      calls++;
      if (calls < 3) throw transient();
      return 'ok';
    },
    { idempotent: true, attempts: 3, ...noSleep },
  );
  assert.is(result, 'ok');
  assert.is(calls, 3);
});

test('a non-idempotent operation runs once even when the failure is transient', async () => {
  let calls = 0;
  await rejects(() =>
    withRetry(
      async () => {
        calls++;
        throw transient();
      },
      { idempotent: false, attempts: 5, ...noSleep },
    ),
  );
  assert.is(calls, 1);
});

test('an error about the request itself is not retried', async () => {
  let calls = 0;
  await rejects(() =>
    withRetry(
      async () => {
        calls++;
        throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
      },
      { idempotent: true, attempts: 5, ...noSleep },
    ),
  );
  assert.is(calls, 1);
});

test('it gives up after the configured attempts and throws the last error', async () => {
  let calls = 0;
  try {
    await withRetry(
      async () => {
        calls++;
        throw transient();
      },
      { idempotent: true, attempts: 4, ...noSleep },
    );
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ECONNRESET');
  }
  assert.is(calls, 4);
});

test('delays use full jitter under an exponential cap bounded by maxMs', async () => {
  const delays: number[] = [];
  await rejects(() =>
    withRetry(async () => Promise.reject(transient()), {
      idempotent: true,
      attempts: 6,
      baseMs: 100,
      maxMs: 500,
      random: () => 0.999,
      sleep: async (ms) => {
        delays.push(ms);
      },
    }),
  );
  assert.equal(delays, [99, 199, 399, 499, 499]);
  const none: number[] = [];
  await rejects(() =>
    withRetry(async () => Promise.reject(transient()), { idempotent: true, attempts: 3, random: () => 0, sleep: async (ms) => void none.push(ms) }),
  );
  assert.equal(none, [0, 0]);
});

test('each retry is logged with the operation name and attempt', async () => {
  const lines: unknown[] = [];
  let calls = 0;
  await withRetry(
    async () => {
      if (++calls === 1) throw transient();
    },
    { idempotent: true, name: 'pin.claim', logger: { warn: (obj: unknown) => void lines.push(obj) } as never, ...noSleep },
  );
  assert.is(lines.length, 1);
  assert.is((lines[0] as { op: string }).op, 'pin.claim');
  assert.is((lines[0] as { attempt: number }).attempt, 1);
});

test('transient errors are recognised: resets, timeouts, LOADING, TRYAGAIN, wrapped causes', () => {
  assert.ok(isTransientError(transient()));
  assert.ok(isTransientError(new Error('Command timed out')));
  assert.ok(isTransientError(new Error('LOADING Redis is loading the dataset in memory')));
  assert.ok(isTransientError(new Error('TRYAGAIN Multiple keys request during rehashing of slot')));
  assert.ok(isTransientError(new Error('outer', { cause: transient() })));
  assert.not.ok(isTransientError(new Error('ERR syntax error')));
  assert.not.ok(isTransientError('ECONNRESET'));
});

test.run();
