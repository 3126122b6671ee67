/**
 * The commands of a kvstore node, shared by both framings: the original system's (`PUT`, `READ`,
 * `DELETE`, `READRANGE`, `BATCHPUT`, `REPLICATE`), and the Redis names that `redis-cli` and
 * `redis-benchmark` use (`SET`, `GET`, `DEL`, `MSET`, `MGET`, `EXISTS`, `DBSIZE`). Redis's
 * connection commands (`PING`, `INFO`, `HELLO`, `CLIENT`, ...) and `CONFIG GET` are in `src/redis`.
 *
 * Handlers run synchronously against the store (`writePut` applies a write at once, so a read
 * later in the same pipeline sees it); the connection sends the replies of one read after one
 * `whenDurable` of the highest LSN written.
 *
 * @module
 */
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import { RangeTooLargeError } from "../storage/mod.ts";
import { type CommandContext, CommandError, type CommandSpec } from "./hooks.ts";
import { repeatInSteps, runInSteps, STEP_CHECK_ITEMS } from "./steps.ts";

/** The spec's answer to a client write on a replica. */
export const READ_ONLY_MESSAGE =
  "Replica nodes are read-only. Please send writes to the master node.";
/** The spec's answer to `REPLICATE` on a master. */
export const REPLICATE_ON_MASTER_MESSAGE = "REPLICATE commands only accepted on replica nodes";

function pairsOf(args: Uint8Array[]): [Uint8Array, Uint8Array][] {
  const pairs = new Array<[Uint8Array, Uint8Array]>(args.length / 2);
  for (let i = 0; i < pairs.length; i++) pairs[i] = [args[2 * i], args[2 * i + 1]];
  return pairs;
}

const OK: Reply = { type: "ok" };
const ONE: Reply = { type: "integer", value: 1 };
const ZERO: Reply = { type: "integer", value: 0 };
const NOT_FOUND: Reply = { type: "notFound" };

/**
 * Finishes a client write with LSN `lsn` whose reply is `reply`: written now (it leaves once the
 * write is durable), or later when sync replication must acknowledge it first.
 */
export function acknowledge(
  ctx: CommandContext,
  lsn: number,
  out: ReplyWriter,
  reply: Reply,
): void | Promise<Reply> {
  ctx.wrote(lsn);
  const waiting = ctx.replicated(lsn);
  if (waiting === undefined) {
    out.reply(reply);
    return;
  }
  return waiting.then((error): Reply =>
    error === undefined ? reply : { type: "error", message: error }
  );
}

function put(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const lsn = ctx.node.store.writePut(args[0], args[1]);
  ctx.node.commit.noteWrite(args[0], lsn);
  return acknowledge(ctx, lsn, out, OK);
}

/**
 * Answers a read with `reply` once `lsn` is committed (0: at once, written into `out`): a read
 * never shows a write that a crash or a failover could take back (see `commit_point.ts`).
 */
export function answerCommitted(
  ctx: CommandContext,
  lsn: number,
  out: ReplyWriter,
  reply: Reply,
): void | Promise<Reply> {
  const commit = ctx.node.commit;
  if (lsn === 0 || commit.durableSuffices(lsn)) {
    // Committed once durable here: the batch's one durability wait covers it, as for a write
    // (and a failed log closes the connection without replies, as for a write).
    if (lsn > 0) ctx.wrote(lsn);
    out.reply(reply);
    return;
  }
  return commit.whenCommitted(lsn).then((reason): Reply =>
    reason === undefined ? reply : { type: "error", message: notCommitted(lsn, reason) }
  );
}

/** The error of a read whose value's write cannot be committed. */
function notCommitted(lsn: number, reason: string): string {
  return `the newest write this read depends on (LSN ${lsn}) is not committed, so its value ` +
    `cannot be shown: ${reason}`;
}

/**
 * For a reply already written into `out` (a request that goes on in steps): holds it until `lsn`
 * is committed, and turns it into an error if it cannot be.
 */
export async function committedOrThrow(ctx: CommandContext, lsn: number): Promise<void> {
  if (lsn === 0) return;
  const commit = ctx.node.commit;
  if (commit.durableSuffices(lsn)) {
    ctx.wrote(lsn);
    return;
  }
  const reason = await commit.whenCommitted(lsn);
  if (reason !== undefined) throw new CommandError(notCommitted(lsn, reason));
}

function set(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  if (args.length > 2) {
    out.error("SET options (EX, NX, ...) are not supported: use SET key value");
    return;
  }
  return put(args, out, ctx);
}

function read(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, store } = ctx.node;
  const value = store.read(args[0]);
  const pending = commit.pendingLsn(args[0]);
  if (pending === 0 || commit.durableSuffices(pending)) {
    // The common cases, kept free of reply objects: committed, or committed by this batch's
    // durability wait.
    if (pending !== 0) ctx.wrote(pending);
    if (value === undefined) out.notFound();
    else out.value(value);
    return;
  }
  return answerCommitted(
    ctx,
    pending,
    out,
    value === undefined ? NOT_FOUND : { type: "value", value },
  );
}

