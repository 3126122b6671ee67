/**
 * The key index's hash: seeded FNV-1a with a murmur3 finaliser, over a key string (one UTF-16
 * code unit 0–255 per byte, see `keys.ts`) or over the same bytes in a buffer, with equal
 * results; and the comparison of a key string with key bytes.
 *
 * @module
 */

const FNV_PRIME = 0x0100_0193;

function finish(h: number, length: number): number {
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hash of a byte string (seeded FNV-1a with a murmur3 finaliser). */
export function hashString(key: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), FNV_PRIME);
  return finish(h, key.length);
}

/** Hash of `buf[start, end)`; equal to {@link hashString} of the same bytes as a byte string. */
export function hashBytes(buf: Uint8Array, start: number, end: number, seed: number): number {
  let h = seed;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], FNV_PRIME);
  return finish(h, end - start);
}

/** Whether the byte string `key` is `buf[start, end)`. */
export function equalsBytes(key: string, buf: Uint8Array, start: number, end: number): boolean {
  if (key.length !== end - start) return false;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) !== buf[start + i]) return false;
  return true;
}

/** A random hash seed, so a client cannot choose keys that collide. */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
