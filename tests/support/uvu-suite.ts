/**
 * uvu's `suite` as the test command runs it (tests/run.ts preloads
 * ./uvu-preload.ts, which points every `import ... from 'uvu'` of a test file
 * here). Two things differ from plain uvu:
 *
 * - A `before` or `after` hook that throws has its error printed. uvu itself
 *   swallows a `before` error (its runner returns from a `finally`): the
 *   suite's tests just do not pass, with no message anywhere.
 * - With `CI=true`, `test.only` and `test.skip` throw when called: a run in
 *   CI runs every test.
 */
import * as uvu from 'uvu';

export { exec } from 'uvu';
export type { Callback, Test } from 'uvu';

const inCi = process.env.CI === 'true' || process.env.CI === '1';

function printHookError(kind: string, suiteName: string, err: unknown): void {
  const text = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
  process.stdout.write(`\n  FAIL  ${suiteName ? `${suiteName} ` : ''}${kind} hook threw; the suite's tests did not run:\n    ${text.split('\n').join('\n    ')}\n\n`);
}

type Hook<T> = uvu.Callback<T>;

function wrapHook<T>(register: (fn: Hook<T>) => void, kind: string, suiteName: string): (fn: Hook<T>) => void {
  return (fn) =>
    register(async (state) => {
      try {
        await fn(state);
      } catch (err) {
        printHookError(kind, suiteName, err);
        throw err;
      }
    });
}

function harden<T>(test: uvu.Test<T>, suiteName: string): uvu.Test<T> {
  test.before = Object.assign(wrapHook(test.before, 'before', suiteName), { each: test.before.each });
  test.after = Object.assign(wrapHook(test.after, 'after', suiteName), { each: test.after.each });
  if (inCi) {
    test.only = (name: string) => {
      throw new Error(`test.only('${name}') in ${suiteName || 'a suite'}: refused with CI=true (it would leave every other test unrun)`);
    };
    test.skip = (name?: string) => {
      throw new Error(`test.skip('${name ?? ''}') in ${suiteName || 'a suite'}: refused with CI=true (every test runs in CI)`);
    };
  }
  return test;
}

export function suite<T = Record<string, any>>(title?: string, context?: T): uvu.Test<T> {
  return harden(uvu.suite(title, context), title ?? '');
}

export const test = harden(uvu.test, '');