/** `DELETE key`: text OK / NOT_FOUND as in the original; RESP `:1` / `:0`. */
function deleteOne(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, store } = ctx.node;
  if (!store.has(args[0])) {
    // "Did not exist" is a read: of a committed state only.
    const missing: Reply = ctx.framing === "text" ? NOT_FOUND : ZERO;
    return answerCommitted(ctx, commit.pendingLsn(args[0]), out, missing);
  }
  const lsn = store.writeDelete(args[0]);
  commit.noteWrite(args[0], lsn);
  return acknowledge(ctx, lsn, out, ctx.framing === "text" ? OK : ONE);
}

/**
 * `DEL key...`: the number of keys that existed. Atomic, as in Redis: one key is one DELETE
 * record; several are one MULTI record (`KVStore.deleteExisting`), so no reader sees some gone
 * and others not, and a crash keeps all or none. Not in steps: a step between two deletes would let
 * others see half of them (~2 µs a key here: ~0.6 s for the most keys a request may hold,
 * docs/protocol.md).
 */
function del(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, store } = ctx.node;
  let deleted = 0;
  const lsn = store.deleteExisting(args, (i, at) => {
    commit.noteWrite(args[i], at);
    deleted++;
  });
  if (deleted === 0) {
    // "Did not exist" is a read: of a committed state only.
    return answerCommitted(ctx, commit.pendingLsnOf(args), out, ZERO);
  }
  // Its own (later) LSN committed commits the missing keys' writes too.
  return acknowledge(ctx, lsn, out, { type: "integer", value: deleted });
}

function batchPut(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  if (args.length % 2 !== 0) {
    out.error("BATCHPUT needs keys and values in pairs (key value [key value ...])");
    return;
  }
  const lsn = ctx.node.store.writeBatch(pairsOf(args));
  for (let i = 0; i < args.length; i += 2) ctx.node.commit.noteWrite(args[i], lsn);
  return acknowledge(ctx, lsn, out, OK);
}

/** The smallest key after `key` in byte order (where the next page of a range starts). */
function successor(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(key.length + 1);
  next.set(key);
  return next;
}

/**
 * `READRANGE start end`: read in pages of {@link STEP_CHECK_ITEMS} keys, in steps of at most
 * REQUEST_STEP_MS when there are more, within MAX_RANGE_KEYS and MAX_RANGE_BYTES (each page's
 * sizes are checked from the index before its values are read).
 */
function readRange(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { config, limits, store } = ctx.node;
  const limit = config.MAX_RANGE_KEYS;
  const maxBytes = config.MAX_RANGE_BYTES;
  const peer = ctx.connection.peer;
  const end = args[1];
  let start = args[0];
  const pairs: [Uint8Array, Uint8Array][] = [];
  let bytes = 0;
  /** Reads one page; true when the range is done. */
  const page = (): boolean => {
    let got: [Uint8Array, Uint8Array][];
    try {
      got = store.readRange(start, end, { limit: STEP_CHECK_ITEMS, maxBytes: maxBytes - bytes });
    } catch (error) {
      if (!(error instanceof RangeTooLargeError)) throw error;
      limits.hit("MAX_RANGE_BYTES", maxBytes, "a READRANGE from {peer} was refused", { peer });
      throw new CommandError(
        `READRANGE matched more than MAX_RANGE_BYTES (${maxBytes}) bytes of keys and values; ` +
          `narrow the range or raise --max-range-bytes`,
      );
    }
    for (const pair of got) {
      pairs.push(pair);
      bytes += pair[0].length + pair[1].length;
    }
    if (pairs.length > limit) {
      limits.hit("MAX_RANGE_KEYS", limit, "a READRANGE from {peer} was refused", { peer });
      throw new CommandError(
        `READRANGE matched more than MAX_RANGE_KEYS (${limit}) keys; narrow the range or raise ` +
          `--max-range-keys`,
      );
    }
    if (got.length < STEP_CHECK_ITEMS) return true;
    start = successor(got[got.length - 1][0]);
    return false;
  };
  // Any write may fall in the range (a deletion leaves no key to look up): every write up to the
  // last page read must be committed.
  if (page()) {
    const pending = ctx.node.commit.pendingAllLsn();
    if (pending === 0) out.pairs(pairs);
    else return answerCommitted(ctx, pending, out, { type: "pairs", pairs });
    return;
  }
  ctx.inSteps(
    repeatInSteps(ctx.stepMs, page, () => ctx.stepDone(bytes)).then(() => {
      out.pairs(pairs);
      return committedOrThrow(ctx, ctx.node.commit.pendingAllLsn());
    }),
  );
}

