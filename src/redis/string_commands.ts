/**
 * Redis's string commands, answered as Redis 7 does: `SET` with `NX|XX|GET|EX|PX|EXAT|PXAT|
 * KEEPTTL`, `SETNX`, `SETEX`, `PSETEX`, `GETSET`, `GETDEL`, `GETEX`, `MSET`, `MSETNX`, `APPEND`,
 * `STRLEN`, `GETRANGE`, `SETRANGE`, and kvstore's `PUTEX` (a PUT with a time to live, for the
 * text protocol and `KVClient`) (the counters are in `counter_commands.ts`, the expiry
 * commands in `expiry_commands.ts`). Options are parsed by Redis's own rules, in its order, so
 * the same mistakes get the same errors.
 *
 * Every write replaces the key's expiry time unless Redis keeps it (`KEEPTTL`, `APPEND`,
 * `SETRANGE`); a write whose expiry time has passed already deletes the key (Redis reads it as
 * gone at once too). `MSET` is one atomic record, `MSETNX` too.
 *
 * @module
 */
import { SYNTAX_ERROR } from "../protocol/mod.ts";
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import type { CommandContext, CommandSpec } from "../server/hooks.ts";
import { ValueTooLargeError } from "../storage/mod.ts";
import {
  answer,
  deleteKey,
  expiryArgument,
  type ExpiryUnit,
  probeKey,
  readKey,
  valueReply,
  writeKey,
} from "./string_access.ts";
import { LLONG_MAX, LLONG_MIN, parseLongLong } from "./arguments.ts";

/** Redis's `proto-max-bulk-len` (512 MiB): the longest string it builds. */
export const PROTO_MAX_BULK_LEN = 512 * 1024 * 1024;
const TOO_LONG = "string exceeds maximum allowed size (proto-max-bulk-len)";
const NOT_AN_INTEGER = "value is not an integer or out of range";

const OK: Reply = { type: "ok" };
const NIL: Reply = { type: "notFound" };
const EMPTY: Reply = { type: "value", value: new Uint8Array(0) };

function integer(value: number): Reply {
  return { type: "integer", value };
}

/** An option word upper-cased, or "" when it is longer than any option. */
function optionWord(bytes: Uint8Array): string {
  if (bytes.length > 8) return "";
  let word = "";
  for (const byte of bytes) {
    word += String.fromCharCode(byte >= 0x61 && byte <= 0x7a ? byte - 32 : byte);
  }
  return word;
}

/** The expiry unit an option word names (`EX`, `px`, ...), or undefined for any other word. */
function expiryUnitOf(bytes: Uint8Array): ExpiryUnit | undefined {
  if (bytes.length !== 2 && bytes.length !== 4) return undefined;
  const word = optionWord(bytes);
  return word === "EX" || word === "PX" || word === "EXAT" || word === "PXAT" ? word : undefined;
}

/** What `SET`'s or `GETEX`'s options say. */
interface SetOptions {
  nx: boolean;
  xx: boolean;
  get: boolean;
  keepTtl: boolean;
  persist: boolean;
  unit: ExpiryUnit | undefined;
  expiry: Uint8Array | undefined;
}

/**
 * Parses `SET`'s options (`forGetex`: `GETEX`'s) from `args[from]` on, exactly as Redis's
 * `parseExtendedStringArgumentsOrReply` does (a repeated option is allowed where Redis allows it,
 * the last expiry wins); a string is the error.
 */
function parseSetOptions(args: Uint8Array[], from: number, forGetex: boolean): SetOptions | string {
  const o: SetOptions = {
    nx: false,
    xx: false,
    get: false,
    keepTtl: false,
    persist: false,
    unit: undefined,
    expiry: undefined,
  };
  for (let j = from; j < args.length; j++) {
    const word = optionWord(args[j]);
    const hasNext = j < args.length - 1;
    const expiryFree = (except: ExpiryUnit) =>
      !o.keepTtl && !o.persist && (o.unit === undefined || o.unit === except) && hasNext;
    if (word === "NX" && !o.xx && !forGetex) o.nx = true;
    else if (word === "XX" && !o.nx && !forGetex) o.xx = true;
    else if (word === "GET" && !forGetex) o.get = true;
    else if (word === "KEEPTTL" && !o.persist && o.unit === undefined && !forGetex) {
      o.keepTtl = true;
    } else if (word === "PERSIST" && forGetex && o.unit === undefined && !o.keepTtl) {
      o.persist = true;
    } else if (
      (word === "EX" || word === "PX" || word === "EXAT" || word === "PXAT") && expiryFree(word)
    ) {
      o.unit = word;
      o.expiry = args[++j];
    } else return SYNTAX_ERROR;
  }
  return o;
}

