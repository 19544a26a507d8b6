import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { VARIABLES } from '../../server/config.ts';
import { ERROR_CODES } from '../../shared/errors.ts';

const test = suite('README');
const root = new URL('../..', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const ciRun = readFileSync(new URL('.ci/run', root), 'utf8');

test('the configuration table lists every environment variable the server reads', () => {
  for (const name of Object.keys(VARIABLES)) assert.ok(readme.includes(`| \`${name}\` |`), `${name} missing from README`);
});

test('CI runs exactly the test command the README gives', () => {
  const last = ciRun.trim().split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')).at(-1)!;
  assert.is(last, 'npm ci && npm test');
  assert.ok(readme.includes('```sh\nnpm ci && npm test\n```'));
});

test('every error code is documented', () => {
  const protocol = readme + (() => {
    try {
      return readFileSync(new URL('docs/protocol.md', root), 'utf8');
    } catch {
      return '';
    }
  })();
  for (const code of ERROR_CODES) assert.ok(protocol.includes(`\`${code}\``), `${code} undocumented`);
});

test.run();
