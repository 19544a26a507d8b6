/**
 * A real Redis Cluster from the machine's `redis-server`, on spare ports: N
 * masters (and R replicas each), joined with `redis-cli --cluster create`,
 * each node in its own temp folder (named for the runner's leftovers sweep).
 * Used by the runner's cluster pass (tests/run.ts) and by the failover test.
 * Nodes can be killed with -9 and restarted on their port (with the same
 * node id: their nodes.conf stays).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { tempDirPrefix } from './leftovers.ts';
import { freePort } from './redis-server.ts';

export interface ClusterNode {
  port: number;
  /** `master` or `replica`, as created (a failover swaps them). */
  createdAs: 'master' | 'replica';
  process(): ChildProcess | undefined;
  kill(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP: it neither answers nor replicates. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
}

export interface OwnedCluster {
  nodes: ClusterNode[];
  /** `127.0.0.1:p1,127.0.0.1:p2,...`: the value of REDIS_CLUSTER_NODES (the masters as created). */
  seeds: string;
  /** CLUSTER INFO's `cluster_state` is `ok` on every live node. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /** `cluster-node-timeout`, ms: how long a master may be silent before its replica takes over. @default 2000 */
  nodeTimeoutMs?: number;
}

async function ping(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch {
      if (Date.now() > end) throw new Error(`cluster node on ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.disconnect();
    }
  }
}

async function clusterState(port: number): Promise<string> {
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, commandTimeout: 1000 });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const info = (await probe.call('CLUSTER', 'INFO')) as string;
    return /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
  } catch {
    return 'down';
  } finally {
    probe.disconnect();
  }
}

export async function startRedisCluster(options: ClusterOptions = {}): Promise<OwnedCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 0;
  const nodeTimeout = options.nodeTimeoutMs ?? 2000;
  const dir = mkdtempSync(join(tmpdir(), `${tempDirPrefix()}cluster-`));
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await freePort();
    let child: ChildProcess | undefined;
    const node: ClusterNode = {
      port,
      createdAs: i < masters ? 'master' : 'replica',
      process: () => child,
      async start() {
        child = spawn(
          'redis-server',
          ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
            '--cluster-node-timeout', String(nodeTimeout), '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', `dump-${port}.rdb`],
          { stdio: 'ignore' },
        );
        await ping(port, 10_000);
      },
      async kill() {
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await exited;
      },
      pause() {
        child?.kill('SIGSTOP');
      },
      resume() {
        child?.kill('SIGCONT');
      },
    };
    nodes.push(node);
  }
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    // Masters first: --cluster create makes the first N the masters and the rest their replicas.
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`);
    const cluster: OwnedCluster = {
      nodes,
      seeds: nodes.filter((n) => n.createdAs === 'master').map((n) => `127.0.0.1:${n.port}`).join(','),
      async waitHealthy(timeoutMs = 30_000) {
        const end = Date.now() + timeoutMs;
        for (;;) {
          const live = nodes.filter((n) => n.process()?.exitCode === null && n.process()?.signalCode === null);
          const states = await Promise.all(live.map((n) => clusterState(n.port)));
          if (states.every((s) => s === 'ok')) return;
          if (Date.now() > end) throw new Error(`cluster not ok within ${timeoutMs} ms: ${states.join(', ')}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      stop,
    };
    await cluster.waitHealthy();
    if (replicas > 0) {
      // Every master's replicas known to every node (gossip), so CLUSTER SLOTS lists them.
      const end = Date.now() + 30_000;
      for (;;) {
        const views = await Promise.all(
          nodes.map(async (n) => {
            const probe = new Redis(n.port, '127.0.0.1', { maxRetriesPerRequest: 0 });
            try {
              const slots = (await probe.call('CLUSTER', 'SLOTS')) as unknown[][];
              return slots.every((range) => range.length >= 3 + replicas);
            } finally {
              probe.disconnect();
            }
          }),
        );
        if (views.every(Boolean)) break;
        if (Date.now() > end) throw new Error('replicas not known to every node within 30 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}
