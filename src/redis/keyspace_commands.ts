/**
 * Redis's keyspace commands, as Redis 7 answers them: `KEYS pattern`, `SCAN cursor [MATCH p]
 * [COUNT n] [TYPE t]`, `TYPE`, `UNLINK` (as `DEL`), `RENAME`, `RENAMENX`, `COPY` (the key keeps
 * its time to live under its new name), `RANDOMKEY`, `TOUCH`, `OBJECT ENCODING` and
 * `FLUSHALL`/`FLUSHDB`. `DEL`, `EXISTS` and `DBSIZE` are the server's built-in commands.
 *
 * kvstore keeps only strings, so `TYPE` is `string` or `none`, and `SCAN ... TYPE t` finds keys
 * only for `t` = `string`.
 *
 * Walks over the keyspace follow the index's key order (`KVStore.forEachKey`), in pages, and a
 * long one (`KEYS *` over a million keys, `SCAN` with a huge `COUNT`) goes in steps of at most
 * REQUEST_STEP_MS, so other clients are served meanwhile. `KEYS` and `SCAN ... MATCH` with a
 * literal prefix (`user:*`) look only at keys with that prefix.
 *
 * `SCAN`'s cursor: Redis's cursor is a position in its hash table; kvstore's is a number that
 * names the last key a scan returned (kept by the server, at most SCAN_MAX_CURSORS of them, the
 * oldest forgotten first). The next call goes on after that key in key order, so every key
 * present for a whole scan is returned exactly once, whatever is added, deleted or compacted
 * meanwhile; a forgotten or made-up cursor starts the scan over (keys may then come twice, as
 * Redis allows, never none).
 *
 * @module
 */
import { NOT_AN_INTEGER, type Reply, ReplyWriter, SYNTAX_ERROR } from "../protocol/mod.ts";
import {
  acknowledge,
  answerCommitted,
  BUILT_IN_COMMANDS,
  committedOrThrow,
} from "../server/commands.ts";
import { type CommandContext, CommandError, type CommandSpec } from "../server/hooks.ts";
import { repeatInSteps } from "../server/steps.ts";
import { bytesToKey, keyToBytes, MAX_KEY_STRING } from "../storage/mod.ts";
import { parseClamped, parseInt32, upperWord } from "./arguments.ts";
import { helpReply } from "./connection_commands.ts";
import { globMatches, literalPrefix } from "./glob.ts";
import { containerCommand } from "./subcommands.ts";

/** Keys looked at between two looks at the clock in a long walk. */
const PAGE_KEYS = 1024;

/** Redis's refusal of a cursor that is not an unsigned 64-bit number. */
const INVALID_CURSOR = "invalid cursor";

const encoder = new TextEncoder();

/** Which keys a walk looks at: a range of key order, and the pattern they must match. */
interface KeyFilter {
  /** The first and last key (byte strings) that can match. */
  start: string;
  end: string;
  /** Undefined: every key matches (`*`, or no pattern). */
  pattern: string | undefined;
}

/** The keys that can match `pattern` (a byte string): its literal prefix's range. */
function filterFor(pattern: string | undefined): KeyFilter {
  if (pattern === undefined || pattern === "*") return { start: "", end: MAX_KEY_STRING, pattern };
  const prefix = literalPrefix(pattern);
  return { start: prefix, end: prefix + MAX_KEY_STRING, pattern };
}

/** Whether `key` matches the filter's pattern (`*` matches every key, the empty one too). */
function matches(filter: KeyFilter, key: string): boolean {
  const pattern = filter.pattern;
  return pattern === undefined || pattern === "*" || globMatches(pattern, key);
}

/** Bytes of a key in a reply (its RESP header and line ends included, roughly). */
function replyBytes(key: string): number {
  return key.length + 16;
}

/** The error of a reply that would pass OUTPUT_BUFFER_HARD_LIMIT_BYTES. */
function tooLarge(ctx: CommandContext, command: string, maxBytes: number): CommandError {
  ctx.node.limits.hit(
    "OUTPUT_BUFFER_HARD_LIMIT_BYTES",
    maxBytes,
    `a ${command} from {peer} was refused`,
    { peer: ctx.connection.peer },
  );
  return new CommandError(
    `${command} reply would be larger than OUTPUT_BUFFER_HARD_LIMIT_BYTES (${maxBytes} bytes); ` +
      `use SCAN with MATCH and COUNT to walk the keys a page at a time`,
  );
}

