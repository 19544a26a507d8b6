/**
 * The keys that sign and verify access tokens (EdDSA over Ed25519).
 *
 * - `AUTH_SIGNING_KEY` (a private JWK) signs; its public half verifies.
 * - `AUTH_VERIFY_KEYS` (public JWKs) keep verifying tokens signed by older
 *   keys during a rotation: tokens are matched to keys by `kid`, never by trying each.
 * - Without a configured key, outside production, a key pair is generated once
 *   into `AUTH_DATA_DIR` (git-ignored) so restarts and several local processes
 *   share it. The file is created with a hard link from a complete temporary
 *   file, which fails when the file exists: of several processes starting at
 *   once, exactly one key wins and every process reads that one.
 * - In production there is no fallback: `loadConfig` refuses to start without a key.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { calculateJwkThumbprint, importJWK, type CryptoKey, type JWK } from 'jose';
import type { AuthConfig, JwkInput, NodeEnv } from '../config.ts';
import { StartupError } from '../errors.ts';

/** The only JWS algorithm pinroom signs with or accepts. */
export const ACCESS_TOKEN_ALG = 'EdDSA';

/** File name of the generated development key inside `AUTH_DATA_DIR`. */
export const DEV_KEY_FILE = 'auth-signing-key.json';

export interface SigningKeys {
  /** `kid` of the key new tokens are signed with. */
  readonly currentKid: string;
  /** Signs new tokens (jose). */
  readonly privateKey: CryptoKey;
  /**
   * The public key of a `kid` as a `node:crypto` KeyObject, imported once at
   * load (verification calls `crypto.verify` with it, synchronously), or
   * undefined for an unknown or non-string `kid`.
   */
  verifyKey(kid: unknown): KeyObject | undefined;
  /** The public keys as a JWK Set (`GET /.well-known/jwks.json`). Never contains private members. */
  readonly jwks: { keys: JWK[] };
  /** Where the key came from, for the start-up log line. */
  readonly source: 'config' | 'generated' | 'data-dir';
}

const publicPart = (jwk: JwkInput): JWK => ({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }) as JWK;

async function kidOf(jwk: JwkInput): Promise<string> {
  return jwk.kid ?? (await calculateJwkThumbprint(publicPart(jwk)));
}

/** Generate an Ed25519 key pair as a private JWK with a thumbprint `kid`. */
export async function generateSigningJwk(): Promise<JwkInput> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' }) as JwkInput;
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d, kid: await kidOf(jwk) };
}

function isPrivateEd25519(value: unknown): value is JwkInput {
  const v = value as JwkInput | null;
  return !!v && v.kty === 'OKP' && v.crv === 'Ed25519' && typeof v.x === 'string' && typeof v.d === 'string';
}

/** Read the development key from `dir`, generating it first if no process has yet. */
export async function ensureDevKey(dir: string): Promise<{ jwk: JwkInput; created: boolean }> {
  const path = resolve(join(dir, DEV_KEY_FILE));
  const read = async (): Promise<JwkInput> => {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown;
    if (!isPrivateEd25519(parsed)) throw new StartupError(`${path} is not a private Ed25519 JWK; delete it to generate a new development key`);
    return parsed;
  };
  try {
    return { jwk: await read(), created: false };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') {
      if (err instanceof StartupError) throw err;
      throw new StartupError(`cannot read the development signing key ${path} (${(err as Error).message}); delete it to generate a new one`, { cause: err });
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const jwk = await generateSigningJwk();
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(jwk)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
    return { jwk, created: true };
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw new StartupError(`cannot write the development signing key ${path} (${(err as Error).message})`, { cause: err });
    return { jwk: await read(), created: false };
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Build the key set from config (and, outside production, the data folder). */
export async function loadSigningKeys(auth: Pick<AuthConfig, 'signingKey' | 'verifyKeys' | 'dataDir'>, env: NodeEnv): Promise<SigningKeys> {
  let signing = auth.signingKey;
  let source: SigningKeys['source'] = 'config';
  if (!signing) {
    if (env === 'production') throw new StartupError('AUTH_SIGNING_KEY is required in production');
    const dev = await ensureDevKey(auth.dataDir);
    signing = dev.jwk;
    source = dev.created ? 'generated' : 'data-dir';
  }
  const currentKid = await kidOf(signing);
  try {
    const privateKey = (await importJWK({ ...signing, kid: currentKid } as JWK, ACCESS_TOKEN_ALG)) as CryptoKey;
    const publics = new Map<string, KeyObject>();
    const jwks: JWK[] = [];
    for (const jwk of [signing, ...auth.verifyKeys]) {
      const kid = await kidOf(jwk);
      if (publics.has(kid)) continue;
      const key = createPublicKey({ key: publicPart(jwk) as JsonWebKey, format: 'jwk' });
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`key ${kid} is not an Ed25519 key`);
      publics.set(kid, key);
      jwks.push({ ...publicPart(jwk), kid, alg: ACCESS_TOKEN_ALG, use: 'sig' });
    }
    return {
      currentKid,
      privateKey,
      verifyKey: (kid) => (typeof kid === 'string' ? publics.get(kid) : undefined),
      jwks: { keys: jwks },
      source,
    };
  } catch (err) {
    throw new StartupError(`cannot import the access-token keys (${(err as Error).message}); check AUTH_SIGNING_KEY and AUTH_VERIFY_KEYS`, { cause: err });
  }
}
