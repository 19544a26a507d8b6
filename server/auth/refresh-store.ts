/**
 * Refresh tokens and sessions in Redis.
 *
 * A refresh token is `<session id>.<256 random bits, base64url>`: opaque to the
 * client, and stored only as the SHA-256 of the whole string, under its
 * session's hash tag (`keys.refreshToken`). A session is one refresh-token
 * family: every rotation issues a successor in the same session, and the
 * session's absolute expiry never moves. Each change is one Lua script
 * (`refresh-*.lua`), so concurrent rotations of one token give one winner.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { AuthConfig } from '../config.ts';
import { unavailable } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';

const TOKEN_SHAPE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

export interface IssuedRefresh {
  token: string;
  sessionId: string;
  /** Expiry of this token, ms since the epoch. */
  expiresAt: number;
  /** Absolute expiry of the session, ms since the epoch. */
  sessionExpiresAt: number;
}

export type RotateResult =
  | ({ status: 'ok'; userId: string } & IssuedRefresh)
  /** Lost a concurrent rotation of the same token within the grace; nothing changed. */
  | { status: 'race'; userId: string; sessionId: string }
  /** A rotated token came back: the session has just been revoked. */
  | { status: 'reused'; userId: string; sessionId: string }
  /** The session had been revoked before. */
  | { status: 'revoked'; userId: string; sessionId: string }
  /** Unknown, malformed or expired token, or the session is over. */
  | { status: 'invalid' };

export type RevokeResult = { status: 'revoked' | 'already'; userId: string; sessionId: string } | { status: 'invalid' };

export type RefreshStore = ReturnType<typeof createRefreshStore>;

/** SHA-256 of a refresh token, hex: the only form in which a token is stored. */
export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The session id a well-formed refresh token names, or undefined. */
export function parseRefreshToken(token: string): string | undefined {
  return TOKEN_SHAPE.exec(token)?.[1];
}

function newToken(sessionId: string): string {
  return `${sessionId}.${randomBytes(32).toString('base64url')}`;
}

export function createRefreshStore({
  scripts,
  keys,
  config,
  now = Date.now,
}: {
  scripts: Scripts;
  keys: Keys;
  config: Pick<AuthConfig, 'refreshTokenTtlSeconds' | 'sessionMaxAgeSeconds' | 'refreshReuseGraceSeconds'>;
  now?: () => number;
}) {
  const ttlMs = config.refreshTokenTtlSeconds * 1000;
  const call = async <T>(what: string, op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      throw unavailable(`Redis (${what})`, err);
    }
  };

  return {
    /** Open a session for `userId` with its first refresh token; `maxAgeSeconds` shortens the session's absolute lifetime (guests). */
    async issue(userId: string, options: { maxAgeSeconds?: number } = {}): Promise<IssuedRefresh> {
      const sessionId = randomUUID();
      const token = newToken(sessionId);
      const hash = hashRefreshToken(token);
      const at = now();
      const sessionExpiresAt = at + Math.min(config.sessionMaxAgeSeconds, options.maxAgeSeconds ?? Infinity) * 1000;
      const expiresAt = Math.min(at + ttlMs, sessionExpiresAt);
      // Not retried: a retry after a lost reply would open a second session.
      await call('refresh-issue', () => scripts.run('refresh-issue', [keys.session(sessionId), keys.refreshToken(sessionId, hash)], [userId, at, expiresAt, sessionExpiresAt, hash]));
      return { token, sessionId, expiresAt, sessionExpiresAt };
    },

    /** Exchange a refresh token for its successor (once); detects replays. */
    async rotate(token: string): Promise<RotateResult> {
      const sessionId = parseRefreshToken(token);
      if (!sessionId) return { status: 'invalid' };
      const successor = newToken(sessionId);
      const successorHash = hashRefreshToken(successor);
      const reply = await call('refresh-rotate', () =>
        scripts.run<[string, string?, number?, number?]>(
          'refresh-rotate',
          [keys.session(sessionId), keys.refreshToken(sessionId, hashRefreshToken(token)), keys.refreshToken(sessionId, successorHash)],
          [now(), ttlMs, config.refreshReuseGraceSeconds * 1000, successorHash],
        ),
      );
      const [status, userId] = reply;
      if (status === 'ok') return { status, userId: userId!, token: successor, sessionId, expiresAt: Number(reply[2]), sessionExpiresAt: Number(reply[3]) };
      if (status === 'race' || status === 'reused' || status === 'revoked') return { status, userId: userId!, sessionId };
      return { status: 'invalid' };
    },

    /** Revoke the session of a refresh token (any token of the session, used or not). */
    async revoke(token: string, reason: string): Promise<RevokeResult> {
      const sessionId = parseRefreshToken(token);
      if (!sessionId) return { status: 'invalid' };
      const [status, userId] = await call('refresh-revoke', () =>
        scripts.run<[string, string?]>('refresh-revoke', [keys.session(sessionId), keys.refreshToken(sessionId, hashRefreshToken(token))], [now(), reason]),
      );
      if (status === 'revoked' || status === 'already') return { status, userId: userId!, sessionId };
      return { status: 'invalid' };
    },

    /**
     * Forget a session that was issued but never handed out (the account it
     * was opened for could not be created): the session and its token, in one command.
     */
    async discard(issued: Pick<IssuedRefresh, 'token' | 'sessionId'>): Promise<void> {
      await call('refresh-discard', () => scripts.run('refresh-discard', [keys.session(issued.sessionId), keys.refreshToken(issued.sessionId, hashRefreshToken(issued.token))]));
    },
  };
}