/**
 * A reply listing `keys`, after `cursor` when given (SCAN's shape). Over RESP it is encoded at
 * once, each key written straight from its byte string (a million keys make no million arrays);
 * the text protocol takes the general path.
 */
function keysReply(keys: readonly string[], resp: boolean, cursor?: string): Reply {
  if (!resp) {
    const list: Reply = {
      type: "array",
      items: keys.map((key) => ({ type: "value", value: keyToBytes(key) })),
    };
    if (cursor === undefined) return list;
    return { type: "array", items: [{ type: "value", value: encoder.encode(cursor) }, list] };
  }
  let bytes = 32;
  for (const key of keys) bytes += replyBytes(key);
  const writer = new ReplyWriter(bytes);
  writer.resp = true;
  if (cursor !== undefined) {
    writer.arrayHeader(2);
    writer.byteString(cursor);
  }
  writer.arrayHeader(keys.length);
  for (const key of keys) writer.byteString(key);
  return { type: "raw", bytes: writer.bytes };
}

/**
 * A walk over the keys a filter allows, in key order, a page at a time: it keeps the matching
 * live keys and refuses a reply that would pass OUTPUT_BUFFER_HARD_LIMIT_BYTES.
 */
class KeyWalk {
  readonly found: string[] = [];
  /** Reply bytes the found keys will take. */
  bytes = 0;
  /** The last key looked at, and where the next page starts. */
  last: string | undefined;
  #next: string;
  ended = false;
  readonly #ctx: CommandContext;
  readonly #command: string;
  readonly #filter: KeyFilter;

  constructor(ctx: CommandContext, command: string, filter: KeyFilter, from: string) {
    this.#ctx = ctx;
    this.#command = command;
    this.#filter = filter;
    this.#next = from;
  }

  /** Looks at up to `limit` more keys; returns how many it looked at. */
  page(limit: number): number {
    const filter = this.#filter;
    const seen = this.#ctx.node.store.forEachKey(this.#next, filter.end, limit, (key, live) => {
      this.last = key;
      if (!live || !matches(filter, key)) return;
      this.found.push(key);
      this.bytes += replyBytes(key);
    });
    const maxBytes = this.#ctx.node.config.OUTPUT_BUFFER_HARD_LIMIT_BYTES;
    if (this.bytes > maxBytes) throw tooLarge(this.#ctx, this.#command, maxBytes);
    if (seen < limit || this.last === undefined) this.ended = true;
    else this.#next = this.last + "\0";
    return seen;
  }

  /**
   * Calls `step` until it says the walk is done (in steps of at most REQUEST_STEP_MS past the
   * first call), then answers `reply()` once every write it may show is committed.
   */
  run(out: ReplyWriter, step: () => boolean, reply: () => Reply): void | Promise<Reply> {
    const ctx = this.#ctx;
    if (step()) return answerCommitted(ctx, ctx.node.commit.pendingAllLsn(), out, reply());
    ctx.inSteps(
      repeatInSteps(ctx.stepMs, step, () => ctx.stepDone(this.bytes)).then(() => {
        out.reply(reply());
        return committedOrThrow(ctx, ctx.node.commit.pendingAllLsn());
      }),
    );
  }
}

/** `KEYS pattern`: every key matching, in key order (Redis's order is its hash table's). */
function keys(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const filter = filterFor(bytesToKey(args[0]));
  const walk = new KeyWalk(ctx, "KEYS", filter, filter.start);
  return walk.run(out, () => {
    walk.page(PAGE_KEYS);
    return walk.ended;
  }, () => keysReply(walk.found, out.resp));
}

/**
 * The cursors of unfinished scans: each names the last key its scan looked at. At most
 * SCAN_MAX_CURSORS; the oldest is forgotten first. A cursor is forgotten once used (the scan
 * goes on under a new one), so the table holds one entry per scan in progress.
 */
