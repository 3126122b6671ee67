/**
 * Redis's counters, as Redis 7 answers them: `INCR`, `DECR`, `INCRBY`, `DECRBY` over signed
 * 64-bit integers (`value is not an integer or out of range`, `increment or decrement would
 * overflow`, `decrement would overflow`), and `INCRBYFLOAT` in C's long double with Redis's
 * printing (`long_double.ts`; `value is not a valid float`, `increment would produce NaN or
 * Infinity`). A counter keeps its key's expiry time, as in Redis.
 *
 * Each is one synchronous read and write of the key: atomic against every other connection
 * (nothing runs between them), and answered once its write is committed.
 *
 * @module
 */
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import type { CommandContext, CommandSpec } from "../server/hooks.ts";
import { LLONG_MAX, LLONG_MIN, parseInteger, parseLongLong } from "./arguments.ts";
import {
  addLongDouble,
  formatLongDouble,
  type LongDouble,
  parseLongDouble,
} from "./long_double.ts";
import { answer, readKey, writeKey } from "./string_access.ts";

const NOT_AN_INTEGER = "value is not an integer or out of range";
const NOT_A_FLOAT = "value is not a valid float";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The digits of a 64-bit integer as an integer reply in `ctx`'s framing. */
function integerReply(ctx: CommandContext, value: bigint): Reply {
  const n = Number(value);
  if (Number.isSafeInteger(n)) return { type: "integer", value: n };
  // Past 2^53 a JS number would round: the digits go out as they are.
  const text = ctx.framing === "text" ? `${value}\n` : `:${value}\r\n`;
  return { type: "raw", bytes: encoder.encode(text) };
}

/** Largest increment the fast path adds as a JS number. */
const SMALL = 2 ** 52;
/** Digits of the longest value the fast path parses as a number (below 2^52). */
const SMALL_DIGITS = 15;

/** A stored value of up to {@link SMALL_DIGITS} digits as Redis's integer, else undefined. */
function parseSmall(stored: Uint8Array): number | undefined {
  return stored.length <= SMALL_DIGITS ? parseInteger(stored) : undefined;
}

/**
 * Adds `by` to the integer at `key` (absent: 0); the reply is the new value. Increments below
 * 2^52 whose sum stays a safe integer add as JS numbers in the store (`KVStore.incrementSmall`,
 * which remembers the number it wrote); anything else as 64-bit BigInts, with Redis's checks.
 */
function incrementBy(ctx: CommandContext, out: ReplyWriter, key: Uint8Array, by: number | bigint) {
  if (typeof by === "number" && Math.abs(by) < SMALL) {
    const done = ctx.node.store.incrementSmall(key, by, parseSmall);
    if (done !== undefined) {
      ctx.node.commit.noteWrite(key, done.lsn);
      return answer(ctx, out, { type: "integer", value: done.value }, done.lsn);
    }
  }
  const old = readKey(ctx, key);
  const stored = old.value;
  let value = 0n;
  if (stored !== undefined) {
    const parsed = parseLongLong(stored);
    if (parsed === undefined) return out.error(NOT_AN_INTEGER);
    value = parsed;
  }
  const step = BigInt(by);
  if (
    (step < 0n && value < 0n && step < LLONG_MIN - value) ||
    (step > 0n && value > 0n && step > LLONG_MAX - value)
  ) {
    return out.error("increment or decrement would overflow");
  }
  value += step;
  const lsn = writeKey(ctx, key, String(value), old.expiresAtMs, true);
  return answer(ctx, out, integerReply(ctx, value), lsn, old.pending);
}

function incr(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  return incrementBy(ctx, out, args[0], 1);
}

function decr(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  return incrementBy(ctx, out, args[0], -1);
}

/** An increment argument: a number when small, else a 64-bit BigInt; undefined if not one. */
function incrementOf(bytes: Uint8Array): number | bigint | undefined {
  return bytes.length <= SMALL_DIGITS ? parseInteger(bytes) : parseLongLong(bytes);
}

function incrby(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const by = incrementOf(args[1]);
  if (by === undefined) return out.error(NOT_AN_INTEGER);
  return incrementBy(ctx, out, args[0], by);
}

function decrby(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const by = incrementOf(args[1]);
  if (by === undefined) return out.error(NOT_AN_INTEGER);
  if (by === LLONG_MIN) return out.error("decrement would overflow");
  return incrementBy(ctx, out, args[0], -by);
}

/** A long double argument or stored value as Redis reads it; undefined when it refuses. */
function longDoubleOf(bytes: Uint8Array): LongDouble | number | undefined {
  if (bytes.length >= 5 * 1024) return undefined;
  return parseLongDouble(decoder.decode(bytes));
}

/** `INCRBYFLOAT key increment`: the new value, as Redis prints it (a bulk string). */
function incrbyfloat(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [key, by] = args;
  const old = readKey(ctx, key);
  const value = old.value === undefined
    ? { significand: 0n, exponent: 0 }
    : longDoubleOf(old.value);
  const increment = longDoubleOf(by);
  if (value === undefined || increment === undefined) return out.error(NOT_A_FLOAT);
  let sum: LongDouble | number;
  if (typeof value === "number" || typeof increment === "number") {
    // An infinity in: Infinity or NaN out, both refused.
    sum = Number.NaN;
  } else {
    sum = addLongDouble(value, increment);
  }
  if (typeof sum === "number") return out.error("increment would produce NaN or Infinity");
  const text = encoder.encode(formatLongDouble(sum));
  const lsn = writeKey(ctx, key, text, old.expiresAtMs, true);
  return answer(ctx, out, { type: "value", value: text }, lsn, old.pending);
}

/** The counter commands, by upper-case name. */
export const COUNTER_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["INCR", { minArgs: 1, maxArgs: 1, write: true, handler: incr }],
  ["DECR", { minArgs: 1, maxArgs: 1, write: true, handler: decr }],
  ["INCRBY", { minArgs: 2, maxArgs: 2, write: true, handler: incrby }],
  ["DECRBY", { minArgs: 2, maxArgs: 2, write: true, handler: decrby }],
  ["INCRBYFLOAT", { minArgs: 2, maxArgs: 2, write: true, handler: incrbyfloat }],
]);
