import { Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, logFormat, startupLine } from '../../server/logger.ts';

const test = suite('logger');

test('a terminal in development or test gets readable lines; production and pipes get JSON', () => {
  assert.is(logFormat('development', { isTTY: true }), 'pretty');
  assert.is(logFormat('test', { isTTY: true }), 'pretty');
  assert.is(logFormat('production', { isTTY: true }), 'json');
  assert.is(logFormat('development', { isTTY: false }), 'json');
  assert.is(logFormat('development', {}), 'json');
});

test('a logger given a destination writes JSON lines to it, whatever the terminal', async () => {
  let written = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      written += chunk.toString();
      done();
    },
  });
  const logger = createLogger({ env: 'development', log: { level: 'info' } }, sink);
  logger.info({ token: 'secret-token' }, 'hello');
  const line = JSON.parse(written.trim()) as Record<string, unknown>;
  assert.is(line.msg, 'hello');
  assert.is(line.token, '[redacted]');
});

test('the start-up line says where to open the demo and which Redis and PostgreSQL, without the password', () => {
  const line = startupLine({
    url: 'http://127.0.0.1:3000',
    demoBuilt: true,
    redisUrl: 'redis://:redis-secret@cache.internal:6379',
    databaseUrl: 'postgres://app:pg-secret@db.internal:5432/pinroom',
  });
  assert.is(line.message, 'pinroom listening: open http://localhost:3000/ (Redis redis://:****@cache.internal:6379, PostgreSQL postgres://app:****@db.internal:5432/pinroom)');
  assert.equal(line.fields, { url: 'http://127.0.0.1:3000', demo: 'http://localhost:3000/', redis: 'redis://:****@cache.internal:6379', postgres: 'postgres://app:****@db.internal:5432/pinroom' });
  assert.not.match(JSON.stringify(line), /secret/);
});

test('without a built demo the start-up line says how to build it and where the API is', () => {
  const line = startupLine({ url: 'http://10.0.0.5:8080', demoBuilt: false, redisUrl: 'redis://127.0.0.1:6379', databaseUrl: 'postgres://postgres@127.0.0.1:5432/pinroom' });
  assert.is(line.message, 'pinroom listening: the demo is not built (npm run build:client), API on http://10.0.0.5:8080 (Redis redis://127.0.0.1:6379, PostgreSQL postgres://postgres@127.0.0.1:5432/pinroom)');
  assert.is(line.fields.demo, null);
});

test.run();
