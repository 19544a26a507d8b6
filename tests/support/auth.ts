/**
 * Signing in from tests, through the real HTTP routes of a running server.
 *
 *   const { accessToken, user } = await signInGuest(server.url, 'Ada');
 *   const socket = await connect(server.url, { token: accessToken });
 *   const host = await signUp(server.url);   // a registered user with a random username
 */
import { randomBytes } from 'node:crypto';
import { hashPassword } from '../../server/auth/passwords.ts';
import type { Db } from '../../server/db/database.ts';
import type { SessionResponse, TokenPair } from '../../shared/schemas.ts';

export interface HttpResult<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** Longest a test waits for an HTTP answer, ms (generous: the machine is shared). */
const HTTP_DEADLINE_MS = 20_000;

/** POST a JSON body (or a raw string) and return status, headers and the parsed body (null when empty). */
export async function postJson<T = unknown>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(HTTP_DEADLINE_MS),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as T };
}

async function expectStatus<T>(result: Promise<HttpResult<unknown>>, status: number, what: string): Promise<T> {
  const r = await result;
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as T;
}

/**
 * POST as a client should: a `rate_limited` answer that says it is retryable
 * soon (the password-hash queue shedding load, `AUTH_HASH_WAIT_MS`, which a
 * loaded machine reaches) is retried after its `retryAfterMs`, within 30 s.
 * Tests of the limits themselves use `postJson` and see every refusal.
 */
async function postRetrying(url: string, body: unknown): Promise<HttpResult<unknown>> {
  const end = Date.now() + 30_000;
  for (;;) {
    const r = await postJson(url, body);
    const error = (r.body as { error?: { code?: string; retryable?: boolean; retryAfterMs?: number } } | null)?.error;
    const wait = error?.retryAfterMs ?? 0;
    if (r.status !== 429 || error?.code !== 'rate_limited' || !error.retryable || wait > 2000 || Date.now() + wait > end) return r;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/** `POST /auth/guest`: a new guest user with its session. */
export async function signInGuest(url: string, displayName = `guest-${randomBytes(3).toString('hex')}`): Promise<SessionResponse> {
  return expectStatus<SessionResponse>(postJson(`${url}/auth/guest`, { displayName }), 201, 'POST /auth/guest');
}

/** `POST /auth/register`: a new registered user (random unique username and password unless given). */
export async function signUp(
  url: string,
  options: { username?: string; password?: string; displayName?: string } = {},
): Promise<SessionResponse & { username: string; password: string }> {
  const username = options.username ?? `user_${randomBytes(6).toString('hex')}`;
  const password = options.password ?? `pw-${randomBytes(12).toString('base64url')}`;
  const body: Record<string, string> = { username, password };
  if (options.displayName !== undefined) body.displayName = options.displayName;
  const session = await expectStatus<SessionResponse>(postRetrying(`${url}/auth/register`, body), 201, 'POST /auth/register');
  return { ...session, username, password };
}

/** `POST /auth/login`. */
export async function logIn(url: string, username: string, password: string): Promise<SessionResponse> {
  return expectStatus<SessionResponse>(postRetrying(`${url}/auth/login`, { username, password }), 200, 'POST /auth/login');
}

/** `POST /auth/refresh`: the next token pair of the session. */
export async function refreshTokens(url: string, refreshToken: string): Promise<TokenPair> {
  return expectStatus<TokenPair>(postJson(`${url}/auth/refresh`, { refreshToken }), 200, 'POST /auth/refresh');
}

/**
 * A registered account written straight into the database (before any server
 * runs), so that a test can name it by id in `FEED_ADMIN_USERS`. Sign in with
 * `logIn(url, username, password)` once a server is up.
 */
export async function accountInDatabase(db: Db, options: { username?: string; password?: string } = {}): Promise<{ id: string; username: string; password: string }> {
  const username = options.username ?? `user_${randomBytes(6).toString('hex')}`;
  const password = options.password ?? `pw-${randomBytes(12).toString('base64url')}`;
  const row = await db
    .insertInto('users')
    .values({ username, display_name: username, password_hash: await hashPassword(password), kind: 'registered' })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, username, password };
}
