import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isDbUnavailable } from '../../server/cache/cache-aside.ts';

const test = suite('cache/errors');

const withCode = (code: string, message = 'failed') => Object.assign(new Error(message), { code });

test('connection failures, timeouts and server shutdowns count as PostgreSQL being unavailable', () => {
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', '57P01', '57014', '08006', '53300', '40001']) {
    assert.ok(isDbUnavailable(withCode(code)), code);
  }
  assert.ok(isDbUnavailable(new Error('Connection terminated unexpectedly')));
  assert.ok(isDbUnavailable(new Error('timeout exceeded when trying to connect')));
});

test('a wrong query or a programming error is not unavailability (it must not be hidden behind stale data)', () => {
  for (const code of ['42P01', '42703', '22P02', '23505']) assert.not.ok(isDbUnavailable(withCode(code)), code);
  assert.not.ok(isDbUnavailable(new TypeError('rows.map is not a function')));
  assert.not.ok(isDbUnavailable('a string'));
});

test.run();
