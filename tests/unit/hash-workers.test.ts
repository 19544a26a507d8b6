import { readdirSync, readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHashWorkers } from '../../server/auth/hash-workers.ts';
import { DEFAULT_SCRYPT, hashPassword, verifyPassword } from '../../server/auth/passwords.ts';

const test = suite('auth/hash-workers');

/** The nice value in a Linux `stat` file (its 19th field). */
const niceOf = (path: string) => {
  const stat = readFileSync(path, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
};
/** Nice values of this process's threads. */
const threadNices = () => readdirSync('/proc/self/task').map((tid) => niceOf(`/proc/self/task/${tid}/stat`));

test('keys derived in the worker threads are the keys scrypt derives in process, both ways', async () => {
  const workers = createHashWorkers({ size: 1 });
  try {
    const inWorker = await hashPassword('correct horse', DEFAULT_SCRYPT, workers.derive);
    assert.ok(await verifyPassword('correct horse', inWorker), 'verified in process');
    assert.not.ok(await verifyPassword('wrong horse', inWorker, workers.derive));
    assert.ok(await verifyPassword('correct horse', await hashPassword('correct horse'), workers.derive), 'an in-process hash verified in a worker');
  } finally {
    await workers.stop();
  }
});

test('the hashing threads run at the lowest priority, the event loop at its own', async () => {
  const before = threadNices();
  const workers = createHashWorkers({ size: 2 });
  try {
    await Promise.all([hashPassword('a-password', DEFAULT_SCRYPT, workers.derive), hashPassword('b-password', DEFAULT_SCRYPT, workers.derive)]);
    const after = threadNices();
    assert.is(after.filter((n) => n === 19).length - before.filter((n) => n === 19).length, 2, `two threads at nice 19: ${after.join(' ')}`);
    assert.is(niceOf(`/proc/${process.pid}/task/${process.pid}/stat`), 0, 'the event loop keeps its priority');
  } finally {
    await workers.stop();
  }
  await workers.derive({} as never).then(
    () => assert.unreachable('a stopped pool refuses'),
    (err: Error) => assert.match(err.message, 'stopped'),
  );
});

test.run();
