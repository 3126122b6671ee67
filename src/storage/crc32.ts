/**
 * CRC-32 (IEEE, the same values as `node:zlib`'s `crc32`) of a range of bytes, computed in
 * JavaScript for short ranges: a call into `node:zlib` costs ~100-160 ns whatever the length
 * (and a `subarray` view to pass), while a table-driven loop here costs ~1 ns a byte, so below
 * {@link NATIVE_FROM_BYTES} bytes (an `INCR`'s record, ~50) the loop is faster and above it the
 * native call. Measured on this machine: 36 bytes 47 ns against 164, 64 bytes 75 against 107,
 * 96 bytes 109 against 94.
 *
 * @module
 */
import { crc32 as nativeCrc32 } from "node:zlib";

/** Ranges at least this long go to `node:zlib`. */
const NATIVE_FROM_BYTES = 80;

/** Slicing-by-8 tables: 8 × 256 entries, `TABLES[t * 256 + n]`. */
const TABLES = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLES[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = TABLES[n];
  for (let t = 1; t < 8; t++) {
    c = TABLES[c & 0xff] ^ (c >>> 8);
    TABLES[t * 256 + n] = c;
  }
}

/**
 * The CRC-32 of `buf[start, end)`, as an unsigned 32-bit number.
 *
 * @example
 * ```ts
 * import { crc32Of } from "./crc32.ts";
 * console.log(crc32Of(new TextEncoder().encode("123456789"), 0, 9).toString(16)); // cbf43926
 * ```
 */
export function crc32Of(buf: Uint8Array, start: number, end: number): number {
  if (end - start >= NATIVE_FROM_BYTES) return nativeCrc32(buf.subarray(start, end));
  const t = TABLES;
  let c = -1;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    c = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^ t[1280 + ((a >>> 16) & 0xff)] ^
      t[1024 + (a >>> 24)] ^ t[768 + buf[i + 4]] ^ t[512 + buf[i + 5]] ^ t[256 + buf[i + 6]] ^
      t[buf[i + 7]];
  }
  for (; i < end; i++) c = t[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
