import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { hashRefreshToken, parseRefreshToken } from '../../server/auth/refresh-store.ts';
import { generateSigningJwk, loadSigningKeys, type SigningKeys } from '../../server/auth/signing-keys.ts';
import { createTokenService, type TokenService } from '../../server/auth/tokens.ts';
import { ConfigError, loadConfig, type JwkInput } from '../../server/config.ts';
import { handshakeAddress, normalizeAddress } from '../../server/gateway/address.ts';
import { rejectsWithCode } from '../support/assert.ts';

const test = suite('auth/tokens');

const tokenConfig = { issuer: 'pinroom-test', audience: 'pinroom-clients', accessTokenTtlSeconds: 600, clockToleranceSeconds: 5, tokenCacheSize: 100 };
let jwk: JwkInput;
let keys: SigningKeys;
let tokens: TokenService;
const claims = { userId: randomUUID(), sessionId: randomUUID(), name: 'Ada', kind: 'guest' as const };

test.before(async () => {
  jwk = await generateSigningJwk();
  keys = await loadSigningKeys({ signingKey: jwk, verifyKeys: [], dataDir: '/nonexistent' }, 'test');
  tokens = createTokenService({ config: tokenConfig, keys: () => keys });
});

/** Sign arbitrary header and claims with a key, as a forger would. */
function forge(key: Parameters<SignJWT['sign']>[0], header: Record<string, unknown>, overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sid: claims.sessionId, name: 'Eve', kind: 'registered', jti: randomUUID(), iss: tokenConfig.issuer, aud: tokenConfig.audience, sub: claims.userId, iat: now, exp: now + 600, ...overrides })
    .setProtectedHeader(header as never)
    .sign(key);
}
const privateKey = () => createPrivateKey({ key: jwk as never, format: 'jwk' });

test('a signed access token verifies back to its user, session and expiry', async () => {
  const issued = await tokens.sign(claims);
  assert.is(issued.expiresIn, 600);
  const verified = await tokens.verify(issued.token);
  assert.is(verified.userId, claims.userId);
  assert.is(verified.sessionId, claims.sessionId);
  assert.is(verified.name, 'Ada');
  assert.is(verified.kind, 'guest');
  assert.is(verified.expiresAt, issued.expiresAt);
  const [header] = issued.token.split('.');
  assert.equal(JSON.parse(Buffer.from(header!, 'base64url').toString()), { alg: 'EdDSA', typ: 'at+jwt', kid: keys.currentKid });
});

test('an access token never outlives the session it belongs to', async () => {
  const notAfter = Date.now() + 30_000;
  const issued = await tokens.sign({ ...claims, notAfter });
  assert.ok(issued.expiresAt <= notAfter && issued.expiresIn <= 30);
});

test('a token with alg none is unauthorized', async () => {
  const now = Math.floor(Date.now() / 1000);
  const unsecured = new UnsecuredJWT({ sid: claims.sessionId, name: 'Eve', kind: 'guest', jti: 'x' })
    .setIssuer(tokenConfig.issuer)
    .setAudience(tokenConfig.audience)
    .setSubject(claims.userId)
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .encode();
  await rejectsWithCode(() => tokens.verify(unsecured), 'unauthorized');
  // The same with a typ and kid that look right.
  const body = unsecured.split('.')[1];
  const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: keys.currentKid })).toString('base64url');
  await rejectsWithCode(() => tokens.verify(`${header}.${body}.`), 'unauthorized');
});

test('a token signed by another Ed25519 key is unauthorized, with or without our kid', async () => {
  const other = generateKeyPairSync('ed25519').privateKey;
  await rejectsWithCode(async () => tokens.verify(await forge(other, { alg: 'EdDSA', typ: 'at+jwt', kid: keys.currentKid })), 'unauthorized');
  await rejectsWithCode(async () => tokens.verify(await forge(other, { alg: 'EdDSA', typ: 'at+jwt', kid: 'attacker' })), 'unauthorized');
  await rejectsWithCode(async () => tokens.verify(await forge(other, { alg: 'EdDSA', typ: 'at+jwt' })), 'unauthorized');
});

