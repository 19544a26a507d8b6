/**
 * The Socket.IO server, typed with the shared wire contract. The Redis adapter
 * is attached in `app.start()`, once its connections are up.
 */
import type { Server as NodeHttpServer, IncomingMessage } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import { Server, type Socket } from 'socket.io';
import type { Logger } from 'pino';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/events.ts';
import type { AuthClosed, UserKind } from '../../shared/schemas.ts';
import type { Config } from '../config.ts';
import { createConnectionCap } from './connection-cap.ts';
import { releaseHandshakeFrame } from './internals.ts';

/** The authenticated user of a socket, set by the auth middleware. */
export interface SocketUser {
  id: string;
  name: string;
  kind: UserKind;
}

export interface SocketData {
  user: SocketUser;
  /** The session (refresh-token family) the access token belongs to. */
  sessionId: string;
  /** When the socket's current access token expires, ms since the epoch. */
  tokenExpiresAt: number;
  /** The client address, as seen through a trusted proxy when configured. */
  address: string;
  /** The name the user goes by in each room this socket joined or created (set by the rooms handlers). */
  roomNames?: Map<string, string>;
}

/** Messages between nodes (`io.serverSideEmit`), on the adapter's main channel, which every node subscribes at start-up. */
export interface InterServerEvents {
  /** Close every socket of a session on the receiving node, with `auth:closed { code }` first. */
  'session:close': (sessionId: string, code: AuthClosed['code']) => void;
}

export type PinroomServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type PinroomSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

/** Shared by every socket's cleared handshake fields (one object, not three per socket). */
const EMPTY: Record<string, never> = Object.freeze({});

/**
 * Node's net.Socket keeps its idle timer in a symbol-keyed field. Clearing the
 * timer (`setTimeout(0)`) leaves the cleared `Timeout` and its bound callback
 * referenced there for the connection's life (≈ 0.2 KB per WebSocket).
 */
let timeoutField: symbol | undefined;
function clearIdleTimer(socket: NetSocket): void {
  socket.setTimeout(0);
  timeoutField ??= Object.getOwnPropertySymbols(socket).find((s) => s.description === 'timeout');
  if (timeoutField) (socket as unknown as Record<symbol, unknown>)[timeoutField] = null;
}

export function createIo({ config, logger, httpServer }: { config: Config; logger: Logger; httpServer: NodeHttpServer }): PinroomServer {
  const anyOrigin = config.http.corsOrigins.includes('*');
  const allowed = new Set(config.http.corsOrigins);
  const cap = createConnectionCap({ max: config.socket.maxConnectionsPerAddress, trustProxy: config.http.trustProxy });
  const io = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(httpServer, {
    transports: ['websocket', 'polling'],
    maxHttpBufferSize: config.socket.maxPayloadBytes,
    pingInterval: config.socket.pingIntervalMs,
    pingTimeout: config.socket.pingTimeoutMs,
    connectTimeout: config.socket.connectTimeoutMs,
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    cors: { origin: anyOrigin ? true : [...allowed], credentials: false },
    // Cross-site WebSocket hijacking: a browser always sends Origin, for
    // WebSocket upgrades as well as polling. Non-browser clients send none.
    allowRequest: (req: IncomingMessage, callback) => {
      const origin = req.headers.origin;
      if (!(anyOrigin || origin === undefined || allowed.has(origin))) return callback('origin not allowed', false);
      // Per-address connection cap (this node only): refused before a session exists.
      if (!cap.admits(req)) return callback('too many connections from this address', false);
      callback(null, true);
    },
  });
  // The HTTP server's idle timeout (Fastify's connectionTimeout) would stay armed on
  // an upgraded socket, re-armed by every frame read or written. A WebSocket's
  // liveness is Engine.IO's heartbeat (pingInterval + pingTimeout) instead.
  httpServer.on('upgrade', (_req: IncomingMessage, socket: NetSocket) => clearIdleTimer(socket));
  io.engine.on('connection', (conn: Parameters<typeof cap.track>[0]) => {
    if (!cap.track(conn)) logger.warn({ maxConnectionsPerAddress: config.socket.maxConnectionsPerAddress }, 'connection over the per-address cap closed');
  });
  io.on('connection', (socket) => {
    // Everything pinroom needs from the handshake (user, session, client
    // address) is in `socket.data` by now. Drop the rest: the HTTP request
    // object, its headers and the access token in `auth` would otherwise stay
    // referenced for the connection's whole life (memory per idle socket, and a
    // credential kept in memory for nothing). `address`, `time` and `issued` remain.
    // The bytes of the CONNECT frame itself are released from `ws` too.
    (socket.conn as { request: unknown }).request = null;
    socket.handshake.headers = EMPTY as typeof socket.handshake.headers;
    socket.handshake.auth = EMPTY;
    socket.handshake.query = EMPTY as typeof socket.handshake.query;
    releaseHandshakeFrame(socket);
  });
  return io;
}
