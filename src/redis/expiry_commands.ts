/**
 * Redis's expiry commands, as Redis 7 answers them: `EXPIRE`, `PEXPIRE`, `EXPIREAT`,
 * `PEXPIREAT` with `NX|XX|GT|LT`, `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`, `PERSIST`.
 *
 * An expiry time is absolute (ms since the Unix epoch) and stored with the key's value in the
 * log (`src/storage/record.ts`, PUT_EXPIRING), so a restart, a replica and a full sync keep it.
 * Setting or removing one rewrites the key with its value; a time already past deletes the key
 * (a DELETE record), as Redis does. The master decides when a key is gone: it deletes keys past
 * their time in the background (`EXPIRY_INTERVAL_MS`); every node hides them from reads at once.
 *
 * @module
 */
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import type { CommandContext, CommandSpec } from "../server/hooks.ts";
import { MAX_EXPIRES_AT_MS } from "../storage/mod.ts";
import {
  answer,
  deleteKey,
  invalidExpireTime,
  probeKey,
  readKey,
  writeKey,
} from "./string_access.ts";
import { LLONG_MAX, LLONG_MIN, parseLongLong } from "./arguments.ts";

const NOT_AN_INTEGER = "value is not an integer or out of range";
const ZERO: Reply = { type: "integer", value: 0 };
const ONE: Reply = { type: "integer", value: 1 };

/** Which of `NX|XX|GT|LT` an `EXPIRE` was given. */
interface ExpireFlags {
  nx: boolean;
  xx: boolean;
  gt: boolean;
  lt: boolean;
}

/** Parses `EXPIRE`'s options as Redis does; a string is its error. */
function parseExpireFlags(args: Uint8Array[]): ExpireFlags | string {
  const flags = { nx: false, xx: false, gt: false, lt: false };
  for (const arg of args) {
    const word = new TextDecoder().decode(arg);
    const upper = word.toUpperCase();
    if (upper === "NX") flags.nx = true;
    else if (upper === "XX") flags.xx = true;
    else if (upper === "GT") flags.gt = true;
    else if (upper === "LT") flags.lt = true;
    else return `Unsupported option ${word}`;
  }
  if (flags.nx && (flags.xx || flags.gt || flags.lt)) {
    return "NX and XX, GT or LT options at the same time are not compatible";
  }
  if (flags.gt && flags.lt) return "GT and LT options at the same time are not compatible";
  return flags;
}

/** Whether the flags let a key whose expiry is `current` (0: none) take `when`. */
function flagsAllow(flags: ExpireFlags, current: number, when: bigint): boolean {
  if (flags.nx && current !== 0) return false;
  if (flags.xx && current === 0) return false;
  // No expiry counts as an infinite one: GT never beats it, LT always does.
  if (flags.gt && (current === 0 || when <= BigInt(current))) return false;
  if (flags.lt && current !== 0 && when >= BigInt(current)) return false;
  return true;
}

/** `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`: 1 when the expiry time was set, else 0. */
function expire(seconds: boolean, absolute: boolean, command: string) {
  return (args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) => {
    const key = args[0];
    const flags = parseExpireFlags(args.slice(2));
    if (typeof flags === "string") return out.error(flags);
    const given = parseLongLong(args[1]);
    if (given === undefined) return out.error(NOT_AN_INTEGER);
    let when = given;
    if (seconds) {
      if (when > LLONG_MAX / 1000n || when < LLONG_MIN / 1000n) {
        return out.error(invalidExpireTime(command));
      }
      when *= 1000n;
    }
    const nowMs = Date.now();
    const base = BigInt(absolute ? 0 : nowMs);
    if (when > LLONG_MAX - base) return out.error(invalidExpireTime(command));
    when += base;
    const old = readKey(ctx, key);
    if (old.value === undefined || !flagsAllow(flags, old.expiresAtMs, when)) {
      return answer(ctx, out, ZERO, 0, old.pending);
    }
    if (when <= BigInt(nowMs)) return answer(ctx, out, ONE, deleteKey(ctx, key), old.pending);
    const at = when > BigInt(MAX_EXPIRES_AT_MS) ? MAX_EXPIRES_AT_MS : Number(when);
    const lsn = writeKey(ctx, key, old.value, at);
    return answer(ctx, out, ONE, lsn, old.pending);
  };
}

/**
 * `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`: -2 for no key, -1 for no expiry time, else the time
 * left (or the time itself), in seconds rounded to the nearest as Redis does, or in ms.
 */
function ttl(inMs: boolean, absolute: boolean) {
  return (args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) => {
    const old = probeKey(ctx, args[0]);
    let value: number;
    if (!old.exists) value = -2;
    else if (old.expiresAtMs === 0) value = -1;
    else {
      const left = Math.max(0, absolute ? old.expiresAtMs : old.expiresAtMs - Date.now());
      value = inMs ? left : Math.floor((left + 500) / 1000);
    }
    return answer(ctx, out, { type: "integer", value }, 0, old.pending);
  };
}

/** `PERSIST key`: 1 when an expiry time was removed, 0 when there was none (or no key). */
function persist(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const old = readKey(ctx, args[0]);
  if (old.value === undefined || old.expiresAtMs === 0) {
    return answer(ctx, out, ZERO, 0, old.pending);
  }
  return answer(ctx, out, ONE, writeKey(ctx, args[0], old.value, 0), old.pending);
}

/** The expiry commands, by upper-case name. */
export const EXPIRY_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["EXPIRE", {
    minArgs: 2,
    maxArgs: Infinity,
    write: true,
    handler: expire(true, false, "expire"),
  }],
  [
    "PEXPIRE",
    { minArgs: 2, maxArgs: Infinity, write: true, handler: expire(false, false, "pexpire") },
  ],
  [
    "EXPIREAT",
    { minArgs: 2, maxArgs: Infinity, write: true, handler: expire(true, true, "expireat") },
  ],
  [
    "PEXPIREAT",
    { minArgs: 2, maxArgs: Infinity, write: true, handler: expire(false, true, "pexpireat") },
  ],
  ["TTL", { minArgs: 1, maxArgs: 1, handler: ttl(false, false) }],
  ["PTTL", { minArgs: 1, maxArgs: 1, handler: ttl(true, false) }],
  ["EXPIRETIME", { minArgs: 1, maxArgs: 1, handler: ttl(false, true) }],
  ["PEXPIRETIME", { minArgs: 1, maxArgs: 1, handler: ttl(true, true) }],
  ["PERSIST", { minArgs: 1, maxArgs: 1, write: true, handler: persist }],
]);
