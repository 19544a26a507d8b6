import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, SignJWT, type JWK } from 'jose';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateSigningJwk } from '../../server/auth/signing-keys.ts';
import type { JwkInput } from '../../server/config.ts';
import { postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, connectError } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('auth/http');
let ctx: TestContext;
let server: TestServer;
let jwk: JwkInput;

type ErrorBody = { error: { code: string; message: string } };
const from = (address: string) => ({ 'x-forwarded-for': address });
let n = 0;
/** A fresh client address per use, so rate limits of one test never hit another. */
const freshAddress = () => `203.0.113.${++n}`;

test.before(async () => {
  jwk = await generateSigningJwk();
  ctx = createTestContext({
    AUTH_SIGNING_KEY: JSON.stringify(jwk),
    TRUST_PROXY: '1',
    AUTH_RATE_LOGIN_USER_IP: '3/60',
    AUTH_RATE_LOGIN_IP: '6/60',
    AUTH_RATE_REGISTER_IP: '3/60',
    AUTH_RATE_GUEST_IP: '4/60',
  });
  server = await startTestServer(ctx.env);
});
test.after(async () => {
  await server?.stop();
  await ctx.cleanup();
});

test('register, login, guest, refresh and logout answer with their documented status and shape', async () => {
  const address = from(freshAddress());
  const register = await postJson<Record<string, unknown>>(`${server.url}/auth/register`, { username: 'Host_One', password: 'a good password', displayName: 'The Host' }, address);
  assert.is(register.status, 201);
  assert.equal(Object.keys(register.body).sort(), ['accessToken', 'expiresIn', 'refreshToken', 'user']);
  assert.equal({ ...(register.body.user as object), id: 'x' }, { id: 'x', name: 'The Host', kind: 'registered', username: 'Host_One' });
  assert.is(register.body.expiresIn, 600);
  assert.is(register.headers.get('cache-control'), 'no-store');

  const login = await postJson<{ user: { id: string }; refreshToken: string }>(`${server.url}/auth/login`, { username: 'host_one', password: 'a good password' }, address);
  assert.is(login.status, 200);
  assert.is(login.body.user.id, (register.body.user as { id: string }).id);

  const guest = await postJson<{ user: { kind: string; username: null } }>(`${server.url}/auth/guest`, { displayName: '  Ada  ' }, address);
  assert.is(guest.status, 201);
  assert.equal({ kind: guest.body.user.kind, username: guest.body.user.username }, { kind: 'guest', username: null });

  const refreshed = await postJson<Record<string, unknown>>(`${server.url}/auth/refresh`, { refreshToken: login.body.refreshToken });
  assert.is(refreshed.status, 200);
  assert.equal(Object.keys(refreshed.body).sort(), ['accessToken', 'expiresIn', 'refreshToken']);

  const logout = await postJson(`${server.url}/auth/logout`, { refreshToken: refreshed.body.refreshToken });
  assert.is(logout.status, 204);
  assert.is(logout.body, null);
  const after = await postJson<ErrorBody>(`${server.url}/auth/refresh`, { refreshToken: refreshed.body.refreshToken });
  assert.equal([after.status, after.body.error.code], [401, 'session_revoked']);
});

