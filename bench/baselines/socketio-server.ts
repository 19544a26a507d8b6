/**
 * Baseline: a bare Socket.IO server of the same version as pinroom's, with
 * its defaults (no auth, no validation, no Redis). Rooms are joined and left
 * on request; `publish` broadcasts a feed-entry-shaped object with
 * `io.to(room).emit`. Run pinned to the server core by the benchmark. With
 * `REDIS_URL`, nodes share rooms through the classic `@socket.io/redis-adapter`
 * (channel prefix `BENCH_ADAPTER_PREFIX`), the baseline of the cross-node runs.
 *
 *   PORT=3100 node --import tsx bench/baselines/socketio-server.ts
 */
import { createServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 3100);
const host = process.env.HOST ?? '127.0.0.1';

const http = createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' });
  res.end('{}');
});
const io = new Server(http, { serveClient: false });
if (process.env.REDIS_URL) {
  const pub = new Redis(process.env.REDIS_URL);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub, { key: process.env.BENCH_ADAPTER_PREFIX ?? 'bench-socket.io' }));
}
let seq = 0;

io.on('connection', (socket) => {
  socket.on('join', (room: string, ack?: (r: unknown) => void) => {
    void socket.join(room);
    ack?.({ ok: true });
  });
  socket.on('leave', (room: string, ack?: (r: unknown) => void) => {
    void socket.leave(room);
    ack?.({ ok: true });
  });
  socket.on('publish', (msg: { room: string; type: string; payload: Record<string, unknown> }, ack?: (r: unknown) => void) => {
    const id = `${Date.now()}-${seq++}`;
    io.to(msg.room).emit('feed:entry', { roomId: msg.room, id, type: msg.type, actor: { id: socket.id, name: 'Bench' }, payload: msg.payload, ts: Date.now() });
    ack?.({ ok: true, data: { id } });
  });
});

http.listen(port, host);
process.on('SIGTERM', () => {
  io.close();
  process.exit(0);
});
