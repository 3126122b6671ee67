/**
 * Reading Redis command arguments as Redis reads them: words compared case-insensitively, and
 * integers by Redis's strict rules (`string2ll`: an optional `-`, digits, no leading zeros, no
 * `+`, no spaces), so `SELECT 01` or `HELLO " 3"` are refused as Redis refuses them.
 *
 * @module
 */

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
