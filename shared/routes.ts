/**
 * The HTTP routes of the pinroom server, shared by the server (which
 * registers them) and clients (which call them). A path is a public name:
 * it never changes once published. `:name` segments are parameters; the
 * path builders below fill them in for clients.
 */
export const HttpRoutes = {
  /** `GET`: 200 while the process lives. */
  health: '/healthz',
  /** `GET`: 200 when Redis and PostgreSQL answer, else 503 (also while draining). */
  ready: '/readyz',
  /** `POST {username, password, displayName?}` → 201 session. */
  register: '/auth/register',
  /** `POST {username, password}` → 200 session. */
  login: '/auth/login',
  /** `POST {displayName}` → 201 session of a guest user. */
  guest: '/auth/guest',
  /** `POST {refreshToken}` → 200 token pair. */
  refresh: '/auth/refresh',
  /** `POST {refreshToken}` → 204. */
  logout: '/auth/logout',
  /** `GET`: the public keys that verify access tokens. */
  jwks: '/.well-known/jwks.json',
  /** `GET`: the live room of a PIN. */
  pinLookup: '/rooms/pin/:pin',
  /** `POST` with `x-api-key`: a backend publishes into a room's feed. */
  roomEvents: '/api/rooms/:roomId/events',
  /** `GET`: Prometheus metrics of this node. */
  metrics: '/metrics',
  /** `GET` with an admin's access token: this node's live sockets and rooms. */
  adminOverview: '/admin/overview',
  /** `GET`: the OpenAPI 3 document of these routes (docs/operations.md). */
  openapi: '/openapi.json',
} as const;

export type HttpRoute = (typeof HttpRoutes)[keyof typeof HttpRoutes];

/** `GET /rooms/pin/:pin` for one PIN. */
export function pinLookupPath(pin: string): string {
  return HttpRoutes.pinLookup.replace(':pin', encodeURIComponent(pin));
}

/** `POST /api/rooms/:roomId/events` for one room. */
export function roomEventsPath(roomId: string): string {
  return HttpRoutes.roomEvents.replace(':roomId', encodeURIComponent(roomId));
}
