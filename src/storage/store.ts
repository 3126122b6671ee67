/**
 * `KVStore`: a log-structured key-value store. Every write is a record appended to the active
 * segment of a write-ahead log; an in-memory index maps each live key to its value's bytes on
 * disk. See `docs/ARCHITECTURE.md` ("Storage") for the design and `record.ts`, `segment.ts`,
 * `hint.ts` for the on-disk formats.
 *
 * This class is the store's door: it checks requests, keeps the index, and hands the work to the
 * parts that own it: the log writer (`log_writer.ts`: group commit, fsync, rolling segments) and
 * its durability counters (`durability.ts`), the log reader (`log_reader.ts`), recovery
 * (`recovery.ts`), hint files (`hint_writer.ts`), compaction (`compactor.ts`), snapshots
 * (`snapshot.ts`) and full syncs (`full_sync.ts`).
 *
 * Writes are two steps: `write*` encodes the record into the pending group-commit buffer and
 * applies it to the index synchronously, returning its LSN; `whenDurable(lsn)` resolves at the
 * fsync policy's durability point.
 *
 * @module
 */
import assert from "node:assert/strict";
import { getLog } from "../log.ts";
import { type CompactionReport, Compactor } from "./compactor.ts";
import { DATA_DIR_MODE } from "./durable_file.ts";
import { lockDirectory, unlockDirectory } from "./dir_lock.ts";
import { Durability } from "./durability.ts";
import { BatchTooLargeError, LogGapError, StorageError, StoreClosedError } from "./errors.ts";
import { FullSync, type FullSyncContents, StagedLog } from "./full_sync.ts";
import { HintWriter } from "./hint_writer.ts";
import { BackgroundTasks, yieldToRequests } from "./background_tasks.ts";
import {
  checkExpiry,
  checkKey,
  checkMultiEntries,
  checkReplicatedRecords,
  checkValue,
  type MultiEntry,
} from "./write_checks.ts";
import { ActiveExpiry } from "./expiry.ts";
import {
  applyRecord,
  flushSegments,
  indexBatch,
  indexMulti,
  indexValue,
  noteTombstone,
  slotOfPayload,
  unindexSlot,
} from "./index_entries.ts";
import { KeyIndex, type Location, NO_SLOT } from "./key_index.ts";
import { type Bytes, bytesToKey, payloadOf, toBytes } from "./keys.ts";
import { type DurableListener, LogWriter } from "./log_writer.ts";
import { readLog } from "./log_reader.ts";
import {
  batchRecordBytes,
  EXPIRY_BYTES,
  forEachKey,
  MAX_EPOCH,
  MAX_RECORD_BYTES,
  multiRecordBytes,
  Op,
  type Payload,
  RECORD_HEADER_BYTES,
  recordEpoch,
  recordLength,
  recordLsn,
  recordOp,
} from "./record.ts";
import { recover, type RecoveredStore } from "./recovery.ts";
import type { Segment } from "./segment.ts";
import { SegmentList } from "./segment_list.ts";
import { type StoreSnapshot, takeSnapshot } from "./snapshot.ts";
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from "./store_options.ts";
import { segmentFigures, type StoreStats } from "./store_stats.ts";
import { ValueReader } from "./value_reader.ts";
import { WriteCapture } from "./write_capture.ts";
import { composeKeyListeners, type KeyChangeListener } from "./key_changes.ts";
import { forEachKeyCaptured, randomLiveKey, rangeSlots, sizeWithCapture } from "./key_reads.ts";

export type { Bytes } from "./keys.ts";
export type { CompactionReport } from "./compactor.ts";
export type { DurableListener } from "./log_writer.ts";
export type { SnapshotEntry, StoreSnapshot } from "./snapshot.ts";
export type { ExpiryStats } from "./expiry.ts";
export type { StoreStats } from "./store_stats.ts";

export { MAX_EXPIRES_AT_MS, type MultiEntry } from "./write_checks.ts";
export { FullSync } from "./full_sync.ts";

const log = getLog("storage");

export type { KeyChangeListener } from "./key_changes.ts";

/** The index slot of `key`, or {@link NO_SLOT}; creates no string for byte or ASCII keys. */
function slotOf(index: KeyIndex<Segment>, key: Bytes): number {
  return slotOfPayload(index, payloadOf(key));
}

