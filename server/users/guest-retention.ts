/**
 * Guest retention. Every guest sign-in creates a user row; without this, the
 * `users` table would grow by one row per join for ever. A guest's session
 * lasts at most `GUEST_RETENTION_DAYS` (the auth service caps it), and a
 * guest has no credentials to sign in again, so past that age the account
 * can no longer be used: every `GUEST_SWEEP_INTERVAL_SECONDS` each node
 * deletes guests created more than `GUEST_RETENTION_DAYS` ago.
 *
 * What the archive needs stays: archived feed entries carry the actor's id
 * and display name as they were (`activity.actor_name`), with no foreign key
 * to `users`. Kept back: a guest who is still a member of a room that has not
 * ended (removed once it ends), and any user who hosts a room. Their
 * memberships of ended rooms go with them (`on delete cascade`).
 *
 * Deletes run in batches of `BATCH` rows (`for update skip locked`, so nodes
 * sweeping at once share the work instead of waiting on each other), at most
 * `MAX_BATCHES` per sweep.
 */
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { AuthConfig } from '../config.ts';
import type { Db } from '../db/database.ts';
import { createPeriodic } from '../periodic.ts';

const BATCH = 500;
const MAX_BATCHES = 100;

export type GuestRetention = ReturnType<typeof createGuestRetention>;

export function createGuestRetention({
  db,
  config,
  logger,
  now = Date.now,
}: {
  db: Db;
  config: Pick<AuthConfig, 'guestRetentionDays' | 'guestSweepIntervalSeconds'>;
  logger: Logger;
  now?: () => number;
}) {
  const log = logger.child({ component: 'guest-retention' });
  const retentionMs = config.guestRetentionDays * 86_400_000;

  /** Delete one batch of expired guests; resolves how many. */
  async function deleteBatch(cutoff: Date): Promise<number> {
    const result = await sql`
      delete from users where id in (
        select u.id from users u
        where u.kind = 'guest' and u.created_at < ${cutoff}
          and not exists (select 1 from room_members m join rooms r on r.id = m.room_id where m.user_id = u.id and r.status <> 'ended')
          and not exists (select 1 from rooms r where r.host_id = u.id)
        order by u.created_at
        limit ${BATCH}
        for update of u skip locked
      )`.execute(db);
    return Number(result.numAffectedRows ?? 0n);
  }

  /** Remove every guest past its retention (up to `MAX_BATCHES` batches); resolves how many were removed. */
  async function sweep(): Promise<number> {
    const cutoff = new Date(now() - retentionMs);
    let removed = 0;
    for (let i = 0; i < MAX_BATCHES; i++) {
      const n = await deleteBatch(cutoff);
      removed += n;
      if (n < BATCH) break;
    }
    if (removed > 0) log.info({ removed, cutoff: cutoff.toISOString() }, 'removed guest accounts past their retention');
    return removed;
  }

  const periodic = createPeriodic({
    interval: () => config.guestSweepIntervalSeconds * 1000,
    run: () => sweep().catch((err: unknown) => log.warn({ err }, 'guest sweep failed; trying again at the next interval')),
  });

  return {
    sweep,
    /** Sweep periodically (the first sweep after one interval). */
    start: periodic.start,
    /** Stop sweeping and wait for a sweep in progress. */
    stop: periodic.stop,
  };
}
