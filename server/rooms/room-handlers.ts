/**
 * Socket.IO handlers of the rooms feature. Payloads are validated against the
 * shared schemas by the event router, which also runs the guards (token
 * expiry, per-socket rate limit) and turns errors into acks.
 */
import type { Logger } from 'pino';
import {
  RoomCreatePayload,
  RoomJoinPayload,
  RoomKickPayload,
  RoomLockPayload,
  RoomMembersPayload,
  RoomRefPayload,
  RoomSignalPayload,
  RoomUpdatePayload,
  RoomWaiterPayload,
  RoomWaitlistPayload,
} from '../../shared/schemas.ts';
import type { EventRouter } from '../gateway/ack.ts';
import { addressKey } from '../gateway/address.ts';
import type { PinroomSocket } from '../gateway/create-io.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { RoomActor, RoomService } from './room-service.ts';

/** The socket's user; in `roomId`, going by the name they joined it with. */
const actorOf = (socket: PinroomSocket, roomId?: string): RoomActor => {
  const { user, address } = socket.data;
  if (!user) throw new AppError(ErrorCode.Unauthorized, 'Not signed in');
  const name = (roomId !== undefined && socket.data.roomNames?.get(roomId)) || user.name;
  // PIN guesses count per address key (an IPv6 /64 is one client).
  return { id: user.id, name, kind: user.kind, address: addressKey(address) };
};

/** Remember the name the socket's user goes by in a room (feed entries and leaves carry it). */
const nameIn = (socket: PinroomSocket, roomId: string, name: string) => {
  (socket.data.roomNames ??= new Map()).set(roomId, name);
};

/** Register the room events once, for every socket routed by `router`. */
export function registerRoomHandlers({ router, rooms, logger }: { router: EventRouter; rooms: RoomService; logger: Logger }): void {
  /**
   * The service put the socket in the room's group and counted it present;
   * if it closed meanwhile (its `disconnecting` ran before presence had it),
   * undo its presence.
   */
  const settle = async (socket: PinroomSocket) => {
    if (socket.disconnected) await rooms.socketClosed(socket.id);
  };

  router.handle('room:create', RoomCreatePayload, async (socket, payload) => {
    const result = await rooms.create(actorOf(socket), payload, socket.id);
    nameIn(socket, result.room.id, socket.data.user.name);
    await settle(socket);
    return result;
  });
  router.handle('room:join', RoomJoinPayload, async (socket, { pin, nickname }) => {
    const joined = await rooms.join(actorOf(socket), pin, socket.id, nickname);
    nameIn(socket, joined.room.id, joined.name);
    await settle(socket);
    return joined;
  });
  router.handle('room:members', RoomMembersPayload, (socket, { roomId, after, limit }) => {
    if (!socket.rooms.has(socketRooms.room(roomId))) throw new AppError(ErrorCode.Forbidden, 'Join the room (room:join) before listing its members');
    return rooms.members(roomId, after, limit);
  });
  router.handle('room:leave', RoomRefPayload, async (socket, { roomId }) => {
    await rooms.leave(actorOf(socket, roomId), roomId);
    socket.data.roomNames?.delete(roomId);
    return {};
  });
  router.handle('room:start', RoomRefPayload, (socket, { roomId }) => rooms.goLive(actorOf(socket, roomId), roomId));
  router.handle('room:lock', RoomLockPayload, (socket, { roomId, locked }) => rooms.lock(actorOf(socket, roomId), roomId, locked));
  router.handle('room:kick', RoomKickPayload, async (socket, payload) => {
    await rooms.kick(actorOf(socket, payload.roomId), payload);
    return {};
  });
  router.handle('room:update', RoomUpdatePayload, (socket, { roomId, approval }) => rooms.update(actorOf(socket), roomId, { approval }));
  router.handle('room:admit', RoomWaiterPayload, async (socket, { roomId, userId }) => {
    await rooms.admitUser(actorOf(socket), roomId, userId);
    return {};
  });
  router.handle('room:deny', RoomWaiterPayload, async (socket, { roomId, userId }) => {
    await rooms.denyUser(actorOf(socket), roomId, userId);
    return {};
  });
  router.handle('room:waitlist', RoomWaitlistPayload, (socket, { roomId, after, limit }) => rooms.waitlist(actorOf(socket), roomId, after, limit));
  router.handle('room:end', RoomRefPayload, async (socket, { roomId }) => {
    await rooms.end(actorOf(socket, roomId), roomId);
    return {};
  });
  // Volatile: relayed to the other member sockets of the room, never stored, dropped under back-pressure.
  router.volatile('room:signal', RoomSignalPayload, (socket, { roomId, type, payload }) => {
    const room = socketRooms.room(roomId);
    if (!socket.rooms.has(room)) throw new AppError(ErrorCode.Forbidden, 'Join the room before signalling to it');
    socket.volatile.to(room).emit('room:signal', { roomId, from: socket.data.user.id, type, payload });
  });

  // While the socket is still in its groups: leaving them is what tells presence a socket left on purpose.
  router.onDisconnect((socket) => {
    rooms.socketClosed(socket.id).catch((err: unknown) => logger.warn({ err, socketId: socket.id }, 'could not update presence after a disconnect'));
  });
}