class ScanCursors {
  readonly #lastKeys = new Map<bigint, string>();
  #next = 1n;

  /** A new cursor for a scan whose last key looked at is `lastKey`. */
  remember(lastKey: string, ctx: CommandContext): bigint {
    const max = ctx.node.config.SCAN_MAX_CURSORS;
    while (this.#lastKeys.size >= max) {
      const oldest = this.#lastKeys.keys().next().value;
      if (oldest === undefined) break;
      this.#lastKeys.delete(oldest);
      ctx.node.limits.hit("SCAN_MAX_CURSORS", max, "the oldest SCAN cursor was forgotten", {});
    }
    const cursor = this.#next++;
    this.#lastKeys.set(cursor, lastKey);
    return cursor;
  }

  /** Where the scan of `cursor` goes on: after its last key; from the start if unknown. */
  take(cursor: bigint): string | undefined {
    const last = this.#lastKeys.get(cursor);
    this.#lastKeys.delete(cursor);
    return last;
  }
}

const cursorTables = new WeakMap<object, ScanCursors>();

function cursorsOf(ctx: CommandContext): ScanCursors {
  let table = cursorTables.get(ctx.node);
  if (table === undefined) cursorTables.set(ctx.node, table = new ScanCursors());
  return table;
}

/** Redis's cursor: `strtoul` with no leading space, and nothing after the digits. */
function parseCursor(bytes: Uint8Array): bigint | undefined {
  const text = new TextDecoder().decode(bytes);
  if (!/^[+-]?[0-9]*$/.test(text)) return undefined;
  const negative = text.startsWith("-");
  const digits = text.replace(/^[+-]/, "");
  if (digits.length > 20) return undefined;
  const value = digits === "" ? 0n : BigInt(digits);
  if (value > 0xffff_ffff_ffff_ffffn) return undefined;
  return negative ? (0x1_0000_0000_0000_0000n - value) % 0x1_0000_0000_0000_0000n : value;
}

/** SCAN's options, or the error Redis answers. */
function scanOptions(
  args: Uint8Array[],
): { pattern?: string; count: number; type?: string } | string {
  let pattern: string | undefined;
  let count = 10;
  let type: string | undefined;
  for (let i = 1; i < args.length; i += 2) {
    const option = upperWord(args[i]);
    if (i + 1 >= args.length) return SYNTAX_ERROR;
    if (option === "COUNT") {
      // Any 64-bit count, as Redis takes: past the safe integers it bounds nothing more.
      const value = parseClamped(args[i + 1], 0, Number.MAX_SAFE_INTEGER);
      if (value === undefined) return NOT_AN_INTEGER;
      if (value < 1) return SYNTAX_ERROR;
      count = value;
    } else if (option === "MATCH") {
      pattern = bytesToKey(args[i + 1]);
    } else if (option === "TYPE") {
      type = bytesToKey(args[i + 1]).toLowerCase();
    } else return SYNTAX_ERROR;
  }
  return { pattern, count, type };
}

/** `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`. */
function scan(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const cursor = parseCursor(args[0]);
  if (cursor === undefined) {
    out.error(INVALID_CURSOR);
    return;
  }
  const options = scanOptions(args);
  if (typeof options === "string") {
    out.error(options);
    return;
  }
  const filter = filterFor(options.pattern);
  const cursors = cursorsOf(ctx);
  const after = cursor === 0n ? undefined : cursors.take(cursor);
  const from = after === undefined || after < filter.start ? filter.start : after + "\0";
  const walk = new KeyWalk(ctx, "SCAN", filter, from);
  // Every key is a string: a scan for another type finds nothing.
  walk.ended = options.type !== undefined && options.type !== "string";
  let left = options.count;
  const step = (): boolean => {
    if (left > 0 && !walk.ended) left -= walk.page(Math.min(left, PAGE_KEYS));
    return left <= 0 || walk.ended;
  };
  return walk.run(out, step, (): Reply => {
    const last = walk.last;
    const next = walk.ended || last === undefined ? 0n : cursors.remember(last, ctx);
    return keysReply(walk.found, out.resp, String(next));
  });
}

