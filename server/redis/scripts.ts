/**
 * Lua scripts live as `.lua` files in `lua/`, each with a header listing its
 * KEYS and ARGV. They are read once; calls go by SHA (EVALSHA) and fall back
 * to EVAL when the server does not know the script yet (NOSCRIPT: after a
 * restart or a failover), which also caches it there. Every call's keys must
 * share one Redis Cluster hash slot (checked here, see slots.ts), except the
 * scripts listed in `CROSS_SLOT_SCRIPTS`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis, ChainableCommander } from 'ioredis';
import { assertOneSlot } from './slots.ts';

/** Every script in `lua/`, by file name without `.lua`. */
export const SCRIPT_NAMES = ['compare-and-delete', 'refresh-issue', 'refresh-rotate', 'refresh-revoke', 'cache-lease', 'cache-fill', 'cache-invalidate',
  'pin-release', 'pin-renew', 'room-join-probe', 'room-wait', 'room-unwait', 'presence-join', 'presence-leave', 'presence-remove-user', 'presence-purge-node', 'presence-host-claim',
  'presence-node-forget', 'presence-node-purged', 'presence-zrem-stale',
  'feed-append', 'feed-log', 'feed-global', 'feed-position', 'feed-archive-take', 'feed-archive-claim', 'feed-archive-commit', 'session-states', 'login-attempt', 'refresh-discard'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

/**
 * Scripts that still take keys of several slots, each with why: the only
 * exceptions to the one-slot rule (every feed script keeps it). None of them
 * can run on a Redis Cluster as they are: before cluster mode, each must be
 * split (its other-slot keys written or read in the same pipeline, before
 * the script) or, for the batch read, called once per slot.
 */
export const CROSS_SLOT_SCRIPTS: Readonly<Partial<Record<ScriptName, string>>> = {
  'session-states': 'read-only batch: one session hash per handshake of an event-loop turn (server/auth/session-check.ts)',
  'room-join-probe': 'read-only: the PIN claim and the user\'s rejoin hint in one round trip (server/rooms/pins.ts)',
  'presence-join': 'writes the node\'s room set and the user\'s rejoin hint with the room\'s presence (server/rooms/presence.ts)',
  'presence-remove-user': 'drops the room from the user\'s rejoin hint with the room\'s presence (server/rooms/presence.ts)',
};

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
      if (!CROSS_SLOT_SCRIPTS[name]) assertOneSlot(name, keys);
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
      if (!CROSS_SLOT_SCRIPTS[name]) assertOneSlot(name, keys);
      return batch.eval(get(name).source, keys.length, ...keys, ...args);
    },
  };
}