test('a token signed with HS256 using the public key as the secret is unauthorized', async () => {
  const publicJwk = keys.jwks.keys[0]!;
  const publicPem = createPublicKey({ key: publicJwk as never, format: 'jwk' }).export({ format: 'pem', type: 'spki' });
  for (const secret of [Buffer.from(publicJwk.x!, 'base64url'), Buffer.from(String(publicPem)), Buffer.from(JSON.stringify(publicJwk))]) {
    await rejectsWithCode(async () => tokens.verify(await forge(new Uint8Array(secret), { alg: 'HS256', typ: 'at+jwt', kid: keys.currentKid })), 'unauthorized');
  }
});

test('a wrong audience, issuer or typ is unauthorized even with a valid signature', async () => {
  const key = privateKey();
  const header = { alg: 'EdDSA', typ: 'at+jwt', kid: keys.currentKid };
  await rejectsWithCode(async () => tokens.verify(await forge(key, header, { aud: 'someone-else' })), 'unauthorized');
  await rejectsWithCode(async () => tokens.verify(await forge(key, header, { iss: 'https://evil.example' })), 'unauthorized');
  await rejectsWithCode(async () => tokens.verify(await forge(key, { ...header, typ: 'JWT' })), 'unauthorized');
  await rejectsWithCode(async () => tokens.verify(await forge(key, { alg: 'EdDSA', kid: keys.currentKid })), 'unauthorized');
  // Genuine signature, right typ, but claims of the wrong types.
  await rejectsWithCode(async () => tokens.verify(await forge(key, header, { kind: 'admin' })), 'unauthorized');
  await rejectsWithCode(async () => tokens.verify(await forge(key, header, { sid: undefined })), 'unauthorized');
});

test('a refresh token or garbage presented as an access token is unauthorized', async () => {
  const refresh = `${randomUUID()}.${Buffer.alloc(32, 7).toString('base64url')}`;
  for (const bad of [refresh, '', 'a.b.c', 'x'.repeat(5000), 42, null, undefined, { token: 'x' }]) {
    await rejectsWithCode(() => tokens.verify(bad), 'unauthorized');
  }
});

test('an expired token is token_expired, within the tolerance it still verifies, and tolerance is capped at 30 s', async () => {
  const key = privateKey();
  const header = { alg: 'EdDSA', typ: 'at+jwt', kid: keys.currentKid };
  const now = Math.floor(Date.now() / 1000);
  await rejectsWithCode(async () => tokens.verify(await forge(key, header, { iat: now - 700, exp: now - 60 })), 'token_expired');
  const justExpired = await forge(key, header, { iat: now - 600, exp: now - 2 });
  assert.is((await tokens.verify(justExpired)).userId, claims.userId);
  const lax = createTokenService({ config: { ...tokenConfig, clockToleranceSeconds: 3600 }, keys: () => keys });
  await rejectsWithCode(async () => lax.verify(await forge(key, header, { iat: now - 700, exp: now - 45 })), 'token_expired');
  // A forged token that is also expired is refused for its signature, not its age.
  const other = generateKeyPairSync('ed25519').privateKey;
  await rejectsWithCode(async () => tokens.verify(await forge(other, header, { iat: now - 700, exp: now - 60 })), 'unauthorized');
});

test('during a key rotation, tokens of the old key verify by kid and new tokens use the new key', async () => {
  const oldJwk = await generateSigningJwk();
  const newJwk = await generateSigningJwk();
  const before = await loadSigningKeys({ signingKey: oldJwk, verifyKeys: [], dataDir: '/nonexistent' }, 'test');
  const oldToken = (await createTokenService({ config: tokenConfig, keys: () => before }).sign(claims)).token;
  const oldPublic = { kty: oldJwk.kty, crv: oldJwk.crv, x: oldJwk.x, kid: oldJwk.kid };
  const during = await loadSigningKeys({ signingKey: newJwk, verifyKeys: [oldPublic], dataDir: '/nonexistent' }, 'test');
  const rotated = createTokenService({ config: tokenConfig, keys: () => during });
  assert.is((await rotated.verify(oldToken)).userId, claims.userId);
  const fresh = await rotated.sign(claims);
  assert.is(JSON.parse(Buffer.from(fresh.token.split('.')[0]!, 'base64url').toString()).kid, newJwk.kid);
  assert.equal(during.jwks.keys.map((k) => k.kid), [newJwk.kid, oldJwk.kid]);
  for (const k of during.jwks.keys) assert.is((k as { d?: string }).d, undefined, 'no private member in the JWKS');
  const after = await loadSigningKeys({ signingKey: newJwk, verifyKeys: [], dataDir: '/nonexistent' }, 'test');
  await rejectsWithCode(() => createTokenService({ config: tokenConfig, keys: () => after }).verify(oldToken), 'unauthorized');
});