/** `TYPE key`: `string`, or `none` for a missing key. */
function type(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, store } = ctx.node;
  const reply: Reply = { type: "status", text: store.has(args[0]) ? "string" : "none" };
  return answerCommitted(ctx, commit.pendingLsn(args[0]), out, reply);
}

/** `RANDOMKEY`: a key, or nil when there are none. */
function randomKey(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const key = ctx.node.store.randomKey();
  const reply: Reply = key === undefined
    ? { type: "notFound" }
    : { type: "value", value: keyToBytes(key) };
  return answerCommitted(ctx, ctx.node.commit.pendingAllLsn(), out, reply);
}

/**
 * Writes `value` (expiring at `expiresAtMs`, 0: never) under `destination` and, for a rename,
 * deletes `source`, as one atomic write (one MULTI record); answers `reply` once committed.
 */
function move(
  ctx: CommandContext,
  out: ReplyWriter,
  source: Uint8Array | undefined,
  destination: Uint8Array,
  value: Uint8Array,
  expiresAtMs: number,
  reply: Reply,
) {
  const { commit, store } = ctx.node;
  const lsn = store.atomically(() => {
    let last = store.writePut(destination, value, expiresAtMs);
    commit.noteWrite(destination, last);
    if (source !== undefined) {
      last = store.writeDelete(source);
      commit.noteWrite(source, last);
    }
    return last;
  });
  return acknowledge(ctx, lsn, out, reply);
}

const ONE: Reply = { type: "integer", value: 1 };

/** When `key` expires (0: never), which a renamed or copied key keeps, as in Redis. */
function ttlOf(ctx: CommandContext, key: Uint8Array): number {
  return ctx.node.store.expiresAtMs(key) ?? 0;
}

/** Whether two keys are the same bytes. */
function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** `RENAME source destination`. */
function rename(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [source, destination] = args;
  const { commit, store } = ctx.node;
  const value = store.read(source);
  if (value === undefined) {
    const refusal: Reply = { type: "error", message: "no such key" };
    return answerCommitted(ctx, commit.pendingLsn(source), out, refusal);
  }
  if (sameKey(source, destination)) {
    return answerCommitted(ctx, commit.pendingLsn(source), out, { type: "ok" });
  }
  return move(ctx, out, source, destination, value, ttlOf(ctx, source), { type: "ok" });
}

/** `RENAMENX source destination`: 1 when renamed, 0 when the destination exists. */
function renameNx(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [source, destination] = args;
  const { commit, store } = ctx.node;
  const value = store.read(source);
  const pending = Math.max(commit.pendingLsn(source), commit.pendingLsn(destination));
  if (value === undefined) {
    return answerCommitted(ctx, pending, out, { type: "error", message: "no such key" });
  }
  if (sameKey(source, destination) || store.has(destination)) {
    return answerCommitted(ctx, pending, out, { type: "integer", value: 0 });
  }
  return move(ctx, out, source, destination, value, ttlOf(ctx, source), ONE);
}

/** `COPY source destination [DB index] [REPLACE]`: 1 when copied, 0 when not. */
function copy(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const [source, destination] = args;
  let replace = false;
  for (let i = 2; i < args.length; i++) {
    const option = upperWord(args[i]);
    if (option === "REPLACE") replace = true;
    else if (option === "DB" && i + 1 < args.length) {
      const index = parseInt32(args[++i]);
      if (typeof index === "string") {
        out.error(index);
        return;
      }
      if (index !== 0) {
        out.error("DB index is out of range");
        return;
      }
    } else {
      out.error(SYNTAX_ERROR);
      return;
    }
  }
  if (sameKey(source, destination)) {
    out.error("source and destination objects are the same");
    return;
  }
  const { commit, store } = ctx.node;
  const value = store.read(source);
  const pending = Math.max(commit.pendingLsn(source), commit.pendingLsn(destination));
  if (value === undefined || (!replace && store.has(destination))) {
    return answerCommitted(ctx, pending, out, { type: "integer", value: 0 });
  }
  return move(ctx, out, undefined, destination, value, ttlOf(ctx, source), ONE);
}

