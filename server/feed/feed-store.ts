/**
 * The Redis side of the activity feed: appends (one Lua script each, in one
 * hash slot), reads (XRANGE / XREVRANGE) and positions of the three kinds of
 * feed, and the encoding of stream entries into wire entries.
 *
 * Every stream entry carries `v`, the id of the entry before it in the same
 * stream (`0-0` for the first), and `n`, its ordinal in the stream's epoch. A
 * reader that holds id X and next reads an entry whose `v` is not X knows for
 * certain that entries are missing (trimmed, never received, or the stream was
 * lost), which is what makes "no gap" checkable; `n` tells how many entries
 * lie between two ids without reading them.
 *
 * Cost of an append: one script call (one round trip): XADD, HSET, two
 * PEXPIREs, the idempotency SET and one SPUBLISH to the room's live channel,
 * whatever the size of the room. With `FEED_APPEND_WAIT_REPLICAS` the script
 * and a `WAIT` go in one pipeline: still one round trip, which lasts until a
 * replica has the entry.
 */
import { randomFillSync } from 'node:crypto';
import type { RedisClient as Redis } from '../redis/connections.ts';
import type { FeedActor, FeedEntry, FeedPosition, FeedScope } from '../../shared/schemas.ts';
import type { FeedConfig } from '../config.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import { idTime, ZERO_ID } from '../../shared/stream-ids.ts';

/** Which feed: a room's, or one of the two admin feeds. */
export type FeedRef = { kind: 'room'; roomId: string } | { kind: FeedScope };

/**
 * One entry on its way to subscribers: the wire entry already encoded as JSON
 * (the same text for every subscriber of the node), its stream id and the id
 * before it. The object is shared by every local subscriber, so a per-object
 * cache encodes its frame once per node.
 */
export interface Delivery {
  id: string;
  /** Id of the entry before this one in the same stream. */
  prev: string;
  /** The `feed:entry` payload, as JSON text. */
  json: string;
  /** Whose feed membership this entry ends: '' nobody, '*' everyone (`room.ended`), else a user id. */
  ends: string;
}

/** A delivery read from the stream: also its ordinal in the epoch. */
export interface StreamDelivery extends Delivery {
  n: number;
}