/**
 * A persistent key-value store over a segmented write-ahead log.
 *
 * @example
 * ```ts
 * import { KVStore } from "./store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = await KVStore.open(dir, { fsync: "always" });
 * await store.put("greeting", "hello");
 * console.log(new TextDecoder().decode(store.read("greeting"))); // hello
 * await store.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class KVStore {
  /** Epoch stamped on records written from now on. */
  epoch: number;
  /** Settings; replaced (replica → master) by {@link promote}. */
  options: Readonly<StoreOptions>;
  readonly dir: string;

  #lockFile: Deno.FsFile;
  #index: KeyIndex<Segment>;
  #segments: SegmentList;
  #log: LogWriter;
  #reader: ValueReader;
  #hints: HintWriter;
  #compactor: Compactor;
  #fullSync: StagedLog | undefined;
  #closed = false;
  #closing = false;
  #tasks = new BackgroundTasks();
  /** Who hears of each key a write changes (see {@link onKeyChange}); undefined: nobody. */
  #keyListeners = new Set<KeyChangeListener>();
  #keyChanged: KeyChangeListener | undefined;
  /** The writes of the {@link atomically} call running now, or undefined. */
  #capture: WriteCapture | undefined;
  #expiry: ActiveExpiry;

  private constructor(
    dir: string,
    options: StoreOptions,
    lockFile: Deno.FsFile,
    recovered: RecoveredStore,
  ) {
    this.dir = dir;
    this.options = options;
    this.#lockFile = lockFile;
    this.#index = recovered.index;
    this.epoch = recovered.lastEpoch;
    const segments = this.#segments = new SegmentList(recovered.segments);
    this.#hints = new HintWriter(dir, Math.max(1024, options.compactionChunkBytes >>> 6), {
      index: () => this.#index,
      isClosed: () => this.#closed,
      yieldToRequests,
      onWritten: () => this.#compactor.maybeAuto(),
    });
    this.#compactor = new Compactor({
      dir,
      segments,
      hints: this.#hints,
      options: () => this.options,
      index: () => this.#index,
      sealActive: () => this.#log.sealActive(),
      stopping: () => this.#closing || this.#log.failure !== undefined,
      fullSyncing: () => this.#fullSync !== undefined,
      yieldToRequests,
      background: (task) => this.#background(task),
    });
    const durability = new Durability(dir, recovered.lastLsn, segments.active);
    const last = { lsn: recovered.lastLsn, epoch: recovered.lastEpoch };
    this.#log = new LogWriter(dir, options, segments, durability, last, (sealed) => {
      this.#background(this.#hints.write(sealed));
    });
    this.#reader = new ValueReader(this.#log, options.valueCacheBytes);
    this.#expiry = new ActiveExpiry(
      {
        index: () => this.#index,
        decides: () =>
          !this.options.replica && !this.#closed && !this.#closing &&
          this.#fullSync === undefined &&
          this.#log.failure === undefined,
        deleteSlot: (slot) => this.#deleteSlot(slot),
      },
      options.expiryIntervalMs,
      options.expiryKeysPerTurn,
    );
    this.#expiry.start();
  }

  /**
   * Opens (creating if needed) the store in `dir`: locks the directory, recovers the index from
   * the log (truncating a torn tail), and starts a writer.
   *
   * @throws {StoreLockedError} another process holds the directory
   * @throws {CorruptionError} a record before the tail is damaged
   */
  static async open(dir: string, options: Partial<StoreOptions> = {}): Promise<KVStore> {
    const merged: StoreOptions = { ...DEFAULT_STORE_OPTIONS, ...options };
    await Deno.mkdir(dir, { recursive: true, mode: DATA_DIR_MODE });
    const lockFile = lockDirectory(dir);
    let recovered: RecoveredStore | undefined;
    try {
      recovered = recover(dir, merged.recoveryProgressIntervalMs);
      return new KVStore(dir, merged, lockFile, recovered);
    } catch (error) {
      for (const segment of recovered?.segments ?? []) segment.closeReader();
      unlockDirectory(lockFile);
      throw error;
    }
  }

  // ---------------------------------------------------------------- writes

  /** LSN of the last record appended (acknowledged or not). */
  get lastLsn(): number {
    return this.#log.lastLsn;
  }

  /** LSN of the last record that reached the durability point. */
  get durableLsn(): number {
    return this.#log.durability.durableLsn;
  }

  /** Called with the seconds each group-commit fsync took (metrics); unset, nothing is timed. */
  get fsyncObserver(): ((elapsedSeconds: number) => void) | undefined {
    return this.#log.fsyncObserver;
  }

  set fsyncObserver(observer: ((elapsedSeconds: number) => void) | undefined) {
    this.#log.fsyncObserver = observer;
  }

  #checkWritable(): void {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const failure = this.#log.failure;
    if (failure) throw failure;
    if (this.#fullSync) {
      throw new StorageError(
        `store ${this.dir} is replacing its contents (full sync); retry after`,
      );
    }
  }

  /**
   * Appends a PUT and applies it to the index; returns its LSN. Durable once
   * {@link whenDurable} of that LSN resolves.
   *
   * @throws {KeyTooLargeError | ValueTooLargeError} past the configured limits
   * @throws {StoreFailedError} after a write to the log failed
   */
  writePut(key: Bytes, value: Bytes, expiresAtMs = 0): number {
    this.#checkWritable();
    const k = payloadOf(key);
    const v = payloadOf(value);
    checkKey(this.options, k);
    checkValue(this.options, v);
    if (this.#capture !== undefined) {
      if (expiresAtMs !== 0) checkExpiry(expiresAtMs);
      return this.#capture.put(k, toBytes(v), expiresAtMs);
    }
    const log = this.#log;
    if (expiresAtMs !== 0) return this.#writePutExpiring(k, v, expiresAtMs);
    const lsn = log.appendPut(this.epoch, this.options.replica, k, v);
    const offset = log.lastRecordOffset + RECORD_HEADER_BYTES + k.length;
    indexValue(this.#index, k, 0, k.length, log.active, offset, v.length);
    this.#keyChanged?.(typeof k === "string" ? k : bytesToKey(k));
    return lsn;
  }

  /** {@link writePut} of a key that expires at `expiresAtMs` (a PUT_EXPIRING record). */
  #writePutExpiring(k: Payload, v: Payload, expiresAtMs: number): number {
    checkExpiry(expiresAtMs);
    const log = this.#log;
    const lsn = log.appendPutExpiring(this.epoch, this.options.replica, k, v, expiresAtMs);
    const offset = log.lastRecordOffset + RECORD_HEADER_BYTES + EXPIRY_BYTES + k.length;
    indexValue(this.#index, k, 0, k.length, log.active, offset, v.length, expiresAtMs);
    this.#keyChanged?.(typeof k === "string" ? k : bytesToKey(k));
    return lsn;
  }

  /**
   * Appends one MULTI record holding `entries` and applies them in order: all or nothing, in the
   * log, after a crash, on replicas, through compaction. Returns its LSN (durable once
   * {@link whenDurable} of it resolves). A delete of an absent key is kept (it changes nothing).
   *
   * @throws {KeyTooLargeError | ValueTooLargeError | BatchTooLargeError} past the limits
   */
  writeMulti(entries: readonly MultiEntry[]): number {
    this.#checkWritable();
    const encoded = checkMultiEntries(this.options, entries);
    const length = multiRecordBytes(encoded);
    if (length > MAX_RECORD_BYTES) throw new BatchTooLargeError(length, MAX_RECORD_BYTES);
    const log = this.#log;
    const lsn = log.appendMulti(this.epoch, this.options.replica, encoded);
    indexMulti(this.#index, log.active, log.lastRecordOffset, encoded, this.#keyChanged);
    return lsn;
  }

  /** {@link writeMulti}, resolving with its LSN once durable. */
  async applyMulti(entries: readonly MultiEntry[]): Promise<number> {
    const lsn = this.writeMulti(entries);
    await this.whenDurable(lsn);
    return lsn;
  }

  /**
   * Appends a FLUSH record: every key written before it is gone (after a restart, through
   * compaction, on replicas). Returns its LSN (durable once {@link whenDurable} of it resolves).
   * Snapshots taken before keep seeing the old contents.
   */
  writeFlush(): number {
    this.#checkWritable();
    const capture = this.#capture;
    if (capture !== undefined) {
      // Inside an atomic call: its writes so far go first, in their own record, then the FLUSH.
      const before = capture.takeAll(0);
      if (before.length > 0) this.writeMulti(before);
    }
    const log = this.#log;
    const lsn = log.appendFlush(this.epoch, this.options.replica);
    this.#applyFlush();
    capture?.takeAll(this.#nextLsn());
    return lsn;
  }

  /** {@link writeFlush}, resolving with its LSN once durable. */
  async flushAll(): Promise<number> {
    const lsn = this.writeFlush();
    await this.whenDurable(lsn);
    return lsn;
  }

  /** A FLUSH just appended: a new, empty index (snapshots keep the old one). */
  #applyFlush(): void {
    flushSegments(this.#segments.all, this.#log.active);
    this.#index = new KeyIndex<Segment>();
    this.#keyChanged?.(undefined);
  }

  /** Deletes the key of a live slot (active expiry): a DELETE record, as {@link writeDelete}. */
  #deleteSlot(slot: number): void {
    const key = this.#index.keyOf(slot); // a byte string: the codec takes it as it is
    this.#log.appendDelete(this.epoch, this.options.replica, key);
    noteTombstone(this.#log.active, key);
    unindexSlot(this.#index, slot);
    this.#keyChanged?.(key);
  }

  /**
   * Appends one BATCH record holding every pair (atomic: after a crash it is wholly there or
   * wholly absent) and applies it; returns its LSN. A key repeated in the batch takes its last
   * value.
   */
  writeBatch(pairs: readonly (readonly [Bytes, Bytes])[]): number {
    this.#checkWritable();
    const encoded = pairs.map(([key, value]) => [toBytes(key), toBytes(value)] as const);
    for (const [key, value] of encoded) {
      checkKey(this.options, key);
      checkValue(this.options, value);
    }
    const capture = this.#capture;
    if (capture !== undefined) {
      for (const [key, value] of encoded) capture.put(key, value, 0);
      return capture.lsn;
    }
    const length = batchRecordBytes(encoded);
    if (length > MAX_RECORD_BYTES) throw new BatchTooLargeError(length, MAX_RECORD_BYTES);
    const log = this.#log;
    const lsn = log.appendBatch(this.epoch, this.options.replica, encoded);
    indexBatch(this.#index, log.active, log.lastRecordOffset, encoded, this.#keyChanged);
    return lsn;
  }

  /**
   * Appends a tombstone for `key` when it exists and removes it from the index; returns its LSN.
   * When the key does not exist nothing is written and the current last LSN is returned (the
   * answer "did not exist" is durable once that LSN is). Use {@link has} first to learn which.
   */
  writeDelete(key: Bytes): number {
    this.#checkWritable();
    const k = payloadOf(key);
    checkKey(this.options, k);
    if (this.#capture !== undefined) {
      return this.has(k) ? this.#capture.delete(k) : this.#log.lastLsn;
    }
    const slot = slotOfPayload(this.#index, k);
    if (slot === NO_SLOT) return this.#log.lastLsn;
    const lsn = this.#log.appendDelete(this.epoch, this.options.replica, k);
    noteTombstone(this.#log.active, k);
    this.#keyChanged?.(this.#index.keyOf(slot));
    unindexSlot(this.#index, slot);
    return lsn;
  }

  /**
   * Runs `fn`, whose writes (made synchronously: `writePut`, `writeDelete`, `writeBatch`) belong
   * together: they are written as ONE MULTI record when it returns, so the log, a crash and every
   * replica keep all of them or none. Meanwhile `read`, `has` and `expiresAtMs` see them (not
   * `readRange`, `forEachKey`, `randomKey` or `size`, which see the index). Each write returns the
   * LSN that record takes. A `writeFlush` inside splits it: the writes before it, the FLUSH, the
   * writes after it. Nested calls join the outer one. Redis's `EXEC` and `RENAME` run through here.
   *
   * @throws what `writeMulti` throws (nothing of `fn`'s writes is then applied)
   */
  atomically<T>(fn: () => T): T {
    if (this.#capture !== undefined) return fn();
    this.#checkWritable();
    const capture = this.#capture = new WriteCapture(this.#nextLsn());
    let result: T;
    try {
      result = fn();
    } finally {
      this.#capture = undefined;
    }
    if (capture.entries.length > 0) {
      const lsn = this.writeMulti(capture.entries);
      assert.equal(lsn, capture.lsn, "the atomic call's record took another LSN");
    }
    return result;
  }

  /** The LSN the next record appended will take (a replica's LOCAL records take none). */
  #nextLsn(): number {
    return this.options.replica ? this.#log.lastLsn : this.#log.lastLsn + 1;
  }

  /**
   * Makes a replica's store a master's (failover): direct writes then take new LSNs, no longer
   * LOCAL records, stamped with `epoch`, which must be above every epoch the store has seen.
   * Appends an empty BATCH record in the new epoch, so the epoch is in the log: a restart keeps
   * it, and replicas learn it from the stream. Returns that record's LSN (durable once
   * {@link whenDurable} of it resolves).
   */
  promote(epoch: number): number {
    this.#checkWritable();
    const highest = Math.max(this.epoch, this.#log.lastEpoch);
    if (!Number.isInteger(epoch) || epoch <= highest || epoch > MAX_EPOCH) {
      throw new StorageError(
        `cannot promote to epoch ${epoch}: it must be a whole number above ${highest} (the ` +
          `highest epoch seen) and at most ${MAX_EPOCH}`,
      );
    }
    this.options = { ...this.options, replica: false };
    this.epoch = epoch;
    return this.writeBatch([]);
  }

  /**
   * Makes a master's store a replica's (a demotion at runtime, `REPLICAOF`): direct writes are
   * LOCAL records from now on, and the master's records come through {@link writeReplicated}.
   */
  demote(): void {
    this.#checkWritable();
    this.options = { ...this.options, replica: true };
  }

  /**
   * Resolves when every record appended so far with an LSN up to `lsn` reached the durability
   * point of the fsync policy; rejects with {@link StoreFailedError} if the log failed first.
   */
  whenDurable(lsn: number): Promise<void> {
    return this.#log.durability.whenDurable(lsn);
  }

  /**
   * Writes `key` = `value` (expiring at `expiresAtMs`, ms since the Unix epoch, when above 0) and
   * resolves with its LSN once durable.
   */
  put(key: Bytes, value: Bytes, expiresAtMs = 0): Promise<number> {
    // Not an async function, and no promise of its own: the durability promise made right after
    // the write resolves to its LSN (an async frame and a `then` per put are measurable:
    // docs/ARCHITECTURE.md, "Measured costs").
    try {
      this.writePut(key, value, expiresAtMs);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#log.durability.untilDurable(this.#log.lastLsn);
  }

  /** Writes every pair atomically and resolves with the batch's LSN once durable. */
  async batchPut(pairs: readonly (readonly [Bytes, Bytes])[]): Promise<number> {
    const lsn = this.writeBatch(pairs);
    await this.whenDurable(lsn);
    return lsn;
  }

  /** Deletes `key`; resolves once durable with whether it existed. */
  async delete(key: Bytes): Promise<boolean> {
    const existed = this.has(key);
    const lsn = this.writeDelete(key);
    await this.whenDurable(lsn);
    return existed;
  }

  /**
   * Rewrites the sealed segments that hold garbage (and merges small neighbours) into fewer,
   * smaller files, keeping every live record with its LSN (see `compactor.ts`). Online: writes
   * and reads continue; a crash at any point leaves a store that opens with all acknowledged
   * data. Tombstones are dropped only from the oldest segment, so no deleted key comes back.
   * Segments pinned by a snapshot or a log reader wait.
   */
  compact(): Promise<CompactionReport> {
    if (this.#closed || this.#closing) return Promise.reject(new StoreClosedError(this.dir));
    return this.#compactor.start("manual");
  }

  /**
   * Calls `listener` synchronously with each key (the index's byte string, see `keys.ts`) that a
   * write changes, whatever wrote it (a client's put or delete, a batch, a replicated record),
   * and with `undefined` when the whole contents may have changed (a full sync). Redis's `WATCH`
   * is built on it. Returns a function that unsubscribes; with no listener, writes pay one check.
   */
  onKeyChange(listener: KeyChangeListener): () => void {
    this.#keyListeners.add(listener);
    this.#keyChanged = composeKeyListeners(this.#keyListeners);
    return () => {
      this.#keyListeners.delete(listener);
      this.#keyChanged = composeKeyListeners(this.#keyListeners);
    };
  }

  /** Runs `task` in the background; {@link close} waits for it. */
  #background(task: Promise<unknown>): void {
    this.#tasks.run(task);
  }

  // ---------------------------------------------------------------- reads

  #readSlot(slot: number): Uint8Array {
    const index = this.#index;
    return this.#reader.value(index.segmentOf(slot), index.offsetOf(slot), index.lengthOf(slot));
  }

  /**
   * The value of `key`, or undefined. The bytes are the caller's; a small value shares its
   * `ArrayBuffer` with other values read (see `value_blocks.ts`), so use the array, not `.buffer`.
   */
  read(key: Bytes): Uint8Array | undefined {
    if (this.#closed) throw new StoreClosedError(this.dir);
    if (this.#capture !== undefined) {
      const state = this.#capture.lookup(payloadOf(key), Date.now());
      if (state !== undefined) return state?.value;
    }
    const slot = this.#liveSlot(key);
    return slot === NO_SLOT ? undefined : this.#readSlot(slot);
  }

  /** The slot of `key`, or {@link NO_SLOT} when absent or past its expiry time. */
  #liveSlot(key: Bytes): number {
    const index = this.#index;
    const slot = slotOf(index, key);
    if (slot === NO_SLOT) return slot;
    const expiresAtMs = index.expiryOf(slot);
    return expiresAtMs !== 0 && expiresAtMs <= Date.now() ? NO_SLOT : slot;
  }

  /** Whether `key` exists (a key past its expiry time does not). */
  has(key: Bytes): boolean {
    if (this.#closed) throw new StoreClosedError(this.dir);
    if (this.#capture !== undefined) {
      const state = this.#capture.lookup(payloadOf(key), Date.now());
      if (state !== undefined) return state !== null;
    }
    return this.#liveSlot(key) !== NO_SLOT;
  }

  /**
   * When `key` expires, in ms since the Unix epoch: 0 when it never does, undefined when it does
   * not exist (or its time has passed).
   */
  expiresAtMs(key: Bytes): number | undefined {
    if (this.#closed) throw new StoreClosedError(this.dir);
    if (this.#capture !== undefined) {
      const state = this.#capture.lookup(payloadOf(key), Date.now());
      if (state !== undefined) return state?.expiresAtMs;
    }
    const slot = this.#liveSlot(key);
    return slot === NO_SLOT ? undefined : this.#index.expiryOf(slot);
  }

  /**
   * Runs one turn of active expiry now (it also runs by itself every `expiryIntervalMs`):
   * deletes at most `expiryKeysPerTurn` keys past their time; returns how many. Only a master's
   * store deletes: a replica waits for its master's DELETE records.
   */
  expireNow(nowMs = Date.now()): number {
    return this.#expiry.turn(nowMs);
  }

  /**
   * Pairs with `start <= key <= end` in byte order, at most `limit` of them. O(log n + k). Keys
   * and values are the caller's bytes, small ones carved from shared blocks as in {@link read}.
   */
  readRange(
    start: Bytes,
    end: Bytes,
    options: { limit?: number; maxBytes?: number } = {},
  ): [Uint8Array, Uint8Array][] {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const index = this.#index;
    const slots = rangeSlots(index, bytesToKey(toBytes(start)), bytesToKey(toBytes(end)), options);
    return slots.map((slot) => [this.#reader.key(index.keyOf(slot)), this.#readSlot(slot)]);
  }

  /**
   * Calls `visit(key, live)` for at most `limit` keys `k` with `start <= k <= end` (byte strings,
   * see `keys.ts`), in byte order; `live` is false for a key past its expiry time that active
   * expiry has not deleted yet (it counts as looked at, so a page of them still ends). Returns how
   * many it visited. Reads no value: `KEYS` and `SCAN` walk the index this way, a page at a time.
   */
  forEachKey(
    start: string,
    end: string,
    limit: number,
    visit: (key: string, live: boolean) => void,
  ): number {
    if (this.#closed) throw new StoreClosedError(this.dir);
    return forEachKeyCaptured(this.#index, this.#capture, start, end, limit, visit);
  }

  /** A key picked at random (a byte string), or undefined when the store is empty. */
  randomKey(): string | undefined {
    if (this.#closed) throw new StoreClosedError(this.dir);
    return randomLiveKey(this.#index, this.#capture);
  }

  /** Number of keys (with the writes of an atomic call running now). */
  get size(): number {
    const capture = this.#capture;
    return capture === undefined ? this.#index.size : sizeWithCapture(this.#index, capture);
  }

  // ---------------------------------------------------------------- replication-facing

  /**
   * Calls `listener(records, firstLsn, lastLsn)` with the exact encoded bytes of records once they
   * reach the durability point (after fsync for `always`; after the OS write otherwise), in log
   * order. The bytes are the listener's to keep. Listeners run just before the same records'
   * `whenDurable` promises resolve (so replication starts before the writers hear OK).
   * Returns a function that unsubscribes.
   */
  onDurable(listener: DurableListener): () => void {
    return this.#log.onDurable(listener);
  }

  /** Epoch of the last record in the log (0 for an empty log). */
  get lastEpoch(): number {
    return this.#log.lastEpoch;
  }

  /** The log holds every record after this LSN (compaction or a full sync dropped some before). */
  get oldestCompleteLsn(): number {
    return this.#segments.oldestCompleteLsn();
  }

  /**
   * On a replica: appends records encoded by the master (`records` holds whole records back to
   * back, as {@link onDurable} and {@link readLogFrom} give them) verbatim, with the master's LSNs,
   * and applies them. Records with an LSN at or below {@link lastLsn} are skipped (an idempotent
   * resend); the others must continue the log without a gap. Every record's CRC is checked before
   * any is applied. Resolves with the last LSN once durable by the local policy.
   *
   * @throws {ReplicationStreamError} a damaged record, or an LSN that does not follow
   */
  appendReplicated(records: Uint8Array): Promise<number> {
    const lastLsn = this.writeReplicated(records);
    return this.whenDurable(lastLsn).then(() => lastLsn);
  }

  /**
   * {@link appendReplicated} without its promise (as {@link writePut} is to {@link put}): appends
   * and applies the records now and returns the last LSN held, durable once {@link whenDurable}
   * of it resolves. A replica's server, which waits for durability once per network read, takes
   * no promise per frame this way.
   *
   * @throws {ReplicationStreamError} a damaged record, or an LSN that does not follow
   */
  writeReplicated(records: Uint8Array): number {
    this.#checkWritable();
    const log = this.#log;
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
    checkReplicatedRecords(records, view, log.lastLsn);
    for (let at = 0; at < records.length;) {
      const length = recordLength(view, at);
      const lsn = recordLsn(view, at);
      if (lsn > log.lastLsn) {
        log.appendEncoded(records, at, length, lsn, recordEpoch(view, at));
        if (recordOp(records, at) === Op.FLUSH) {
          this.#applyFlush();
        } else {
          applyRecord(this.#index, log.active, records, view, at, log.lastRecordOffset);
          const changed = this.#keyChanged;
          if (changed !== undefined) {
            forEachKey(records, view, at, (start, length) => {
              changed(bytesToKey(records, start, start + length));
            });
          }
        }
      }
      at += length;
    }
    return log.lastLsn;
  }

  /**
   * The durable records with an LSN above `afterLsn`, in LSN order, from sealed and active
   * segments, as chunks of whole encoded records of at most `maxChunkBytes` (a single larger
   * record is a chunk of its own). The iteration ends at the durable point reached meanwhile;
   * later records arrive through {@link onDurable}.
   *
   * @throws {LogGapError} the log no longer holds every record after `afterLsn` (compaction or
   *   a full sync dropped some): the reader needs a full sync
   */
  readLogFrom(afterLsn: number, maxChunkBytes = 1024 * 1024): AsyncIterable<Uint8Array> {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const oldestComplete = this.oldestCompleteLsn;
    if (afterLsn < oldestComplete) throw new LogGapError(afterLsn, oldestComplete);
    return readLog(
      {
        segments: this.#segments,
        durability: this.#log.durability,
        isClosed: () => this.#closed,
      },
      afterLsn,
      maxChunkBytes,
    );
  }

  /**
   * A consistent view of every pair as of {@link StoreSnapshot.lsn} (durable before this
   * resolves), for a replica's full sync. The segments it reads are pinned (compaction leaves
   * them) until `release()`. Writes continue meanwhile and are not seen by the snapshot.
   */
  snapshot(): Promise<StoreSnapshot> {
    if (this.#closed || this.#closing) return Promise.reject(new StoreClosedError(this.dir));
    return takeSnapshot({
      index: this.#index,
      lsn: this.#log.lastLsn,
      // Entries may still point into a compacted run (see compactor.ts): pin those segments too.
      segments: [...this.#segments.all, ...this.#compactor.compactingFrom],
      whenDurable: (lsn) => this.whenDurable(lsn),
      keyBytes: (key) => this.#reader.key(key),
      readValue: (location: Location<Segment>) =>
        this.#reader.value(location.segment, location.offset, location.length, false),
      isClosed: () => this.#closed,
    });
  }

  /**
   * Starts replacing this store's whole contents with a master's snapshot at `lsn` (a replica's
   * full sync). Writes are refused until it finishes; reads see the old contents until then. The
   * new contents go to staging files; `finish()` commits them atomically (a marker file), so a
   * crash at any point leaves either the old store or the new one, never a mix.
   */
  async beginFullSync(lsn: number, epoch = 0): Promise<FullSync> {
    this.#checkWritable();
    await this.#compactor.idle();
    this.#log.flush();
    await this.whenDurable(this.#log.lastLsn);
    this.#checkWritable();
    const staging = new StagedLog(
      {
        dir: this.dir,
        options: this.options,
        replaced: () => this.#segments.all,
        install: (contents) => this.#installFullSync(staging, contents),
        end: () => {
          if (this.#fullSync === staging) this.#fullSync = undefined;
        },
      },
      lsn,
      this.#segments.active.id + 1,
      epoch,
    );
    this.#fullSync = staging;
    return new FullSync(staging);
  }

  /** Takes over the contents a full sync committed: its files are in place. */
  #installFullSync(staging: StagedLog, contents: FullSyncContents): void {
    assert.equal(this.#fullSync, staging);
    const old = this.#segments.all;
    this.#segments.replaceAll([...contents.staged, contents.active]);
    for (const segment of old) segment.retire();
    this.#log.restartAt(contents.lsn, contents.epoch);
    this.#index = contents.index;
    this.epoch = contents.epoch;
    this.#fullSync = undefined;
    this.#keyChanged?.(undefined);
    for (const segment of contents.staged) this.#background(this.#hints.write(segment));
    log.info("full sync finished: {keys} keys at LSN {lsn}", {
      keys: contents.index.size,
      lsn: contents.lsn,
    });
  }

  // ---------------------------------------------------------------- stats and close

  /** Figures about the store. */
  stats(): StoreStats {
    return {
      keys: this.#index.size,
      ...segmentFigures(this.#segments),
      lastLsn: this.#log.lastLsn,
      durableLsn: this.durableLsn,
      oldestCompleteLsn: this.oldestCompleteLsn,
      fsync: this.options.fsync,
      epoch: this.epoch,
      compactions: this.#compactor.compactions,
      compactedBytes: this.#compactor.compactedBytes,
      expiringKeys: this.#index.expiringKeys,
      expiredKeys: this.#expiry.stats.expiredKeys,
      expiryTurns: this.#expiry.stats.turns,
      longestExpiryTurnMs: Math.round(this.#expiry.stats.longestTurnMs * 1000) / 1000,
      failure: this.#log.failure?.message,
    };
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Writes and fsyncs everything pending (whatever the policy), then releases the files and the
   * directory lock. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed || this.#closing) return;
    this.#closing = true;
    this.#expiry.stop();
    this.#fullSync?.closeFiles();
    await this.#compactor.idle();
    await this.#tasks.settled();
    await this.#log.finish();
    this.#closed = true;
    this.#log.close();
    for (const segment of this.#segments.all) segment.closeReader();
    unlockDirectory(this.#lockFile);
  }
}
