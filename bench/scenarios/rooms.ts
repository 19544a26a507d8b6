/**
 * Many rooms: 2,000 clients in 500 rooms of 4 (a host and three members),
 * every room publishing 100-byte entries while members keep leaving and
 * joining again.
 *
 * - pinroom: authenticated sockets; hosts `room:create`, members `room:join`
 *   by PIN; everyone `feed:subscribe`s; hosts `feed:publish`; the churn is
 *   `room:leave`, then `room:join` and `feed:subscribe` again.
 * - bare Socket.IO: `join`/`leave` (socket.join/leave) and
 *   `publish` → `io.to(room).emit`.
 *
 * Each room keeps at most WINDOW entries that its host has not yet received
 * back in flight, so delivery, not queueing, is measured.
 *
 *   taskset -c 1 node --import tsx bench/scenarios/rooms.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RoomView } from '../../shared/schemas.ts';
import { connectMany, type EioSocket } from '../lib/eio-client.ts';
import { forEachLimit, okData, promoteToHosts, requestOk, signInGuests, startPinroom } from '../lib/pinroom.ts';
import { round2, sleep, startPinnedServer, withCpu } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const ROOMS = 500;
const PER_ROOM = 4;
const WINDOW = 2;
const CHURNERS = 20;
const WARMUP_MS = 1500;
const MEASURE_MS = 5000;
const MARK = 0x7e;
const text = (seq: number) => `~${seq}~`.padEnd(100, 'x');

interface Target {
  name: string;
  pid: number;
  /** sockets[r * PER_ROOM] is room r's host (publisher); the others are members. */
  sockets: EioSocket[];
  publish(r: number, seq: number, onAck: (args: unknown[]) => void): void;
  /** Leave room r and join it again (and resubscribe). */
  churn(r: number, socket: EioSocket): Promise<void>;
  close(): Promise<void>;
}

interface Measured {
  deliveriesPerSecond: number;
  churnPerSecond: number;
  cpu: { server?: number; client: number };
  errors: number;
}

async function measure(target: Target): Promise<Measured> {
  let delivered = 0;
  let seq = 0;
  let errors = 0;
  let running = true;
  const published = new Array<number>(ROOMS).fill(0);
  const echoed = new Array<number>(ROOMS).fill(0);
  const pump = (r: number) => {
    while (running && published[r]! - echoed[r]! < WINDOW) {
      published[r]!++;
      target.publish(r, seq++, (args) => {
        if ((args[0] as { ok?: boolean }).ok !== true) {
          errors++;
          echoed[r]!++;
          if (errors <= 3) process.stderr.write(`${target.name}: publish refused ${JSON.stringify(args[0])}\n`);
          pump(r);
        }
      });
    }
  };
  target.sockets.forEach((socket, i) => {
    const r = Math.floor(i / PER_ROOM);
    const host = i % PER_ROOM === 0;
    socket.watch('feed:entry', (data) => {
      if (data.indexOf(MARK) < 0) return;
      delivered++;
      if (host) {
        echoed[r]!++;
        pump(r);
      }
    });
  });

  let churned = 0;
  const busy = new Set<number>();
  const churnLoop = async () => {
    while (running) {
      const r = Math.floor(Math.random() * ROOMS);
      const i = r * PER_ROOM + 1 + Math.floor(Math.random() * (PER_ROOM - 1));
      if (busy.has(i)) continue;
      busy.add(i);
      try {
        await target.churn(r, target.sockets[i]!);
        churned += 2; // one leave, one join
      } catch (err) {
        errors++;
        if (errors <= 3) process.stderr.write(`${target.name}: churn failed ${(err as Error).message}\n`);
      } finally {
        busy.delete(i);
      }
    }
  };

  for (let r = 0; r < ROOMS; r++) pump(r);
  const safety = setInterval(() => {
    for (let r = 0; r < ROOMS; r++) pump(r);
  }, 100);
  const churners = Array.from({ length: CHURNERS }, churnLoop);
  await sleep(WARMUP_MS);
  const d0 = delivered;
  const c0 = churned;
  const { ms, cpu } = await withCpu(target.pid, () => sleep(MEASURE_MS));
  const result = {
    deliveriesPerSecond: Math.round(((delivered - d0) / ms) * 1000),
    churnPerSecond: Math.round(((churned - c0) / ms) * 1000),
    cpu,
    errors,
  };
  running = false;
  clearInterval(safety);
  await Promise.all(churners);
  await sleep(500);
  return result;
}

