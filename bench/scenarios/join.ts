/**
 * Joining at scale: room fill, memory of a member, rejoin storm.
 *
 * - Room fill: N − 1 joiners (guest tokens issued beforehand) fill one room
 *   of N (its host is the N-th member), 50 in flight, each: connect (JWT
 *   handshake), `room:join` by PIN, `feed:subscribe` from the join's feed
 *   position. N = 100, 1,000, 10,000. Reported per size: joins/s, server CPU
 *   per join, and deliveries caused per join (every `room:presence` and
 *   `feed:entry` frame any member received from the first join until the
 *   paced broadcasts settled, ÷ joins). Baseline in the same run: bare
 *   Socket.IO connect + `socket.join` with the same concurrency. After one
 *   uncounted warm-up fill each, rounds are interleaved (pinroom, bare, per
 *   size); the median counts. The 1,000 ÷ 100 row takes each round's ratio
 *   (its fill to 1,000 against its fill to 100) and the median round counts.
 * - Memory of a member: RSS and V8 heap per joined-and-subscribed member at
 *   10,000 members in one room, each read after a full GC and a
 *   memory-reducing one on a freshly started process, against bare Socket.IO
 *   sockets joined to one room. The RSS after the full GC alone is reported
 *   too: on Node 24 it still holds the free heap pages the fill's garbage
 *   left in V8's page pool (see bench/lib/memory-probe.cjs).
 *   MEMORY_ROUNDS rounds, interleaved (pinroom, then bare, each round on
 *   fresh processes); each round's ratio is against the bare round next to
 *   it, and the median round counts. Three rounds, like the fills: a round
 *   costs roughly a minute (most of it the pinroom fill of 10,000, 15–35 s
 *   in the fill rounds so far), which keeps the three within a few minutes
 *   of a ~20-minute bench; fewer would not do, since the per-member figure
 *   is the difference of two RSS readings of one process (whatever the
 *   allocator kept moves it), one round cannot be told from noise, and two
 *   have no median.
 * - Rejoin storm: 2,000 members of 100 rooms (a host and 19 members each),
 *   subscribed; the node is restarted; while they are away each room gets 3
 *   entries (HTTP API); then all reconnect, rejoin by PIN and resubscribe
 *   with `since` (250 handshakes in flight). Time from the storm's start to
 *   the last `recovered: true`, and entries lost or doubled. STORM_ROUNDS
 *   rounds, each with new rooms on a freshly restarted node; the median
 *   time counts, and every round must recover everyone with nothing lost or
 *   doubled. Each round ends its rooms, so no host grace runs out in a later
 *   round.
 *
 * The load client is the benchmark's Engine.IO/Socket.IO v5 client (same
 * frames as socket.io-client, far less CPU per socket), pinned to the load
 * core; servers to the server core.
 *
 *   taskset -c 1 node --import tsx bench/scenarios/join.ts
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FeedEntry, FeedPosition, RoomJoined, RoomView, SessionResponse } from '../../shared/schemas.ts';
import { tempDirPrefix } from '../../tests/support/leftovers.ts';
import { connectMany, EioSocket } from '../lib/eio-client.ts';
import { forEachLimit, okData, promoteToHosts, requestOk, signInGuests, startPinroom, type PinroomUnderTest } from '../lib/pinroom.ts';
import { median as medianBy, memoryAfterGc, memoryProbeArgs, round2, sleep, startPinnedServer, withCpu, type Pinned } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

/** Parts to run (development aid): `fill`, `memory`, `storm`; all by default. */
const PARTS = new Set((process.env.BENCH_JOIN_PARTS ?? 'fill,memory,storm').split(','));
const SIZES = (process.env.BENCH_JOIN_SIZES ?? '100,1000,10000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_JOIN_ROUNDS ?? 3);
const IN_FLIGHT = 50;
/** Joins of the uncounted warm-up fill of each server. */
const WARMUP = 500;
const MEMORY_MEMBERS = Number(process.env.BENCH_JOIN_MEMORY ?? 10_000);
/** Memory rounds (pinroom then bare, fresh processes each); the median round counts. */
const MEMORY_ROUNDS = Number(process.env.BENCH_JOIN_MEMORY_ROUNDS ?? 3);
/** Rejoin storms, each on a freshly restarted node; the median counts. */
const STORM_ROUNDS = Number(process.env.BENCH_JOIN_STORM_ROUNDS ?? 3);
const STORM_ROOMS = 100;
const STORM_PER_ROOM = 20;
const STORM_IN_FLIGHT = 250;
const STORM_ENTRIES_BEFORE = 2;
const STORM_ENTRIES_AWAY = 3;
const API_KEY = 'bench-api-key-0123456789abcdef';
/** pinroom's defaults: the paced broadcasts of a room of N settle within PRESENCE_BATCH_MS × ⌈N / ROOM_ROSTER_BROADCAST_MAX⌉. */
const settleMs = (size: number) => 100 * Math.ceil(size / 200) + 1500;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

interface Fill {
  joinsPerSecond: number;
  seconds: number;
  cpuMsPerJoin: number;
  deliveriesPerJoin: number;
  cpu: { server?: number; client: number };
}

/** Fill one pinroom room of `size`: the host creates it, size − 1 joiners come in. */
async function fillPinroom(pr: PinroomUnderTest, host: SessionResponse, guests: SessionResponse[], size: number): Promise<Fill> {
  const url = pr.server.url;
  const hostSocket = await EioSocket.connect(url, { auth: { token: host.accessToken } });
  const counters: (() => number)[] = [];
  const count = (s: EioSocket) => counters.push(s.watch('room:presence'), s.watch('feed:entry'));
  count(hostSocket);
  const { room } = okData<{ room: RoomView }>(await hostSocket.request('room:create', { title: `Fill ${size}`, maxMembers: size }), 'room:create');
  await requestOk(hostSocket, 'feed:subscribe', { roomId: room.id });
  const joiners: EioSocket[] = [];
  const { ms, cpu } = await withCpu(pr.server.pid, () =>
    forEachLimit(size - 1, IN_FLIGHT, async (i) => {
      const socket = await EioSocket.connect(url, { auth: { token: guests[i]!.accessToken } });
      joiners.push(socket);
      count(socket);
      const joined = await requestOk<RoomJoined>(socket, 'room:join', { pin: room.pin });
      const feed = joined.feed!;
      await requestOk(socket, 'feed:subscribe', { roomId: room.id, since: { epoch: feed.epoch, id: feed.lastId } });
    }),
  );
  await sleep(settleMs(size));
  const deliveries = counters.reduce((sum, read) => sum + read(), 0);
  const joins = size - 1;
  await requestOk(hostSocket, 'room:end', { roomId: room.id });
  for (const s of [...joiners, hostSocket]) s.close();
  await sleep(1000 + size / 10); // the closes are handled before the next round
  return {
    joinsPerSecond: (joins / ms) * 1000,
    seconds: ms / 1000,
    cpuMsPerJoin: ((cpu.server ?? 0) / 100) * (ms / joins),
    deliveriesPerJoin: deliveries / joins,
    cpu,
  };
}

/** The same fill on bare Socket.IO: connect + `socket.join`. */
async function fillBare(bare: Pinned, size: number, round: number): Promise<Fill> {
  const sockets: EioSocket[] = [];
  const { ms, cpu } = await withCpu(bare.pid, () =>
    forEachLimit(size - 1, IN_FLIGHT, async () => {
      const socket = await EioSocket.connect(bare.url);
      sockets.push(socket);
      okData(await socket.request('join', `fill-${size}-${round}`), 'join');
    }),
  );
  for (const s of sockets) s.close();
  await sleep(1000 + size / 20);
  const joins = size - 1;
  return { joinsPerSecond: (joins / ms) * 1000, seconds: ms / 1000, cpuMsPerJoin: ((cpu.server ?? 0) / 100) * (ms / joins), deliveriesPerJoin: 0, cpu };
}

interface Memory {
  rss: number;
  heap: number;
  /** RSS per member read after the full GC alone, V8's free pooled pages included. */
  rssAfterFullGc: number;
}

/** Memory per member: (after − before) / members, each read after a full GC and a memory-reducing one. */
async function memoryPerMember(server: Pinned, file: string, members: number, fill: () => Promise<{ sockets: EioSocket[]; end?: () => Promise<void> }>): Promise<Memory> {
  await sleep(3000);
  const before = await memoryAfterGc(server.pid, file);
  const { sockets, end } = await fill();
  await sleep(3000);
  const after = await memoryAfterGc(server.pid, file);
  await end?.();
  for (const s of sockets) s.close();
  return {
    rss: Math.round((after.rss - before.rss) / members),
    heap: Math.round((after.heapUsed - before.heapUsed) / members),
    rssAfterFullGc: Math.round((after.rssAfterFullGc - before.rssAfterFullGc) / members),
  };
}

interface MemoryRound {
  pinroom: Memory;
  bare: Memory;
}

interface Storm {
  seconds: number;
  recovered: number;
  lost: number;
  doubled: number;
  members: number;
}

/** The rejoin storm: 2,000 members of 100 rooms, the node restarted under them. */
async function rejoinStorm(pr: PinroomUnderTest, hosts: SessionResponse[], guests: SessionResponse[]): Promise<Storm> {
  const url = () => pr.server.url;
  const perRoom = STORM_PER_ROOM - 1;
  const held: Map<string, number>[] = []; // per member: entry id → times received
  const last: (FeedPosition & { roomId: string })[] = [];
  const expected = new Map<string, Set<string>>(); // room id → chat entry ids
  const watchEntries = (s: EioSocket, i: number) =>
    s.watch('feed:entry', (frame) => {
      const [, entry] = JSON.parse(frame.subarray(2).toString()) as [string, FeedEntry];
      if (entry.type !== 'chat.message') return;
      held[i]!.set(entry.id, (held[i]!.get(entry.id) ?? 0) + 1);
      last[i]!.lastId = entry.id;
    });

  // ---- before: rooms, members subscribed, a few entries delivered
  const rooms: RoomView[] = [];
  const hostSockets = await connectMany(url(), STORM_ROOMS, { concurrency: 50, authFor: (r) => ({ token: hosts[r]!.accessToken }) });
  await forEachLimit(STORM_ROOMS, 50, async (r) => {
    rooms[r] = okData<{ room: RoomView }>(await hostSockets[r]!.request('room:create', { title: `Storm ${r}`, maxMembers: STORM_PER_ROOM }), 'room:create').room;
    expected.set(rooms[r]!.id, new Set());
  });
  const memberOf = (i: number) => rooms[Math.floor(i / perRoom)]!;
  const members = await connectMany(url(), STORM_ROOMS * perRoom, { concurrency: 100, authFor: (i) => ({ token: guests[i]!.accessToken }) });
  await forEachLimit(members.length, 100, async (i) => {
    held[i] = new Map();
    const room = memberOf(i);
    const joined = await requestOk<RoomJoined>(members[i]!, 'room:join', { pin: room.pin });
    last[i] = { roomId: room.id, epoch: joined.feed!.epoch, lastId: joined.feed!.lastId };
    watchEntries(members[i]!, i);
    await requestOk(members[i]!, 'feed:subscribe', { roomId: room.id, since: { epoch: joined.feed!.epoch, id: joined.feed!.lastId } });
  });
  await forEachLimit(STORM_ROOMS, 50, async (r) => {
    for (let k = 0; k < STORM_ENTRIES_BEFORE; k++) {
      const { id } = await requestOk<{ id: string }>(hostSockets[r]!, 'feed:publish', { roomId: rooms[r]!.id, type: 'chat.message', payload: { text: `before ${k}` }, clientMsgId: `b${r}-${k}` });
      expected.get(rooms[r]!.id)!.add(id);
    }
  });
  for (let waited = 0; waited < 10_000 && held.some((h, i) => h.size < expected.get(memberOf(i).id)!.size); waited += 100) await sleep(100);

  // ---- the node restarts; entries arrive while everyone is away
  for (const s of [...hostSockets, ...members]) s.close();
  await pr.restart();
  await forEachLimit(STORM_ROOMS, 20, async (r) => {
    for (let k = 0; k < STORM_ENTRIES_AWAY; k++) {
      const res = await fetch(`${url()}/api/rooms/${rooms[r]!.id}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
        body: JSON.stringify({ type: 'chat.message', payload: { text: `away ${k}` }, clientMsgId: `a${r}-${k}` }),
      });
      if (res.status !== 201) throw new Error(`POST events: ${res.status} ${await res.text()}`);
      expected.get(rooms[r]!.id)!.add(((await res.json()) as { id: string }).id);
    }
  });

  // ---- the storm: every member and host reconnects, rejoins, resumes
  let recovered = 0;
  const everyone = [...hosts.slice(0, STORM_ROOMS).map((h, r) => ({ token: h.accessToken, room: rooms[r]!, i: -1 })), ...guests.slice(0, members.length).map((g, i) => ({ token: g.accessToken, room: memberOf(i), i }))];
  const back: EioSocket[] = [];
  const hostsBack: EioSocket[] = [];
  const started = performance.now();
  await forEachLimit(everyone.length, STORM_IN_FLIGHT, async (k) => {
    const { token, room, i } = everyone[k]!;
    const socket = await EioSocket.connect(url(), { auth: { token } });
    back.push(socket);
    if (i < 0) hostsBack[k] = socket;
    if (i >= 0) watchEntries(socket, i);
    const joined = await requestOk<RoomJoined>(socket, 'room:join', { pin: room.pin });
    if (!joined.rejoined) throw new Error('a member coming back was not taken as a rejoin');
    const since = i >= 0 ? { epoch: last[i]!.epoch, id: last[i]!.lastId } : { epoch: joined.feed!.epoch, id: joined.feed!.lastId };
    const sub = await requestOk<{ recovered: boolean }>(socket, 'feed:subscribe', { roomId: room.id, since });
    if (sub.recovered) recovered++;
  });
  const seconds = (performance.now() - started) / 1000;
  await sleep(1000);
  let lost = 0;
  let doubled = 0;
  held.forEach((h, i) => {
    for (const id of expected.get(memberOf(i).id)!) if (!h.has(id)) lost++;
    for (const times of h.values()) if (times > 1) doubled += times - 1;
  });
  await forEachLimit(STORM_ROOMS, 50, async (r) => void (await requestOk(hostsBack[r]!, 'room:end', { roomId: rooms[r]!.id })));
  for (const s of back) s.close();
  return { seconds, recovered, lost, doubled, members: everyone.length };
}

/**
 * One memory round: memory per member at MEMORY_MEMBERS members in one room
 * (the host and the joiners, joined and subscribed), then bare Socket.IO
 * sockets joined to one room; each on a freshly started process.
 */
async function memoryOfMembers(pr: PinroomUnderTest, host: SessionResponse, guests: SessionResponse[], memoryFile: string): Promise<MemoryRound> {
  await pr.restart();
  const pinroom = await memoryPerMember(pr.server, memoryFile, MEMORY_MEMBERS, async () => {
    const hostSocket = await EioSocket.connect(pr.server.url, { auth: { token: host.accessToken } });
    const { room } = okData<{ room: RoomView }>(await hostSocket.request('room:create', { title: 'Memory', maxMembers: MEMORY_MEMBERS }), 'room:create');
    await requestOk(hostSocket, 'feed:subscribe', { roomId: room.id });
    const sockets = await connectMany(pr.server.url, MEMORY_MEMBERS - 1, { concurrency: IN_FLIGHT, authFor: (i) => ({ token: guests[i]!.accessToken }) });
    await forEachLimit(sockets.length, IN_FLIGHT, async (i) => {
      const joined = await requestOk<RoomJoined>(sockets[i]!, 'room:join', { pin: room.pin });
      await requestOk(sockets[i]!, 'feed:subscribe', { roomId: room.id, since: { epoch: joined.feed!.epoch, id: joined.feed!.lastId } });
    });
    return { sockets: [hostSocket, ...sockets], end: async () => void (await requestOk(hostSocket, 'room:end', { roomId: room.id })) };
  });
  process.stderr.write(`join memory pinroom: ${JSON.stringify(pinroom)} B/member\n`);
  const bare = await startPinnedServer('bench/baselines/socketio-server.ts', { BENCH_MEMORY_FILE: memoryFile }, { nodeArgs: memoryProbeArgs() });
  try {
    const bytes = await memoryPerMember(bare, memoryFile, MEMORY_MEMBERS, async () => {
      const sockets = await connectMany(bare.url, MEMORY_MEMBERS, { concurrency: IN_FLIGHT });
      await forEachLimit(sockets.length, IN_FLIGHT, async (i) => void okData(await sockets[i]!.request('join', 'memory'), 'join'));
      return { sockets };
    });
    process.stderr.write(`join memory socket.io: ${JSON.stringify(bytes)} B/member\n`);
    return { pinroom, bare: bytes };
  } finally {
    await bare.stop();
  }
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const memoryFile = join(tmpdir(), `${tempDirPrefix()}memory.json`);
  const probe = { BENCH_MEMORY_FILE: memoryFile };
  const maxSize = Math.max(...SIZES, MEMORY_MEMBERS);
  const pr = await startPinroom({ ...probe, FEED_API_KEY: API_KEY, ACCESS_TOKEN_TTL_SECONDS: '3600' }, memoryProbeArgs());
  let bare: Pinned | undefined;
  const fills = new Map<number, { pinroom: Fill[]; bare: Fill[] }>(SIZES.map((n) => [n, { pinroom: [], bare: [] }]));
  const memoryRounds: MemoryRound[] = [];
  const storms: Storm[] = [];
  try {
    bare = await startPinnedServer('bench/baselines/socketio-server.ts', probe, { nodeArgs: memoryProbeArgs() });
    const sessions = await signInGuests(pr.server.url, maxSize + STORM_ROOMS, 64);
    const hosts = await promoteToHosts(pr, sessions.slice(maxSize));
    const guests = sessions.slice(0, maxSize);

    // ---- room fill: a warm-up fill each (JIT, pools), then interleaved rounds
    if (PARTS.has('fill')) {
      await fillPinroom(pr, hosts[0]!, guests, WARMUP);
      await fillBare(bare, WARMUP, -1);
    }
    for (let round = 0; round < (PARTS.has('fill') ? ROUNDS : 0); round++) {
      for (const size of SIZES) {
        const p = await fillPinroom(pr, hosts[0]!, guests, size);
        const b = await fillBare(bare, size, round);
        fills.get(size)!.pinroom.push(p);
        fills.get(size)!.bare.push(b);
        process.stderr.write(`join fill ${size} round ${round + 1}: pinroom ${JSON.stringify(p)}, socket.io ${JSON.stringify(b)}\n`);
      }
    }

    // ---- memory of a member, each on a fresh process
    await bare.stop();
    for (let round = 0; round < (PARTS.has('memory') ? MEMORY_ROUNDS : 0); round++) {
      memoryRounds.push(await memoryOfMembers(pr, hosts[0]!, guests, memoryFile));
    }

    // ---- rejoin storms, each on a fresh process with new rooms
    for (let round = 0; round < (PARTS.has('storm') ? STORM_ROUNDS : 0); round++) {
      await pr.restart();
      storms.push(await rejoinStorm(pr, hosts, guests));
      process.stderr.write(`join rejoin storm round ${round + 1}: ${JSON.stringify(storms.at(-1))}\n`);
    }
  } finally {
    await bare?.stop();
    await pr.cleanup();
    rmSync(memoryFile, { force: true });
  }

  const bareName = 'bare Socket.IO 4.8 connect + socket.join';
  const rows: BenchRow[] = [];
  const perRound = (list: Fill[], pick: (f: Fill) => number, digits = 0) => list.map((f) => pick(f).toFixed(digits)).join(', ');
  for (const size of PARTS.has('fill') ? SIZES : []) {
    const { pinroom, bare: b } = fills.get(size)!;
    const p = median(pinroom.map((f) => f.joinsPerSecond));
    const q = median(b.map((f) => f.joinsPerSecond));
    const row: BenchRow = {
      metric: `room fill to ${size.toLocaleString('en-US')} members: connect + room:join + feed:subscribe, ${IN_FLIGHT} in flight`,
      unit: 'joins/s',
      pinroom: Math.round(p),
      baseline: Math.round(q),
      baselineName: bareName,
      ratio: round2(p / q),
      cpu: { server: median(pinroom.map((f) => f.cpu.server ?? 0)), client: median(pinroom.map((f) => f.cpu.client)) },
      note: `rounds: pinroom ${perRound(pinroom, (f) => f.joinsPerSecond)} joins/s, bare ${perRound(b, (f) => f.joinsPerSecond)}; server CPU per join: pinroom ${perRound(pinroom, (f) => f.cpuMsPerJoin, 2)} ms (median ${median(pinroom.map((f) => f.cpuMsPerJoin)).toFixed(2)}), bare ${median(b.map((f) => f.cpuMsPerJoin)).toFixed(2)} ms; deliveries per join (room:presence + feed:entry to every member): ${perRound(pinroom, (f) => f.deliveriesPerJoin, 1)} (median ${median(pinroom.map((f) => f.deliveriesPerJoin)).toFixed(1)})`,
    };
    if (size === 1000) row.goal = { text: '≥ 1,000 joins/s', met: p >= 1000 };
    if (size === 10_000) row.goal = { text: `fills in ≤ 15 s (median ${median(pinroom.map((f) => f.seconds)).toFixed(1)} s; rounds ${perRound(pinroom, (f) => f.seconds, 1)})`, met: median(pinroom.map((f) => f.seconds)) <= 15 };
    rows.push(row);
  }
  if (PARTS.has('fill') && fills.has(100) && fills.has(1000)) {
    const at100 = fills.get(100)!.pinroom;
    const at1000 = fills.get(1000)!.pinroom;
    const rounds = at1000.map((f, i) => ({ at1000: f.joinsPerSecond, at100: at100[i]!.joinsPerSecond, ratio: f.joinsPerSecond / at100[i]!.joinsPerSecond }));
    const middle = medianBy(rounds, (r) => r.ratio);
    rows.push({
      metric: 'joins/s filling to 1,000 ÷ joins/s filling to 100 (the cost of a join does not grow with the room)',
      unit: 'joins/s',
      pinroom: Math.round(middle.at1000),
      baseline: Math.round(middle.at100),
      baselineName: 'pinroom filling a room of 100, same round',
      ratio: round2(middle.ratio),
      goal: { text: '≥ 0.8', met: middle.ratio >= 0.8 },
      note: `the median of ${rounds.length} rounds by per-round ratio (each round's fill to 1,000 ÷ its fill to 100): ${rounds.map((r) => r.ratio.toFixed(2)).join(', ')}; joins/s and the baseline are that round's`,
    });
  }
  if (memoryRounds.length > 0) {
    const memoryRatio = (r: MemoryRound) => r.bare.rss / r.pinroom.rss;
    const { pinroom: pinroomMemory, bare: bareMemory } = medianBy(memoryRounds, memoryRatio);
    rows.push({
      metric: `memory per joined-and-subscribed member at ${MEMORY_MEMBERS.toLocaleString('en-US')} members in one room (RSS delta after a memory-reducing full GC)`,
      unit: 'bytes',
      pinroom: pinroomMemory.rss,
      baseline: bareMemory.rss,
      baselineName: 'bare Socket.IO 4.8 sockets joined to one room',
      ratio: round2(bareMemory.rss / pinroomMemory.rss),
      lowerIsBetter: true,
      goal: { text: '≤ 1.0× bare', met: pinroomMemory.rss <= bareMemory.rss },
      note: `the median of ${memoryRounds.length} interleaved rounds by per-round ratio, a fresh process each (RSS per member: pinroom ${memoryRounds.map((r) => r.pinroom.rss).join(', ')} B; bare ${memoryRounds.map((r) => r.bare.rss).join(', ')} B; per-round pinroom ÷ bare ${memoryRounds.map((r) => (r.pinroom.rss / r.bare.rss).toFixed(2)).join(', ')}); V8 heap retained per member in that round: pinroom ${pinroomMemory.heap} B, bare ${bareMemory.heap} B (${round2(pinroomMemory.heap / bareMemory.heap)}×; rounds pinroom ${memoryRounds.map((r) => r.pinroom.heap).join(', ')} B, bare ${memoryRounds.map((r) => r.bare.heap).join(', ')} B); RSS per member after a full GC alone, V8's free pooled heap pages still counted (Node 24 keeps them until a memory-reducing GC): pinroom ${memoryRounds.map((r) => r.pinroom.rssAfterFullGc).join(', ')} B, bare ${memoryRounds.map((r) => r.bare.rssAfterFullGc).join(', ')} B`,
    });
  }
  if (storms.length > 0) {
    const storm = medianBy(storms, (s) => s.seconds);
    const clean = storms.every((s) => s.recovered === s.members && s.lost === 0 && s.doubled === 0);
    rows.push({
      metric: `rejoin storm: ${storm.members.toLocaleString('en-US')} members of ${STORM_ROOMS} rooms reconnect after a node restart, rejoin and resume (${STORM_IN_FLIGHT} in flight)`,
      unit: 's',
      pinroom: round2(storm.seconds),
      baseline: 3,
      baselineName: 'target: every member back within 3 s',
      ratio: round2(3 / storm.seconds),
      lowerIsBetter: true,
      goal: { text: '≤ 3 s (median round), all recovered, 0 lost or doubled in every round', met: storm.seconds <= 3 && clean },
      note: `the median of ${storms.length} rounds, each on a freshly restarted node with new rooms (rounds ${storms.map((s) => s.seconds.toFixed(2)).join(', ')} s); per round recovered: true ${storms.map((s) => `${s.recovered} of ${s.members}`).join(', ')}; entries lost ${storms.map((s) => s.lost).join(', ')}, doubled ${storms.map((s) => s.doubled).join(', ')} (each member had ${STORM_ENTRIES_AWAY} entries to catch up)`,
    });
  }
  return { scenario: 'joining at scale', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
