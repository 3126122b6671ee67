/**
 * Redis's transactions, as Redis 7 answers them: `MULTI` starts queuing (every later command
 * answers `QUEUED` and does nothing yet), `EXEC` runs the queue, `DISCARD` drops it, `WATCH key...`
 * makes the next `EXEC` fail (a null array) if any of the keys changed before it, `UNWATCH` forgets
 * them.
 *
 * - A command refused while queuing (unknown, wrong arity, refused by a gate, a write on a
 *   replica, past MULTI_MAX_COMMANDS or MULTI_MAX_BYTES) makes `EXEC` answer `EXECABORT` and run
 *   nothing; an error a queued command meets when it runs is its own reply in `EXEC`'s array, and
 *   the others run, as in Redis.
 * - What a queue holds counts against MAX_CLIENT_MEMORY_BYTES: its argument bytes and the heap
 *   each command and argument costs besides (~100 bytes each, measured), so a client that queues
 *   many small commands is closed before it holds more than the bound.
 * - `EXEC` runs the whole queue in one synchronous call inside `store.atomically`, with
 *   `CommandContext.stepMs` infinite (a command over many keys does not yield): no other
 *   client's request runs between its commands, and its writes go to the log together.
 * - A watched key "changed" is any write to it, whoever made it: another connection, this one,
 *   a replicated record, a delete, a flush or a full sync (of a key there before or after it:
 *   Redis 7 leaves a watch on a key that stayed missing). The store tells
 *   (`KVStore.onKeyChange`), so nothing is missed and nobody pays while no key is watched.
 *   A connection watches at most WATCH_MAX_KEYS keys.
 *
 * @module
 */
import { type Reply, ReplyWriter } from "../protocol/mod.ts";
import { READ_ONLY_MESSAGE } from "../server/commands.ts";
import { errorReply } from "../server/connection.ts";
import type {
  CommandContext,
  CommandSpec,
  ConnectionInfo,
  ServerNode,
  TransactionState,
} from "../server/hooks.ts";
import { bytesToKey, type KVStore } from "../storage/mod.ts";

/** A command queued between `MULTI` and `EXEC`, its arguments copied. */
interface Queued {
  name: string;
  command: CommandSpec;
  args: Uint8Array[];
}

/** Redis's refusal of an `EXEC` after an error while queuing. */
const EXECABORT_MESSAGE = "Transaction discarded because of previous errors.";

/**
 * The keys watched on one store, each with the transactions that watch it (one, or several);
 * subscribed to the store's key changes only while some key is watched.
 */
class WatchRegistry {
  readonly #watchers = new Map<string, Transaction | Transaction[]>();
  readonly #store: KVStore;
  #unsubscribe: (() => void) | undefined;

  constructor(store: KVStore) {
    this.#store = store;
  }

  /** Adds `transaction` as a watcher of `key` (once). */
  watch(key: string, transaction: Transaction): void {
    const watchers = this.#watchers.get(key);
    if (watchers === undefined) this.#watchers.set(key, transaction);
    else if (Array.isArray(watchers)) {
      if (!watchers.includes(transaction)) watchers.push(transaction);
    } else if (watchers !== transaction) this.#watchers.set(key, [watchers, transaction]);
    this.#unsubscribe ??= this.#store.onKeyChange((changed, touched) =>
      this.#changed(changed, touched)
    );
  }

  /** Removes `transaction` as a watcher of `key`. */
  unwatch(key: string, transaction: Transaction): void {
    const watchers = this.#watchers.get(key);
    if (watchers === transaction) this.#watchers.delete(key);
    else if (Array.isArray(watchers)) {
      const rest = watchers.filter((watcher) => watcher !== transaction);
      if (rest.length === 0) this.#watchers.delete(key);
      else this.#watchers.set(key, rest.length === 1 ? rest[0] : rest);
    }
    if (this.#watchers.size === 0 && this.#unsubscribe !== undefined) {
      this.#unsubscribe();
      this.#unsubscribe = undefined;
    }
  }

  /**
   * A write changed `key`: its watchers' next EXEC fails. `key` undefined: the contents were
   * replaced (a flush, a full sync), which changed the watched keys `touched` names (those that
   * existed before or exist after; Redis 7 leaves a watch on a key that stayed missing).
   */
  #changed(key: string | undefined, touched?: (key: string) => boolean): void {
    if (key === undefined) {
      for (const [name, watchers] of this.#watchers) {
        if (touched === undefined || touched(name)) touch(watchers);
      }
      return;
    }
    const watchers = this.#watchers.get(key);
    if (watchers !== undefined) touch(watchers);
  }
}

