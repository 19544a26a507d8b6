/**
 * HTTP and tokens: requests to the server's HTTP routes, the session kept in
 * storage (the user and the refresh token, so a page reload keeps it) and the
 * access token in memory. Refreshes are serialized, within the page and
 * (where Web Locks exist) across tabs, because a refresh token used twice
 * revokes the whole session.
 */
import type { ErrorCode, ErrorPayload } from '../../../shared/errors.ts';
import { HttpRoutes } from '../../../shared/routes.ts';
import type { TokenPair, UserView } from '../../../shared/schemas.ts';
import { PinroomError } from './errors.ts';
import type { KeyValueStore } from './events.ts';

const STORE_KEY = 'pinroom.session';

interface StoredSession {
  user: UserView;
  refreshToken: string;
}

/** Answers of a refresh that end the session: sign in again. */
const SESSION_ENDS: ReadonlySet<string> = new Set<ErrorCode>(['unauthorized', 'token_reused', 'session_revoked', 'token_expired']);
const endsSession = (code: ErrorCode | 'network'): code is ErrorCode => SESSION_ENDS.has(code);

export type Session = ReturnType<typeof createSession>;

export function createSession({
  baseUrl,
  storage,
  timeoutMs,
  onEnded,
}: {
  baseUrl: string;
  storage: KeyValueStore;
  timeoutMs: number;
  /** A refresh was refused for good: the session is over (the caller forgets it). */
  onEnded: (reason: ErrorCode) => void;
}) {
  let user: UserView | null = null;
  let accessToken: string | null = null;
  let refreshing: Promise<void> | null = null;

  /** An HTTP request; the answer's JSON body is what the route is documented to return (`T`). */
  async function http<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, baseUrl), {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch {
      throw new PinroomError({ code: 'network', message: 'network error' });
    }
    const answer = res.status === 204 ? undefined : await res.json().catch(() => null);
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('retry-after'));
      const error: ErrorPayload = answer?.error ?? { code: 'internal', message: `HTTP ${res.status}` };
      if (error.retryAfterMs === undefined && retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
      throw new PinroomError(error);
    }
    return answer;
  }

  function save(session: { user: UserView; refreshToken: string; accessToken: string }): void {
    user = session.user;
    accessToken = session.accessToken;
    storage.setItem(STORE_KEY, JSON.stringify({ user: session.user, refreshToken: session.refreshToken } satisfies StoredSession));
  }

  function readStored(): StoredSession | null {
    try {
      const raw = storage.getItem(STORE_KEY);
      if (!raw) return null;
      const stored: StoredSession = JSON.parse(raw);
      return stored;
    } catch {
      return null;
    }
  }

  /** Serialize refreshes within this page and, where Web Locks exist, across tabs. */
  async function withRefreshLock(fn: () => Promise<void>): Promise<void> {
    const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
    if (locks) await locks.request('pinroom-refresh', fn);
    else await fn();
  }

  /** Rotate the refresh token and take a fresh access token. */
  function refresh(): Promise<void> {
    refreshing ??= withRefreshLock(async () => {
      const stored = readStored();
      if (!stored) throw new PinroomError({ code: 'unauthorized', message: 'no session' });
      try {
        const pair = await http<TokenPair>('POST', HttpRoutes.refresh, { refreshToken: stored.refreshToken });
        save({ user: stored.user, ...pair });
      } catch (err) {
        // Another tab rotated the same token a moment ago: take its result.
        if (err instanceof PinroomError && err.code === 'conflict') {
          const again = readStored();
          if (again && again.refreshToken !== stored.refreshToken) {
            user = again.user;
            refreshing = null;
            return refresh();
          }
        }
        if (err instanceof PinroomError && endsSession(err.code)) onEnded(err.code);
        throw err;
      }
    }).finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  return {
    get user() {
      return user;
    },
    get accessToken() {
      return accessToken;
    },
    http,
    save,
    readStored,
    refresh,
    /** Forget the stored session and the tokens. */
    clear(): void {
      storage.removeItem(STORE_KEY);
      user = null;
      accessToken = null;
    },
  };
}
