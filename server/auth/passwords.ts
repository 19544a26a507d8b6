/**
 * Password hashing with scrypt (node:crypto), salted per password, compared in
 * constant time. Parameters follow the OWASP Password Storage Cheat Sheet
 * (N=2^15, r=8, p=3: 32 MiB and the same cost as N=2^17, r=8, p=1 with a
 * quarter of the memory per concurrent hash). They are stored in each hash,
 * so raising them later keeps old hashes verifiable.
 *
 * Format: `scrypt$<log2 N>$<r>$<p>$<salt, base64url>$<key, base64url>`.
 *
 * Where the key is derived is a parameter (`Derive`): on the libuv thread
 * pool by default, or in the auth service's low-priority worker threads
 * (`hash-workers.ts`), so that hashing yields the CPU to sockets.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. @default 15 */
  logN: number;
  /** Block size. @default 8 */
  r: number;
  /** Parallelism. @default 3 */
  p: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ logN: 15, r: 8, p: 3 });
const KEY_BYTES = 32;
const SALT_BYTES = 16;

/** What one key derivation needs: the password already NFKC-normalized. */
export interface DeriveJob {
  password: string;
  salt: Buffer;
  keyBytes: number;
  options: Required<Pick<ScryptOptions, 'N' | 'r' | 'p' | 'maxmem'>>;
}

/** Derive a scrypt key somewhere (the thread pool, a worker thread). */
export type Derive = (job: DeriveJob) => Promise<Buffer>;

/** On the libuv thread pool (`crypto.scrypt`). */
const deriveInProcess: Derive = ({ password, salt, keyBytes, options }) =>
  new Promise((resolve, reject) => {
    scrypt(password, salt, keyBytes, options, (err, key) => (err ? reject(err) : resolve(key)));
  });

function jobOf(password: string, salt: Buffer, params: ScryptParams): DeriveJob {
  const N = 2 ** params.logN;
  return { password: password.normalize('NFKC'), salt, keyBytes: KEY_BYTES, options: { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 } };
}

/** Hash a password for storage. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT, derive: Derive = deriveInProcess): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(jobOf(password, salt, params));
  return ['scrypt', params.logN, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** True when `password` matches `stored`. A malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string, derive: Derive = deriveInProcess): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [logN, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![logN, r, p].every(Number.isInteger) || logN < 10 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const expected = Buffer.from(parts[5]!, 'base64url');
  if (expected.length !== KEY_BYTES) return false;
  const actual = await derive(jobOf(password, salt, { logN, r, p }));
  return timingSafeEqual(actual, expected);
}

let dummy: Promise<string> | undefined;

/**
 * Spend the time of one verification without a stored hash, so that a login
 * for an unknown username takes as long as a wrong password.
 */
export async function burnVerification(password: string, derive: Derive = deriveInProcess): Promise<void> {
  dummy ??= hashPassword('pinroom-timing-equalizer');
  await verifyPassword(password, await dummy, derive);
}