function touch(watchers: Transaction | Transaction[]): void {
  if (Array.isArray(watchers)) { for (const watcher of watchers) watcher.dirty = true; }
  else watchers.dirty = true;
}

const registries = new WeakMap<KVStore, WatchRegistry>();

function registryOf(store: KVStore): WatchRegistry {
  let registry = registries.get(store);
  if (registry === undefined) registries.set(store, registry = new WatchRegistry(store));
  return registry;
}

/** Bytes of each chunk queued arguments are copied into (a larger command gets its own). */
const ARENA_CHUNK_BYTES = 16 * 1024;

/**
 * Heap a queued command costs beyond its argument bytes: its {@link Queued} record and its
 * array of views. Measured on Deno 2.9.6 (x86-64) as heap growth after a forced GC while one
 * connection queued 100,000 commands: `GET k` 211 bytes, `SET k v` 324, `MSET` of 4 arguments
 * 551 and of 16 arguments 1,913, i.e. about 97 per command and 113 per argument (the view),
 * rounded up here. Counted in {@link Transaction.heldBytes}, so MAX_CLIENT_MEMORY_BYTES bounds what
 * a queue really holds (counting only the argument bytes, a queue held ~100 times what it counted).
 */
const QUEUED_COMMAND_OVERHEAD_BYTES = 104;
/** Heap each queued argument costs beyond its bytes (its view): see QUEUED_COMMAND_OVERHEAD_BYTES. */
const QUEUED_ARGUMENT_OVERHEAD_BYTES = 120;

/**
 * Heap a watched key costs beyond its bytes: its string, its entry in the connection's set and in
 * the registry's map (and, with a time to live, in the expiry map). Counted in
 * {@link Transaction.heldBytes}: WATCH_MAX_KEYS keys of MAX_KEY_BYTES each are 640 MB a
 * connection, which MAX_CLIENT_MEMORY_BYTES must see (tests/server/memory_bounds_test.ts checks
 * the count against the heap it really takes).
 */
const WATCHED_KEY_OVERHEAD_BYTES = 128;

/** `+QUEUED\r\n`, written as it is (the reply of every queued command over RESP). */
const RESP_QUEUED = new TextEncoder().encode("+QUEUED\r\n");

/**
 * Where queued arguments are copied (the request buffer they arrive in is reused): chunks of
 * ARENA_CHUNK_BYTES, so queuing a command costs views, not an allocation per argument.
 */
class ArgumentArena {
  #chunk = new Uint8Array(0);
  #used = 0;

  /** A copy of `args`, `bytes` long in all. */
  copy(args: Uint8Array[], bytes: number): Uint8Array[] {
    if (this.#used + bytes > this.#chunk.length) {
      this.#chunk = new Uint8Array(Math.max(ARENA_CHUNK_BYTES, bytes));
      this.#used = 0;
    }
    const chunk = this.#chunk;
    const views = new Array<Uint8Array>(args.length);
    let at = this.#used;
    for (let i = 0; i < args.length; i++) {
      const arg = args[i];
      chunk.set(arg, at);
      views[i] = chunk.subarray(at, at + arg.length);
      at += arg.length;
    }
    this.#used = at;
    return views;
  }

