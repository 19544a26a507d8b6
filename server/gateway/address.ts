/**
 * Client addresses, and the key every per-address limit counts under.
 *
 * - The client address of an HTTP request (Fastify's `request.ip`) and of a
 *   Socket.IO handshake come from one trust function, compiled once from
 *   `TRUST_PROXY` and evaluated by `@fastify/proxy-addr` (what Fastify uses):
 *   walking `X-Forwarded-For` from the peer leftwards, trusted proxies are
 *   skipped and the first untrusted hop is the client. Entries left of it
 *   were written by the client and are ignored, so a forged header cannot
 *   choose an address. With no trust (`TRUST_PROXY=false`) it is the peer.
 * - `addressKey` groups an address for limits: an IPv4 address is its own
 *   key; an IPv6 address counts as its /64 (one customer network: a client
 *   holding a /64 would otherwise have 2^64 keys). Auth limits, the
 *   per-address connection cap and PIN guesses all key through it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isIP, isIPv6 } from 'node:net';
import proxyaddr from '@fastify/proxy-addr';
import type { TrustProxy } from '../config.ts';

/** Whether hop `i` (0 = the peer) at `address` is a trusted proxy. */
export type TrustFn = (address: string, hop: number) => boolean;

const compiled = new WeakMap<TrustProxy, TrustFn | false>();

/** The trust function of a `TRUST_PROXY` setting (compiled once per config object), or false for none. */
export function compileTrust(trust: TrustProxy): TrustFn | false {
  let fn = compiled.get(trust);
  if (fn === undefined) {
    if ('hops' in trust) {
      const hops = trust.hops;
      fn = hops > 0 ? (_address: string, hop: number) => hop < hops : false;
    } else {
      fn = trust.cidrs.length > 0 ? proxyaddr.compile([...trust.cidrs]) : false;
    }
    compiled.set(trust, fn);
  }
  return fn;
}

/**
 * `::ffff:10.0.0.1` → `10.0.0.1` (one client, one key over IPv4 and mapped
 * IPv6); IPv6 lowercased without a zone. Anything that is not an IP address
 * becomes `unknown`, one shared key, so odd values cannot mint fresh keys.
 */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  let value = address.trim().toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(value);
  if (mapped) value = mapped[1]!;
  const zone = value.indexOf('%');
  if (zone > 0 && isIPv6(value.slice(0, zone))) value = value.slice(0, zone);
  return isIP(value) ? value : 'unknown';
}

/**
 * The key of an address for per-address limits: IPv4 as is, IPv6 as its /64
 * (`2001:db8:1:2::/64`). Takes a normalized address.
 */
export function addressKey(address: string): string {
  if (!isIPv6(address)) return address;
  return `${ipv6Groups(address).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, as lowercase hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  let text = address;
  // A dotted IPv4 tail (`64:ff9b::192.0.2.1`) is the last two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array.from({ length: 8 - left.length - right.length }, () => '0');
  return [...left, ...fill, ...right].map((g) => Number.parseInt(g, 16).toString(16));
}

/** The client address of a Socket.IO handshake (`socket.handshake`, or an Engine.IO request's peer and headers). */
export function handshakeAddress(handshake: { address: string; headers: IncomingHttpHeaders }, trust: TrustProxy): string {
  const fn = compileTrust(trust);
  if (!fn) return normalizeAddress(handshake.address);
  const request = { socket: { remoteAddress: handshake.address }, headers: handshake.headers };
  return normalizeAddress(proxyaddr(request as Parameters<typeof proxyaddr>[0], fn));
}

/** The client address of an HTTP request: Fastify's `request.ip`, computed with the same trust function (see `createHttp`). */
export function requestAddress(request: { ip: string }): string {
  return normalizeAddress(request.ip);
}