/** Redis's encoding of a string value: `int`, `embstr` (up to 44 bytes) or `raw`. */
export function stringEncoding(value: Uint8Array): "int" | "embstr" | "raw" {
  if (value.length <= 20 && isLongLong(value)) return "int";
  return value.length <= 44 ? "embstr" : "raw";
}

/** Redis's `string2ll`: a 64-bit signed integer written canonically. */
function isLongLong(value: Uint8Array): boolean {
  const text = new TextDecoder().decode(value);
  if (!/^(0|-?[1-9][0-9]*)$/.test(text)) return false;
  const number = BigInt(text);
  return number >= -(2n ** 63n) && number < 2n ** 63n;
}

/** `OBJECT ENCODING key`: the encoding Redis would give the value; nil for a missing key. */
function objectEncoding(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, store } = ctx.node;
  const value = store.read(args[0]);
  const reply: Reply = value === undefined
    ? { type: "notFound" }
    : { type: "value", value: encoder.encode(stringEncoding(value)) };
  return answerCommitted(ctx, commit.pendingLsn(args[0]), out, reply);
}

const OBJECT_HELP = [
  "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "ENCODING <key>",
  "    Return the kind of internal representation used in order to store the value",
  "    associated with a <key>.",
  "HELP",
  "    Prints this help.",
];

function objectHelp(_args: Uint8Array[], out: ReplyWriter): void {
  out.reply(helpReply(OBJECT_HELP));
}

/**
 * `FLUSHALL [ASYNC|SYNC]` and `FLUSHDB [ASYNC|SYNC]` (one database: the same): one FLUSH record,
 * durable and replicated; the index is swapped for an empty one at once, so both modes are
 * immediate. Reads wait until the flush is committed (the commit point's floor).
 */
function flush(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  if (args.length === 1) {
    const mode = upperWord(args[0]);
    if (mode !== "ASYNC" && mode !== "SYNC") {
      out.error(SYNTAX_ERROR);
      return;
    }
  } else if (args.length > 1) {
    out.error(SYNTAX_ERROR);
    return;
  }
  const { commit, store } = ctx.node;
  const lsn = store.atomicWrites.writeFlush();
  commit.raiseFloor(lsn);
  return acknowledge(ctx, lsn, out, { type: "ok" });
}

const del = BUILT_IN_COMMANDS.get("DEL");
if (del === undefined) throw new Error("the built-in DEL command is missing");
/** `TOUCH key...` answers as `EXISTS` does: kvstore keeps no access times to update. */
const exists = BUILT_IN_COMMANDS.get("EXISTS");
if (exists === undefined) throw new Error("the built-in EXISTS command is missing");

/** The keyspace commands, by upper-case name. */
export const KEYSPACE_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["KEYS", { minArgs: 1, maxArgs: 1, handler: keys }],
  ["SCAN", { minArgs: 1, maxArgs: Infinity, handler: scan }],
  ["TYPE", { minArgs: 1, maxArgs: 1, handler: type }],
  ["TOUCH", { ...exists, minArgs: 1, maxArgs: Infinity }],
  ["RANDOMKEY", { minArgs: 0, maxArgs: 0, handler: randomKey }],
  ["UNLINK", { ...del, minArgs: 1, maxArgs: Infinity }],
  ["FLUSHALL", { minArgs: 0, maxArgs: Infinity, write: true, handler: flush }],
  ["FLUSHDB", { minArgs: 0, maxArgs: Infinity, write: true, handler: flush }],
  ["RENAME", { minArgs: 2, maxArgs: 2, write: true, handler: rename }],
  ["RENAMENX", { minArgs: 2, maxArgs: 2, write: true, handler: renameNx }],
  ["COPY", { minArgs: 2, maxArgs: Infinity, write: true, handler: copy }],
  [
    "OBJECT",
    containerCommand("OBJECT", {
      ENCODING: { minArgs: 1, maxArgs: 1, handler: objectEncoding },
      HELP: { minArgs: 0, maxArgs: 0, handler: objectHelp },
    }),
  ],
]);
