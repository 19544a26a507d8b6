/**
 * `POST /api/rooms/:roomId/events`: a backend publishes into a room's feed
 * with the service API key (header `x-api-key`, compared in constant time).
 * Without a configured key (`FEED_API_KEY` unset) the route is not registered
 * and answers 404 like any unknown route.
 */
import { HttpRoutes } from '../../shared/routes.ts';
import { FeedEventBody, Id } from '../../shared/schemas.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { HttpServer } from '../http/create-http.ts';
import { parse } from '../validation.ts';
import type { FeedService } from './feed-service.ts';

export function registerFeedRoutes(http: HttpServer, { feed, enabled }: { feed: FeedService; enabled: boolean }): void {
  if (!enabled) return;
  http.post<{ Params: { roomId: string } }>(HttpRoutes.roomEvents, async (request, reply) => {
    const header = request.headers['x-api-key'];
    if (!feed.checkApiKey(typeof header === 'string' ? header : undefined)) {
      throw new AppError(ErrorCode.Unauthorized, 'A valid service API key (x-api-key) is required');
    }
    const roomId = parse(Id, request.params.roomId, 'room id');
    const body = parse(FeedEventBody, request.body, 'event');
    const { id, duplicate } = await feed.publishAsService(roomId, body);
    return reply.status(duplicate ? 200 : 201).send({ id });
  });
}
