/**
 * What `COMMAND INFO` says of a command besides its name and arity: its flags, its keys' legacy
 * positions (first key, last key, step: what cluster-aware clients, redis-py's and ioredis's key
 * extraction and proxies read to find a command's keys) and its ACL categories; and the keys of
 * one call found from those positions (`COMMAND GETKEYS`).
 *
 * For each command kvstore shares with Redis the values are Redis 7.0.15's, copied from its
 * `COMMAND INFO <name>` into {@link REDIS_COMMAND_INFO}; nothing asks a redis-server at run time.
 * `tests/redis/command_info_test.ts` compares every entry, with the arity, against a real one.
 * The arity is not in the table: a node answers the arity it checks (its `CommandSpec`), which
 * is Redis's except for `REPLICAOF` and `SLAVEOF` (kvstore's `[EPOCH n]`: -3 where Redis says 3).
 *
 * kvstore's own commands (`PUT`, `READ`, ...) have the flags their spec gives (`write` or
 * `readonly`, `admin`), the key positions of {@link KVSTORE_KEY_POSITIONS} (none for a command not
 * listed there, an extension's too), and no ACL categories: kvstore has no ACLs, and Redis's
 * categories name Redis's commands, so `COMMAND LIST FILTERBY ACLCAT` lists what Redis lists.
 *
 * @module
 */
import type { CommandSpec } from "../server/hooks.ts";

/** A command's `COMMAND INFO` fields after its name and arity, as Redis names them. */
export interface CommandInfo {
  /** `write`, `readonly`, `fast`, `admin`, ... in Redis's order. */
  readonly flags: readonly string[];
  /** The first key's word (the command name is 0); 0 when the command takes no key. */
  readonly firstKey: number;
  /** The last key's word; negative counts from the end (-1: the last word). */
  readonly lastKey: number;
  /** Words from one key to the next (2 for `MSET key value ...`). */
  readonly keyStep: number;
  /** `@read`, `@string`, `@fast`, ... in Redis's order. */
  readonly categories: readonly string[];
}

type Row = readonly [
  flags: readonly string[],
  firstKey: number,
  lastKey: number,
  keyStep: number,
  categories: readonly string[],
];

