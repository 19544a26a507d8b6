/**
 * Redis Cluster hash slots, as the cluster computes them (CRC16-XMODEM of the
 * key, or of its first non-empty `{hash tag}`, modulo 16384). Every Lua
 * script must touch keys of one slot only; `scripts.run` checks it on every
 * call, so a script that would fail with CROSSSLOT on a cluster fails the
 * same way on a single Redis, in every test.
 */

export const SLOTS = 16384;

const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16-XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster uses. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

/** The part of a key that is hashed: the content of its first `{...}` when that is non-empty, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** The cluster slot of a key. */
export function keySlot(key: string): number {
  return crc16(Buffer.from(hashTag(key))) % SLOTS;
}

/** Throws unless every key lies in one slot (what a Redis Cluster requires of a script's keys). */
export function assertOneSlot(what: string, keys: readonly string[]): void {
  if (keys.length < 2) return;
  const tag = hashTag(keys[0]!);
  let slot: number | undefined;
  for (let i = 1; i < keys.length; i++) {
    const other = hashTag(keys[i]!);
    if (other === tag) continue;
    slot ??= keySlot(keys[0]!);
    if (keySlot(keys[i]!) !== slot) throw new Error(`${what}: keys in more than one cluster slot (${keys[0]} and ${keys[i]})`);
  }
}
