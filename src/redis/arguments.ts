/**
 * Reading Redis command arguments as Redis reads them: words compared case-insensitively, and
 * integers by Redis's strict rules (`string2ll`: an optional `-`, digits, no leading zeros, no
 * `+`, no spaces), so `SELECT 01` or `HELLO " 3"` are refused as Redis refuses them. Where Redis
 * takes any 64-bit integer, so does kvstore: past the safe integers as a `bigint`
 * ({@link parseLongLong}), or clamped where the value only bounds something ({@link parseClamped}).
 *
 * @module
 */

import { NOT_AN_INTEGER } from "../protocol/mod.ts";

const decoder = new TextDecoder();

/** An argument as text (UTF-8; invalid bytes become U+FFFD). */
export function argText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * An ASCII word upper-cased (for options such as `SETNAME`, `TYPE`); bytes outside ASCII are
 * kept as `?`, so they never match an option.
 *
 * @example
 * ```ts
 * import { upperWord } from "./arguments.ts";
 * console.log(upperWord(new TextEncoder().encode("SetName"))); // SETNAME
 * ```
 */
export function upperWord(bytes: Uint8Array): string {
  let word = "";
  for (let i = 0; i < bytes.length && i < 64; i++) {
    const byte = bytes[i];
    const upper = byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte;
    word += upper >= 0x20 && upper < 0x7f ? String.fromCharCode(upper) : "?";
  }
  return bytes.length > 64 ? `${word}...` : word;
}

/**
 * The integer an argument holds by Redis's `string2ll` rules, if it lies in `[min, max]`
 * (default: the safe integers); `undefined` otherwise (the caller answers
 * `value is not an integer or out of range` or its own words).
 *
 * @example
 * ```ts
 * import { parseInteger } from "./arguments.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * console.log(parseInteger(bytes("-12")), parseInteger(bytes("012")), parseInteger(bytes("+1")));
 * // -12 undefined undefined
 * ```
 */
export function parseInteger(
  bytes: Uint8Array,
  min = Number.MIN_SAFE_INTEGER,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const length = bytes.length;
  if (length === 0 || length > 20) return undefined;
  if (length === 1 && bytes[0] === 0x30) return 0 >= min && 0 <= max ? 0 : undefined;
  let i = 0;
  const negative = bytes[0] === 0x2d;
  if (negative) i++;
  if (i >= length || bytes[i] < 0x31 || bytes[i] > 0x39) return undefined;
  let value = 0;
  for (; i < length; i++) {
    const byte = bytes[i];
    if (byte < 0x30 || byte > 0x39) return undefined;
    value = value * 10 + (byte - 0x30);
  }
  if (negative) value = -value;
  if (!Number.isSafeInteger(value) || value < min || value > max) return undefined;
  return value;
}

/** Redis's 64-bit integer bounds. */
export const LLONG_MAX = 2n ** 63n - 1n;
export const LLONG_MIN = -(2n ** 63n);

/**
 * The 64-bit integer `bytes` holds by Redis's `string2ll` rules (an optional `-`, digits, no
 * leading zero, no `+` or spaces, within a signed 64-bit range), or undefined.
 *
 * @example
 * ```ts
 * import { parseLongLong } from "./arguments.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * console.log(parseLongLong(bytes("9223372036854775807")), parseLongLong(bytes("01")));
 * // 9223372036854775807n undefined
 * ```
 */
export function parseLongLong(bytes: Uint8Array): bigint | undefined {
  const length = bytes.length;
  if (length === 0 || length > 20) return undefined;
  if (length === 1 && bytes[0] === 0x30) return 0n;
  let i = 0;
  const negative = bytes[0] === 0x2d;
  if (negative) i++;
  if (i >= length || bytes[i] < 0x31 || bytes[i] > 0x39) return undefined;
  let small = 0;
  for (let j = i; j < length; j++) {
    const byte = bytes[j];
    if (byte < 0x30 || byte > 0x39) return undefined;
    small = small * 10 + (byte - 0x30);
  }
  // Up to 15 digits a double holds exactly: no BigInt parse needed.
  let value = length - i <= 15
    ? BigInt(small)
    : BigInt(new TextDecoder().decode(bytes.subarray(i)));
  if (negative) value = -value;
  return value < LLONG_MIN || value > LLONG_MAX ? undefined : value;
}

/** A C `int`'s range, and Redis's words for an argument outside it (`SELECT`, `COPY ... DB`). */
const INT_MIN = -(2n ** 31n);
const INT_MAX = 2n ** 31n - 1n;
const INT_RANGE = `value is out of range, value must between ${INT_MIN} and ${INT_MAX}`;

/**
 * A C `int` argument read as Redis's `getIntFromObjectOrReply` reads it: a 64-bit integer (else
 * `value is not an integer or out of range`) within an `int`'s range (else Redis's words for
 * that); a string is the error.
 *
 * @example
 * ```ts
 * import { parseInt32 } from "./arguments.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * console.log(parseInt32(bytes("7")), parseInt32(bytes("99999999999999999")));
 * // 7 value is out of range, value must between -2147483648 and 2147483647
 * ```
 */
export function parseInt32(bytes: Uint8Array): number | string {
  const value = parseLongLong(bytes);
  if (value === undefined) return NOT_AN_INTEGER;
  if (value < INT_MIN || value > INT_MAX) return INT_RANGE;
  return Number(value);
}

/**
 * A 64-bit integer argument that only bounds something (a `COUNT`, a timeout), where any value
 * past `max` acts as `max` does: Redis takes every 64-bit value, and so does this, clamped into
 * `[min, max]`; undefined when it is not a 64-bit integer.
 *
 * @example
 * ```ts
 * import { parseClamped } from "./arguments.ts";
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * console.log(parseClamped(bytes("9223372036854775807"), 0, 1000), parseClamped(bytes("x"), 0, 9));
 * // 1000 undefined
 * ```
 */
export function parseClamped(bytes: Uint8Array, min: number, max: number): number | undefined {
  const value = parseLongLong(bytes);
  if (value === undefined) return undefined;
  if (value < BigInt(min)) return min;
  if (value > BigInt(max)) return max;
  return Number(value);
}
