/**
 * Who is an administrator: the user ids in `FEED_ADMIN_USERS`, matched
 * exactly. Only ids: a username could be registered by anyone before the real
 * admin (and usernames are unique only case-insensitively), so the config
 * refuses one at start-up. Administrators may follow the global and system
 * feeds and read `/admin/overview` (which lists client addresses).
 */
export type Admins = ReturnType<typeof createAdmins>;

export function createAdmins({ adminUserIds }: { adminUserIds: readonly string[] }) {
  const ids = new Set(adminUserIds);
  return {
    /** Whether `userId` (a user id as the access token carries it) is an administrator. */
    isAdmin(userId: string): boolean {
      return ids.has(userId);
    },
  };
}
