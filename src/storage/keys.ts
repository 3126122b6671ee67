/**
 * Conversions between key bytes and the index's "byte strings": one UTF-16 code unit 0–255 per
 * byte (a V8 one-byte string), so `<` on two keys compares their bytes. `node:buffer`'s latin1
 * decoding is exact for this; `TextDecoder("latin1")` is not (it is windows-1252).
 *
 * @module
 */
import { Buffer } from "node:buffer";

const latin1Slice = (Buffer.prototype as unknown as {
  latin1Slice(this: Uint8Array, start: number, end: number): string;
}).latin1Slice;

const encoder = new TextEncoder();

/** Bytes as given, or a string's UTF-8 encoding. */
export function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

/** The byte string of `bytes[start, end)`. */
export function bytesToKey(bytes: Uint8Array, start = 0, end = bytes.length): string {
  return latin1Slice.call(bytes, start, end);
}

/** The bytes of a byte string. */
export function keyToBytes(key: string): Uint8Array {
  const bytes = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
  return bytes;
}

/** A key or value: bytes, or a string (UTF-8 encoded). */
export type Bytes = Uint8Array | string;

/** Whether every code unit of `key` is ASCII (then the string is its own byte string). */
function isAscii(key: string): boolean {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) >= 0x80) return false;
  return true;
}

/**
 * A key or value as the codec and the index take it: bytes, or an ASCII string (its own byte
 * string, so it needs no `TextEncoder`, see docs/ARCHITECTURE.md, "Measured costs"); other strings
 * are UTF-8 encoded.
 */
export function payloadOf(data: Bytes): Uint8Array | string {
  return typeof data === "string" && !isAscii(data) ? toBytes(data) : data;
}
