/**
 * Redis Stream ids (`<ms>-<seq>`) as values: they order by their two numbers,
 * not as text ('10-0' > '9-0').
 */

/** The id before any entry: `prev` of a stream's first entry, `lastId` of an empty feed. */
export const ZERO_ID = '0-0';

const FORMAT = /^([0-9]{1,20})-([0-9]{1,20})$/;

export function isStreamId(value: string): boolean {
  return FORMAT.test(value);
}

function parts(id: string): [bigint, bigint] {
  const match = FORMAT.exec(id);
  if (!match) throw new TypeError(`not a stream id: ${id}`);
  return [BigInt(match[1]!), BigInt(match[2]!)];
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const [am, as] = parts(a);
  const [bm, bs] = parts(b);
  if (am !== bm) return am < bm ? -1 : 1;
  return as < bs ? -1 : as > bs ? 1 : 0;
}

/** Milliseconds part of an id: when Redis appended the entry. */
export function idTime(id: string): number {
  return Number(parts(id)[0]);
}