/** A room entry as stored, for the archive and the global copy. */
export interface ArchiveRecord {
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

/** A position with the epoch's entry count (the difference of two `n` is the number of entries between them). */
export interface StorePosition extends FeedPosition {
  n: number;
}

export interface AppendInput {
  roomId: string;
  type: string;
  actor: FeedActor | null;
  payload: Record<string, unknown>;
  /** Idempotency: the same `(key, clientMsgId)` within the window returns the first id and adds nothing. */
  idempotency?: { key: string; clientMsgId: string };
  /** Refuse (`forbidden`) when the room's feed was closed by `room.ended`: members' and backends' publishes. */
  refuseClosed?: boolean;
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
 * Candidate epochs: 8 CSPRNG bytes as hex, drawn from a buffer refilled 512
 * epochs at a time (one `randomBytes` call per candidate was a fifth of an
 * append's CPU time). Used only when a stream has no epoch yet.
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

/**
 * The wire entry's JSON after `{"id":...,"ts":...`: what the append script
 * completes with the id it got. Built the same way for live messages and for
 * entries read back, so every subscriber sees the same text.
 */
export function entryTail(roomId: string | null, scope: FeedScope | undefined, type: string, actorId: string, actorName: string, payloadJson: string): string {
  const actor = actorId ? `{"id":${JSON.stringify(actorId)},"name":${JSON.stringify(actorName)}}` : 'null';
  const scoped = scope ? `,"scope":"${scope}"` : '';
  return `,"roomId":${roomId === null ? 'null' : JSON.stringify(roomId)}${scoped},"type":${JSON.stringify(type)},"actor":${actor},"payload":${payloadJson}}`;
}

const entryJson = (id: string, tail: string) => `{"id":"${id}","ts":${idTime(id)}${tail}`;

/** Whose membership an entry ends (see `Delivery.ends`). */
export function endsOf(type: string, actorId: string, payload: () => Record<string, unknown>): string {
  if (type === 'room.ended') return '*';
  if (type !== 'member.kicked' && type !== 'member.left') return '';
  const target = payload().userId;
  return typeof target === 'string' ? target : actorId;
}

const roomOf = (ref: FeedRef, f: Record<string, string>): string | null => (ref.kind === 'room' ? ref.roomId : f.r ? f.r : null);
const scopeOf = (ref: FeedRef): FeedScope | undefined => (ref.kind === 'room' ? undefined : ref.kind);

/** Decode one raw stream entry of feed `ref` for delivery; null for an entry whose fields are gone. */
function decodeDelivery(ref: FeedRef, [id, raw]: RawEntry): StreamDelivery | null {
  if (!raw) return null;
  const f = fieldsOf(raw);
  const type = f.t ?? '';
  return {
    id,
    prev: f.v ?? ZERO_ID,
    n: Number(f.n ?? 0),
    json: entryJson(id, entryTail(roomOf(ref, f), scopeOf(ref), type, f.ai ?? '', f.an ?? '', f.p || '{}')),
    ends: ref.kind === 'room' ? endsOf(type, f.ai ?? '', () => parsePayload(f.p)) : '',
  };
}

/** Decode one raw stream entry of feed `ref` into a wire entry (history); null for an entry whose fields are gone. */
function decodeEntry(ref: FeedRef, [id, raw]: RawEntry): FeedEntry | null {
  if (!raw) return null;
  const f = fieldsOf(raw);
  const base = { id, type: f.t ?? '', actor: actorOf(f), payload: parsePayload(f.p), ts: idTime(id) };
  if (ref.kind === 'room') return { roomId: ref.roomId, ...base };
  return { roomId: roomOf(ref, f), scope: ref.kind, ...base };
}

/** Decode a room stream entry for the archive. */
function decodeRecord(roomId: string, epoch: string, [id, raw]: RawEntry): ArchiveRecord | null {
  if (!raw) return null;
  const f = fieldsOf(raw);
  return { roomId, entryId: id, epoch, prev: f.v ?? ZERO_ID, type: f.t ?? '', actor: actorOf(f), payload: f.p || '{}', ts: idTime(id) };
}

export function createFeedStore({
  redis,
  scripts,
  keys,
  config,
  onAppended,
}: {
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  config: { feed: FeedConfig };
  /** Called with the room id after every entry appended to a room's feed (the archive's hint). */
  onAppended?: (roomId: string) => void;
}) {
  const { feed } = config;
  const newEpoch = createEpochSource();
  /** Entries this store appended (duplicates not counted), for `pinroom_feed_entries_total`. */
  const appended = { room: 0, system: 0 };

  const streamKey = (ref: FeedRef) => (ref.kind === 'room' ? keys.feedStream(ref.roomId) : ref.kind === 'global' ? keys.feedGlobal : keys.feedSystem);
  const metaKey = (ref: FeedRef) => (ref.kind === 'room' ? keys.feedMeta(ref.roomId) : ref.kind === 'global' ? keys.feedGlobalMeta : keys.feedSystemMeta);
  const liveChannel = (ref: FeedRef) => (ref.kind === 'room' ? keys.feedLive(ref.roomId) : ref.kind === 'global' ? keys.feedGlobalLive : keys.feedSystemLive);
  const deliveries = (ref: FeedRef, raw: RawEntry[]) => raw.map((r) => decodeDelivery(ref, r)).filter((e): e is StreamDelivery => e !== null);

  return {
    streamKey,
    metaKey,
    liveChannel,

    /** Entries appended through this store, by feed. */
    stats: (): Readonly<{ room: number; system: number }> => appended,

    /** Append to a room's feed and publish it live, idempotently when `idempotency` is given. */
    async append(input: AppendInput): Promise<AppendResult> {
      const { roomId, type, actor } = input;
      const payloadJson = JSON.stringify(input.payload);
      const scriptKeys = [keys.feedStream(roomId), keys.feedMeta(roomId), keys.feedLive(roomId)];
      if (input.idempotency) scriptKeys.push(keys.feedMsgId(roomId, input.idempotency.key, input.idempotency.clientMsgId));
      const args = [
        feed.roomMaxLen,
        feed.roomTtlSeconds * 1000,
        feed.idempotencyTtlSeconds * 1000,
        newEpoch(),
        type,
        actor?.id ?? '',
        actor?.name ?? '',
        payloadJson,
        entryTail(roomId, undefined, type, actor?.id ?? '', actor?.name ?? '', payloadJson),
        endsOf(type, actor?.id ?? '', () => input.payload),
        input.refuseClosed ? '1' : '',
        type === 'room.ended' ? '1' : '',
      ];
      if (feed.appendWaitReplicas === 0) {
        const [id, epoch, status] = await scripts.run<[string, string, number, string]>('feed-append', scriptKeys, args);
        if (status === 2) throw new AppError(ErrorCode.Forbidden, 'The room has ended; its feed is closed');
        if (status === 0) {
          appended.room++;
          onAppended?.(roomId);
        }
        return { id, epoch, duplicate: status === 1 };
      }
      // The script and WAIT in one pipeline: on one connection to the entry's master (a cluster
      // routes the pipeline by the script's keys), so WAIT counts the replicas that have this write.
      const batch = redis.pipeline();
      scripts.queue(batch, 'feed-append', scriptKeys, args);
      batch.call('WAIT', feed.appendWaitReplicas, feed.appendWaitTimeoutMs);
      const [[appendErr, reply], [waitErr, replicas]] = ((await batch.exec()) ?? []) as [[Error | null, unknown], [Error | null, unknown]];
      if (appendErr) throw appendErr;
      const [id, epoch, status] = reply as [string, string, number, string];
      if (status === 2) throw new AppError(ErrorCode.Forbidden, 'The room has ended; its feed is closed');
      if (status === 0) {
        appended.room++;
        onAppended?.(roomId);
      }
      if (waitErr) throw waitErr;
      if (Number(replicas) < feed.appendWaitReplicas) {
        throw new AppError(ErrorCode.Unavailable, `The entry reached ${Number(replicas)} of ${feed.appendWaitReplicas} replicas in time; retry with the same clientMsgId`, { retryable: true });
      }
      return { id, epoch, duplicate: status === 1 };
    },

    /** Append to the system log. */
    async log(input: LogInput): Promise<{ id: string; epoch: string }> {
      const payloadJson = JSON.stringify(input.payload ?? {});
      const [id, epoch] = await scripts.run<[string, string]>('feed-log', [keys.feedSystem, keys.feedSystemMeta, keys.feedSystemLive], [
        feed.systemMaxLen,
        newEpoch(),
        input.roomId ?? '',
        input.type,
        input.actor?.id ?? '',
        input.actor?.name ?? '',
        payloadJson,
        entryTail(input.roomId ?? null, 'system', input.type, input.actor?.id ?? '', input.actor?.name ?? '', payloadJson),
      ]);
      appended.system++;
      return { id, epoch };
    },

    /** Copy archived entries of one room into the global feed (each once, whatever the retries). Returns how many were added. */
    async copyToGlobal(roomId: string, records: readonly ArchiveRecord[]): Promise<number> {
      if (records.length === 0) return 0;
      const args: (string | number)[] = [feed.globalMaxLen, newEpoch(), roomId];
      for (const r of records) {
        const actorId = r.actor?.id ?? '';
        const actorName = r.actor?.name ?? '';
        args.push(r.entryId, r.type, actorId, actorName, r.payload, entryTail(roomId, 'global', r.type, actorId, actorName, r.payload));
      }
      return scripts.run<number>('feed-global', [keys.feedGlobal, keys.feedGlobalMeta, keys.feedGlobalLive, keys.feedGlobalCopied], args);
    },

    /** The feed's epoch, last id and entry count, creating the epoch of a feed that has none. */
    async position(ref: FeedRef): Promise<StorePosition> {
      const ttlMs = ref.kind === 'room' ? feed.roomTtlSeconds * 1000 : 0;
      const [epoch, lastId, n] = await scripts.run<[string, string, number]>('feed-position', [streamKey(ref), metaKey(ref)], [newEpoch(), ttlMs]);
      return { epoch, lastId, n: Number(n) };
    },

    /** The feed's epoch and last id as they are, without creating anything. */
    async meta(ref: FeedRef): Promise<FeedPosition | null> {
      const [epoch, lastId] = await redis.hmget(metaKey(ref), 'epoch', 'last');
      return epoch ? { epoch, lastId: lastId ?? ZERO_ID } : null;
    },

    /** Up to `count` entries after `after` (exclusive), oldest first, ready to deliver. */
    async after(ref: FeedRef, after: string, count: number): Promise<StreamDelivery[]> {
      return deliveries(ref, (await redis.xrange(streamKey(ref), `(${after}`, '+', 'COUNT', count)) as RawEntry[]);
    },

    /** The entry with id `id`, if the stream still holds it. */
    async at(ref: FeedRef, id: string): Promise<StreamDelivery | null> {
      return deliveries(ref, (await redis.xrange(streamKey(ref), id, id)) as RawEntry[])[0] ?? null;
    },

    /** The oldest entry still in the stream, if any. */
    async first(ref: FeedRef): Promise<StreamDelivery | null> {
      return deliveries(ref, (await redis.xrange(streamKey(ref), '-', '+', 'COUNT', 1)) as RawEntry[])[0] ?? null;
    },

    /** Up to `count` entries before `before` (exclusive; newest when absent), newest first, as wire entries with their `prev`. */
    async before(ref: FeedRef, before: string | undefined, count: number): Promise<{ entry: FeedEntry; prev: string }[]> {
      const raw = (await redis.xrevrange(streamKey(ref), before ? `(${before}` : '+', '-', 'COUNT', count)) as RawEntry[];
      const out: { entry: FeedEntry; prev: string }[] = [];
      for (const r of raw) {
        const entry = decodeEntry(ref, r);
        if (entry) out.push({ entry, prev: fieldsOf(r[1]!).v ?? ZERO_ID });
      }
      return out;
    },

    /** Up to `count` entries of a room after `after` (exclusive), for the archive, with the `prev` of each. */
    async records(roomId: string, epoch: string, after: string, count: number): Promise<ArchiveRecord[]> {
      const raw = (await redis.xrange(keys.feedStream(roomId), `(${after}`, '+', 'COUNT', count)) as RawEntry[];
      return raw.map((r) => decodeRecord(roomId, epoch, r)).filter((r): r is ArchiveRecord => r !== null);
    },
  };
}
