/**
 * Lua scripts live as `.lua` files in `lua/`, each with a header listing its
 * KEYS and ARGV. They are read once; calls go by SHA (EVALSHA) and fall back
 * to EVAL when the server does not know the script yet (NOSCRIPT: after a
 * restart or a failover), which also caches it there.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis, ChainableCommander } from 'ioredis';

/** Every script in `lua/`, by file name without `.lua`. */
export const SCRIPT_NAMES = ['compare-and-delete', 'refresh-issue', 'refresh-rotate', 'refresh-revoke', 'cache-lease', 'cache-fill', 'cache-invalidate',
  'pin-release', 'pin-renew', 'room-join-probe', 'presence-join', 'presence-leave', 'presence-remove-user', 'presence-purge-node', 'presence-host-claim',
  'presence-node-forget', 'presence-node-purged', 'presence-zrem-stale',
  'feed-append', 'feed-log', 'feed-position', 'session-states', 'login-attempt', 'refresh-discard'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

export interface LuaScript {
  name: ScriptName;
  source: string;
  sha: string;
}

export type Scripts = ReturnType<typeof createScripts>;

const cache = new Map<ScriptName, LuaScript>();

/** Read (once per process) and hash a script file. */
export function loadScript(name: ScriptName): LuaScript {
  let script = cache.get(name);
  if (!script) {
    const source = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
    script = { name, source, sha: createHash('sha1').update(source).digest('hex') };
    cache.set(name, script);
  }
  return script;
}

export function createScripts(redis: Redis) {
  const scripts = new Map(SCRIPT_NAMES.map((name) => [name, loadScript(name)]));
  const get = (name: ScriptName): LuaScript => scripts.get(name)!;

  return {
    /** Run a script by SHA, falling back to EVAL on NOSCRIPT. */
    async run<T = unknown>(name: ScriptName, keys: readonly string[], args: readonly (string | number)[] = []): Promise<T> {
      const script = get(name);
      try {
        return (await redis.evalsha(script.sha, keys.length, ...keys, ...args)) as T;
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return (await redis.eval(script.source, keys.length, ...keys, ...args)) as T;
      }
    },
    /**
     * Queue a script in a pipeline or MULTI. Uses EVAL so that the batch never
     * fails on NOSCRIPT halfway; prefer `run` outside batches.
     */
    queue(batch: ChainableCommander, name: ScriptName, keys: readonly string[], args: readonly (string | number)[] = []): ChainableCommander {
      return batch.eval(get(name).source, keys.length, ...keys, ...args);
    },
  };
}
