import * as assert from 'uvu/assert';

/** Await `fn` and return what it rejected with; fail the test if it resolves. */
export async function rejects(fn: () => Promise<unknown>, message = 'expected a rejection'): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.unreachable(message);
  throw new Error('unreachable');
}

/** Await `fn` and check it rejected with an error carrying `code` (AppError or driver error). */
export async function rejectsWithCode(fn: () => Promise<unknown>, code: string): Promise<unknown> {
  const err = await rejects(fn, `expected a rejection with code ${code}`);
  assert.is((err as { code?: unknown }).code, code, `code of ${String(err)}`);
  return err;
}