test('malformed JSON, missing, extra or oversized fields and an oversized body each get a typed 4xx', async () => {
  const cases: [string, string | object, number, string][] = [
    ['/auth/guest', '{nope', 400, 'bad_request'],
    ['/auth/guest', {}, 400, 'bad_request'],
    ['/auth/guest', 'null', 400, 'bad_request'],
    ['/auth/guest', '[]', 400, 'bad_request'],
    ['/auth/guest', { displayName: 'x'.repeat(33) }, 400, 'bad_request'],
    ['/auth/guest', { displayName: 'bell\u0007' }, 400, 'bad_request'],
    ['/auth/guest', { displayName: 'Ok', admin: true }, 400, 'bad_request'],
    ['/auth/register', { username: 'ab', password: 'long enough' }, 400, 'bad_request'],
    ['/auth/register', { username: 'has space', password: 'long enough' }, 400, 'bad_request'],
    ['/auth/register', { username: 'x'.repeat(33), password: 'long enough' }, 400, 'bad_request'],
    ['/auth/register', { username: 'shortpw', password: 'short' }, 400, 'bad_request'],
    ['/auth/register', { username: 'longpw', password: 'p'.repeat(129) }, 400, 'bad_request'],
    ['/auth/login', { username: 'someone' }, 400, 'bad_request'],
    ['/auth/login', { username: 42, password: 'long enough' }, 400, 'bad_request'],
    ['/auth/refresh', { refreshToken: 'r'.repeat(5000) }, 400, 'bad_request'],
    ['/auth/refresh', { refreshToken: '' }, 400, 'bad_request'],
    ['/auth/logout', {}, 400, 'bad_request'],
    ['/auth/guest', { displayName: 'x'.repeat(20_000) }, 413, 'payload_too_large'],
  ];
  for (const [route, body, status, code] of cases) {
    const res = await postJson<ErrorBody>(`${server.url}${route}`, body, from(freshAddress()));
    assert.is(res.status, status, `${route} ${JSON.stringify(body).slice(0, 60)}`);
    assert.is(res.body.error.code, code, `${route} ${JSON.stringify(body).slice(0, 60)}`);
  }
  const noType = await fetch(`${server.url}/auth/guest`, { method: 'POST', body: 'displayName=Ada', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.ok(noType.status >= 400 && noType.status < 500);
  assert.is(((await noType.json()) as ErrorBody).error.code, 'bad_request');
});

test('sign-in errors carry their codes: invalid_credentials, username_taken, unauthorized, token_reused, session_revoked', async () => {
  const address = from(freshAddress());
  const user = await signUp(server.url);
  const wrong = await postJson<ErrorBody>(`${server.url}/auth/login`, { username: user.username, password: 'not the password' }, address);
  assert.equal([wrong.status, wrong.body.error.code], [401, 'invalid_credentials']);
  const taken = await postJson<ErrorBody>(`${server.url}/auth/register`, { username: user.username.toUpperCase(), password: 'whatever123' }, address);
  assert.equal([taken.status, taken.body.error.code], [409, 'username_taken']);
  const unknown = await postJson<ErrorBody>(`${server.url}/auth/refresh`, { refreshToken: `${randomUUID()}.${'A'.repeat(43)}` });
  assert.equal([unknown.status, unknown.body.error.code], [401, 'unauthorized']);
  const next = await postJson<{ refreshToken: string }>(`${server.url}/auth/refresh`, { refreshToken: user.refreshToken });
  await postJson(`${server.url}/auth/refresh`, { refreshToken: next.body.refreshToken });
  const reused = await postJson<ErrorBody>(`${server.url}/auth/refresh`, { refreshToken: user.refreshToken });
  assert.equal([reused.status, reused.body.error.code], [401, 'token_reused']);
  const revoked = await postJson<ErrorBody>(`${server.url}/auth/logout`, { refreshToken: next.body.refreshToken });
  assert.is(revoked.status, 204, 'logout of a revoked session is idempotent');
  // Nothing secret leaks into error bodies.
  assert.not.match(JSON.stringify(reused.body), user.refreshToken.split('.')[1]!);
});

test('the JWKS publishes the public key that verifies access tokens, and nothing private', async () => {
  const res = await fetch(`${server.url}/.well-known/jwks.json`);
  assert.is(res.status, 200);
  const jwks = (await res.json()) as { keys: JWK[] };
  assert.is(jwks.keys.length, 1);
  assert.equal(jwks.keys[0], { kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid: jwk.kid, alg: 'EdDSA', use: 'sig' });
  const session = await signInGuest(server.url, 'Verifier');
  const { payload, protectedHeader } = await jwtVerify(session.accessToken, createLocalJWKSet(jwks), { issuer: 'pinroom', audience: 'pinroom', typ: 'at+jwt' });
  assert.is(payload.sub, session.user.id);
  assert.is(payload.name, 'Verifier');
  assert.is(payload.kind, 'guest');
  assert.ok(typeof payload.sid === 'string' && typeof payload.jti === 'string');
  assert.equal([protectedHeader.alg, protectedHeader.kid], ['EdDSA', jwk.kid]);
});

test('login, registration and guest creation answer 429 rate_limited with Retry-After', async () => {
  const address = freshAddress();
  const user = await signUp(server.url);
  for (let i = 0; i < 3; i++) {
    const res = await postJson(`${server.url}/auth/login`, { username: user.username, password: 'wrong password' }, from(address));
    assert.is(res.status, 401);
  }
  const limited = await postJson<ErrorBody & { error: { retryAfterMs: number } }>(`${server.url}/auth/login`, { username: user.username, password: user.password }, from(address));
  assert.equal([limited.status, limited.body.error.code], [429, 'rate_limited']);
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.ok(limited.body.error.retryAfterMs > 0);
  // The per-address login limit catches other usernames from the same address.
  for (let i = 0; i < 2; i++) await postJson(`${server.url}/auth/login`, { username: `other_${i}`, password: 'wrong password' }, from(address));
  const perIp = await postJson<ErrorBody>(`${server.url}/auth/login`, { username: 'other_9', password: 'wrong password' }, from(address));
  assert.is(perIp.status, 429);

  const guests = freshAddress();
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await postJson(`${server.url}/auth/guest`, { displayName: `G${i}` }, from(guests))).status);
  assert.equal(statuses, [201, 201, 201, 201, 429]);

  const registrations = freshAddress();
  const regs: number[] = [];
  for (let i = 0; i < 4; i++) regs.push((await postJson(`${server.url}/auth/register`, { username: `rl_${randomUUID().slice(0, 8)}`, password: 'password123' }, from(registrations))).status);
  assert.equal(regs, [201, 201, 201, 429]);
});

