/**
 * HTTP routes of auth. JSON in, JSON out; bodies are validated against the
 * shared schemas (the route's `schema.body`, also the OpenAPI document's) and
 * every failure goes through the one HTTP error handler.
 * Responses that carry tokens are marked `Cache-Control: no-store`.
 *
 *   POST /auth/register   201 SessionResponse
 *   POST /auth/login      200 SessionResponse
 *   POST /auth/guest      201 SessionResponse
 *   POST /auth/refresh    200 TokenPair
 *   POST /auth/logout     204
 *   GET  /.well-known/jwks.json   the public signing keys
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpRoutes } from '../../shared/routes.ts';
import { GuestBody, LoginBody, LogoutBody, RefreshBody, RegisterBody } from '../../shared/schemas.ts';
import { requestAddress } from '../gateway/address.ts';
import type { HttpServer } from '../http/create-http.ts';
import type { AuthService, RequestContext } from './auth-service.ts';

const context = (request: FastifyRequest): RequestContext => ({ address: requestAddress(request) });
const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

export function registerAuthRoutes(http: HttpServer, { auth }: { auth: AuthService }): void {
  http.post(HttpRoutes.register, { schema: { summary: 'Create an account and sign in', tags: ['auth'], body: RegisterBody } }, async (request, reply) => {
    const session = await auth.register(request.body, context(request));
    return noStore(reply).status(201).send(session);
  });

  http.post(HttpRoutes.login, { schema: { summary: 'Sign in with a username and password', tags: ['auth'], body: LoginBody } }, async (request, reply) => {
    return noStore(reply).status(200).send(await auth.login(request.body, context(request)));
  });

  http.post(HttpRoutes.guest, { schema: { summary: 'Sign in as a guest with a display name', tags: ['auth'], body: GuestBody } }, async (request, reply) => {
    return noStore(reply).status(201).send(await auth.guest(request.body, context(request)));
  });

  http.post(HttpRoutes.refresh, { schema: { summary: 'Trade a refresh token for a new token pair', tags: ['auth'], body: RefreshBody } }, async (request, reply) => {
    return noStore(reply).status(200).send(await auth.refresh(request.body, context(request)));
  });

  http.post(HttpRoutes.logout, { schema: { summary: 'End the session of a refresh token', tags: ['auth'], body: LogoutBody } }, async (request, reply) => {
    await auth.logout(request.body, context(request));
    return reply.status(204).send();
  });

  http.get(HttpRoutes.jwks, { schema: { summary: 'Public keys that verify access tokens (JWKS)', tags: ['auth'] } }, async (_request, reply) => {
    return reply.header('cache-control', 'public, max-age=300').send(auth.jwks());
  });
}
