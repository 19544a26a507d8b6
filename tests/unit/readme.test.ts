import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('README');
const root = new URL('../..', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const ciRun = readFileSync(new URL('.ci/run', root), 'utf8');

test('CI runs exactly the test command the README gives', () => {
  const last = ciRun.trim().split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')).at(-1)!;
  assert.is(last, 'npm ci && npm test');
  assert.ok(readme.includes('```sh\nnpm ci && npm test\n```'));
});

test('the README stays a front page of at most 200 lines', () => {
  const lines = readme.trimEnd().split('\n').length;
  assert.ok(lines <= 200, `README.md has ${lines} lines; move detail to docs/`);
});

test.run();