test('a token verified once is answered from the cache until its exp, then refused as token_expired and dropped', async () => {
  let clock = Date.now();
  const service = createTokenService({ config: tokenConfig, keys: () => keys, now: () => clock });
  const issued = await service.sign(claims);
  const first = await service.verify(issued.token);
  assert.equal(service.stats(), { cached: 0, checked: 1, entries: 1 });
  assert.equal(await service.verify(issued.token), first);
  assert.equal(await service.verify(issued.token), first);
  assert.equal(service.stats(), { cached: 2, checked: 1, entries: 1 });
  // Within the clock tolerance after exp it is still good; past it, expired like any genuine token.
  clock = issued.expiresAt + (tokenConfig.clockToleranceSeconds - 1) * 1000;
  assert.is((await service.verify(issued.token)).userId, claims.userId);
  clock = issued.expiresAt + tokenConfig.clockToleranceSeconds * 1000;
  await rejectsWithCode(() => service.verify(issued.token), 'token_expired');
  assert.is(service.stats().entries, 0, 'the expired token left the cache');
  await rejectsWithCode(() => service.verify(issued.token), 'token_expired');
  assert.is(service.stats().checked, 2, 'the second refusal was a full check');
});

test('the cache holds at most its configured number of tokens, dropping the least recently used', async () => {
  const service = createTokenService({ config: { ...tokenConfig, tokenCacheSize: 3 }, keys: () => keys });
  const issued = await Promise.all(Array.from({ length: 5 }, () => service.sign(claims)));
  for (const t of issued) await service.verify(t.token);
  assert.equal(service.stats(), { cached: 0, checked: 5, entries: 3 });
  await service.verify(issued[4]!.token); // still cached
  await service.verify(issued[0]!.token); // evicted: checked again, and cached again
  assert.equal(service.stats(), { cached: 1, checked: 6, entries: 3 });
});

test('refused tokens are never cached, and a size of 0 checks every token in full', async () => {
  const service = createTokenService({ config: tokenConfig, keys: () => keys });
  const forged = await forge(generateKeyPairSync('ed25519').privateKey, { alg: 'EdDSA', typ: 'at+jwt', kid: keys.currentKid });
  const wrongAudience = await forge(privateKey(), { alg: 'EdDSA', typ: 'at+jwt', kid: keys.currentKid }, { aud: 'someone-else' });
  for (let i = 0; i < 3; i++) {
    await rejectsWithCode(() => service.verify(forged), 'unauthorized');
    await rejectsWithCode(() => service.verify(wrongAudience), 'unauthorized');
  }
  assert.equal(service.stats(), { cached: 0, checked: 6, entries: 0 });
  const off = createTokenService({ config: { ...tokenConfig, tokenCacheSize: 0 }, keys: () => keys });
  const issued = await off.sign(claims);
  for (let i = 0; i < 3; i++) await off.verify(issued.token);
  assert.equal(off.stats(), { cached: 0, checked: 3, entries: 0 });
});

test('a cached token stops verifying once its key is no longer configured', async () => {
  const oldJwk = await generateSigningJwk();
  const newJwk = await generateSigningJwk();
  const oldPublic = { kty: oldJwk.kty, crv: oldJwk.crv, x: oldJwk.x, kid: oldJwk.kid };
  let current = await loadSigningKeys({ signingKey: newJwk, verifyKeys: [oldPublic], dataDir: '/nonexistent' }, 'test');
  const service = createTokenService({ config: tokenConfig, keys: () => current });
  const before = await loadSigningKeys({ signingKey: oldJwk, verifyKeys: [], dataDir: '/nonexistent' }, 'test');
  const oldToken = (await createTokenService({ config: tokenConfig, keys: () => before }).sign(claims)).token;
  await service.verify(oldToken);
  await service.verify(oldToken);
  assert.is(service.stats().cached, 1);
  // The rotation ends: the old public key is removed from the verify keys.
  current = await loadSigningKeys({ signingKey: newJwk, verifyKeys: [], dataDir: '/nonexistent' }, 'test');
  await rejectsWithCode(() => service.verify(oldToken), 'unauthorized');
  assert.is(service.stats().cached, 1, 'refused by a full check, not answered from the cache');
});

