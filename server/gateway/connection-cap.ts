/**
 * A per-address cap on open Engine.IO connections, kept in memory per node
 * (per worker process): thousands of connections from one address exhaust
 * file descriptors and memory of the node they land on, whatever the others hold.
 *
 * - `admits(req)` (in `allowRequest`) refuses a new handshake when its
 *   address already holds `max` connections on this node: HTTP 403 before
 *   any session is allocated.
 * - `track(conn)` (on `io.engine`'s `connection`) counts the connection until
 *   it closes. Handshakes that passed `admits` concurrently can overshoot by a
 *   few; `track` closes those at once, so the cap holds exactly.
 */
import type { IncomingMessage } from 'node:http';
import type { TrustProxy } from '../config.ts';
import { addressKey, handshakeAddress } from './address.ts';

/** The part of an Engine.IO socket the cap uses. */
export interface EngineConnection {
  request: IncomingMessage;
  once(event: 'close', listener: () => void): unknown;
  close(): unknown;
}

export type ConnectionCap = ReturnType<typeof createConnectionCap>;

export function createConnectionCap({ max, trustProxy }: { max: number; trustProxy: TrustProxy }) {
  /** Open connections by address key; an entry goes when its count reaches zero, so the map is bounded by open connections. */
  const open = new Map<string, number>();
  const addressOf = (req: IncomingMessage) => addressKey(handshakeAddress({ address: req.socket?.remoteAddress ?? '', headers: req.headers }, trustProxy));

  return {
    /** Whether a new handshake from this request's address is allowed now. */
    admits(req: IncomingMessage): boolean {
      return (open.get(addressOf(req)) ?? 0) < max;
    },

    /** Count an established connection until it closes; close it now if its address is already at the cap. */
    track(conn: EngineConnection): boolean {
      const address = addressOf(conn.request);
      const count = open.get(address) ?? 0;
      if (count >= max) {
        conn.close();
        return false;
      }
      open.set(address, count + 1);
      conn.once('close', () => {
        const left = (open.get(address) ?? 1) - 1;
        if (left <= 0) open.delete(address);
        else open.set(address, left);
      });
      return true;
    },

    /** Open connections of an address key (`addressKey`) on this node. */
    count(address: string): number {
      return open.get(address) ?? 0;
    },
  };
}
