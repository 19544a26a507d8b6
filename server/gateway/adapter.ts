/**
 * The Socket.IO adapter that carries broadcasts, room joins and leaves and
 * disconnects between nodes through Redis. Two implementations, chosen by
 * `SOCKET_ADAPTER`:
 *
 * - `classic` (`createAdapter`): PUBLISH on one channel per namespace, every
 *   node PSUBSCRIBEs one pattern and filters locally. Every broadcast reaches
 *   every node; subscriptions never change with rooms.
 * - `sharded` (`createShardedAdapter`, Redis 7 SPUBLISH/SSUBSCRIBE): one
 *   shard channel per Socket.IO room in `dynamic` mode, so a broadcast only
 *   reaches nodes with members of that room, at the cost of one SSUBSCRIBE
 *   and SUNSUBSCRIBE per room a node gains or loses (every socket's user and
 *   session groups are rooms too). Needed for Redis Cluster.
 *
 * Both take the command connection to publish and the dedicated subscriber
 * connection; ioredis resubscribes both kinds after a reconnect.
 */
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';

export type AdapterKind = 'classic' | 'sharded';

export function createRedisAdapter(kind: AdapterKind, pub: Redis, sub: Redis, channel: string) {
  return kind === 'sharded' ? createShardedAdapter(pub, sub, { channelPrefix: channel, subscriptionMode: 'dynamic' }) : createAdapter(pub, sub, { key: channel });
}
