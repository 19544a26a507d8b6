/**
 * How the rooms feature reaches sockets: every broadcast goes to
 * `socketRooms.room(roomId)`, `socketRooms.roomHost(roomId)` or
 * `socketRooms.user(userId)` through the Socket.IO Redis adapter, so it
 * reaches member sockets on every node. A broadcast is encoded once and
 * costs one PUBLISH, whatever the room's size; each node writes it to its
 * own member sockets.
 */
import type { ServerToClientEvents } from '../../shared/events.ts';
import type { PinroomServer } from '../gateway/create-io.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';

type Emit = <E extends keyof ServerToClientEvents>(event: E, payload: Parameters<ServerToClientEvents[E]>[0]) => void;

export interface RoomNotifier {
  /** Emit to every member socket of a room, on every node. */
  toRoom(roomId: string): { emit: Emit };
  /** Emit to the host's sockets in a room, on every node. */
  toHost(roomId: string): { emit: Emit };
  /** Emit to every member socket of a room except the host's, on every node. */
  toMembers(roomId: string): { emit: Emit };
  /** Emit to every socket of a user, on every node. */
  toUser(userId: string): { emit: Emit };
  /**
   * Put a socket of this node into the room's broadcast group (and the host
   * group, for the host). False when the socket is gone (closed meanwhile).
   */
  enter(socketId: string, roomId: string, asHost: boolean): Promise<boolean>;
  /** Take a socket of this node out of the room's broadcast groups (a join undone). */
  leave(socketId: string, roomId: string): void;
  /** Whether a socket of this node is in the room's broadcast group now. */
  holds(socketId: string, roomId: string): boolean;
  /** Take every socket of `userId` out of the room's broadcast group, on every node. */
  removeUser(roomId: string, userId: string): void;
  /** Empty the room's broadcast groups, on every node. */
  removeAll(roomId: string): void;
  /**
   * Start following this node's room groups: `onLeave` runs whenever a
   * socket of this node leaves a room's broadcast group, for any reason (a
   * leave or kick from any node, the room's end, the socket closing). Call
   * once, when the adapter is in place (`app.start()` attaches it).
   */
  follow(onLeave: (roomId: string, socketId: string) => void): void;
}

const ROOM_PREFIX = socketRooms.room('');

export function createIoNotifier(io: PinroomServer): RoomNotifier {
  /**
   * The group name of each room with sockets on this node, built once: every
   * member socket's `rooms` set holds this one string instead of its own copy
   * (about 64 bytes per member). Dropped when the group empties.
   */
  const groups = new Map<string, string>();
  const groupOf = (roomId: string): string => {
    let name = groups.get(roomId);
    if (name === undefined) groups.set(roomId, (name = socketRooms.room(roomId)));
    return name;
  };
  const emitter = (target: ReturnType<PinroomServer['to']>) => ({
    emit: ((event, payload) => {
      (target.emit as (e: string, p: unknown) => boolean)(event, payload);
    }) as Emit,
  });
  return {
    toRoom: (roomId) => emitter(io.to(socketRooms.room(roomId))),
    toHost: (roomId) => emitter(io.to(socketRooms.roomHost(roomId))),
    toMembers: (roomId) => emitter(io.to(socketRooms.room(roomId)).except(socketRooms.roomHost(roomId))),
    toUser: (userId) => emitter(io.to(socketRooms.user(userId))),
    async enter(socketId, roomId, asHost) {
      const socket = io.sockets.sockets.get(socketId);
      if (!socket || socket.disconnected) return false;
      await socket.join(asHost ? [groupOf(roomId), socketRooms.roomHost(roomId)] : groupOf(roomId));
      return true;
    },
    leave(socketId, roomId) {
      const socket = io.sockets.sockets.get(socketId);
      if (!socket) return;
      void socket.leave(socketRooms.room(roomId));
      void socket.leave(socketRooms.roomHost(roomId));
    },
    holds: (socketId, roomId) => io.sockets.sockets.get(socketId)?.rooms.has(socketRooms.room(roomId)) ?? false,
    removeUser: (roomId, userId) => io.in(socketRooms.user(userId)).socketsLeave(socketRooms.room(roomId)),
    removeAll: (roomId) => io.in([socketRooms.room(roomId), socketRooms.roomHost(roomId)]).socketsLeave([socketRooms.room(roomId), socketRooms.roomHost(roomId)]),
    follow(onLeave) {
      const { adapter } = io.sockets;
      adapter.on('leave-room', (room: string, socketId: string) => {
        if (room.startsWith(ROOM_PREFIX)) onLeave(room.slice(ROOM_PREFIX.length), socketId);
      });
      adapter.on('delete-room', (room: string) => {
        if (room.startsWith(ROOM_PREFIX)) groups.delete(room.slice(ROOM_PREFIX.length));
      });
    },
  };
}
