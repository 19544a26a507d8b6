import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, loadConfig, redactUrl, VARIABLES } from '../../server/config.ts';

const test = suite('config');

test('with no variables set, the defaults point at a local Redis and PostgreSQL', () => {
  const config = loadConfig({});
  assert.is(config.env, 'development');
  assert.is(config.http.port, 3000);
  assert.is(config.redis.url, 'redis://127.0.0.1:6379');
  assert.is(config.db.url, 'postgres://postgres@127.0.0.1:5432/pinroom');
  assert.is(config.redis.keyPrefix, 'pinroom:');
  assert.is(config.db.createIfMissing, true);
});

test('every bad variable is reported in one error', () => {
  try {
    loadConfig({ PORT: 'eighty', REDIS_URL: 'http://nope', LOG_LEVEL: 'loud', DB_POOL_MAX: '0' });
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const name of ['PORT', 'REDIS_URL', 'LOG_LEVEL', 'DB_POOL_MAX']) assert.match(problems, name);
    assert.is((err as ConfigError).problems.length, 4);
  }
});

test('values are parsed into their types', () => {
  const config = loadConfig({ PORT: '8080', TRUST_PROXY: '2', CORS_ORIGINS: 'https://a.example, http://localhost:5173', DB_CREATE_IF_MISSING: 'false' });
  assert.is(config.http.port, 8080);
  assert.equal(config.http.trustProxy, { hops: 2 });
  assert.equal(config.http.corsOrigins, ['https://a.example', 'http://localhost:5173']);
  assert.is(config.db.createIfMissing, false);
});

test('an origin with a path is refused', () => {
  assert.throws(() => loadConfig({ CORS_ORIGINS: 'https://a.example/app' }), (err: unknown) => err instanceof ConfigError && /CORS_ORIGINS/.test(err.message));
});

test('production refuses the insecure development defaults', () => {
  try {
    loadConfig({ NODE_ENV: 'production' });
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, ConfigError);
    const text = (err as ConfigError).message;
    assert.match(text, 'CORS_ORIGINS');
    assert.match(text, 'REDIS_URL');
    assert.match(text, 'DATABASE_URL');
  }
});

test('production with explicit settings loads, and does not create databases by default', () => {
  const config = loadConfig({
    NODE_ENV: 'production',
    CORS_ORIGINS: 'https://play.example',
    REDIS_URL: 'redis://redis:6379',
    DATABASE_URL: 'postgres://pinroom:secret@db:5432/pinroom',
    AUTH_SIGNING_KEY: JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A' }),
  });
  assert.is(config.db.createIfMissing, false);
});

const SIGNING_JWK = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A' });
const PRODUCTION = { NODE_ENV: 'production', CORS_ORIGINS: 'https://play.example', REDIS_URL: 'redis://redis:6379', DATABASE_URL: 'postgres://db:5432/pinroom' };

test('AUTH_SIGNING_KEY_FILE names a file whose content (whitespace trimmed) is the signing key, enough for production', () => {
  const read: string[] = [];
  const config = loadConfig({ ...PRODUCTION, AUTH_SIGNING_KEY_FILE: '/keys/auth-signing-key.json' }, (path) => {
    read.push(path);
    return `\n${SIGNING_JWK}\n`;
  });
  assert.equal(read, ['/keys/auth-signing-key.json']);
  assert.is(config.auth.signingKey?.x, '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo');
});

test('AUTH_SIGNING_KEY and AUTH_SIGNING_KEY_FILE both set are refused, naming both', () => {
  assert.throws(
    () => loadConfig({ ...PRODUCTION, AUTH_SIGNING_KEY: SIGNING_JWK, AUTH_SIGNING_KEY_FILE: '/keys/k.json' }, () => SIGNING_JWK),
    (err: unknown) => err instanceof ConfigError && /AUTH_SIGNING_KEY and AUTH_SIGNING_KEY_FILE are both set/.test(err.message),
  );
});

