/**
 * Access tokens: short-lived JWTs signed with EdDSA over Ed25519.
 *
 * Header `{ alg: 'EdDSA', typ: 'at+jwt', kid }`; claims `iss`, `aud`, `sub`
 * (user id), `sid` (session = refresh-token family), `name`, `kind`, `jti`,
 * `iat`, `exp`. jose signs. Verification is `node:crypto`'s synchronous
 * Ed25519 verify with the key of the token's `kid` (a KeyObject imported once,
 * see `signing-keys.ts`) behind the checks jose's `jwtVerify` makes with our
 * options, in jose's order, so that every token is refused with the same code
 * as through jose: the algorithm is pinned to EdDSA (`alg: none`, HS256 and
 * the rest are refused before any key is touched), the key is chosen by `kid`
 * only, `typ`, `iss` and `aud` must match, `sub`, `sid`, `jti`, `iat` and
 * `exp` must be present, `nbf` and `exp` are checked with at most the
 * configured clock tolerance (≤ 30 s). Every failure is an `AppError`:
 * `token_expired` for a genuine token past its `exp`, `unauthorized` for
 * anything else. docs/auth.md describes the path and its cache.
 *
 * Cost of one `verify`:
 * - a token this node verified before (same string, same key set) and still
 *   within its `exp`: one SHA-256 of the token and one LRU lookup (≈ 2 µs);
 * - any other token: that, plus base64url and JSON decoding of header and
 *   payload and one Ed25519 verify (≈ 70 µs, nearly all of it the signature).
 * No I/O. The cache holds at most `tokenCacheSize` entries (the token's
 * SHA-256 → its claims, never the token), each dropped at the token's `exp`.
 */
