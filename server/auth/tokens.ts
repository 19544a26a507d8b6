/**
 * Access tokens: short-lived JWTs signed with EdDSA (jose).
 *
 * Header `{ alg: 'EdDSA', typ: 'at+jwt', kid }`; claims `iss`, `aud`, `sub`
 * (user id), `sid` (session = refresh-token family), `name`, `kind`, `jti`,
 * `iat`, `exp`. Verification pins the algorithm list, `iss`, `aud` and `typ`,
 * picks the key by `kid` only, and accepts at most the configured clock
 * tolerance (≤ 30 s). Every failure is an `AppError`: `token_expired` for a
 * genuine token past its `exp`, `unauthorized` for anything else.
 */
import { randomUUID } from 'node:crypto';
import { errors, jwtVerify, SignJWT, type JWTHeaderParameters } from 'jose';
import { z } from 'zod';
import { Limits, UserKind } from '../../shared/schemas.ts';
import type { AuthConfig } from '../config.ts';
import { AppError, ErrorCode } from '../errors.ts';
import { ACCESS_TOKEN_ALG, type SigningKeys } from './signing-keys.ts';

/** JWT `typ` of access tokens (RFC 9068). */
export const ACCESS_TOKEN_TYP = 'at+jwt';
/** Hard upper bound of the clock tolerance, seconds. */
export const MAX_CLOCK_TOLERANCE_SECONDS = 30;

export interface AccessClaims {
  /** User id (`sub`). */
  userId: string;
  /** Session id (`sid`): the refresh-token family. */
  sessionId: string;
  name: string;
  kind: UserKind;
  jti: string;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
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

export type TokenService = ReturnType<typeof createTokenService>;

export function createTokenService({ config, keys, now = Date.now }: { config: Pick<AuthConfig, 'issuer' | 'audience' | 'accessTokenTtlSeconds' | 'clockToleranceSeconds'>; keys: () => SigningKeys; now?: () => number }) {
  const tolerance = Math.min(config.clockToleranceSeconds, MAX_CLOCK_TOLERANCE_SECONDS);
  const unauthorized = (message: string, cause?: unknown) => new AppError(ErrorCode.Unauthorized, message, cause === undefined ? {} : { cause });

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

    /** Verify an access token. Throws `token_expired` or `unauthorized`; never anything else. */
    async verify(token: unknown): Promise<AccessClaims> {
      if (typeof token !== 'string' || token.length === 0) throw unauthorized('An access token is required');
      if (token.length > Limits.tokenMax) throw unauthorized('The access token is malformed');
      const signing = keys();
      let payload: unknown;
      try {
        ({ payload } = await jwtVerify(
          token,
          (header: JWTHeaderParameters) => {
            const key = header.kid === undefined ? undefined : signing.publicKey(header.kid);
            if (!key) throw unauthorized('The access token was signed by an unknown key');
            return key;
          },
          {
            algorithms: [ACCESS_TOKEN_ALG],
            issuer: config.issuer,
            audience: config.audience,
            typ: ACCESS_TOKEN_TYP,
            clockTolerance: tolerance,
            requiredClaims: ['sub', 'sid', 'jti', 'exp', 'iat'],
            currentDate: new Date(now()),
          },
        ));
      } catch (err) {
        if (err instanceof AppError) throw err;
        if (err instanceof errors.JWTExpired) throw new AppError(ErrorCode.TokenExpired, 'The access token expired; refresh it');
        if (err instanceof errors.JWTClaimValidationFailed) throw unauthorized(`The access token was refused (${err.claim} claim)`);
        if (err instanceof errors.JOSEError) throw unauthorized('The access token is malformed or its signature is invalid');
        throw unauthorized('The access token is malformed', err);
      }
      const claims = Claims.safeParse(payload);
      if (!claims.success) throw unauthorized('The access token is missing claims');
      const c = claims.data;
      return { userId: c.sub, sessionId: c.sid, name: c.name, kind: c.kind, jti: c.jti, expiresAt: c.exp * 1000 };
    },
  };
}