test('forged access tokens are refused at the socket handshake with their code, and the server stays up', async () => {
  const session = await signInGuest(server.url, 'Target');
  const real = JSON.parse(Buffer.from(session.accessToken.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
  const key = createPrivateKey({ key: jwk as never, format: 'jwk' });
  const other = generateKeyPairSync('ed25519').privateKey;
  const now = Math.floor(Date.now() / 1000);
  const sign = (k: Parameters<SignJWT['sign']>[0], header: Record<string, unknown>, claims: Record<string, unknown> = {}) =>
    new SignJWT({ ...real, ...claims }).setProtectedHeader(header as never).sign(k);
  const good = { alg: 'EdDSA', typ: 'at+jwt', kid: jwk.kid };
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const forged: [string, string, string][] = [
    ['alg none', `${b64({ alg: 'none', typ: 'at+jwt', kid: jwk.kid })}.${b64(real)}.`, 'unauthorized'],
    ['another key', await sign(other, good), 'unauthorized'],
    ['HS256 with the public key', await sign(new Uint8Array(Buffer.from(jwk.x!, 'base64url')), { alg: 'HS256', typ: 'at+jwt', kid: jwk.kid }), 'unauthorized'],
    ['wrong audience', await sign(key, good, { aud: 'elsewhere' }), 'unauthorized'],
    ['wrong issuer', await sign(key, good, { iss: 'evil' }), 'unauthorized'],
    ['wrong typ', await sign(key, { ...good, typ: 'JWT' }), 'unauthorized'],
    ['a refresh token', session.refreshToken, 'unauthorized'],
    ['garbage', 'not.a.jwt', 'unauthorized'],
    ['expired', await sign(key, good, { iat: now - 1200, exp: now - 600 }), 'token_expired'],
  ];
  for (const [name, token, code] of forged) {
    const err = await connectError(server.url, { token });
    assert.is(err.data?.code, code, name);
  }
  assert.is((await fetch(`${server.url}/readyz`)).status, 200);
  const socket = await connect(server.url, { token: session.accessToken });
  assert.ok(socket.connected);
  socket.close();
  assert.not.match(server.output(), session.refreshToken.split('.')[1]!);
  assert.not.match(server.output(), session.accessToken);
  assert.not.match(server.output(), /"statusCode":500|"code":"internal"/);
});

test.run();
