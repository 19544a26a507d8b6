/**
 * Every Redis key pinroom uses is built here, from the configured prefix.
 * Room and user ids sit inside `{}` hash tags so that all keys of one room
 * (or one session) share a Redis Cluster slot and a Lua script may touch them together.
 */
export type Keys = ReturnType<typeof createKeys>;

export function createKeys(prefix: string) {
  const room = (roomId: string) => `${prefix}room:{${roomId}}`;
  return {
    prefix,
    /** Channel prefix of the Socket.IO Redis adapter. */
    adapterChannel: `${prefix}socket.io`,
    /** Key prefix handed to rate-limiter-flexible; it appends `:<name>:<key>`. */
    rateLimit: `${prefix}rl`,

    // ---- cache-aside
    /** A cached value of loader `name`. */
    cache: (name: string, id: string) => `${prefix}cache:${name}:{${id}}`,
    /** The short fill lock of a cached value. */
    cacheLock: (name: string, id: string) => `${prefix}cache:${name}:{${id}}:lock`,
    /** The version counter of a cached value, bumped on every invalidation. */
    cacheVersion: (name: string, id: string) => `${prefix}cache:${name}:{${id}}:ver`,

    // ---- rooms
    /** The claim of a live PIN: its value is the room id. */
    pin: (pin: string) => `${prefix}pin:${pin}`,
    /** Per-room keys share the room's hash tag. */
    room,
  };
}
