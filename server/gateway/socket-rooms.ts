/**
 * Names of Socket.IO rooms (the adapter's broadcast groups, not pinroom rooms).
 * Built in one place so every node addresses the same groups through the Redis adapter.
 */
export const socketRooms = {
  /** Every socket of one user, on every node. */
  user: (userId: string) => `user:${userId}`,
  /** Every socket of one session (refresh-token family), on every node. */
  session: (sessionId: string) => `session:${sessionId}`,
  /** Every member socket of a pinroom room (the host's included). */
  room: (roomId: string) => `room:${roomId}`,
  /** The host's sockets in a pinroom room (they get every presence change, also in big rooms). */
  roomHost: (roomId: string) => `host:${roomId}`,
  /** Subscribers of a room's live feed. */
  feed: (roomId: string) => `feed:${roomId}`,
  /** Subscribers of the global or system feed. */
  scope: (scope: 'global' | 'system') => `scope:${scope}`,
} as const;