async function pinroomTarget(): Promise<Target> {
  const pr = await startPinroom();
  try {
    const url = pr.server.url;
    const guests = await signInGuests(url, ROOMS * PER_ROOM, 64);
    const hostIndexes = Array.from({ length: ROOMS }, (_, r) => r * PER_ROOM);
    const hosts = await promoteToHosts(pr, hostIndexes.map((i) => guests[i]!));
    hostIndexes.forEach((i, r) => (guests[i] = hosts[r]!));
    const sockets = await connectMany(url, ROOMS * PER_ROOM, { concurrency: 100, authFor: (i) => ({ token: guests[i]!.accessToken }) });
    const rooms: RoomView[] = new Array(ROOMS);
    await forEachLimit(ROOMS, 50, async (r) => {
      const host = sockets[r * PER_ROOM]!;
      rooms[r] = okData<{ room: RoomView }>(await host.request('room:create', { title: `Room ${r}` }), 'room:create').room;
      await requestOk(host, 'feed:subscribe', { roomId: rooms[r]!.id });
    });
    await forEachLimit(ROOMS * PER_ROOM, 100, async (i) => {
      if (i % PER_ROOM === 0) return;
      const room = rooms[Math.floor(i / PER_ROOM)]!;
      await requestOk(sockets[i]!, 'room:join', { pin: room.pin });
      await requestOk(sockets[i]!, 'feed:subscribe', { roomId: room.id });
    });
    await sleep(1000);
    return {
      name: 'pinroom',
      pid: pr.server.pid,
      sockets,
      publish(r, seq, onAck) {
        sockets[r * PER_ROOM]!.requestRaw(`["feed:publish",{"roomId":"${rooms[r]!.id}","type":"chat.message","payload":{"text":"${text(seq)}"},"clientMsgId":"b${seq}"}]`, onAck);
      },
      async churn(r, socket) {
        const room = rooms[r]!;
        await requestOk(socket, 'room:leave', { roomId: room.id });
        await requestOk(socket, 'room:join', { pin: room.pin });
        await requestOk(socket, 'feed:subscribe', { roomId: room.id });
      },
      async close() {
        for (const s of sockets) s.close();
        await pr.cleanup();
      },
    };
  } catch (err) {
    await pr.cleanup();
    throw err;
  }
}

async function bareTarget(): Promise<Target> {
  const server = await startPinnedServer('bench/baselines/socketio-server.ts', {});
  try {
    const sockets = await connectMany(server.url, ROOMS * PER_ROOM, { concurrency: 100 });
    await forEachLimit(ROOMS * PER_ROOM, 100, async (i) => {
      okData(await sockets[i]!.request('join', `room-${Math.floor(i / PER_ROOM)}`), 'join');
    });
    await sleep(500);
    return {
      name: 'socket.io',
      pid: server.pid,
      sockets,
      publish(r, seq, onAck) {
        sockets[r * PER_ROOM]!.requestRaw(`["publish",{"room":"room-${r}","type":"chat.message","payload":{"text":"${text(seq)}"}}]`, onAck);
      },
      async churn(r, socket) {
        okData(await socket.request('leave', `room-${r}`), 'leave');
        okData(await socket.request('join', `room-${r}`), 'join');
      },
      async close() {
        for (const s of sockets) s.close();
        await server.stop();
      },
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

async function run(make: () => Promise<Target>): Promise<Measured> {
  const target = await make();
  try {
    const result = await measure(target);
    process.stderr.write(`rooms ${target.name}: ${JSON.stringify(result)}\n`);
    return result;
  } finally {
    await target.close();
  }
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const pinroom = await run(pinroomTarget);
  const bare = await run(bareTarget);
  const baselineName = 'bare Socket.IO 4.8 (socket.join/leave, io.to(room).emit)';
  const rows: BenchRow[] = [
    {
      metric: `deliveries/s, ${ROOMS} rooms × ${PER_ROOM} clients, every room publishing, ${CHURNERS} members leaving and rejoining at any time`,
      unit: 'deliveries/s',
      pinroom: pinroom.deliveriesPerSecond,
      baseline: bare.deliveriesPerSecond,
      baselineName,
      ratio: round2(pinroom.deliveriesPerSecond / bare.deliveriesPerSecond),
      cpu: { server: pinroom.cpu.server!, client: pinroom.cpu.client },
      note: `baseline CPU: server ${bare.cpu.server}%, client ${bare.cpu.client}%; pinroom errors ${pinroom.errors}`,
    },
    {
      metric: 'leaves + joins per second during that load',
      unit: 'ops/s',
      pinroom: pinroom.churnPerSecond,
      baseline: bare.churnPerSecond,
      baselineName,
      ratio: round2(pinroom.churnPerSecond / bare.churnPerSecond),
      goal: { text: '≥ 0.5', met: pinroom.churnPerSecond / bare.churnPerSecond >= 0.5 },
      note: 'pinroom: room:leave, room:join by PIN (presence, feed entries, PIN lookup) and feed:subscribe; bare: socket.leave/join',
    },
  ];
  return { scenario: 'many rooms', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