/** The absolute expiry time options ask for at `nowMs` (0: none), or Redis's error. */
function expiryOf(options: SetOptions, command: string, nowMs: number): number | string {
  if (options.unit === undefined || options.expiry === undefined) return 0;
  return expiryArgument(options.expiry, options.unit, command, nowMs);
}

/**
 * Writes `key` = `value` expiring at `expiresAtMs` (0: never); a time already past at `nowMs`
 * deletes the key instead. Returns the LSN to wait for. `nowMs` is the instant the command took
 * its relative time from (one clock reading a command, as Redis's command time snapshot): read
 * again here, a `PX 1` straddling a millisecond would be deleted as soon as it is set.
 */
function store(
  ctx: CommandContext,
  key: Uint8Array,
  value: Uint8Array,
  expiresAtMs: number,
  nowMs: number,
) {
  if (expiresAtMs !== 0 && expiresAtMs <= nowMs) return deleteKey(ctx, key);
  return writeKey(ctx, key, value, expiresAtMs);
}

/** `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`. */
function set(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [key, value] = args;
  if (args.length === 2) {
    // The common case, kept short: no options, no read.
    return answer(ctx, out, OK, writeKey(ctx, key, value, 0));
  }
  if (args.length === 4) {
    // `SET k v EX 60` and its kin, kept short too: one expiry option, nothing to read.
    const unit = expiryUnitOf(args[2]);
    if (unit !== undefined) {
      const nowMs = Date.now();
      const expiresAtMs = expiryArgument(args[3], unit, "set", nowMs);
      if (typeof expiresAtMs === "string") return out.error(expiresAtMs);
      return answer(ctx, out, OK, store(ctx, key, value, expiresAtMs, nowMs));
    }
  }
  const options = parseSetOptions(args, 2, false);
  if (typeof options === "string") return out.error(options);
  const nowMs = Date.now();
  const expiresAtMs = expiryOf(options, "set", nowMs);
  if (typeof expiresAtMs === "string") return out.error(expiresAtMs);
  if (!options.get && !options.nx && !options.xx && !options.keepTtl) {
    // Only a new expiry: nothing to read (the common `SET k v EX 60`).
    return answer(ctx, out, OK, store(ctx, key, value, expiresAtMs, nowMs));
  }
  // The old value only for GET; the others need to know whether the key exists (and its TTL).
  const old = options.get ? readKey(ctx, key) : undefined;
  const probe = old === undefined ? probeKey(ctx, key) : undefined;
  const found = old !== undefined ? old.value !== undefined : (probe?.exists ?? false);
  const pending = old?.pending ?? probe?.pending ?? 0;
  if ((options.nx && found) || (options.xx && !found)) {
    return answer(ctx, out, options.get ? valueReply(old?.value) : NIL, 0, pending);
  }
  const at = options.keepTtl ? (old?.expiresAtMs ?? probe?.expiresAtMs ?? 0) : expiresAtMs;
  const lsn = store(ctx, key, value, at, nowMs);
  return answer(ctx, out, options.get ? valueReply(old?.value) : OK, lsn, pending);
}

/** `SETNX key value`: 1 when set, 0 when the key exists. */
function setnx(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const old = probeKey(ctx, args[0]);
  if (old.exists) return answer(ctx, out, integer(0), 0, old.pending);
  return answer(ctx, out, integer(1), writeKey(ctx, args[0], args[1], 0), old.pending);
}

/** `SETEX key seconds value` and `PSETEX key ms value`. */
function setWithExpiry(unit: "EX" | "PX", command: string) {
  return (args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) => {
    const nowMs = Date.now();
    const expiresAtMs = expiryArgument(args[1], unit, command, nowMs);
    if (typeof expiresAtMs === "string") return out.error(expiresAtMs);
    return answer(ctx, out, OK, store(ctx, args[0], args[2], expiresAtMs, nowMs));
  };
}

