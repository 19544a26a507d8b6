/**
 * Auth:
 * - access-token verifications per second (`tokens.verify`: jose `jwtVerify`
 *   with EdDSA, pinned algorithm, `iss`/`aud`/`typ` checks, claim parsing)
 *   against the raw node:crypto Ed25519 verify of the same signing input and
 *   signature, both sequential on one core;
 * - refresh rotations per second (`auth.refresh`: the rotate script with
 *   reuse detection, the user row from PostgreSQL, a new signed access token)
 *   from CONCURRENCY sessions, against the same three primitives done raw
 *   (an ioredis SET, the pg query by primary key, an Ed25519 sign).
 *
 *   taskset -c 0 node --import tsx bench/scenarios/auth.ts
 */
import { KeyObject, randomBytes, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { createAuthService } from '../../server/auth/auth-service.ts';
import { createAuthRateLimits, createLoginBackoff } from '../../server/auth/rate-limits.ts';
import { createRefreshStore } from '../../server/auth/refresh-store.ts';
import { loadSigningKeys } from '../../server/auth/signing-keys.ts';
import { createTokenService } from '../../server/auth/tokens.ts';
import { createLogger } from '../../server/logger.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createUserRepository } from '../../server/users/user.repository.ts';
import { createTestContext } from '../../tests/support/context.ts';
import { BENCH_LIMITS } from '../lib/pinroom.ts';
import { round2 } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const VERIFY_MS = 2000;
const ROTATE_MS = 3000;
const CONCURRENCY = 16;

async function timed(concurrency: number, durationMs: number, op: (worker: number) => Promise<unknown> | unknown) {
  let done = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < end) {
        await op(w);
        done++;
      }
    }),
  );
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  return { perSecond: Math.round((done / ms) * 1000), cpu: Math.round(((cpu.user + cpu.system) / 1000 / ms) * 100) };
}

/** Sequential synchronous loop for `durationMs` (checking the clock every 64 ops). */
function loop(durationMs: number, op: () => unknown) {
  let done = 0;
  const start = performance.now();
  const end = start + durationMs;
  while ((done & 63) !== 0 || performance.now() < end) {
    op();
    done++;
  }
  return Math.round((done / (performance.now() - start)) * 1000);
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const ctx = createTestContext({ ...BENCH_LIMITS, LOG_LEVEL: 'silent' });
  await ctx.migrate();
  const config = ctx.config;
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const redis = createRedisClient(config, logger, 'bench-auth');
  const pool = new pg.Pool({ connectionString: config.db.url, max: config.db.poolMax });
  try {
    await connectRedis(redis, config);
    const keys = createKeys(config.redis.keyPrefix);
    const scripts = createScripts(redis);
    const signing = await loadSigningKeys(config.auth, config.env);
    const tokens = createTokenService({ config: config.auth, keys: () => signing });
    const auth = createAuthService({
      config: config.auth,
      logger,
      users: createUserRepository({ db: ctx.db() }),
      tokens,
      refresh: createRefreshStore({ redis, scripts, keys, config: config.auth }),
      limits: createAuthRateLimits({ redis, keys, limits: config.auth.rateLimits }),
      backoff: createLoginBackoff({ redis, scripts, keys, config: config.auth }),
      signingKeys: () => signing,
    });

    // ---- verification
    const session = await auth.guest({ displayName: 'Bench' }, { address: '127.0.0.1' });
    const token = session.accessToken;
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const signingInput = Buffer.from(`${header}.${payload}`);
    const sig = Buffer.from(signature, 'base64url');
    const publicKey = KeyObject.from(signing.publicKey(signing.currentKid)!);
    if (!cryptoVerify(null, signingInput, publicKey, sig)) throw new Error('raw verify failed');
    for (let i = 0; i < 500; i++) await tokens.verify(token);
    loop(200, () => cryptoVerify(null, signingInput, publicKey, sig));
    const verify = await timed(1, VERIFY_MS, () => tokens.verify(token));
    const rawVerify = loop(VERIFY_MS, () => cryptoVerify(null, signingInput, publicKey, sig));

    // ---- refresh rotation: CONCURRENCY session chains, each rotating in turn
    const chains = await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => auth.guest({ displayName: `Bench ${i}` }, { address: '127.0.0.1' })));
    const current = chains.map((s) => s.refreshToken);
    const rotate = async (w: number) => {
      const pair = await auth.refresh({ refreshToken: current[w]! }, { address: '127.0.0.1' });
      current[w] = pair.refreshToken;
    };
    await timed(CONCURRENCY, 300, rotate);
    const rotations = await timed(CONCURRENCY, ROTATE_MS, rotate);

    const privateKey = KeyObject.from(signing.privateKey);
    const userId = session.user.id;
    const rawRotate = async (w: number) => {
      await redis.set(`${config.redis.keyPrefix}bench:raw-refresh:${w}`, randomBytes(32).toString('base64url'), 'EX', 3600);
      await pool.query('select id, display_name, kind from users where id = $1', [userId]);
      cryptoSign(null, signingInput, privateKey);
    };
    await timed(CONCURRENCY, 300, rawRotate);
    const raw = await timed(CONCURRENCY, ROTATE_MS, rawRotate);

    const rows: BenchRow[] = [
      {
        metric: 'access-token verifications/s, one core, sequential',
        unit: 'ops/s',
        pinroom: verify.perSecond,
        baseline: rawVerify,
        baselineName: 'node:crypto Ed25519 verify of the same signing input',
        ratio: round2(verify.perSecond / rawVerify),
        note: 'pinroom: jose jwtVerify (header, iss, aud, typ, exp checks) + claim parsing',
      },
      {
        metric: `refresh rotations/s, ${CONCURRENCY} concurrent sessions`,
        unit: 'ops/s',
        pinroom: rotations.perSecond,
        baseline: raw.perSecond,
        baselineName: 'raw ioredis SET + pg select by id + Ed25519 sign',
        ratio: round2(rotations.perSecond / raw.perSecond),
        cpu: { server: rotations.cpu },
        note: 'pinroom: refresh-rotate script (reuse detection, family TTLs), user row, signed access token',
      },
    ];
    return { scenario: 'auth', rows };
  } finally {
    await Promise.allSettled([closeRedis(redis), pool.end()]);
    await ctx.cleanup();
  }
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