  /**
   * Lets go of a chunk grown past ARENA_CHUNK_BYTES (one large transaction keeps no memory) and
   * starts over at the beginning of the chunk. Called at MULTI: the previous queue's views are no
   * longer read by then (EXEC ran its commands synchronously).
   */
  reset(): void {
    if (this.#chunk.length > ARENA_CHUNK_BYTES) this.#chunk = new Uint8Array(0);
    this.#used = 0;
  }
}

/** One connection's transaction: its queue while queuing, and the keys it watches. */
class Transaction implements TransactionState {
  queuing = false;
  /** A watched key changed since it was watched: the next EXEC fails. */
  dirty = false;
  /** A command was refused while queuing: EXEC answers EXECABORT. */
  #aborted = false;
  #queue: Queued[] = [];
  /** Argument bytes queued (what MULTI_MAX_BYTES bounds). */
  #queuedBytes = 0;
  /** Arguments queued, each of which costs QUEUED_ARGUMENT_OVERHEAD_BYTES besides its bytes. */
  #queuedArguments = 0;
  readonly #arena = new ArgumentArena();
  readonly #watched = new Set<string>();
  /** Memory the watched keys hold (see WATCHED_KEY_OVERHEAD_BYTES). */
  #watchedBytes = 0;
  /**
   * When each watched key that had a time to live at WATCH expires: once that passes, the key
   * has changed even before active expiry deletes it (Redis 7). Any other change to it (a new
   * value or TTL, a delete) is heard from the store.
   */
  readonly #watchedExpiry = new Map<string, number>();
  readonly #node: ServerNode;
  readonly #connection: ConnectionInfo;

  constructor(node: ServerNode, connection: ConnectionInfo) {
    this.#node = node;
    this.#connection = connection;
  }

  /**
   * Memory the queue and the watched keys hold: the queued arguments' bytes and what each queued
   * command and argument costs besides (see QUEUED_COMMAND_OVERHEAD_BYTES), and the watched keys'.
   */
  get heldBytes(): number {
    return this.#queuedBytes + this.#queue.length * QUEUED_COMMAND_OVERHEAD_BYTES +
      this.#queuedArguments * QUEUED_ARGUMENT_OVERHEAD_BYTES + this.#watchedBytes;
  }

  begin(): void {
    this.queuing = true;
    this.#arena.reset();
  }

  refused(): void {
    if (this.queuing) this.#aborted = true;
  }

  queue(name: string, command: CommandSpec, args: Uint8Array[], out: ReplyWriter): void {
    const { config, limits } = this.#node;
    let bytes = 0;
    for (const arg of args) bytes += arg.length;
    const peer = this.#connection.peer;
    if (this.#queue.length >= config.MULTI_MAX_COMMANDS) {
      this.#aborted = true;
      const max = config.MULTI_MAX_COMMANDS;
      limits.hit("MULTI_MAX_COMMANDS", max, "a MULTI from {peer} queued too many commands", {
        peer,
      });
      out.error(
        `a transaction queues at most MULTI_MAX_COMMANDS (${max}) commands; the transaction ` +
          `is aborted (EXEC will answer EXECABORT)`,
      );
      return;
    }
    if (this.#queuedBytes + bytes > config.MULTI_MAX_BYTES) {
      this.#aborted = true;
      const max = config.MULTI_MAX_BYTES;
      limits.hit("MULTI_MAX_BYTES", max, "a MULTI from {peer} queued too many bytes", { peer });
      out.error(
        `a transaction queues at most MULTI_MAX_BYTES (${max}) bytes of arguments; the ` +
          `transaction is aborted (EXEC will answer EXECABORT)`,
      );
      return;
    }
    this.#queuedBytes += bytes;
    this.#queuedArguments += args.length;
    this.#queue.push({ name, command, args: this.#arena.copy(args, bytes) });
    if (out.resp) out.raw(RESP_QUEUED);
    else out.status("QUEUED");
  }

  /**
   * Ends the transaction: its queue, and whether EXEC must abort or fail; every key is
   * unwatched (EXEC and DISCARD both do).
   */
  finish(): { queue: Queued[]; aborted: boolean; dirty: boolean } {
    // A watched key whose time ran out since WATCH has changed, deleted or not yet (Redis 7).
    const expired = this.#watchedExpiry.size > 0 && this.#expiredSinceWatch();
    const outcome = { queue: this.#queue, aborted: this.#aborted, dirty: this.dirty || expired };
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#queuedArguments = 0;
    this.#aborted = false;
    this.queuing = false;
    this.unwatchAll();
    return outcome;
  }

  /** Watches `keys`, unless that would pass WATCH_MAX_KEYS (then nothing is added). */
  watch(keys: Uint8Array[]): boolean {
    const max = this.#node.config.WATCH_MAX_KEYS;
    const names = keys.map((key) => bytesToKey(key));
    let added = 0;
    for (const name of new Set(names)) if (!this.#watched.has(name)) added++;
    if (this.#watched.size + added > max) {
      this.#node.limits.hit("WATCH_MAX_KEYS", max, "a WATCH from {peer} was refused", {
        peer: this.#connection.peer,
      });
      return false;
    }
    const store = this.#node.store;
    const registry = registryOf(store);
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      if (this.#watched.has(name)) continue;
      this.#watched.add(name);
      this.#watchedBytes += name.length + WATCHED_KEY_OVERHEAD_BYTES;
      registry.watch(name, this);
      const expiresAtMs = store.expiresAtMs(keys[i]) ?? 0;
      if (expiresAtMs !== 0) this.#watchedExpiry.set(name, expiresAtMs);
    }
    return true;
  }

