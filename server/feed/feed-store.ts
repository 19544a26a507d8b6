/**
 * The Redis side of the activity feed: appends (one Lua script each), reads
 * (XRANGE / XREVRANGE) and positions of the three kinds of feed, and the
 * decoding of stream entries into wire `FeedEntry` values.
 *
 * Every stream entry carries `v`, the id of the entry before it in the same
 * stream (`0-0` for the first). A reader that holds id X and next reads an
 * entry whose `v` is not X knows for certain that entries are missing (trimmed,
 * or the stream was lost), which is what makes "no gap" checkable.
 */
import { randomFillSync } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { FeedActor, FeedEntry, FeedPosition, FeedScope } from '../../shared/schemas.ts';
import type { FeedConfig } from '../config.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import { idTime, ZERO_ID } from './stream-ids.ts';

/** Which feed: a room's, or one of the two admin feeds. */
export type FeedRef = { kind: 'room'; roomId: string } | { kind: FeedScope };

/** A decoded stream entry: the wire entry and its `prev` link. */
export interface StoredEntry {
  entry: FeedEntry;
  /** Id of the entry before this one in the same stream. */
  prev: string;
}

/** A global-stream entry as the archive needs it: the room entry it copies. */
export interface ArchiveRecord {
  /** Id in the global stream (what the consumer group acknowledges). */
  globalId: string;
  roomId: string;
  entryId: string;
  epoch: string;
  prev: string;
  type: string;
  actor: FeedActor | null;
  /** Payload as the JSON text it was stored as. */
  payload: string;
  ts: number;
}

export interface AppendInput {
  roomId: string;
  type: string;
  actor: FeedActor | null;
  payload: Record<string, unknown>;
  /** Idempotency: the same `(key, clientMsgId)` within the window returns the first id and adds nothing. */
  idempotency?: { key: string; clientMsgId: string };
}

export interface AppendResult {
  id: string;
  epoch: string;
  /** True when the `clientMsgId` was seen before: nothing was added. */
  duplicate: boolean;
}

export interface LogInput {
  type: string;
  roomId?: string | null;
  actor?: FeedActor | null;
  payload?: Record<string, unknown>;
}

export type FeedStore = ReturnType<typeof createFeedStore>;

type RawEntry = [id: string, fields: string[] | null];

const EPOCH_BYTES = 8;

/**
 * Candidate epochs: 8 CSPRNG bytes as hex, as before, but drawn from a buffer
 * refilled 512 epochs at a time. Every append passes two candidates (used only
 * when a stream has no epoch yet), and one `randomBytes` call per candidate was
 * a fifth of an append's CPU time.
 */
function createEpochSource(): () => string {
  const pool = Buffer.alloc(EPOCH_BYTES * 512);
  let at = pool.length;
  return () => {
    if (at + EPOCH_BYTES > pool.length) {
      randomFillSync(pool);
      at = 0;
    }
    const epoch = pool.toString('hex', at, at + EPOCH_BYTES);
    at += EPOCH_BYTES;
    return epoch;
  };
}

function fieldsOf(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[raw[i]!] = raw[i + 1]!;
  return out;
}

