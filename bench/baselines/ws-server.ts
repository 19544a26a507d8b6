/**
 * Baseline: a raw `ws` server, the floor under any WebSocket fan-out. It
 * speaks just enough Engine.IO/Socket.IO framing for the benchmark's load
 * client (open packet, namespace CONNECT, acks) and broadcasts by building one
 * WebSocket frame per message (`WebSocket.Sender.frame`) and writing that same
 * frame to every client of the room. No heartbeats, no validation.
 *
 *   PORT=3200 node --import tsx bench/baselines/ws-server.ts
 */
import { createServer } from 'node:http';
import * as wsLib from 'ws';
import { WebSocketServer, type WebSocket } from 'ws';

const port = Number(process.env.PORT ?? 3200);
const host = process.env.HOST ?? '127.0.0.1';

const http = createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' });
  res.end('{}');
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
const rooms = new Map<string, Set<WebSocket>>();
let seq = 0;

interface Sender {
  sendFrame(list: Buffer[], cb?: () => void): void;
}
const senderOf = (ws: WebSocket) => (ws as unknown as { _sender: Sender })._sender;

wss.on('connection', (ws) => {
  const joined = new Set<string>();
  ws.send(`0${JSON.stringify({ sid: String(seq++), upgrades: [], pingInterval: 25000, pingTimeout: 20000, maxPayload: 1e6 })}`);
  ws.on('message', (data: Buffer) => {
    const text = data.toString();
    if (text.startsWith('40')) {
      ws.send(`40{"sid":"${seq++}"}`);
      return;
    }
    if (!text.startsWith('42')) return;
    const open = text.indexOf('[');
    const ackId = text.slice(2, open);
    const [name, arg] = JSON.parse(text.slice(open)) as [string, unknown];
    let answer: unknown = { ok: true };
    if (name === 'join') {
      const room = arg as string;
      let members = rooms.get(room);
      if (!members) rooms.set(room, (members = new Set()));
      members.add(ws);
      joined.add(room);
    } else if (name === 'leave') {
      rooms.get(arg as string)?.delete(ws);
      joined.delete(arg as string);
    } else if (name === 'publish') {
      const msg = arg as { room: string; type: string; payload: Record<string, unknown> };
      const id = `${Date.now()}-${seq++}`;
      const packet = Buffer.from(`42${JSON.stringify(['feed:entry', { roomId: msg.room, id, type: msg.type, actor: { id: 'x', name: 'Bench' }, payload: msg.payload, ts: Date.now() }])}`);
      const frame = (wsLib as unknown as { Sender: { frame(data: Buffer, options: object): Buffer[] } }).Sender.frame(packet, { readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true });
      for (const member of rooms.get(msg.room) ?? []) senderOf(member).sendFrame(frame);
      answer = { ok: true, data: { id } };
    }
    if (ackId !== '') ws.send(`43${ackId}${JSON.stringify([answer])}`);
  });
  ws.on('close', () => {
    for (const room of joined) rooms.get(room)?.delete(ws);
  });
});

http.listen(port, host);
process.on('SIGTERM', () => {
  wss.close();
  http.close();
  process.exit(0);
});
