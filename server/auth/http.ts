/**
 * HTTP routes of auth. JSON in, JSON out; bodies are validated against the
 * shared schemas and every failure goes through the one HTTP error handler.
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
import { GuestBody, LoginBody, LogoutBody, RefreshBody, RegisterBody } from '../../shared/schemas.ts';
import { HttpRoutes } from '../../shared/routes.ts';
import { requestAddress } from '../gateway/address.ts';
import type { HttpServer } from '../http/create-http.ts';
import { parse } from '../validation.ts';
import type { AuthService, RequestContext } from './auth-service.ts';


const context = (request: FastifyRequest): RequestContext => ({ address: requestAddress(request) });
const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

export function registerAuthRoutes(http: HttpServer, { auth }: { auth: AuthService }): void {
  http.post(HttpRoutes.register, async (request, reply) => {
    const body = parse(RegisterBody, request.body, 'request body');
    const session = await auth.register(body, context(request));
    return noStore(reply).status(201).send(session);
  });

  http.post(HttpRoutes.login, async (request, reply) => {
    const body = parse(LoginBody, request.body, 'request body');
    return noStore(reply).status(200).send(await auth.login(body, context(request)));
  });

  http.post(HttpRoutes.guest, async (request, reply) => {
    const body = parse(GuestBody, request.body, 'request body');
    return noStore(reply).status(201).send(await auth.guest(body, context(request)));
  });

  http.post(HttpRoutes.refresh, async (request, reply) => {
    const body = parse(RefreshBody, request.body, 'request body');
    return noStore(reply).status(200).send(await auth.refresh(body, context(request)));
  });

  http.post(HttpRoutes.logout, async (request, reply) => {
    const body = parse(LogoutBody, request.body, 'request body');
    await auth.logout(body, context(request));
    return reply.status(204).send();
  });

  http.get(HttpRoutes.jwks, async (_request, reply) => {
    return reply.header('cache-control', 'public, max-age=300').send(auth.jwks());
  });
}
