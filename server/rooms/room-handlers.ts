/**
 * Socket.IO handlers of the rooms feature. Payloads are validated against the
 * shared schemas by the event router, which also runs the guards (token
 * expiry, per-socket rate limit) and turns errors into acks.
 */
import type { Logger } from 'pino';
import { RoomCreatePayload, RoomJoinPayload, RoomKickPayload, RoomLockPayload, RoomRefPayload, RoomSignalPayload } from '../../shared/schemas.ts';
import type { EventRouter } from '../gateway/ack.ts';
import type { PinroomSocket } from '../gateway/create-io.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { RoomActor, RoomService } from './room-service.ts';

export function registerRoomHandlers({ socket, router, rooms, logger }: { socket: PinroomSocket; router: EventRouter; rooms: RoomService; logger: Logger }): void {
  const actor = (): RoomActor => {
    const { user, address } = socket.data;
    if (!user) throw new AppError(ErrorCode.Unauthorized, 'Not signed in');
    return { id: user.id, name: user.name, kind: user.kind, address };
  };
  /** Put the socket in the room's broadcast group; if it closed meanwhile, undo its presence. */
  const enter = async (roomId: string) => {
    await socket.join(socketRooms.room(roomId));
    if (socket.disconnected) await rooms.socketClosed(socket.id);
  };

  router.handle(socket, 'room:create', RoomCreatePayload, async (payload) => {
    const result = await rooms.create(actor(), payload, socket.id);
    await enter(result.room.id);
    return result;
  });
  router.handle(socket, 'room:join', RoomJoinPayload, async ({ pin }) => {
    const joined = await rooms.join(actor(), pin, socket.id);
    await enter(joined.room.id);
    return joined;
  });
  router.handle(socket, 'room:leave', RoomRefPayload, async ({ roomId }) => {
    await rooms.leave(actor(), roomId);
    return {};
  });
  router.handle(socket, 'room:start', RoomRefPayload, ({ roomId }) => rooms.goLive(actor(), roomId));
  router.handle(socket, 'room:lock', RoomLockPayload, ({ roomId, locked }) => rooms.lock(actor(), roomId, locked));
  router.handle(socket, 'room:kick', RoomKickPayload, async (payload) => {
    await rooms.kick(actor(), payload);
    return {};
  });
  router.handle(socket, 'room:end', RoomRefPayload, async ({ roomId }) => {
    await rooms.end(actor(), roomId);
    return {};
  });
  // Volatile: relayed to the other member sockets of the room, never stored, dropped under back-pressure.
  router.volatile(socket, 'room:signal', RoomSignalPayload, ({ roomId, type, payload }) => {
    const room = socketRooms.room(roomId);
    if (!socket.rooms.has(room)) throw new AppError(ErrorCode.Forbidden, 'Join the room before signalling to it');
    socket.volatile.to(room).emit('room:signal', { roomId, from: socket.data.user.id, type, payload });
  });

  socket.on('disconnect', () => {
    rooms.socketClosed(socket.id).catch((err: unknown) => logger.warn({ err, socketId: socket.id }, 'could not update presence after a disconnect'));
  });
}
