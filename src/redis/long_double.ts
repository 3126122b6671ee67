/**
 * Redis's `INCRBYFLOAT` arithmetic, reproduced exactly: Redis parses with `strtold`, adds in C's
 * `long double` (x86-64: 80-bit extended precision, a 64-bit significand) and prints the sum with
 * `%.17Lf`, trailing zeros removed. A JS double would answer otherwise (`0.1 + 0.2` is
 * `0.30000000000000004` in doubles, `0.3` in Redis), so the values here are exact binary
 * fractions held in BigInts (`significand × 2^exponent`), rounded to 64 significant bits
 * (to nearest, ties to even) after a parse and after an addition, as the x87 unit does.
 *
 * @module
 */

/** A finite extended-precision value: `significand × 2^exponent` (significand < 2^64). */
export interface LongDouble {
  readonly significand: bigint;
  readonly exponent: number;
}

/** Longest input Redis parses (`MAX_LONG_DOUBLE_CHARS`). */
const MAX_LONG_DOUBLE_CHARS = 5 * 1024;
const SIGNIFICAND_BITS = 64;
/** Beyond these binary exponents a long double overflows or underflows. */
const MAX_EXPONENT = 16384;
const MIN_EXPONENT = -16445;
const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

function bitLength(value: bigint): number {
  return value === 0n ? 0 : value.toString(2).length;
}

/** Rounds `numerator / 2^shift` to the nearest integer, ties to even (shift ≥ 0). */
function shiftRound(numerator: bigint, shift: number): bigint {
  if (shift <= 0) return numerator << BigInt(-shift);
  const negative = numerator < 0n;
  const n = negative ? -numerator : numerator;
  const big = BigInt(shift);
  let q = n >> big;
  const r = n - (q << big);
  const half = 1n << (big - 1n);
  if (r > half || (r === half && (q & 1n) === 1n)) q += 1n;
  return negative ? -q : q;
}

/**
 * The long double nearest `numerator / denominator` (denominator > 0), or "overflow" /
 * "underflow" when it falls outside the long double range.
 */
function fromRatio(numerator: bigint, denominator: bigint): LongDouble | "overflow" | "underflow" {
  if (numerator === 0n) return { significand: 0n, exponent: 0 };
  const negative = numerator < 0n;
  const n = negative ? -numerator : numerator;
  // Scale so the quotient has 64 bits plus guard bits, then round once.
  let shift = SIGNIFICAND_BITS + 2 - (bitLength(n) - bitLength(denominator));
  const scaled = shift >= 0 ? n << BigInt(shift) : n;
  const divisor = shift >= 0 ? denominator : denominator << BigInt(-shift);
  let q = scaled / divisor;
  const sticky = scaled % divisor !== 0n ? 1n : 0n;
  let extra = bitLength(q) - SIGNIFICAND_BITS;
  q = (q << 1n) | sticky; // the sticky bit breaks ties that are not exact
  let significand = shiftRound(q, extra + 1);
  if (bitLength(significand) > SIGNIFICAND_BITS) {
    significand >>= 1n;
    extra++;
  }
  shift -= extra;
  const exponent = -shift;
  if (exponent + SIGNIFICAND_BITS > MAX_EXPONENT) return "overflow";
  if (exponent < MIN_EXPONENT) return "underflow";
  return { significand: negative ? -significand : significand, exponent };
}

/**
 * Parses `text` as Redis's `string2ld` does (`strtold`, refusing leading spaces, trailing bytes,
 * overflow, underflow to zero, NaN); `Infinity` for `inf`/`infinity` (signed), undefined when
 * Redis refuses it.
 */
export function parseLongDouble(text: string): LongDouble | number | undefined {
  if (text.length === 0 || text.length >= MAX_LONG_DOUBLE_CHARS) return undefined;
  const infinity = /^([+-]?)(inf|infinity)$/i.exec(text);
  if (infinity) return infinity[1] === "-" ? -Infinity : Infinity;
  const match = DECIMAL.exec(text);
  if (match === null) return undefined;
  const [, sign, whole, fraction = "", exponentText = "0"] = match;
  if (whole.length === 0 && fraction.length === 0) return undefined;
  const exponent10 = Number(exponentText) - fraction.length;
  if (!Number.isSafeInteger(exponent10)) return undefined;
  const digits = BigInt((whole + fraction).replace(/^0+(?=\d)/, "") || "0");
  if (digits === 0n) return { significand: 0n, exponent: 0 };
  // Far outside the range: no need to build a 10^huge BigInt.
  const magnitude = (whole + fraction).replace(/^0+/, "").length + exponent10;
  if (magnitude > 4940) return undefined;
  if (magnitude < -4960) return undefined;
  const numerator = sign === "-" ? -digits : digits;
  const value = exponent10 >= 0
    ? fromRatio(numerator * 10n ** BigInt(exponent10), 1n)
    : fromRatio(numerator, 10n ** BigInt(-exponent10));
  return typeof value === "string" ? undefined : value;
}

/** `a + b` rounded to a long double; Infinity (signed) past the range. */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble | number {
  const low = Math.min(a.exponent, b.exponent);
  const sum = (a.significand << BigInt(a.exponent - low)) +
    (b.significand << BigInt(b.exponent - low));
  const value = low >= 0 ? fromRatio(sum << BigInt(low), 1n) : fromRatio(sum, 1n << BigInt(-low));
  if (value === "overflow") return sum < 0n ? -Infinity : Infinity;
  if (value === "underflow") return { significand: 0n, exponent: 0 };
  return value;
}

/**
 * `value` as Redis prints it (`%.17Lf`, trailing zeros and a trailing dot removed, `-0` as `0`).
 *
 * @example
 * ```ts
 * import { addLongDouble, formatLongDouble, parseLongDouble, type LongDouble } from "./long_double.ts";
 * const a = parseLongDouble("0.1") as LongDouble;
 * const b = parseLongDouble("0.2") as LongDouble;
 * console.log(formatLongDouble(addLongDouble(a, b) as LongDouble)); // 0.3
 * ```
 */
export function formatLongDouble(value: LongDouble): string {
  const negative = value.significand < 0n;
  const m = negative ? -value.significand : value.significand;
  const scaled = value.exponent >= 0
    ? (m << BigInt(value.exponent)) * 10n ** 17n
    : shiftRound(m * 10n ** 17n, -value.exponent);
  const digits = scaled.toString().padStart(18, "0");
  let text = `${digits.slice(0, -17)}.${digits.slice(-17)}`.replace(/0+$/, "").replace(/\.$/, "");
  if (negative && text !== "0") text = `-${text}`;
  return text;
}
