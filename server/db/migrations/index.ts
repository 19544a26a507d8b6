/**
 * Every migration, by name. Names start with a UTC timestamp and sort in the
 * order they apply. Listed explicitly (rather than read from the folder) so
 * they load the same way under tsx, a bundler or compiled output.
 */
import type { Migration } from 'kysely';
import * as init from './2026_11_22_000000_init.ts';
import * as feedArchive from './2026_11_22_060000_feed_archive.ts';
import * as membershipAtScale from './2026_11_23_000000_membership_at_scale.ts';
import * as guestRetention from './2026_11_23_090000_guest_retention.ts';
import * as activityPartitions from './2026_11_23_100000_activity_partitions.ts';
import * as memberNames from './2026_11_30_000000_member_names.ts';
import * as roomApproval from './2026_11_30_120000_room_approval.ts';

export const migrations: Record<string, Migration> = {
  '2026_11_22_000000_init': init,
  '2026_11_22_060000_feed_archive': feedArchive,
  '2026_11_23_000000_membership_at_scale': membershipAtScale,
  '2026_11_23_090000_guest_retention': guestRetention,
  '2026_11_23_100000_activity_partitions': activityPartitions,
  '2026_11_30_000000_member_names': memberNames,
  '2026_11_30_120000_room_approval': roomApproval,
};