import { isUtf8 } from 'node:buffer';
import { createHash, randomUUID, verify as verifySignature } from 'node:crypto';
import { SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { Limits, UserKind } from '../../shared/schemas.ts';
import type { AuthConfig } from '../config.ts';
import { AppError, ErrorCode } from '../errors.ts';
import { ACCESS_TOKEN_ALG, type SigningKeys } from './signing-keys.ts';

/** JWT `typ` of access tokens (RFC 9068). */
const ACCESS_TOKEN_TYP = 'at+jwt';
/** Hard upper bound of the clock tolerance, seconds. */
const MAX_CLOCK_TOLERANCE_SECONDS = 30;

export interface AccessClaims {
  /** User id (`sub`). */
  readonly userId: string;
  /** Session id (`sid`): the refresh-token family. */
  readonly sessionId: string;
  readonly name: string;
  readonly kind: UserKind;
  /** Expiry, ms since the epoch. */
  readonly expiresAt: number;
}

export interface IssuedAccessToken {
  token: string;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
  /** Whole seconds from now until expiry. */
  expiresIn: number;
}

const Claims = z.object({
  sub: z.string().min(1).max(64),
  sid: z.string().min(1).max(64),
  name: z.string().max(256),
  kind: UserKind,
  jti: z.string().min(1).max(64),
  exp: z.number(),
});

/** Claims whose presence jose checks (`requiredClaims`, plus `iss` and `aud` because both are pinned), in the order it checks them. */
const REQUIRED_CLAIMS = ['iss', 'aud', 'iat', 'exp', 'jti', 'sid', 'sub'] as const;
/** Three non-empty base64url segments. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** jose's `typ` comparison (RFC 9068 §4): case-insensitive, `application/` optional. */
const normalizeTyp = (typ: string) => (typ.includes('/') ? typ.toLowerCase() : `application/${typ.toLowerCase()}`);
const EXPECTED_TYP = normalizeTyp(ACCESS_TOKEN_TYP);

/** A JSON object that is not an array (what jose's `isObject` accepts from `JSON.parse`). */
const isJsonObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Decode a base64url segment to a JSON object; undefined for bad UTF-8, bad JSON or a non-object. */
function decodeJsonSegment(segment: string): Record<string, unknown> | undefined {
  const bytes = Buffer.from(segment, 'base64url');
  if (!isUtf8(bytes)) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isJsonObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * jose's `crit` rule with no extensions of ours: absent, or a non-empty array
 * naming only `b64`, present as `true` (`b64: false`, an unencoded payload, is never a JWT).
 */
const critAccepted = (header: Record<string, unknown>) =>
  header.crit === undefined || (Array.isArray(header.crit) && header.crit.length > 0 && header.crit.every((c) => c === 'b64') && header.b64 === true);

export type TokenService = ReturnType<typeof createTokenService>;

export function createTokenService({
  config,
  keys,
  now = Date.now,
}: {
  config: Pick<AuthConfig, 'issuer' | 'audience' | 'accessTokenTtlSeconds' | 'clockToleranceSeconds' | 'tokenCacheSize'>;
  keys: () => SigningKeys;
  now?: () => number;
}) {
  const tolerance = Math.min(config.clockToleranceSeconds, MAX_CLOCK_TOLERANCE_SECONDS);
  const unauthorized = (message: string) => new AppError(ErrorCode.Unauthorized, message);
  const expired = () => new AppError(ErrorCode.TokenExpired, 'The access token expired; refresh it');

  // Tokens verified by this node: SHA-256 of the token → its claims. Only
  // tokens that passed every check get in; an entry is used only with the key
  // set it was verified under and only while `exp` (plus the tolerance) has not passed.
  const verified = config.tokenCacheSize > 0 ? new LRUCache<string, AccessClaims>({ max: config.tokenCacheSize }) : undefined;
  let verifiedUnder: SigningKeys | undefined;
  /** Verifications answered by the cache, and full checks (accepted or refused). */
  let cachedCount = 0;
  let checkedCount = 0;

  /** The full check of a token not in the cache. Throws `unauthorized` or `token_expired`. */
  function check(token: string, signing: SigningKeys, nowSeconds: number): AccessClaims {
    if (!COMPACT_JWS.test(token)) throw unauthorized('The access token is malformed');
    const firstDot = token.indexOf('.');
    const lastDot = token.lastIndexOf('.');
    const header = decodeJsonSegment(token.slice(0, firstDot));
    if (!header) throw unauthorized('The access token is malformed');
    if (!critAccepted(header)) throw unauthorized('The access token has an unsupported critical header');
    if (header.alg !== ACCESS_TOKEN_ALG) throw unauthorized('The access token is signed with an algorithm that is not accepted');
    const key = signing.verifyKey(header.kid);
    if (!key) throw unauthorized('The access token was signed by an unknown key');
    let valid = false;
    try {
      valid = verifySignature(null, Buffer.from(token.slice(0, lastDot), 'latin1'), key, Buffer.from(token.slice(lastDot + 1), 'base64url'));
    } catch {
      valid = false;
    }
    if (!valid) throw unauthorized('The access token is malformed or its signature is invalid');

    // A genuine signature from here on: what remains are the claim checks.
    const payload = decodeJsonSegment(token.slice(firstDot + 1, lastDot));
    if (!payload) throw unauthorized('The access token is malformed');
    if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== EXPECTED_TYP) throw unauthorized('The access token was refused (typ claim)');
    for (const claim of REQUIRED_CLAIMS) if (!Object.hasOwn(payload, claim)) throw unauthorized(`The access token was refused (${claim} claim)`);
    if (payload.iss !== config.issuer) throw unauthorized('The access token was refused (iss claim)');
    const aud = payload.aud;
    if (!(aud === config.audience || (Array.isArray(aud) && aud.includes(config.audience)))) throw unauthorized('The access token was refused (aud claim)');
    if (typeof payload.iat !== 'number') throw unauthorized('The access token was refused (iat claim)');
    if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf > nowSeconds + tolerance)) throw unauthorized('The access token was refused (nbf claim)');
    if (typeof payload.exp !== 'number') throw unauthorized('The access token was refused (exp claim)');
    if (payload.exp <= nowSeconds - tolerance) throw expired();
    const claims = Claims.safeParse(payload);
    if (!claims.success) throw unauthorized('The access token is missing claims');
    const c = claims.data;
    return Object.freeze({ userId: c.sub, sessionId: c.sid, name: c.name, kind: c.kind, expiresAt: c.exp * 1000 });
  }

  return {
    /**
     * Sign an access token for a user's session. `notAfter` (ms) caps the expiry,
     * so that no access token outlives its session.
     */
    async sign(input: { userId: string; sessionId: string; name: string; kind: UserKind; notAfter?: number }): Promise<IssuedAccessToken> {
      const signing = keys();
      const issuedAt = Math.floor(now() / 1000);
      let exp = issuedAt + config.accessTokenTtlSeconds;
      if (input.notAfter !== undefined) exp = Math.max(issuedAt + 1, Math.min(exp, Math.floor(input.notAfter / 1000)));
      const token = await new SignJWT({ sid: input.sessionId, name: input.name, kind: input.kind })
        .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, typ: ACCESS_TOKEN_TYP, kid: signing.currentKid })
        .setIssuer(config.issuer)
        .setAudience(config.audience)
        .setSubject(input.userId)
        .setJti(randomUUID())
        .setIssuedAt(issuedAt)
        .setExpirationTime(exp)
        .sign(signing.privateKey);
      return { token, expiresAt: exp * 1000, expiresIn: exp - issuedAt };
    },

    /**
     * Verify an access token (signature, header and claims; no session check).
     * Throws `token_expired` or `unauthorized`; never anything else.
     */
    async verify(token: unknown): Promise<AccessClaims> {
      if (typeof token !== 'string' || token.length === 0) throw unauthorized('An access token is required');
      if (token.length > Limits.tokenMax) throw unauthorized('The access token is malformed');
      const signing = keys();
      const nowSeconds = Math.floor(now() / 1000);
      if (!verified) {
        checkedCount++;
        return check(token, signing, nowSeconds);
      }
      if (verifiedUnder !== signing) {
        // Another key set (a reload): nothing verified under the old one counts.
        verified.clear();
        verifiedUnder = signing;
      }
      const id = createHash('sha256').update(token).digest('binary'); // 32 one-byte characters
      const known = verified.get(id);
      if (known) {
        cachedCount++;
        if (known.expiresAt > (nowSeconds - tolerance) * 1000) return known;
        verified.delete(id);
        throw expired();
      }
      checkedCount++;
      const claims = check(token, signing, nowSeconds);
      verified.set(id, claims);
      return claims;
    },

    /** Counters for metrics: verifications answered by the cache (`cached`) or by a full check (`checked`), and the tokens cached now (`entries`). */
    stats(): { cached: number; checked: number; entries: number } {
      return { cached: cachedCount, checked: checkedCount, entries: verified?.size ?? 0 };
    },
  };
}
