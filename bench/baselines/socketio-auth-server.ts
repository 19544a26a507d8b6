/**
 * Baseline: the bare Socket.IO server (same version and options as
 * socketio-server.ts) with the access-token check pinroom makes, in `io.use`:
 * pinroom's own verification (`server/auth/tokens.ts`: Ed25519 signature with
 * the `kid`'s KeyObject, pinned algorithm, `typ`, `iss`, `aud`, `iat`, `nbf`,
 * `exp` and claim checks) with its cache of verified tokens off, so every
 * handshake pays the full check, as a server that verifies in `io.use` does.
 * No session check, no groups, no Redis: the fair baseline of a connect storm.
 * Keys and issuer come from the same environment as the pinroom server under test.
 *
 *   PORT=3101 AUTH_DATA_DIR=... node --import tsx bench/baselines/socketio-auth-server.ts
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { loadSigningKeys } from '../../server/auth/signing-keys.ts';
import { createTokenService } from '../../server/auth/tokens.ts';
import { loadConfig } from '../../server/config.ts';

const config = loadConfig(process.env);
const signing = await loadSigningKeys(config.auth, config.env);
const tokens = createTokenService({ config: { ...config.auth, tokenCacheSize: 0 }, keys: () => signing });

const http = createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' });
  res.end('{}');
});
const io = new Server(http, { serveClient: false });

io.use((socket, next) => {
  tokens.verify((socket.handshake.auth as { token?: unknown }).token).then(
    (claims) => {
      socket.data.user = { id: claims.userId, name: claims.name, kind: claims.kind };
      next();
    },
    (err: Error) => next(err),
  );
});

http.listen(config.http.port, config.http.host);
process.on('SIGTERM', () => {
  io.close();
  process.exit(0);
});
