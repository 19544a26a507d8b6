/**
 * Churn under load: 2,000 clients in 500 rooms of 4 (a host and three members),
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
 * Both servers stay up side by side and are measured in ROUNDS interleaved
 * rounds (pinroom, then bare, each round); each round's ratio is taken against
 * the bare round next to it, and the median round counts.
 *
 *   taskset -c 1 node --import tsx bench/scenarios/churn.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RoomView } from '../../shared/schemas.ts';
import { connectMany, type EioSocket } from '../lib/eio-client.ts';
import { forEachLimit, okData, promoteToHosts, requestOk, signInGuests, startPinroom } from '../lib/pinroom.ts';
import { median, round2, sleep, startPinnedServer, withCpu } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const ROOMS = 500;
const PER_ROOM = 4;
const WINDOW = 2;
const CHURNERS = 20;
const WARMUP_MS = 1500;
const MEASURE_MS = 5000;
/** Rounds per server, interleaved; the median round counts. */
const ROUNDS = Number(process.env.BENCH_CHURN_ROUNDS ?? 3);
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

/** The counters of one round; the sockets' watchers (attached once per target) feed the current one. */
interface RoundState {
  running: boolean;
  delivered: number;
  errors: number;
  published: number[];
  echoed: number[];
}

/**
 * Attach the delivery watchers to a target's sockets once and return a
 * function that measures one round: warm-up, then MEASURE_MS of publishing
 * and churning, then it waits for the round's publishes to come back so the
 * next round starts from an empty window.
 */
function prepare(target: Target): () => Promise<Measured> {
  let state: RoundState = { running: false, delivered: 0, errors: 0, published: [], echoed: [] };
  let seq = 0;
  const pump = (r: number) => {
    const st = state;
    while (st.running && st.published[r]! - st.echoed[r]! < WINDOW) {
      st.published[r]!++;
      target.publish(r, seq++, (args) => {
        if ((args[0] as { ok?: boolean }).ok !== true) {
          st.errors++;
          st.echoed[r]!++;
          if (st.errors <= 3) process.stderr.write(`${target.name}: publish refused ${JSON.stringify(args[0])}\n`);
          if (st === state) pump(r);
        }
      });
    }
  };
  target.sockets.forEach((socket, i) => {
    const r = Math.floor(i / PER_ROOM);
    const host = i % PER_ROOM === 0;
    socket.watch('feed:entry', (data) => {
      if (data.indexOf(MARK) < 0) return;
      state.delivered++;
      if (host) {
        state.echoed[r]!++;
        pump(r);
      }
    });
  });

  return async () => {
    const st: RoundState = { running: true, delivered: 0, errors: 0, published: new Array<number>(ROOMS).fill(0), echoed: new Array<number>(ROOMS).fill(0) };
    state = st;
    let churned = 0;
    const busy = new Set<number>();
    const churnLoop = async () => {
      while (st.running) {
        const r = Math.floor(Math.random() * ROOMS);
        const i = r * PER_ROOM + 1 + Math.floor(Math.random() * (PER_ROOM - 1));
        if (busy.has(i)) continue;
        busy.add(i);
        try {
          await target.churn(r, target.sockets[i]!);
          churned += 2; // one leave, one join
        } catch (err) {
          st.errors++;
          if (st.errors <= 3) process.stderr.write(`${target.name}: churn failed ${(err as Error).message}\n`);
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
    const d0 = st.delivered;
    const c0 = churned;
    const { ms, cpu } = await withCpu(target.pid, () => sleep(MEASURE_MS));
    const result = {
      deliveriesPerSecond: Math.round(((st.delivered - d0) / ms) * 1000),
      churnPerSecond: Math.round(((churned - c0) / ms) * 1000),
      cpu,
      errors: st.errors,
    };
    st.running = false;
    clearInterval(safety);
    await Promise.all(churners);
    // the round's entries still in flight come back before the next round starts
    for (let waited = 0; waited < 10_000 && st.echoed.some((e, r) => e < st.published[r]!); waited += 100) await sleep(100);
    await sleep(500);
    return result;
  };
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

interface Round {
  pinroom: Measured;
  bare: Measured;
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const rounds: Round[] = [];
  const pinroomUp = await pinroomTarget();
  let bareUp: Target | undefined;
  try {
    bareUp = await bareTarget();
    const measurePinroom = prepare(pinroomUp);
    const measureBare = prepare(bareUp);
    for (let round = 0; round < ROUNDS; round++) {
      const pinroom = await measurePinroom();
      const bare = await measureBare();
      rounds.push({ pinroom, bare });
      process.stderr.write(`churn round ${round + 1}: pinroom ${JSON.stringify(pinroom)}, socket.io ${JSON.stringify(bare)}\n`);
    }
  } finally {
    await bareUp?.close();
    await pinroomUp.close();
  }

  const baselineName = 'bare Socket.IO 4.8 (socket.join/leave, io.to(room).emit)';
  const deliveryRatio = (r: Round) => r.pinroom.deliveriesPerSecond / r.bare.deliveriesPerSecond;
  const churnRatio = (r: Round) => r.pinroom.churnPerSecond / r.bare.churnPerSecond;
  const byDelivery = median(rounds, deliveryRatio);
  const byChurn = median(rounds, churnRatio);
  const list = (pick: (r: Round) => number) => rounds.map(pick).join(', ');
  const ratios = (ratio: (r: Round) => number) => rounds.map((r) => ratio(r).toFixed(2)).join(', ');
  const how = `the median of ${ROUNDS} interleaved rounds by per-round ratio`;
  const rows: BenchRow[] = [
    {
      metric: `deliveries/s, ${ROOMS} rooms × ${PER_ROOM} clients, every room publishing, ${CHURNERS} members leaving and rejoining at any time`,
      unit: 'deliveries/s',
      pinroom: byDelivery.pinroom.deliveriesPerSecond,
      baseline: byDelivery.bare.deliveriesPerSecond,
      baselineName,
      ratio: round2(deliveryRatio(byDelivery)),
      cpu: { server: byDelivery.pinroom.cpu.server!, client: byDelivery.pinroom.cpu.client },
      note: `${how} (pinroom ${list((r) => r.pinroom.deliveriesPerSecond)}; bare ${list((r) => r.bare.deliveriesPerSecond)}; per-round ratios ${ratios(deliveryRatio)}); baseline CPU in that round: server ${byDelivery.bare.cpu.server}%, client ${byDelivery.bare.cpu.client}%; pinroom errors ${list((r) => r.pinroom.errors)}`,
    },
    {
      metric: 'leaves + joins per second during that load',
      unit: 'ops/s',
      pinroom: byChurn.pinroom.churnPerSecond,
      baseline: byChurn.bare.churnPerSecond,
      baselineName,
      ratio: round2(churnRatio(byChurn)),
      goal: { text: '≥ 0.5', met: churnRatio(byChurn) >= 0.5 },
      note: `${how} (pinroom ${list((r) => r.pinroom.churnPerSecond)}; bare ${list((r) => r.bare.churnPerSecond)}; per-round ratios ${ratios(churnRatio)}); pinroom: room:leave, room:join by PIN (presence, feed entries, PIN lookup) and feed:subscribe; bare: socket.leave/join`,
    },
  ];
  return { scenario: 'many rooms, churn', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
