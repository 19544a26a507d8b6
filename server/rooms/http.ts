/**
 * `GET /rooms/pin/:pin`: a join screen checks a PIN before asking for a
 * nickname. No sign-in needed. Only wrong PINs count (server/rooms/limits.ts):
 * with `Authorization: Bearer <access token>` against that user like a
 * `room:join`, without one against the client address alone. 200
 * `PinLookup`, or 404 `room_not_found` (the same for a PIN that never
 * existed and one whose room ended), 429 `rate_limited` with `Retry-After`,
 * 400 `bad_request` for a malformed PIN, 401 for a token that does not verify.
 */
import { z } from 'zod';
import { HttpRoutes } from '../../shared/routes.ts';
import { Pin, type PinLookup } from '../../shared/schemas.ts';
import { addressKey, requestAddress } from '../gateway/address.ts';
import { bearer, type HttpServer } from '../http/create-http.ts';
import { Security } from '../http/openapi.ts';
import type { RoomService } from './room-service.ts';

export function registerRoomRoutes(
  http: HttpServer,
  {
    rooms,
    authenticate,
  }: {
    rooms: Pick<RoomService, 'lookup'>;
    /** Verify an access token; throws `unauthorized`/`token_expired`/`session_revoked`. */
    authenticate(token: string): Promise<{ userId: string }>;
  },
): void {
  // The access token is optional: with one, the lookup counts against that user like a join.
  const schema = { summary: 'Check a PIN before joining its room', tags: ['rooms'], params: z.object({ pin: Pin.describe('PIN') }), security: [{}, ...Security.bearer] };
  http.get(HttpRoutes.pinLookup, { schema }, async (request): Promise<PinLookup> => {
    const token = bearer(request);
    const userId = token ? (await authenticate(token)).userId : undefined;
    return rooms.lookup(request.params.pin, addressKey(requestAddress(request)), userId);
  });
}
