/**
 * Room PINs as a managed resource in Redis.
 *
 * - A PIN is drawn uniformly from `10^digits` values with crypto randomness and
 *   claimed with one `SET pin roomId NX EX ttl`: never SETNX then EXPIRE, so a
 *   claim always carries a TTL, and a live PIN is never handed out twice.
 * - Allocation makes a bounded number of draws (`pinClaimAttempts`) per length:
 *   the configured length, then the fallback length when one is set; then it
 *   fails with `pin_unavailable`. It never loops.
 * - PostgreSQL's partial unique index (`rooms_live_pin_key`) is the second
 *   guard: when the insert still collides (a claim expired while its room
 *   lived on), the claim is released by compare-and-delete and the next draw is tried.
 * - While a room is alive its PIN's TTL is renewed (`pin-renew.lua`); when it
 *   ends the PIN is released only if it still names the room, then
 *   quarantined (`pin-release.lua`).
 */
import { randomInt } from 'node:crypto';
import { pipelineBySlot, type RedisClient as Redis } from '../redis/connections.ts';
import type { Logger } from 'pino';
import type { RoomsConfig } from '../config.ts';
import { AppError, ErrorCode, unavailable } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';

export type PinStore = ReturnType<typeof createPinStore>;

/** What the insert callback of `allocate` reports for one claimed PIN. */
export type InsertOutcome = 'inserted' | 'pin_taken';

/** Value of a quarantined PIN key (see `pin-release.lua`). */
const QUARANTINE_PREFIX = 'ended:';

/** A PIN of `digits` digits drawn uniformly (leading zeros included) with crypto randomness. */
function drawPin(digits: number): string {
  return randomInt(0, 10 ** digits).toString().padStart(digits, '0');
}

export interface PinStoreDeps {
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  config: Pick<RoomsConfig, 'pinDigits' | 'pinFallbackDigits' | 'pinClaimAttempts' | 'pinTtlSeconds' | 'pinQuarantineSeconds'>;
  logger: Pick<Logger, 'warn'>;
  /** Injected for tests. @default drawPin */
  draw?: (digits: number) => string;
}

export function createPinStore({ redis, scripts, keys, config, logger, draw = drawPin }: PinStoreDeps) {
  const lengths = config.pinFallbackDigits > 0 ? [config.pinDigits, config.pinFallbackDigits] : [config.pinDigits];

  async function claim(pin: string, roomId: string): Promise<boolean> {
    try {
      return (await redis.set(keys.pin(pin), roomId, 'EX', config.pinTtlSeconds, 'NX')) === 'OK';
    } catch (err) {
      // Not retried: a SET NX that timed out may still be applied (a stalled
      // connection delivers it later). The compare-and-delete queued behind it on
      // the same connection runs after it, so no claim outlives its failed room.
      void unclaim(pin, roomId);
      throw unavailable('Redis (PIN claim)', err);
    }
  }

  /** Drop a claim that never got its room row; only if it still names `roomId`. */
  async function unclaim(pin: string, roomId: string): Promise<void> {
    try {
      await scripts.run<number>('compare-and-delete', [keys.pin(pin)], [roomId]);
    } catch (err) {
      logger.warn({ err, pin, roomId }, 'could not release an unused PIN claim; it expires by itself');
    }
  }

  return {
    /**
     * Claim a free PIN for `roomId` and run `insert(pin)` (the room row insert)
     * while holding it. `insert` answers `pin_taken` when the partial unique
     * index refused the PIN; the claim is then released and another PIN drawn.
     * If `insert` throws, the claim is released and the error rethrown.
     * Throws `pin_unavailable` after the bounded attempts.
     */
    async allocate(roomId: string, insert: (pin: string) => Promise<InsertOutcome>): Promise<string> {
      for (const digits of lengths) {
        for (let attempt = 0; attempt < config.pinClaimAttempts; attempt++) {
          const pin = draw(digits);
          if (!(await claim(pin, roomId))) continue;
          let outcome: InsertOutcome;
          try {
            outcome = await insert(pin);
          } catch (err) {
            await unclaim(pin, roomId);
            throw err;
          }
          if (outcome === 'inserted') return pin;
          await unclaim(pin, roomId);
        }
      }
      throw new AppError(ErrorCode.PinUnavailable, 'No free PIN right now; try again shortly');
    },

    /**
     * The first step of `room:join` (one round trip: a script on the PIN's
     * slot and an SMEMBERS of the user's hint, a handful of rooms): the room a
     * PIN names (null when unclaimed or quarantined), and whether the user's
     * rejoin hint holds that room. Costs the same for a right and a wrong PIN.
     */
    async probe(pin: string, userId: string): Promise<{ roomId: string | null; hinted: boolean }> {
      let roomId: string | null;
      let hint: string[];
      try {
        // The PIN (its slot) and the user's hint (theirs) in one round trip, read whatever the PIN names.
        [roomId, hint] = await Promise.all([scripts.run<string | null>('room-join-probe', [keys.pin(pin)]), redis.smembers(keys.userRooms(userId))]);
      } catch (err) {
        throw unavailable('Redis (PIN lookup)', err);
      }
      roomId ||= null;
      return { roomId, hinted: roomId !== null && hint.includes(roomId) };
    },

    /** The room a PIN names, or null (never claimed, expired, or quarantined after its room ended). */
    async resolve(pin: string): Promise<string | null> {
      let value: string | null;
      try {
        value = await redis.get(keys.pin(pin));
      } catch (err) {
        throw unavailable('Redis (PIN lookup)', err);
      }
      if (value === null || value.startsWith(QUARANTINE_PREFIX)) return null;
      return value;
    },

    /**
     * Release a PIN whose room ended, only if it still names `roomId`, and
     * quarantine it for `pinQuarantineSeconds`. Returns false when the key was
     * gone or named another room (it is left untouched).
     */
    async release(pin: string, roomId: string): Promise<boolean> {
      return (await scripts.run<number>('pin-release', [keys.pin(pin)], [roomId, config.pinQuarantineSeconds])) === 1;
    },

    /**
     * Extend the TTLs of live rooms' PINs (re-claiming any whose key vanished).
     * Returns the ids of rooms whose PIN now names something else: those rooms
     * are no longer reachable by PIN and should stop being renewed.
     */
    async renew(rooms: ReadonlyMap<string, string>): Promise<string[]> {
      if (rooms.size === 0) return [];
      const ids = [...rooms.keys()];
      const results = await pipelineBySlot(redis, ids, (roomId) => keys.pin(rooms.get(roomId)!), (batch, roomId) => {
        scripts.queue(batch, 'pin-renew', [keys.pin(rooms.get(roomId)!)], [roomId, config.pinTtlSeconds]);
      });
      const lost: string[] = [];
      results.forEach(([err, value], i) => {
        if (!err && value === 0) lost.push(ids[i]!);
      });
      return lost;
    },
  };
}