  /** Whether a watched key that had a time to live when watched is now past it. */
  #expiredSinceWatch(): boolean {
    const nowMs = Date.now();
    for (const expiresAtMs of this.#watchedExpiry.values()) if (expiresAtMs <= nowMs) return true;
    return false;
  }

  unwatchAll(): void {
    if (this.#watched.size > 0) {
      const registry = registryOf(this.#node.store);
      for (const name of this.#watched) registry.unwatch(name, this);
      this.#watched.clear();
      this.#watchedExpiry.clear();
      this.#watchedBytes = 0;
    }
    this.dirty = false;
  }

  release(): void {
    this.finish();
  }
}

/** The transaction of the request's connection, made on first use. */
function transactionOf(ctx: CommandContext): Transaction {
  const connection = ctx.connection;
  const existing = connection.transaction;
  if (existing instanceof Transaction) return existing;
  const transaction = new Transaction(ctx.node, connection);
  connection.transaction = transaction;
  return transaction;
}

function multi(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const transaction = transactionOf(ctx);
  if (transaction.queuing) {
    out.error("MULTI calls can not be nested");
    return;
  }
  transaction.begin();
  out.ok();
}

function discard(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const transaction = ctx.connection.transaction;
  if (!(transaction instanceof Transaction) || !transaction.queuing) {
    out.error("DISCARD without MULTI");
    return;
  }
  transaction.finish();
  out.ok();
}

function watch(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const transaction = transactionOf(ctx);
  if (transaction.queuing) {
    out.error("WATCH inside MULTI is not allowed");
    return;
  }
  if (transaction.watch(args)) {
    out.ok();
    return;
  }
  const max = ctx.node.config.WATCH_MAX_KEYS;
  out.error(
    `a connection watches at most WATCH_MAX_KEYS (${max}) keys; this WATCH of ${args.length} ` +
      `keys was refused (none of them is watched); watch fewer keys or raise --watch-max-keys`,
  );
}

function unwatch(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const transaction = ctx.connection.transaction;
  if (transaction instanceof Transaction) transaction.unwatchAll();
  out.ok();
}

/**
 * `EXEC` refused before it runs (wrong arity, not authenticated, writes queued on a replica):
 * Redis drops the transaction and answers EXECABORT with the refusal's words.
 */
function execRefused(refusal: Reply, ctx: CommandContext): Reply {
  const transaction = ctx.connection.transaction;
  if (transaction instanceof Transaction) transaction.finish();
  if (refusal.type !== "error") return refusal;
  const code = refusal.code ?? "ERR";
  return {
    type: "error",
    code: "EXECABORT",
    message: `Transaction discarded because of: ${code === "ERR" ? "" : `${code} `}${
      refusal.respMessage ?? refusal.message
    }`,
  };
}

/** `EXEC`: runs the queue (or aborts, or fails because a watched key changed). */
function exec(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const transaction = ctx.connection.transaction;
  if (!(transaction instanceof Transaction) || !transaction.queuing) {
    out.error("EXEC without MULTI");
    return;
  }
  const { queue, aborted, dirty } = transaction.finish();
  if (aborted) {
    out.error(EXECABORT_MESSAGE, "EXECABORT");
    return;
  }
  if (dirty) {
    out.nullArray();
    return;
  }
  if (ctx.node.replica && queue.some((queued) => queued.command.write)) {
    // The node became a replica since the commands were queued: none of them runs.
    out.reply(execRefused({ type: "error", code: "READONLY", message: READ_ONLY_MESSAGE }, ctx));
    return;
  }
  const items = runQueue(queue, out, ctx);
  if (!items.some((item) => item.late !== undefined)) {
    if (out.resp) {
      // The usual case: every reply is already encoded, back to back, in one scratch writer.
      out.arrayHeader(items.length);
      for (const item of items) out.raw(item.writer.bytes.subarray(item.start, item.end));
    } else out.reply({ type: "array", items: items.map(encodedReply) });
    // Copied out: the next EXEC may write over it.
    if (items.length > 0) keepScratch(items[0].writer);
    return;
  }
  return Promise.all(items.map((item) => item.late ?? encodedReply(item))).then((
    replies,
  ): Reply => ({ type: "array", items: replies }));
}

/** One queued command's reply: encoded in `writer` from `start` to `end`, or `late`. */
interface ExecItem {
  writer: ReplyWriter;
  start: number;
  end: number;
  late?: Promise<Reply>;
}

function encodedReply(item: ExecItem): Reply {
  return { type: "raw", bytes: item.writer.bytes.slice(item.start, item.end) };
}

/** Initial size of the writer EXEC encodes its replies into. */
const SCRATCH_BYTES = 256;

/**
 * One scratch writer kept from an EXEC whose replies were all copied out, for the next (EXEC runs
 * synchronously, so one is enough); undefined while one is in use or none was kept.
 */
let spareScratch: ReplyWriter | undefined;

/** Keeps `writer` as {@link spareScratch} unless one large reply grew it past ARENA_CHUNK_BYTES. */
function keepScratch(writer: ReplyWriter): void {
  if (writer.capacity <= ARENA_CHUNK_BYTES) spareScratch = writer;
}

/**
 * Runs every queued command in one synchronous call, inside `store.atomically`. Replies are
 * encoded back to back into a scratch writer; one that waits (for replicas, or for its value to
 * be committed) is `late`, as is one that went on in steps (its writer is its own from then on).
 */
function runQueue(queue: Queued[], out: ReplyWriter, ctx: CommandContext): ExecItem[] {
  const items: ExecItem[] = [];
  /** The work of the command running now, when it runs in steps. */
  const running: { steps?: Promise<void> } = {};
  const takeSteps = (): Promise<void> | undefined => {
    const steps = running.steps;
    running.steps = undefined;
    return steps;
  };
  const inner: CommandContext = {
    ...ctx,
    stepMs: Infinity,
    inSteps: (work) => {
      running.steps = work;
    },
  };
  const scratch = (): ReplyWriter => {
    const writer = spareScratch ?? new ReplyWriter(SCRATCH_BYTES);
    spareScratch = undefined;
    writer.length = 0;
    writer.resp = out.resp;
    writer.resp3 = out.resp && ctx.connection.protocol === 3;
    return writer;
  };
  let writer = scratch();
  ctx.node.store.atomically(() => {
    for (const { command, args } of queue) {
      const start = writer.length;
      // A queued HELLO 3 switches the replies after it, as in Redis.
      writer.resp3 = out.resp && ctx.connection.protocol === 3;
      try {
        const later = command.handler(args, writer, inner);
        const steps = takeSteps();
        if (steps !== undefined) {
          const own = writer;
          const item: ExecItem = { writer: own, start, end: start };
          item.late = steps.then((): Reply => {
            item.end = own.length;
            return encodedReply(item);
          }, errorReply);
          items.push(item);
          writer = scratch();
        } else if (later !== undefined) {
          items.push({ writer, start, end: start, late: later.catch(errorReply) });
        } else items.push({ writer, start, end: writer.length });
      } catch (error) {
        writer.length = start;
        writer.reply(errorReply(error));
        items.push({ writer, start, end: writer.length });
      }
    }
  });
  return items;
}

const CONTROL = { transactionControl: true } as const;

/** The transaction commands, by upper-case name. */
export const TRANSACTION_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["MULTI", { minArgs: 0, maxArgs: 0, ...CONTROL, handler: multi }],
  ["EXEC", { minArgs: 0, maxArgs: 0, ...CONTROL, handler: exec, refused: execRefused }],
  ["DISCARD", { minArgs: 0, maxArgs: 0, ...CONTROL, handler: discard }],
  ["WATCH", { minArgs: 1, maxArgs: Infinity, ...CONTROL, handler: watch }],
  ["UNWATCH", { minArgs: 0, maxArgs: 0, handler: unwatch }],
]);