test('refresh tokens carry their session id and are stored only as a SHA-256', () => {
  const sid = randomUUID();
  const token = `${sid}.${Buffer.alloc(32, 1).toString('base64url')}`;
  assert.is(parseRefreshToken(token), sid);
  assert.is(parseRefreshToken(`${sid}.short`), undefined);
  assert.is(parseRefreshToken('eyJhbGciOiJFZERTQSJ9.e30.sig'), undefined);
  assert.match(hashRefreshToken(token), /^[0-9a-f]{64}$/);
  assert.not.match(hashRefreshToken(token), sid);
});

test('production refuses to start without a signing key, and a bad key or cache size is a config error', () => {
  const production = { NODE_ENV: 'production', CORS_ORIGINS: 'https://a.example', REDIS_URL: 'redis://r:6379', DATABASE_URL: 'postgres://p@d/x' };
  assert.throws(() => loadConfig(production), (err: unknown) => err instanceof ConfigError && /AUTH_SIGNING_KEY/.test(err.message));
  const publicOnly = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'abc' });
  assert.throws(() => loadConfig({ AUTH_SIGNING_KEY: publicOnly }), (err: unknown) => err instanceof ConfigError && /AUTH_SIGNING_KEY/.test(err.message));
  assert.throws(() => loadConfig({ AUTH_SIGNING_KEY: '{not json' }), (err: unknown) => err instanceof ConfigError && /AUTH_SIGNING_KEY/.test(err.message));
  assert.throws(() => loadConfig({ AUTH_CLOCK_TOLERANCE_SECONDS: '31' }), (err: unknown) => err instanceof ConfigError && /AUTH_CLOCK_TOLERANCE_SECONDS/.test(err.message));
  assert.throws(() => loadConfig({ REFRESH_REUSE_GRACE_SECONDS: '11' }), (err: unknown) => err instanceof ConfigError);
  assert.throws(() => loadConfig({ AUTH_TOKEN_CACHE_SIZE: '-1' }), (err: unknown) => err instanceof ConfigError && /AUTH_TOKEN_CACHE_SIZE/.test(err.message));
  assert.throws(() => loadConfig({ AUTH_TOKEN_CACHE_SIZE: '1000001' }), (err: unknown) => err instanceof ConfigError && /AUTH_TOKEN_CACHE_SIZE/.test(err.message));
  assert.is(loadConfig({ AUTH_TOKEN_CACHE_SIZE: '0' }).auth.tokenCacheSize, 0);
  assert.is(loadConfig({}).auth.tokenCacheSize, 10_000);
  const config = loadConfig({ AUTH_RATE_LOGIN_IP: '7/60' });
  assert.equal(config.auth.rateLimits.loginIp, { points: 7, durationSeconds: 60 });
  assert.is(config.auth.accessTokenTtlSeconds, 600);
  assert.is(config.auth.refreshTokenTtlSeconds, 30 * 86_400);
});

test('the client address honours X-Forwarded-For only behind a trusted proxy, and then only its rightmost untrusted hop', () => {
  const handshake = { address: '::ffff:10.0.0.9', headers: { 'x-forwarded-for': '203.0.113.7, 10.0.0.1' } };
  assert.is(handshakeAddress(handshake, { hops: 0 }), '10.0.0.9');
  assert.is(handshakeAddress(handshake, { hops: 1 }), '10.0.0.1', 'one proxy: the entry it appended');
  assert.is(handshakeAddress(handshake, { hops: 2 }), '203.0.113.7', 'two proxies: one more hop to the left');
  assert.is(handshakeAddress(handshake, { cidrs: ['10.0.0.0/8'] }), '203.0.113.7', 'every hop in the trusted network is skipped');
  assert.is(handshakeAddress({ address: '127.0.0.1', headers: { 'x-forwarded-for': 'not-an-ip' } }, { hops: 1 }), 'unknown');
  assert.is(normalizeAddress('::1'), '::1');
});

test.run();