/**
 * `MGET key...`: values written as they are read. Many keys are read in steps, but every key is
 * looked up at the first one (`KVStore.holdValues`), so the reply is one state of the store, as
 * Redis's atomic MGET is, never half of another client's MSET. A reply that would pass
 * OUTPUT_BUFFER_HARD_LIMIT_BYTES is refused (an error instead of a closed connection).
 */
function mget(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, config, limits, store } = ctx.node;
  const maxBytes = config.OUTPUT_BUFFER_HARD_LIMIT_BYTES;
  const start = out.length;
  const pending = commit.pendingLsnOf(args);
  const written = (): void => {
    if (out.length - start <= maxBytes) return;
    limits.hit("OUTPUT_BUFFER_HARD_LIMIT_BYTES", maxBytes, "an MGET from {peer} was refused", {
      peer: ctx.connection.peer,
    });
    throw new CommandError(
      `MGET reply would be larger than OUTPUT_BUFFER_HARD_LIMIT_BYTES (${maxBytes} bytes); ` +
        `ask for fewer keys at a time`,
    );
  };
  if (args.length <= STEP_CHECK_ITEMS) {
    // A few keys: when one must wait for replicas, the values are kept for a late reply (the
    // connection goes on with its next requests meanwhile).
    if (pending !== 0 && !commit.durableSuffices(pending)) {
      const values = args.map((key) => store.read(key));
      return answerCommitted(ctx, pending, out, { type: "values", values });
    }
    if (pending !== 0) ctx.wrote(pending);
    out.valuesStart(args.length);
    for (let i = 0; i < args.length; i++) {
      out.valuesItem(i, store.read(args[i]));
      written();
    }
    out.valuesEnd();
    return;
  }
  const held = store.holdValues(args);
  const readHeld = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      out.valuesItem(i, held.value(i));
      written();
    }
  };
  out.valuesStart(args.length);
  ctx.inSteps(
    runInSteps(args.length, ctx.stepMs, readHeld, () => ctx.stepDone(out.length - start))
      .finally(() => held.release())
      .then(() => {
        out.valuesEnd();
        return committedOrThrow(ctx, pending);
      }),
  );
}

/**
 * `EXISTS key...`: how many exist (a key named twice counts twice), all looked up at once, as
 * in Redis: index lookups only (~0.2 µs a key), so no steps that would let a write fall between
 * two of them.
 */
function exists(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, store } = ctx.node;
  let count = 0;
  for (const key of args) if (store.has(key)) count++;
  return answerCommitted(ctx, commit.pendingLsnOf(args), out, { type: "integer", value: count });
}

function dbsize(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { commit, store } = ctx.node;
  const keys: Reply = { type: "integer", value: store.size };
  return answerCommitted(ctx, commit.pendingAllLsn(), out, keys);
}

function replicateWithoutApplier(_args: Uint8Array[], out: ReplyWriter): void {
  out.error("this node has no replication applier to take REPLICATE commands");
}

/**
 * Built-in commands an extension may replace (`ServerHooks.replaces`): `REPLICATE`, which a node
 * without the replication extension answers with an error.
 */
export const REPLACEABLE_COMMANDS: ReadonlySet<ReplaceableCommand> = new Set(["REPLICATE"]);

/** The name of a built-in command an extension may replace. */
export type ReplaceableCommand = "REPLICATE";

/** The built-in commands, by upper-case name. */
export const BUILT_IN_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["PUT", { minArgs: 2, maxArgs: 2, write: true, handler: put }],
  ["SET", { minArgs: 2, maxArgs: Infinity, write: true, handler: set }],
  ["READ", { minArgs: 1, maxArgs: 1, handler: read }],
  ["GET", { minArgs: 1, maxArgs: 1, handler: read }],
  ["DELETE", { minArgs: 1, maxArgs: 1, write: true, handler: deleteOne }],
  ["DEL", { minArgs: 1, maxArgs: Infinity, write: true, handler: del }],
  ["BATCHPUT", { minArgs: 2, maxArgs: Infinity, write: true, handler: batchPut }],
  ["MSET", { minArgs: 2, maxArgs: Infinity, write: true, handler: batchPut }],
  ["READRANGE", { minArgs: 2, maxArgs: 2, handler: readRange }],
  ["MGET", { minArgs: 1, maxArgs: Infinity, handler: mget }],
  ["EXISTS", { minArgs: 1, maxArgs: Infinity, handler: exists }],
  ["DBSIZE", { minArgs: 0, maxArgs: 0, handler: dbsize }],
  ["REPLICATE", {
    minArgs: 1,
    maxArgs: Infinity,
    replicaOnly: true,
    admin: true,
    handler: replicateWithoutApplier,
  }],
]);