/** Redis 7.0.15's `COMMAND INFO` of the commands kvstore has, by upper-case name. */
const REDIS_7_0_15: readonly (readonly [string, Row])[] = [
  ["APPEND", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["AUTH", [["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, [
    "@fast",
    "@connection",
  ]]],
  ["CLIENT", [[], 0, 0, 0, ["@slow"]]],
  ["COMMAND", [["loading", "stale"], 0, 0, 0, ["@slow", "@connection"]]],
  ["CONFIG", [[], 0, 0, 0, ["@slow"]]],
  ["COPY", [["write", "denyoom"], 1, 2, 1, ["@keyspace", "@write", "@slow"]]],
  ["DBSIZE", [["readonly", "fast"], 0, 0, 0, ["@keyspace", "@read", "@fast"]]],
  ["DECR", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["DECRBY", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["DEL", [["write"], 1, -1, 1, ["@keyspace", "@write", "@slow"]]],
  ["DISCARD", [["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0, [
    "@fast",
    "@transaction",
  ]]],
  ["ECHO", [["loading", "stale", "fast"], 0, 0, 0, ["@fast", "@connection"]]],
  ["EXEC", [["noscript", "loading", "stale", "skip_slowlog"], 0, 0, 0, ["@slow", "@transaction"]]],
  ["EXISTS", [["readonly", "fast"], 1, -1, 1, ["@keyspace", "@read", "@fast"]]],
  ["EXPIRE", [["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"]]],
  ["EXPIREAT", [["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"]]],
  ["EXPIRETIME", [["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"]]],
  ["FLUSHALL", [["write"], 0, 0, 0, ["@keyspace", "@write", "@slow", "@dangerous"]]],
  ["FLUSHDB", [["write"], 0, 0, 0, ["@keyspace", "@write", "@slow", "@dangerous"]]],
  ["GET", [["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"]]],
  ["GETDEL", [["write", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["GETEX", [["write", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["GETRANGE", [["readonly"], 1, 1, 1, ["@read", "@string", "@slow"]]],
  ["GETSET", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["HELLO", [["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, [
    "@fast",
    "@connection",
  ]]],
  ["INCR", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["INCRBY", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["INCRBYFLOAT", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["INFO", [["loading", "stale"], 0, 0, 0, ["@slow", "@dangerous"]]],
  ["KEYS", [["readonly"], 0, 0, 0, ["@keyspace", "@read", "@slow", "@dangerous"]]],
  ["LCS", [["readonly"], 1, 2, 1, ["@read", "@string", "@slow"]]],
  ["MGET", [["readonly", "fast"], 1, -1, 1, ["@read", "@string", "@fast"]]],
  ["MSET", [["write", "denyoom"], 1, -1, 2, ["@write", "@string", "@slow"]]],
  ["MSETNX", [["write", "denyoom"], 1, -1, 2, ["@write", "@string", "@slow"]]],
  ["MULTI", [["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0, [
    "@fast",
    "@transaction",
  ]]],
  ["OBJECT", [[], 0, 0, 0, ["@slow"]]],
  ["PERSIST", [["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"]]],
  ["PEXPIRE", [["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"]]],
  ["PEXPIREAT", [["write", "fast"], 1, 1, 1, ["@keyspace", "@write", "@fast"]]],
  ["PEXPIRETIME", [["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"]]],
  ["PING", [["fast"], 0, 0, 0, ["@fast", "@connection"]]],
  ["PSETEX", [["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"]]],
  ["PTTL", [["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"]]],
  ["QUIT", [["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, [
    "@fast",
    "@connection",
  ]]],
  ["RANDOMKEY", [["readonly"], 0, 0, 0, ["@keyspace", "@read", "@slow"]]],
  ["RENAME", [["write"], 1, 2, 1, ["@keyspace", "@write", "@slow"]]],
  ["RENAMENX", [["write", "fast"], 1, 2, 1, ["@keyspace", "@write", "@fast"]]],
  ["REPLICAOF", [["admin", "noscript", "stale", "no_async_loading"], 0, 0, 0, [
    "@admin",
    "@slow",
    "@dangerous",
  ]]],
  ["RESET", [["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], 0, 0, 0, [
    "@fast",
    "@connection",
  ]]],
  ["ROLE", [["noscript", "loading", "stale", "fast"], 0, 0, 0, ["@admin", "@fast", "@dangerous"]]],
  ["SCAN", [["readonly"], 0, 0, 0, ["@keyspace", "@read", "@slow"]]],
  ["SELECT", [["loading", "stale", "fast"], 0, 0, 0, ["@fast", "@connection"]]],
  ["SET", [["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"]]],
  ["SETEX", [["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"]]],
  ["SETNX", [["write", "denyoom", "fast"], 1, 1, 1, ["@write", "@string", "@fast"]]],
  ["SETRANGE", [["write", "denyoom"], 1, 1, 1, ["@write", "@string", "@slow"]]],
  ["SLAVEOF", [["admin", "noscript", "stale", "no_async_loading"], 0, 0, 0, [
    "@admin",
    "@slow",
    "@dangerous",
  ]]],
  ["STRLEN", [["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"]]],
  ["SUBSTR", [["readonly"], 1, 1, 1, ["@read", "@string", "@slow"]]],
  ["TIME", [["loading", "stale", "fast"], 0, 0, 0, ["@fast"]]],
  ["TOUCH", [["readonly", "fast"], 1, -1, 1, ["@keyspace", "@read", "@fast"]]],
  ["TTL", [["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"]]],
  ["TYPE", [["readonly", "fast"], 1, 1, 1, ["@keyspace", "@read", "@fast"]]],
  ["UNLINK", [["write", "fast"], 1, -1, 1, ["@keyspace", "@write", "@fast"]]],
  ["UNWATCH", [["noscript", "loading", "stale", "fast", "allow_busy"], 0, 0, 0, [
    "@fast",
    "@transaction",
  ]]],
  ["WAIT", [["noscript"], 0, 0, 0, ["@slow", "@connection"]]],
  ["WATCH", [["noscript", "loading", "stale", "fast", "allow_busy"], 1, -1, 1, [
    "@fast",
    "@transaction",
  ]]],
];

/** {@link CommandInfo} of the commands kvstore shares with Redis, by upper-case name. */
export const REDIS_COMMAND_INFO: ReadonlyMap<string, CommandInfo> = new Map(
  REDIS_7_0_15.map(([name, [flags, firstKey, lastKey, keyStep, categories]]) => [
    name,
    { flags, firstKey, lastKey, keyStep, categories },
  ]),
);

/**
 * Where kvstore's own commands take keys (first, last, step), as Redis's analogues do: `PUT` as
 * `SET`, `PUTEX` as `PSETEX`, `READ` as `GET`, `DELETE` as a one-key `DEL`, `BATCHPUT` as `MSET`.
 * The others take none: `READRANGE`'s two words bound a range of keys (a proxy cannot route by
 * them), `REPLICATE`'s are log records, and `WITH`'s command comes after a varying number of
 * options.
 */
export const KVSTORE_KEY_POSITIONS: ReadonlyMap<string, readonly [number, number, number]> =
  new Map([
    ["PUT", [1, 1, 1]],
    ["PUTEX", [1, 1, 1]],
    ["READ", [1, 1, 1]],
    ["DELETE", [1, 1, 1]],
    ["BATCHPUT", [1, -1, 2]],
  ]);

/**
 * The {@link CommandInfo} of command `name` (upper case) with `spec`.
 *
 * @example
 * ```ts
 * import { commandInfo } from "./command_info.ts";
 * const spec = { minArgs: 1, maxArgs: 1, handler: () => {} };
 * console.log(commandInfo("GET", spec).firstKey, commandInfo("READ", spec).flags); // 1 ["readonly"]
 * ```
 */
export function commandInfo(name: string, spec: CommandSpec): CommandInfo {
  const redis = REDIS_COMMAND_INFO.get(name);
  if (redis !== undefined) return redis;
  const flags = [spec.write ? "write" : "readonly"];
  if (spec.admin) flags.push("admin");
  const [firstKey, lastKey, keyStep] = KVSTORE_KEY_POSITIONS.get(name) ?? [0, 0, 0];
  return { flags, firstKey, lastKey, keyStep, categories: [] };
}

/**
 * The keys of the call `words` (the command name first) at `info`'s key positions, as Redis 7's
 * `COMMAND GETKEYS` finds them: from the first key to the last (counted from the end when
 * negative), `keyStep` apart, and none past the end of the call.
 *
 * @example
 * ```ts
 * import { commandInfo, keysOf } from "./command_info.ts";
 * const spec = { minArgs: 2, maxArgs: Infinity, handler: () => {} };
 * const words = ["MSET", "a", "1", "b", "2"].map((word) => new TextEncoder().encode(word));
 * console.log(keysOf(commandInfo("MSET", spec), words).length); // 2
 * ```
 */
export function keysOf(info: CommandInfo, words: readonly Uint8Array[]): Uint8Array[] {
  if (info.firstKey === 0) return [];
  const last = info.lastKey < 0 ? words.length + info.lastKey : info.lastKey;
  const keys: Uint8Array[] = [];
  for (let at = info.firstKey; at <= last && at < words.length; at += info.keyStep) {
    keys.push(words[at]);
  }
  return keys;
}
