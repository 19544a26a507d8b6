/**
 * `GET /rooms/pin/:pin`: a join screen checks a PIN before asking for a
 * nickname. No sign-in needed; failed lookups count against the client
 * address's guess limit. 200 `PinLookup`, or 404 `room_not_found` (the same
 * for a PIN that never existed and one whose room ended), 429 `rate_limited`
 * with `Retry-After`, 400 `bad_request` for a malformed PIN.
 */
import { z } from 'zod';
import { HttpRoutes } from '../../shared/routes.ts';
import { Pin, type PinLookup } from '../../shared/schemas.ts';
import { addressKey, requestAddress } from '../gateway/address.ts';
import type { HttpServer } from '../http/create-http.ts';
import type { RoomService } from './room-service.ts';

export function registerRoomRoutes(http: HttpServer, { rooms }: { rooms: Pick<RoomService, 'lookup'> }): void {
  const schema = { summary: 'Check a PIN before joining its room', tags: ['rooms'], params: z.object({ pin: Pin.describe('PIN') }) };
  http.get(HttpRoutes.pinLookup, { schema }, async (request): Promise<PinLookup> => {
    return rooms.lookup(request.params.pin, addressKey(requestAddress(request)));
  });
}
