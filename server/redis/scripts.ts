/**
 * Lua scripts live as `.lua` files in `lua/`, each with a header listing its
 * KEYS and ARGV; a line `--#include <lib>` takes in `lua/lib/<lib>.lua`, code
 * that scripts share (Redis scripts cannot import). They are read once; calls go by SHA (EVALSHA) and fall back
 * to EVAL when the server does not know the script yet (NOSCRIPT: after a
 * restart or a failover), which also caches it there. Every call's keys must
 * share one Redis Cluster hash slot (checked here, see slots.ts), on one Redis
 * too, so a script that would fail with CROSSSLOT on a cluster fails in every
 * test; `PER_KEY_SCRIPTS` are split by slot instead (`runPerKey`).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ChainableCommander } from 'ioredis';
import { groupsBySlot, isCluster, type RedisClient as Redis } from './connections.ts';
import { assertOneSlot } from './slots.ts';

/** Every script in `lua/`, by file name without `.lua`. */
export const SCRIPT_NAMES = ['compare-and-delete', 'refresh-issue', 'refresh-rotate', 'refresh-revoke', 'cache-lease', 'cache-fill', 'cache-invalidate',
  'pin-release', 'pin-renew', 'room-join-probe', 'room-wait', 'room-unwait', 'presence-join', 'presence-leave', 'presence-remove-user', 'presence-purge-node', 'presence-host-claim',
  'presence-node-forget', 'presence-node-purged', 'presence-zrem-stale',
  'feed-append', 'feed-log', 'feed-global', 'feed-position', 'feed-archive-take', 'feed-archive-claim', 'feed-archive-commit', 'session-states', 'login-attempt', 'refresh-discard'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

/**
 * Per-key scripts: each key is read or changed on its own (one result per
 * key, nothing atomic across keys), so a call may name keys of many slots.
 * `runPerKey` sends one call on a single Redis and one call per slot on a
 * Redis Cluster. Every other script takes keys of one slot.
 */
export const PER_KEY_SCRIPTS: Readonly<Partial<Record<ScriptName, string>>> = {
  'session-states': 'read-only batch: one session hash per handshake of an event-loop turn (server/auth/session-check.ts)',
};

export interface LuaScript {
  name: ScriptName;
  source: string;
  sha: string;
}

export type Scripts = ReturnType<typeof createScripts>;

const cache = new Map<ScriptName, LuaScript>();

function readLua(file: string): string {
  return readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
}

/** Read (once per process) and hash a script file, its `--#include <lib>` lines replaced by `lua/lib/<lib>.lua`. */
export function loadScript(name: ScriptName): LuaScript {
  let script = cache.get(name);
  if (!script) {
    const source = readLua(`${name}.lua`).replace(/^--#include ([\w-]+)$/gm, (_, lib: string) => readLua(`lib/${lib}.lua`));
    script = { name, source, sha: createHash('sha1').update(source).digest('hex') };
    cache.set(name, script);
  }
  return script;
}

export function createScripts(redis: Redis) {
  const scripts = new Map(SCRIPT_NAMES.map((name) => [name, loadScript(name)]));
  const get = (name: ScriptName): LuaScript => scripts.get(name)!;
  /** By SHA, falling back to EVAL on NOSCRIPT (after a restart or failover, or on a master that never ran it). */
  async function call<T>(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<T> {
    try {
      return (await redis.evalsha(script.sha, keys.length, ...keys, ...args)) as T;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return (await redis.eval(script.source, keys.length, ...keys, ...args)) as T;
    }
  }

  return {
    /** Run a script by SHA, falling back to EVAL on NOSCRIPT. */
    run<T = unknown>(name: ScriptName, keys: readonly string[], args: readonly (string | number)[] = []): Promise<T> {
      assertOneSlot(name, keys);
      return call<T>(get(name), keys, args);
    },
    /**
     * Run a per-key script (`PER_KEY_SCRIPTS`) whose reply is one value per
     * key: one call on a single Redis, one call per slot on a cluster (sent
     * together), the replies put back in the order of `keys`.
     */
    async runPerKey<T = unknown>(name: ScriptName, keys: readonly string[], args: readonly (string | number)[] = []): Promise<T[]> {
      if (!PER_KEY_SCRIPTS[name]) throw new Error(`${name} is not a per-key script`);
      const script = get(name);
      if (!isCluster(redis)) return call<T[]>(script, keys, args);
      const out = new Array<T>(keys.length);
      await Promise.all(
        groupsBySlot(redis, keys).map(async (indexes) => {
          const replies = await call<T[]>(script, indexes.map((i) => keys[i]!), args);
          indexes.forEach((i, j) => (out[i] = replies[j]!));
        }),
      );
      return out;
    },
    /**
     * Queue a script in a pipeline or MULTI. Uses EVAL so that the batch never
     * fails on NOSCRIPT halfway; prefer `run` outside batches.
     */
    queue(batch: ChainableCommander, name: ScriptName, keys: readonly string[], args: readonly (string | number)[] = []): ChainableCommander {
      assertOneSlot(name, keys);
      return batch.eval(get(name).source, keys.length, ...keys, ...args);
    },
  };
}