/** `GETSET key value`: the old value; the key is set and loses its expiry time. */
function getset(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const old = readKey(ctx, args[0]);
  return answer(ctx, out, valueReply(old.value), writeKey(ctx, args[0], args[1], 0), old.pending);
}

/** `GETDEL key`: the value, and the key is deleted. */
function getdel(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const old = readKey(ctx, args[0]);
  const lsn = old.value === undefined ? 0 : deleteKey(ctx, args[0]);
  return answer(ctx, out, valueReply(old.value), lsn, old.pending);
}

/**
 * `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`: the value; its expiry time changed. In Redis's
 * order: the options' syntax, then the key (a missing one is nil, whatever the time says), then
 * the time itself.
 */
function getex(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const key = args[0];
  const options = parseSetOptions(args, 1, true);
  if (typeof options === "string") return out.error(options);
  const old = readKey(ctx, key);
  if (old.value === undefined) return answer(ctx, out, NIL, 0, old.pending);
  const nowMs = Date.now();
  const expiresAtMs = expiryOf(options, "getex", nowMs);
  if (typeof expiresAtMs === "string") {
    // Known only once the key was found: it waits, as a read does, for the key's write.
    return answer(ctx, out, { type: "error", message: expiresAtMs }, 0, old.pending);
  }
  let lsn = 0;
  if (options.unit !== undefined) lsn = store(ctx, key, old.value, expiresAtMs, nowMs);
  else if (options.persist && old.expiresAtMs !== 0) lsn = writeKey(ctx, key, old.value, 0);
  return answer(ctx, out, valueReply(old.value), lsn, old.pending);
}

/** Writes `key value ...` as one atomic record (every key loses its expiry time); its LSN. */
function writePairs(ctx: CommandContext, args: Uint8Array[]): number {
  const pairs: [Uint8Array, Uint8Array][] = [];
  for (let i = 0; i < args.length; i += 2) pairs.push([args[i], args[i + 1]]);
  const lsn = ctx.node.store.writeBatch(pairs);
  for (let i = 0; i < args.length; i += 2) ctx.node.commit.noteWrite(args[i], lsn);
  return lsn;
}

/** `MSET key value [key value ...]`: one atomic record; every key loses its expiry time. */
function mset(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  if (args.length % 2 !== 0) return out.error("wrong number of arguments for 'mset' command");
  return answer(ctx, out, OK, writePairs(ctx, args));
}

/** `MSETNX key value [key value ...]`: 1 when every key was absent and all are set, else 0. */
function msetnx(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  if (args.length % 2 !== 0) return out.error("wrong number of arguments for 'msetnx' command");
  const { store, commit } = ctx.node;
  let pending = 0;
  let exists = false;
  for (let i = 0; i < args.length; i += 2) {
    pending = Math.max(pending, commit.pendingLsn(args[i]));
    if (store.has(args[i])) exists = true;
  }
  if (exists) return answer(ctx, out, integer(0), 0, pending);
  return answer(ctx, out, integer(1), writePairs(ctx, args));
}

/** The bytes of a string grown to `length` (zeros after `value`), refused past the limits. */
function grown(ctx: CommandContext, value: Uint8Array | undefined, length: number): Uint8Array {
  const limit = ctx.node.config.MAX_VALUE_BYTES;
  if (length > limit) throw new ValueTooLargeError(length, limit);
  const out = new Uint8Array(length);
  if (value !== undefined) out.set(value.subarray(0, Math.min(value.length, length)));
  return out;
}

/** `APPEND key value`: the new length; the key keeps its expiry time. */
function append(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [key, tail] = args;
  const old = readKey(ctx, key);
  const length = (old.value?.length ?? 0) + tail.length;
  if (old.value !== undefined && length > PROTO_MAX_BULK_LEN) return out.error(TOO_LONG);
  const value = grown(ctx, old.value, length);
  value.set(tail, length - tail.length);
  const lsn = writeKey(ctx, key, value, old.expiresAtMs);
  return answer(ctx, out, integer(length), lsn, old.pending);
}

/** `STRLEN key`: the value's length, 0 when absent. */
function strlen(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const old = readKey(ctx, args[0]);
  return answer(ctx, out, integer(old.value?.length ?? 0), 0, old.pending);
}

