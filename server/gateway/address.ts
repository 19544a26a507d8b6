/**
 * The client address of a request or a Socket.IO handshake, the key of
 * per-client rate limits and the `address` of a socket. With
 * `config.http.trustProxy` it is read from `X-Forwarded-For` the way Fastify
 * reads it for HTTP (`trustProxy: true` trusts every hop, so the left-most
 * entry is the client); otherwise it is the peer address of the connection.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';

/** `::ffff:10.0.0.1` → `10.0.0.1`, so that one client has one key over IPv4 and mapped IPv6. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  const trimmed = address.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(trimmed);
  return mapped ? mapped[1]! : trimmed.toLowerCase();
}

/** The client address behind `X-Forwarded-For`, or `undefined` when the header has no valid address. */
function forwardedFor(headers: IncomingHttpHeaders): string | undefined {
  const raw = headers['x-forwarded-for'];
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  if (!value) return undefined;
  const first = value.split(',')[0]!.trim();
  return isIP(first) ? first : undefined;
}

/** The client address of a Socket.IO handshake (`socket.handshake`). */
export function handshakeAddress(handshake: { address: string; headers: IncomingHttpHeaders }, trustProxy: boolean): string {
  const forwarded = trustProxy ? forwardedFor(handshake.headers) : undefined;
  return normalizeAddress(forwarded ?? handshake.address);
}

/** The client address of an HTTP request; Fastify's `request.ip` already honours `trustProxy`. */
export function requestAddress(request: { ip: string }): string {
  return normalizeAddress(request.ip);
}
