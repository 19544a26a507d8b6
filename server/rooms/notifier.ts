/**
 * How the rooms feature reaches sockets: every broadcast goes to
 * `socketRooms.room(roomId)` or `socketRooms.user(userId)` through the
 * Socket.IO Redis adapter, so it reaches member sockets on every node.
 */
import type { ServerToClientEvents } from '../../shared/events.ts';
import type { PinroomServer } from '../gateway/create-io.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';

type Emit = <E extends keyof ServerToClientEvents>(event: E, payload: Parameters<ServerToClientEvents[E]>[0]) => void;

export interface RoomNotifier {
  /** Emit to every member socket of a room, on every node. */
  toRoom(roomId: string): { emit: Emit };
  /** Emit to every socket of a user, on every node. */
  toUser(userId: string): { emit: Emit };
  /** Take every socket of `userId` out of the room's broadcast group, on every node. */
  removeUser(roomId: string, userId: string): void;
  /** Empty the room's broadcast group, on every node. */
  removeAll(roomId: string): void;
}

export function createIoNotifier(io: PinroomServer): RoomNotifier {
  const emitter = (target: string) => ({
    emit: ((event, payload) => {
      (io.to(target).emit as (e: string, p: unknown) => boolean)(event, payload);
    }) as Emit,
  });
  return {
    toRoom: (roomId) => emitter(socketRooms.room(roomId)),
    toUser: (userId) => emitter(socketRooms.user(userId)),
    removeUser: (roomId, userId) => io.in(socketRooms.user(userId)).socketsLeave(socketRooms.room(roomId)),
    removeAll: (roomId) => io.in(socketRooms.room(roomId)).socketsLeave(socketRooms.room(roomId)),
  };
}
