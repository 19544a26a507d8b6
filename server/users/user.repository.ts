/**
 * Writes and credential lookups on the `users` table. Reads of user profiles
 * by other features go through a cache loader; the rows returned here carry the
 * password hash and must never be cached, logged or sent.
 */
import { AppError, ErrorCode } from '../errors.ts';
import type { Db } from '../db/database.ts';
import type { UserRow } from '../db/tables.ts';
import type { UserView } from '../../shared/schemas.ts';

export type UserRepository = ReturnType<typeof createUserRepository>;

/** The public view of a row: never the password hash. */
export function toUserView(row: Pick<UserRow, 'id' | 'display_name' | 'kind' | 'username'>): UserView {
  return { id: row.id, name: row.display_name, kind: row.kind, username: row.username };
}

const UNIQUE_VIOLATION = '23505';

export function createUserRepository({ db }: { db: Db }) {
  return {
    /** Insert a guest (a display name, no credentials), with `id` when the caller chose it. */
    async createGuest(displayName: string, id?: string): Promise<UserRow> {
      return db
        .insertInto('users')
        .values({ ...(id ? { id } : {}), display_name: displayName, kind: 'guest', username: null, password_hash: null })
        .returningAll()
        .executeTakeFirstOrThrow();
    },

    /** Insert a registered user (with `id` when the caller chose it). Throws `username_taken` when the username exists in any letter case. */
    async createRegistered(input: { id?: string; username: string; displayName: string; passwordHash: string }): Promise<UserRow> {
      try {
        return await db
          .insertInto('users')
          .values({ ...(input.id ? { id: input.id } : {}), username: input.username, display_name: input.displayName, password_hash: input.passwordHash, kind: 'registered' })
          .returningAll()
          .executeTakeFirstOrThrow();
      } catch (err) {
        if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new AppError(ErrorCode.UsernameTaken, 'This username is already registered', { cause: err });
        throw err;
      }
    },

    async findById(id: string): Promise<UserRow | undefined> {
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /** Case-insensitive, like the unique index. Only registered users have a username. */
    async findByUsername(username: string): Promise<UserRow | undefined> {
      return db
        .selectFrom('users')
        .selectAll()
        .where((eb) => eb(eb.fn('lower', ['username']), '=', username.toLowerCase()))
        .executeTakeFirst();
    },
  };
}