test('an unreadable AUTH_SIGNING_KEY_FILE is a config problem naming the file, and a bad key from a file is reported without its content', () => {
  const missing = () => {
    throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
  };
  assert.throws(() => loadConfig({ AUTH_SIGNING_KEY_FILE: '/nope/key.json' }, missing), (err: unknown) => err instanceof ConfigError && /AUTH_SIGNING_KEY_FILE="\/nope\/key.json": cannot be read \(ENOENT\)/.test(err.message));
  try {
    loadConfig({ AUTH_SIGNING_KEY_FILE: '/keys/k.json' }, () => '{"kty":"OKP","crv":"Ed25519","x":"abc","secret-ish":"do-not-print"}');
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.match((err as ConfigError).message, 'AUTH_SIGNING_KEY');
    assert.not.match((err as ConfigError).message, 'do-not-print');
  }
});

test('the returned config is frozen', () => {
  const config = loadConfig({});
  assert.throws(() => {
    (config.http as { port: number }).port = 1;
  });
});

test('redactUrl hides a password', () => {
  assert.is(redactUrl('postgres://u:hunter2@h:5432/d'), 'postgres://u:****@h:5432/d');
  assert.not.match(redactUrl('redis://:pw@h:6379'), 'pw');
});

test('every variable has a meaning documented', () => {
  for (const [name, variable] of Object.entries(VARIABLES)) assert.ok(variable.doc.length > 10, name);
});

test('a variable whose default is computed from others says in its meaning what that default is', () => {
  const computed = Object.entries(VARIABLES).filter(([, variable]) => variable.defaultFrom);
  assert.ok(computed.length > 0);
  for (const [name, variable] of computed) assert.match(variable.doc, /Default/, name);
});

test('TRUST_PROXY takes a hop count or trusted CIDRs; true (trust every hop) and malformed networks are refused', () => {
  assert.equal(loadConfig({}).http.trustProxy, { hops: 0 });
  assert.equal(loadConfig({ TRUST_PROXY: 'false' }).http.trustProxy, { hops: 0 });
  assert.equal(loadConfig({ TRUST_PROXY: '1' }).http.trustProxy, { hops: 1 });
  assert.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8, fd00::/8,192.0.2.7' }).http.trustProxy, { cidrs: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'] });
  for (const bad of ['true', 'yes', '10.0.0.0/33', 'proxy.example', '11']) {
    assert.throws(() => loadConfig({ TRUST_PROXY: bad }), (err: unknown) => err instanceof ConfigError && /TRUST_PROXY/.test(err.message), bad);
  }
});

test('FEED_ADMIN_USERS takes user ids only: a username is refused, so it cannot be claimed by registering it', () => {
  const id = '0B6E3C52-8F0A-4D55-9C1E-3A2B1C0D9E8F';
  assert.equal(loadConfig({ FEED_ADMIN_USERS: id }).auth.adminUserIds, [id.toLowerCase()]);
  assert.throws(
    () => loadConfig({ FEED_ADMIN_USERS: `${id},opsadmin` }),
    (err: unknown) => err instanceof ConfigError && /FEED_ADMIN_USERS/.test(err.message) && /user ids/.test(err.message),
  );
});

test('abuse limits have their documented defaults', () => {
  const config = loadConfig({});
  assert.equal(config.socket.perUser, { eventsPerSecond: 50, feedPublishPerRoom: { points: 20, durationSeconds: 10 }, roomSignal: { points: 20, durationSeconds: 1 } });
  assert.is(config.auth.sessionMaxSockets, 10);
  assert.is(config.auth.sessionRecheckMs, 30_000);
  assert.is(config.auth.guestRetentionDays, 30);
  assert.equal(config.auth.loginBackoffAfter, { points: 10, durationSeconds: 900 });
  assert.is(config.auth.loginBackoffMaxSeconds, 300);
  assert.ok(config.auth.hashing.concurrency >= 1);
  assert.equal({ queue: config.auth.hashing.queue, waitMs: config.auth.hashing.waitMs }, { queue: 64, waitMs: 10_000 });
  assert.equal(config.observability.systemLogRate, { points: 30, durationSeconds: 60 });
});

test.run();
