/**
 * How Redis's string and expiry commands read and write a key, with the store's rules kept in
 * one place: a read notes the LSN of the key's newest write so the reply waits until that write
 * is committed (`src/server/commit_point.ts`); a write notes its own LSN for later readers and
 * answers once it is committed (and replicated, in sync mode). A handler reads and writes
 * synchronously, so a read-modify-write (INCR, APPEND, SETRANGE) is atomic against every other
 * connection: nothing else runs between its read and its write.
 *
 * Also Redis's argument rules for expiry times (`EX`, `PX`, `EXAT`, `PXAT`, `EXPIRE`...); its
 * 64-bit integers are read in `arguments.ts`.
 *
 * @module
 */
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import { acknowledge, answerCommitted } from "../server/commands.ts";
import type { CommandContext } from "../server/hooks.ts";
import { MAX_EXPIRES_AT_MS } from "../storage/mod.ts";
import { LLONG_MAX, parseInteger, parseLongLong } from "./arguments.ts";

/** A key as a string command sees it. */
export interface StringKey {
  /** Its value, or undefined when absent (or past its expiry time). */
  value: Uint8Array | undefined;
  /** When it expires (ms since the Unix epoch), 0 when never or absent. */
  expiresAtMs: number;
  /** LSN of its newest uncommitted write, 0 when none: a reply built on it waits for it. */
  pending: number;
}

/** Reads `key` for a command (see {@link StringKey}). */
export function readKey(ctx: CommandContext, key: Uint8Array): StringKey {
  const { store, commit } = ctx.node;
  const found = store.readExpiring(key);
  return {
    value: found?.value,
    expiresAtMs: found?.expiresAtMs ?? 0,
    pending: commit.pendingLsn(key),
  };
}

/**
 * Whether `key` exists, its expiry time (0: never or absent) and the LSN of its newest uncommitted
 * write, without reading its value (NX, XX, KEEPTTL, TTL need no more).
 */
export function probeKey(
  ctx: CommandContext,
  key: Uint8Array,
): { exists: boolean; expiresAtMs: number; pending: number } {
  const expiresAtMs = ctx.node.store.expiresAtMs(key);
  return {
    exists: expiresAtMs !== undefined,
    expiresAtMs: expiresAtMs ?? 0,
    pending: ctx.node.commit.pendingLsn(key),
  };
}

/**
 * Writes `key` = `value` (bytes, or an ASCII string such as a counter's digits: written as it is,
 * no encoding), expiring at `expiresAtMs` (0: never); returns the write's LSN. `readAgain`: the
 * value is a counter its next increment reads, so it is cached as written.
 */
export function writeKey(
  ctx: CommandContext,
  key: Uint8Array,
  value: Uint8Array | string,
  expiresAtMs: number,
  readAgain = false,
): number {
  const { store } = ctx.node;
  const lsn = readAgain
    ? store.writePutReadAgain(key, value, expiresAtMs)
    : store.writePut(key, value, expiresAtMs);
  ctx.node.commit.noteWrite(key, lsn);
  return lsn;
}

/** Deletes `key` when it exists (a DELETE record); returns the LSN to wait for (0: none). */
export function deleteKey(ctx: CommandContext, key: Uint8Array): number {
  const { store, commit } = ctx.node;
  if (!store.has(key)) return 0;
  const lsn = store.writeDelete(key);
  commit.noteWrite(key, lsn);
  return lsn;
}

/**
 * Answers `reply` once write `lsn` is committed (0: no write was made, then once `pending`, the
 * newest uncommitted write the answer depends on, is).
 */
export function answer(
  ctx: CommandContext,
  out: ReplyWriter,
  reply: Reply,
  lsn: number,
  pending = 0,
): void | Promise<Reply> {
  // A write's own LSN is above every write it read: its commit covers them.
  if (lsn > 0) return acknowledge(ctx, lsn, out, reply);
  return answerCommitted(ctx, pending, out, reply);
}

/** A bulk string reply, or nil. */
export function valueReply(value: Uint8Array | undefined): Reply {
  return value === undefined ? { type: "notFound" } : { type: "value", value };
}

/** Redis's error for an expiry time it cannot take, naming the command (lower case). */
export function invalidExpireTime(command: string): string {
  return `invalid expire time in '${command}' command`;
}

/** How an expiry argument counts: seconds or ms, from now or since the Unix epoch. */
export type ExpiryUnit = "EX" | "PX" | "EXAT" | "PXAT";

/**
 * The absolute expiry time (ms since the Unix epoch) of `SET`/`GETEX`/`SETEX`'s expiry argument
 * `bytes` in `unit`, by Redis's rules (a whole number above 0, no overflow); a string is Redis's
 * error. A time past 2^53 - 1 ms (285,000 years) is held as that.
 */
export function expiryArgument(
  bytes: Uint8Array,
  unit: ExpiryUnit,
  command: string,
  nowMs: number,
): number | string {
  if (bytes.length <= 12) {
    // Up to 12 digits nothing can overflow: no BigInt (the common `EX 3600`).
    const small = parseInteger(bytes);
    if (small === undefined) return "value is not an integer or out of range";
    if (small <= 0) return invalidExpireTime(command);
    const ms = unit === "EX" || unit === "EXAT" ? small * 1000 : small;
    return unit === "EX" || unit === "PX" ? ms + nowMs : ms;
  }
  const given = parseLongLong(bytes);
  if (given === undefined) return "value is not an integer or out of range";
  const seconds = unit === "EX" || unit === "EXAT";
  if (given <= 0n || (seconds && given > LLONG_MAX / 1000n)) return invalidExpireTime(command);
  let ms = seconds ? given * 1000n : given;
  if (unit === "EX" || unit === "PX") {
    if (ms > LLONG_MAX - BigInt(nowMs)) return invalidExpireTime(command);
    ms += BigInt(nowMs);
  }
  return ms > BigInt(MAX_EXPIRES_AT_MS) ? MAX_EXPIRES_AT_MS : Number(ms);
}
