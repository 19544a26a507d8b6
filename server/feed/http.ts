/**
 * `POST /api/rooms/:roomId/events`: a backend publishes into a room's feed
 * with the service API key (header `x-api-key`, compared in constant time).
 * Without a configured key (`FEED_API_KEY` unset) the route is not registered
 * and answers 404 like any unknown route.
 */
import { z } from 'zod';
import { HttpRoutes } from '../../shared/routes.ts';
import { FeedEventBody, Id } from '../../shared/schemas.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { HttpServer } from '../http/create-http.ts';
import { Security } from '../http/openapi.ts';
import type { FeedService } from './feed-service.ts';

export function registerFeedRoutes(http: HttpServer, { feed, enabled }: { feed: FeedService; enabled: boolean }): void {
  if (!enabled) return;
  const schema = {
    summary: "Publish an event into a room's feed as a backend service",
    tags: ['feed'],
    security: [...Security.apiKey],
    params: z.object({ roomId: Id.describe('room id') }),
    body: FeedEventBody.describe('event'),
  };
  http.post(HttpRoutes.roomEvents, {
    schema,
    // The key is checked before the request is validated: without it, a bad body is still 401.
    preValidation: async (request) => {
      const header = request.headers['x-api-key'];
      if (!feed.checkApiKey(typeof header === 'string' ? header : undefined)) {
        throw new AppError(ErrorCode.Unauthorized, 'A valid service API key (x-api-key) is required');
      }
    },
  }, async (request, reply) => {
    const { id, duplicate } = await feed.publishAsService(request.params.roomId, request.body);
    return reply.status(duplicate ? 200 : 201).send({ id });
  });
}