function parsePayload(text: string | undefined): Record<string, unknown> {
  if (!text) return {};
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const actorOf = (f: Record<string, string>): FeedActor | null => (f.ai ? { id: f.ai, name: f.an ?? '' } : null);

/** Decode one raw stream entry of feed `ref`; null for an entry whose fields are gone (deleted). */
export function decodeEntry(ref: FeedRef, [id, raw]: RawEntry): StoredEntry | null {
  if (!raw) return null;
  const f = fieldsOf(raw);
  const base = { id, type: f.t ?? '', actor: actorOf(f), payload: parsePayload(f.p), ts: idTime(id) };
  const prev = f.v ?? ZERO_ID;
  if (ref.kind === 'room') return { entry: { roomId: ref.roomId, ...base }, prev };
  return { entry: { roomId: f.r ? f.r : null, scope: ref.kind, ...base }, prev };
}

/** Decode a global-stream entry for the archive; null when it is not a room entry copy. */
export function decodeArchiveRecord([globalId, raw]: RawEntry): ArchiveRecord | null {
  if (!raw) return null;
  const f = fieldsOf(raw);
  if (!f.r || !f.i || !f.e) return null;
  return {
    globalId,
    roomId: f.r,
    entryId: f.i,
    epoch: f.e,
    prev: f.rv ?? ZERO_ID,
    type: f.t ?? '',
    actor: actorOf(f),
    payload: f.p ?? '{}',
    ts: idTime(f.i),
  };
}

export function createFeedStore({ redis, scripts, keys, config }: { redis: Redis; scripts: Scripts; keys: Keys; config: { feed: FeedConfig } }) {
  const { feed } = config;
  const newEpoch = createEpochSource();

  const streamKey = (ref: FeedRef) => (ref.kind === 'room' ? keys.feedStream(ref.roomId) : ref.kind === 'global' ? keys.feedGlobal : keys.feedSystem);
  const metaKey = (ref: FeedRef) => (ref.kind === 'room' ? keys.feedMeta(ref.roomId) : ref.kind === 'global' ? keys.feedGlobalMeta : keys.feedSystemMeta);
  const decodeAll = (ref: FeedRef, raw: RawEntry[]) => raw.map((r) => decodeEntry(ref, r)).filter((e): e is StoredEntry => e !== null);

  return {
    streamKey,
    metaKey,

    /** Append to a room's feed (and the global stream), idempotently when `idempotency` is given. */
    async append(input: AppendInput): Promise<AppendResult> {
      const streamKeys = [keys.feedStream(input.roomId), keys.feedMeta(input.roomId), keys.feedGlobal, keys.feedGlobalMeta];
      if (input.idempotency) streamKeys.push(keys.feedMsgId(input.roomId, input.idempotency.key, input.idempotency.clientMsgId));
      const [id, epoch, duplicate] = await scripts.run<[string, string, number]>('feed-append', streamKeys, [
        feed.roomMaxLen,
        feed.roomTtlSeconds * 1000,
        feed.globalMaxLen,
        feed.idempotencyTtlSeconds * 1000,
        newEpoch(),
        newEpoch(),
        input.roomId,
        input.type,
        input.actor?.id ?? '',
        input.actor?.name ?? '',
        JSON.stringify(input.payload),
      ]);
      return { id, epoch, duplicate: duplicate === 1 };
    },

    /** Append to the system log. */
    async log(input: LogInput): Promise<{ id: string; epoch: string }> {
      const [id, epoch] = await scripts.run<[string, string]>('feed-log', [keys.feedSystem, keys.feedSystemMeta], [
        feed.systemMaxLen,
        newEpoch(),
        input.roomId ?? '',
        input.type,
        input.actor?.id ?? '',
        input.actor?.name ?? '',
        JSON.stringify(input.payload ?? {}),
      ]);
      return { id, epoch };
    },

    /** The feed's epoch and last id, creating the epoch of a feed that has none. */
    async position(ref: FeedRef): Promise<FeedPosition> {
      const ttlMs = ref.kind === 'room' ? feed.roomTtlSeconds * 1000 : 0;
      const [epoch, lastId] = await scripts.run<[string, string]>('feed-position', [streamKey(ref), metaKey(ref)], [newEpoch(), ttlMs]);
      return { epoch, lastId };
    },

    /** The feed's epoch and last id as they are, without creating anything. */
    async meta(ref: FeedRef): Promise<FeedPosition | null> {
      const [epoch, lastId] = await redis.hmget(metaKey(ref), 'epoch', 'last');
      return epoch ? { epoch, lastId: lastId ?? ZERO_ID } : null;
    },

    /** Up to `count` entries after `after` (exclusive), oldest first. */
    async after(ref: FeedRef, after: string, count: number): Promise<StoredEntry[]> {
      const raw = (await redis.xrange(streamKey(ref), `(${after}`, '+', 'COUNT', count)) as RawEntry[];
      return decodeAll(ref, raw);
    },

    /** Up to `count` entries before `before` (exclusive; newest when absent), newest first. */
    async before(ref: FeedRef, before: string | undefined, count: number): Promise<StoredEntry[]> {
      const raw = (await redis.xrevrange(streamKey(ref), before ? `(${before}` : '+', '-', 'COUNT', count)) as RawEntry[];
      return decodeAll(ref, raw);
    },

    /** The oldest entry still in the stream, if any. */
    async first(ref: FeedRef): Promise<StoredEntry | null> {
      const raw = (await redis.xrange(streamKey(ref), '-', '+', 'COUNT', 1)) as RawEntry[];
      return decodeAll(ref, raw)[0] ?? null;
    },
  };
}
