/**
 * Many-rooms delivery on a 3-master Redis Cluster against one Redis, same
 * run: R rooms (250) of a host and 4 members on one pinroom node, everyone
 * subscribed to the room's feed, hosts publishing 100-byte entries through
 * `feed:publish` (bench/lib/rooms-load.ts). The highest publish rate with
 * ≥ 99 % delivered and p99 ≤ 50 ms is searched in ROUNDS rounds that
 * alternate the two; the median round counts. The baseline is pinroom on its
 * own single redis-server. On this machine the three masters share the same
 * two cores as everything else, so the row shows what cluster mode costs the
 * node (routing, one connection per master, sharded subscribers), not what
 * the extra Redis capacity buys.
 *
 * The cost of `FEED_APPEND_WAIT_REPLICAS=1`: on a 3-master cluster with a
 * replica per master, one host publishes WAIT_PUBLISHES entries one after
 * another (each waits for its ack), once with the setting and once without,
 * alternating over ROUNDS rounds; publish→ack p50 and p99 of the pooled
 * samples.
 *
 *   taskset -c 1 node --import tsx bench/scenarios/cluster.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import { signUp } from '../../tests/support/auth.ts';
import { connect, request } from '../../tests/support/client.ts';
import { startRedisCluster } from '../../tests/support/redis-cluster.ts';
import { startPinroom } from '../lib/pinroom.ts';
import { median, round2 } from '../lib/procs.ts';
import { createRoomsDriver, pinroomRooms, RECEIVERS, searchMaxRate, summary, type RoomsTarget } from '../lib/rooms-load.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const WAIT_PUBLISHES = Number(process.env.BENCH_CLUSTER_WAIT_PUBLISHES ?? 400);

/** Publish→ack latency samples (ms) of sequential publishes, with and without WAIT, alternating rounds. */
async function waitCost(): Promise<BenchRow[]> {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  const pinrooms = [] as Awaited<ReturnType<typeof startPinroom>>[];
  try {
    const setups = [] as { name: string; publish: () => Promise<number>; samples: number[] }[];
    for (const wait of ['1', '0']) {
      const pr = await startPinroom({ REDIS_CLUSTER_NODES: cluster.seeds, FEED_APPEND_WAIT_REPLICAS: wait });
      pinrooms.push(pr);
      const host = await signUp(pr.server.url);
      const socket = await connect(pr.server.url, { token: host.accessToken });
      const created = await request(socket, 'room:create', { title: `wait ${wait}` });
      if (!created.ok) throw new Error(`room:create: ${created.error.code}`);
      const roomId = created.data.room.id;
      setups.push({
        name: wait === '1' ? 'WAIT 1' : 'no WAIT',
        samples: [],
        async publish() {
          const start = performance.now();
          const ack = await request(socket, 'feed:publish', { roomId, type: 'chat.message', payload: { text: 'x'.repeat(100) }, clientMsgId: randomUUID() });
          if (!ack.ok) throw new Error(`feed:publish: ${ack.error.code}`);
          return performance.now() - start;
        },
      });
    }
    for (const s of setups) for (let i = 0; i < 50; i++) await s.publish(); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of setups) {
        const mine: number[] = [];
        for (let i = 0; i < WAIT_PUBLISHES; i++) mine.push(await s.publish());
        s.samples.push(...mine);
        mine.sort((a, b) => a - b);
        process.stderr.write(`cluster wait ${s.name} round ${round + 1}: p50 ${round2(mine[Math.floor(mine.length / 2)]!)} ms, p99 ${round2(mine[Math.floor(mine.length * 0.99)]!)} ms\n`);
      }
    }
    const at = (xs: number[], p: number) => round2([...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!);
    const [withWait, without] = setups as [(typeof setups)[0], (typeof setups)[0]];
    return (['p50', 'p99'] as const).map((p) => {
      const q = p === 'p50' ? 50 : 99;
      return {
        metric: `feed:publish → ack ${p} with FEED_APPEND_WAIT_REPLICAS=1, sequential publishes, 3-master cluster with a replica each`,
        unit: 'ms',
        pinroom: at(withWait.samples, q),
        baseline: at(without.samples, q),
        baselineName: 'the same cluster without WAIT (FEED_APPEND_WAIT_REPLICAS=0)',
        ratio: round2(at(without.samples, q) / at(withWait.samples, q)),
        lowerIsBetter: true,
        note: `${withWait.samples.length} samples each over ${ROUNDS} alternating rounds (see the per-round lines on stderr); 6 redis-servers on the machine's 2 cores`,
      };
    });
  } finally {
    for (const pr of pinrooms) await pr.cleanup();
    await cluster.stop();
  }
}

const ROOMS = Number(process.env.BENCH_CLUSTER_ROOMS ?? 250);
const ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 3);

const scenario: Scenario = async (): Promise<BenchResult> => {
  const targets: RoomsTarget[] = [];
  try {
    targets.push(await pinroomRooms(ROOMS, { redisCluster: true }));
    targets.push(await pinroomRooms(ROOMS));
    const probes = targets.map((t) => createRoomsDriver(t));
    const rounds = targets.map(() => [] as Awaited<ReturnType<typeof searchMaxRate>>[]);
    for (let round = 0; round < ROUNDS; round++) {
      for (let t = 0; t < targets.length; t++) {
        const previous = rounds[t]!.at(-1)?.rate;
        const found = await searchMaxRate(probes[t]!, {
          receiversPerRoom: RECEIVERS,
          start: 1000,
          ...(previous ? { around: previous } : {}),
          log: (r) => process.stderr.write(`cluster ${targets[t]!.name} probe ${summary(r)}${r.pass ? '' : ' ✗'}\n`),
        });
        rounds[t]!.push(found);
        process.stderr.write(`cluster ${targets[t]!.name} round ${round + 1}: max ${found.rate}/s (${summary(found.best)})\n`);
      }
    }
    const [onCluster, single] = rounds.map((r) => median(r, (x) => x.rate)) as [(typeof rounds)[0][0], (typeof rounds)[0][0]];
    for (const target of targets.splice(0)) await target.close();
    const waitRows = await waitCost();
    return {
      scenario: 'redis cluster',
      rows: [
        {
          metric: `highest publish rate with ≥ 99% delivered and p99 ≤ 50 ms, ${ROOMS} rooms × ${RECEIVERS - 1} members + host, on a 3-master Redis Cluster`,
          unit: 'publishes/s',
          pinroom: onCluster.rate,
          baseline: single.rate,
          baselineName: 'pinroom on one redis-server, same criteria',
          ratio: round2(onCluster.rate / single.rate),
          cpu: { server: onCluster.best?.serverCpu ?? 0, client: onCluster.best?.clientCpu ?? 0 },
          note:
            `median of ${ROUNDS} alternating rounds (cluster ${rounds[0]!.map((r) => r.rate).join(', ')}; one Redis ${rounds[1]!.map((r) => r.rate).join(', ')}); ` +
            `at the median rate: cluster ${summary(onCluster.best)}; one Redis ${summary(single.best)}; the 3 masters share the machine's 2 cores`,
        },
        ...waitRows,
      ],
    };
  } finally {
    for (const target of targets) await target.close();
  }
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