/** `GETRANGE key start end`: the bytes from start to end (inclusive; negative from the end). */
function getrange(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const first = parseLongLong(args[1]);
  const last = parseLongLong(args[2]);
  if (first === undefined || last === undefined) return out.error(NOT_AN_INTEGER);
  const old = readKey(ctx, args[0]);
  const value = old.value;
  if (value === undefined) return answer(ctx, out, EMPTY, 0, old.pending);
  const length = BigInt(value.length);
  let start = first;
  let end = last;
  if (start < 0n && end < 0n && start > end) return answer(ctx, out, EMPTY, 0, old.pending);
  if (start < 0n) start += length;
  if (end < 0n) end += length;
  if (start < 0n) start = 0n;
  if (end < 0n) end = 0n;
  if (end >= length) end = length - 1n;
  if (start > end || length === 0n) return answer(ctx, out, EMPTY, 0, old.pending);
  const slice = value.subarray(Number(start), Number(end) + 1);
  return answer(ctx, out, { type: "value", value: slice }, 0, old.pending);
}

/** `SETRANGE key offset value`: the new length; zeros fill a gap; the expiry time is kept. */
function setrange(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [key, offsetBytes, part] = args;
  const parsed = parseLongLong(offsetBytes);
  // Redis reads the offset as a C long (64 bits here).
  if (parsed === undefined || parsed < LLONG_MIN || parsed > LLONG_MAX) {
    return out.error(NOT_AN_INTEGER);
  }
  if (parsed < 0n) return out.error("offset is out of range");
  const old = readKey(ctx, key);
  if (part.length === 0) return answer(ctx, out, integer(old.value?.length ?? 0), 0, old.pending);
  // Checked before anything is allocated: a 512 MiB offset is an error, not a 512 MiB string.
  if (parsed + BigInt(part.length) > BigInt(PROTO_MAX_BULK_LEN)) return out.error(TOO_LONG);
  const offset = Number(parsed);
  const length = Math.max(old.value?.length ?? 0, offset + part.length);
  const value = grown(ctx, old.value, length);
  value.set(part, offset);
  const lsn = writeKey(ctx, key, value, old.expiresAtMs);
  return answer(ctx, out, integer(length), lsn, old.pending);
}

/**
 * `PUTEX key expireInMs value`: kvstore's own PUT with a time to live (the text protocol's form:
 * the value is the rest of the line), `OK`; the key is gone `expireInMs` ms from now.
 */
function putex(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [key, ttl, value] = args;
  const expiresAtMs = expiryArgument(ttl, "PX", "putex", Date.now());
  if (typeof expiresAtMs === "string") {
    return out.error("PUTEX expireInMs must be a whole number of ms above 0");
  }
  return answer(ctx, out, OK, writeKey(ctx, key, value, expiresAtMs));
}

/** The string commands, by upper-case name. */
export const STRING_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["SET", { minArgs: 2, maxArgs: Infinity, write: true, handler: set }],
  ["PUTEX", { minArgs: 3, maxArgs: 3, write: true, handler: putex }],
  ["SETNX", { minArgs: 2, maxArgs: 2, write: true, handler: setnx }],
  ["SETEX", { minArgs: 3, maxArgs: 3, write: true, handler: setWithExpiry("EX", "setex") }],
  ["PSETEX", { minArgs: 3, maxArgs: 3, write: true, handler: setWithExpiry("PX", "psetex") }],
  ["GETSET", { minArgs: 2, maxArgs: 2, write: true, handler: getset }],
  ["GETDEL", { minArgs: 1, maxArgs: 1, write: true, handler: getdel }],
  ["GETEX", { minArgs: 1, maxArgs: Infinity, write: true, handler: getex }],
  ["MSET", { minArgs: 2, maxArgs: Infinity, write: true, handler: mset }],
  ["MSETNX", { minArgs: 2, maxArgs: Infinity, write: true, handler: msetnx }],
  ["APPEND", { minArgs: 2, maxArgs: 2, write: true, handler: append }],
  ["STRLEN", { minArgs: 1, maxArgs: 1, handler: strlen }],
  ["GETRANGE", { minArgs: 3, maxArgs: 3, handler: getrange }],
  ["SUBSTR", { minArgs: 3, maxArgs: 3, handler: getrange }],
  ["SETRANGE", { minArgs: 3, maxArgs: 3, write: true, handler: setrange }],
]);
