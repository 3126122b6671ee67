/**
 * `KVStore`: a log-structured key-value store. Every write is a record appended to the active
 * segment of a write-ahead log; an in-memory index maps each live key to its value's bytes on
 * disk. See `docs/ARCHITECTURE.md` ("Storage") for the design and `record.ts`, `segment.ts`,
 * `hint.ts` for the on-disk formats.
 *
 * This class is the store's door: it checks requests, keeps the index, and hands the work to the
 * parts that own it: the log writer (`log_writer.ts`: group commit, fsync, rolling segments) and
 * its durability counters (`durability.ts`), the live index and its listeners (`keyspace.ts`),
 * recovery (`recovery.ts`), hint files (`hint_writer.ts`), compaction (`compactor.ts`), the
 * MULTI and FLUSH records and atomic calls (`atomic_writes.ts`, {@link KVStore.atomicWrites}), and
 * the replication log (`replication_log.ts`: records in and out, snapshots, full syncs,
 * promotion), reached as {@link KVStore.replicationLog}.
 *
 * Writes are two steps: `write*` encodes the record into the pending group-commit buffer and
 * applies it to the index synchronously, returning its LSN; `whenDurable(lsn)` resolves at the
 * fsync policy's durability point.
 *
 * @module
 */
import { type CompactionReport, Compactor } from "./compactor.ts";
import { DATA_DIR_MODE } from "./durable_file.ts";
import { lockDirectory, unlockDirectory } from "./dir_lock.ts";
import { Durability } from "./durability.ts";
import { BatchTooLargeError, StoreClosedError } from "./errors.ts";
import { HintWriter } from "./hint_writer.ts";
import { BackgroundTasks, yieldToRequests } from "./background_tasks.ts";
import { checkExpiry, checkKey, checkValue, checkWritable } from "./write_checks.ts";
import { ActiveExpiry } from "./expiry.ts";
import { deadMapBytes, DeadValueMaps } from "./dead_values.ts";
import { compactsThroughIndex } from "./compaction_from_index.ts";
import {
  indexBatch,
  indexMissed,
  indexValue,
  noteTombstone,
  reindexSlot,
  slotOfPayload,
  unindexSlot,
} from "./index_entries.ts";
import { type KeyBatch, type KeyIndex, NO_SLOT } from "./key_index.ts";
import { type Bytes, bytesToKey, payloadOf, toBytes } from "./keys.ts";
import { Keyspace } from "./keyspace.ts";
import { AtomicWrites } from "./atomic_writes.ts";
import { LogWriter } from "./log_writer.ts";
import { batchRecordBytes, EXPIRY_BYTES, MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from "./record.ts";
import { releaseRecoveryHeap } from "./heap_release.ts";
import { HeldValues } from "./held_values.ts";
import { recover, type RecoveredStore } from "./recovery.ts";
import { ReplicationLog } from "./replication_log.ts";
import type { Segment } from "./segment.ts";
import { SegmentList } from "./segment_list.ts";
import { DEFAULT_STORE_OPTIONS, type StoreOptions, type WriteStamp } from "./store_options.ts";
import { segmentFigures, type StoreStats } from "./store_stats.ts";
import { ValueReader } from "./value_reader.ts";
import type { KeyChangeListener } from "./key_changes.ts";
import { forEachKeyCaptured, randomLiveKey, rangeSlots, sizeWithCapture } from "./key_reads.ts";
import { readNowMs } from "./write_capture.ts";

export type { Bytes } from "./keys.ts";
export type { CompactionReport } from "./compactor.ts";
export type { DurableListener } from "./log_writer.ts";
export type { SnapshotEntry, StoreSnapshot } from "./snapshot.ts";
export type { ExpiryStats } from "./expiry.ts";
export type { StoreStats } from "./store_stats.ts";

export { MAX_EXPIRES_AT_MS, type MultiEntry } from "./write_checks.ts";
export { FullSync } from "./full_sync.ts";
export { ReplicationLog } from "./replication_log.ts";
export { AtomicWrites } from "./atomic_writes.ts";
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
  readonly dir: string;
  /**
   * Records in and out for copies of this store: replication's stream and catch-up, snapshots,
   * full syncs, promotion and demotion (see `replication_log.ts`).
   */
  readonly replicationLog: ReplicationLog;
  /** MULTI and FLUSH records, and the {@link atomically} call running now (`atomic_writes.ts`). */
  readonly atomicWrites: AtomicWrites;

  #lockFile: Deno.FsFile;
  #keys: Keyspace;
  #stamp: WriteStamp;
  #segments: SegmentList;
  #log: LogWriter;
  #reader: ValueReader;
  #compactor: Compactor;
  #closed = false;
  #closing = false;
  /** What {@link warmLookups} read, kept so that its reads are not optimized away. */
  #warmedSum = 0;
  #tasks = new BackgroundTasks();
  #expiry: ActiveExpiry;

  private constructor(
    dir: string,
    options: StoreOptions,
    lockFile: Deno.FsFile,
    recovered: RecoveredStore,
  ) {
    this.dir = dir;
    this.#lockFile = lockFile;
    const segments = this.#segments = new SegmentList(recovered.segments);
    const deadValues = new DeadValueMaps(
      options.deadValueMapBytes,
      deadMapBytes(options.segmentSizeBytes),
      () => segments.active,
      (segment) => compactsThroughIndex(this.#keys.index, segment),
    );
    const keys = this.#keys = new Keyspace(recovered.index, deadValues);
    this.#stamp = { epoch: recovered.lastEpoch, options };
    const hints = new HintWriter(dir, Math.max(1024, options.compactionChunkBytes >>> 6), {
      index: () => keys.index,
      isClosed: () => this.#closed,
      yieldToRequests,
      onWritten: () => this.#compactor.maybeAuto(),
    });
    this.#compactor = new Compactor({
      dir,
      segments,
      hints,
      options: () => this.options,
      index: () => keys.index,
      sealActive: () => this.#log.sealActive(),
      stopping: () => this.#closing || this.#log.failure !== undefined,
      fullSyncing: () => this.replicationLog.fullSyncing,
      yieldToRequests,
      background: (task) => this.#tasks.run(task),
    });
    const durability = new Durability(dir, recovered.lastLsn, segments.active);
    const last = { lsn: recovered.lastLsn, epoch: recovered.lastEpoch };
    this.#log = new LogWriter(dir, options, segments, durability, last, (sealed) => {
      this.#tasks.run(hints.write(sealed));
    });
    this.#reader = new ValueReader(this.#log, options.valueCacheBytes);
    this.replicationLog = new ReplicationLog({
      dir,
      log: this.#log,
      segments,
      reader: this.#reader,
      compactor: this.#compactor,
      hints,
      keyspace: keys,
      stamp: this.#stamp,
      closed: () => this.#closed,
      closing: () => this.#closing,
      background: (task) => this.#tasks.run(task),
    });
    this.atomicWrites = new AtomicWrites({
      log: this.#log,
      segments,
      keyspace: keys,
      stamp: this.#stamp,
      checkWritable: () => this.#checkWritable(),
    });
    this.#expiry = new ActiveExpiry(
      {
        index: () => keys.index,
        decides: () =>
          !this.options.replica && !this.#closed && !this.#closing &&
          !this.replicationLog.fullSyncing && this.#log.failure === undefined,
        deleteSlot: (slot) => this.#deleteSlot(slot),
      },
      options.expiryIntervalMs,
      options.expiryKeysPerTurn,
    );
    this.#expiry.start();
  }

  /** Epoch stamped on records written from now on. */
  get epoch(): number {
    return this.#stamp.epoch;
  }

  set epoch(epoch: number) {
    this.#stamp.epoch = epoch;
  }

  /** Settings; replaced (replica → master and back) by `replicationLog.promote` and `demote`. */
  get options(): Readonly<StoreOptions> {
    return this.#stamp.options;
  }

  /**
   * Opens (creating if needed) the store in `dir`: locks the directory, recovers the index from
   * the log (truncating a torn tail), starts a writer, and gives back the heap a large recovery
   * grew (`heap_release.ts`).
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
      const store = new KVStore(dir, merged, lockFile, recovered);
      releaseRecoveryHeap(dir);
      return store;
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
    checkWritable(this.dir, this.#closed, this.#log.failure, this.replicationLog.fullSyncing);
  }

  /**
   * Appends a PUT and applies it to the index; returns its LSN. Durable once
   * {@link whenDurable} of that LSN resolves.
   *
   * @throws {KeyTooLargeError | ValueTooLargeError} past the configured limits
   * @throws {StoreFailedError} after a write to the log failed
   */
  writePut(key: Bytes, value: Bytes, expiresAtMs = 0): number {
    return this.#writePut(key, value, expiresAtMs, false);
  }

  /**
   * {@link writePut} of a value read again soon (a counter, by its next `INCR`): also cached, as
   * the value cache is otherwise filled on read only (a log position's bytes never change).
   */
  writePutReadAgain(key: Bytes, value: Bytes, expiresAtMs = 0): number {
    return this.#writePut(key, value, expiresAtMs, true);
  }

  /** {@link writePut}: a PUT record, or a PUT_EXPIRING one when `expiresAtMs` is not 0. */
  #writePut(key: Bytes, value: Bytes, expiresAtMs: number, readAgain: boolean): number {
    this.#checkWritable();
    const { epoch, options } = this.#stamp;
    const k = payloadOf(key);
    const v = payloadOf(value);
    checkKey(options, k);
    checkValue(options, v);
    if (expiresAtMs !== 0) checkExpiry(expiresAtMs);
    const capture = this.atomicWrites.capture;
    if (capture !== undefined) return capture.put(k, toBytes(v), expiresAtMs);
    const log = this.#log;
    const lsn = expiresAtMs === 0
      ? log.appendPut(epoch, options.replica, k, v)
      : log.appendPutExpiring(epoch, options.replica, k, v, expiresAtMs);
    const offset = this.#lastValueOffset(k.length, expiresAtMs);
    const index = this.#keys.index;
    const slot = indexValue(index, k, 0, k.length, log.active, offset, v.length, expiresAtMs);
    if (readAgain) this.#reader.cache.add(index, slot, v);
    this.#keys.changed?.(typeof k === "string" ? k : bytesToKey(k));
    return lsn;
  }

  /** File offset of the value of the PUT (or PUT_EXPIRING, `expiresAtMs` not 0) just appended. */
  #lastValueOffset(keyLength: number, expiresAtMs: number): number {
    const expiryBytes = expiresAtMs === 0 ? 0 : EXPIRY_BYTES;
    return this.#log.lastRecordOffset + RECORD_HEADER_BYTES + expiryBytes + keyLength;
  }

  /**
   * Adds `by` to the integer value of `key` (0 when absent or past its expiry time), keeping its
   * expiry time, with one index lookup and, for a value a counter wrote, no read: Redis's `INCR`
   * family. `parse` reads a stored value as an exact integer (undefined: not one it takes).
   * Returns the new value and the write's LSN (as {@link writePut}), or undefined, writing
   * nothing, when `parse` refuses the value, the sum is not a safe integer, or a MULTI is being
   * captured: the caller then reads and writes as usual.
   *
   * @throws {KeyTooLargeError} past the configured limit
   * @throws {StoreFailedError} after a write to the log failed
   */
  incrementSmall(
    key: Uint8Array,
    by: number,
    parse: (value: Uint8Array) => number | undefined,
  ): { value: number; lsn: number } | undefined {
    this.#checkWritable();
    if (this.atomicWrites.capture !== undefined) return undefined;
    const { epoch, options } = this.#stamp;
    checkKey(options, key);
    const index = this.#keys.index;
    const slot = index.findBytes(key, 0, key.length);
    let old = 0;
    let expiresAtMs = 0;
    if (slot !== NO_SLOT) {
      expiresAtMs = index.expiryOf(slot);
      if (expiresAtMs !== 0 && expiresAtMs <= Date.now()) {
        expiresAtMs = 0; // past its time: as if absent, and the new value has none
      } else {
        old = index.counterOf(slot);
        if (Number.isNaN(old)) {
          const parsed = parse(this.#readSlot(slot));
          if (parsed === undefined) return undefined;
          old = parsed;
        }
      }
    }
    const value = old + by;
    if (!Number.isSafeInteger(value)) return undefined;
    const digits = String(value); // ASCII: written as it is, no encoding
    const log = this.#log;
    const lsn = expiresAtMs === 0
      ? log.appendPut(epoch, options.replica, key, digits)
      : log.appendPutExpiring(epoch, options.replica, key, digits, expiresAtMs);
    const offset = this.#lastValueOffset(key.length, expiresAtMs);
    if (slot === NO_SLOT) {
      // The lookup above missed: its probe is reused (insertMissed checks the index is unchanged).
      const inserted = indexMissed(index, bytesToKey(key), log.active, offset, digits.length, 0);
      index.setCounter(inserted, value);
    } else {
      reindexSlot(index, slot, key.length, log.active, offset, digits.length, expiresAtMs);
      index.setCounter(slot, value);
    }
    this.#keys.changed?.(bytesToKey(key));
    return { value, lsn };
  }

  /** Deletes the key of a live slot (active expiry): a DELETE record, as {@link writeDelete}. */
  #deleteSlot(slot: number): void {
    const key = this.#keys.index.keyOf(slot); // a byte string: the codec takes it as it is
    const { epoch, options } = this.#stamp;
    this.#log.appendDelete(epoch, options.replica, key);
    noteTombstone(this.#log.active, key);
    unindexSlot(this.#keys.index, slot);
    this.#keys.changed?.(key);
  }

  /**
   * Appends one BATCH record holding every pair (atomic: after a crash it is wholly there or
   * wholly absent) and applies it; returns its LSN. A key repeated in the batch takes its last
   * value.
   */
  writeBatch(pairs: readonly (readonly [Bytes, Bytes])[]): number {
    this.#checkWritable();
    const { epoch, options } = this.#stamp;
    const encoded = pairs.map(([key, value]) => [toBytes(key), toBytes(value)] as const);
    for (const [key, value] of encoded) {
      checkKey(options, key);
      checkValue(options, value);
    }
    const capture = this.atomicWrites.capture;
    if (capture !== undefined) {
      for (const [key, value] of encoded) capture.put(key, value, 0);
      return capture.lsn;
    }
    const length = batchRecordBytes(encoded);
    if (length > MAX_RECORD_BYTES) throw new BatchTooLargeError(length, MAX_RECORD_BYTES);
    const log = this.#log;
    const lsn = log.appendBatch(epoch, options.replica, encoded);
    indexBatch(this.#keys.index, log.active, log.lastRecordOffset, encoded, this.#keys.changed);
    return lsn;
  }

  /**
   * Appends a tombstone for `key` when it exists and removes it from the index; returns its LSN.
   * When the key does not exist nothing is written and the current last LSN is returned (the
   * answer "did not exist" is durable once that LSN is). Use {@link has} first to learn which.
   */
  writeDelete(key: Bytes): number {
    this.#checkWritable();
    const { epoch, options } = this.#stamp;
    const k = payloadOf(key);
    checkKey(options, k);
    const capture = this.atomicWrites.capture;
    if (capture !== undefined) {
      return this.has(k) ? capture.delete(k) : this.#log.lastLsn;
    }
    const slot = slotOfPayload(this.#keys.index, k);
    if (slot === NO_SLOT) return this.#log.lastLsn;
    const lsn = this.#log.appendDelete(epoch, options.replica, k);
    noteTombstone(this.#log.active, k);
    this.#keys.changed?.(this.#keys.index.keyOf(slot));
    unindexSlot(this.#keys.index, slot);
    return lsn;
  }

  /**
   * Deletes those of `keys` that exist now (a key past its expiry time does not; a key named
   * twice is deleted once), all or none: one DELETE record for one key, one MULTI record for
   * several (Redis's `DEL`). Calls `deleted(i, lsn)` for each key it deleted; returns that LSN, or
   * 0 when none existed. Inside an atomic call the deletes join it.
   *
   * @throws {StoreFailedError} after a write to the log failed
   */
  deleteExisting(keys: readonly Bytes[], deleted: (i: number, lsn: number) => void): number {
    this.#checkWritable();
    if (this.atomicWrites.capture !== undefined || keys.length === 1) {
      let lsn = 0;
      for (let i = 0; i < keys.length; i++) {
        if (!this.has(keys[i])) continue;
        lsn = this.writeDelete(keys[i]);
        deleted(i, lsn);
      }
      return lsn;
    }
    const nowMs = Date.now();
    /** The slots found so far (two names of one key are one delete) and which key found each. */
    const slots = new Set<number>();
    const found: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const slot = this.#liveSlot(keys[i], nowMs);
      if (slot === NO_SLOT || slots.has(slot)) continue;
      slots.add(slot);
      found.push(i);
    }
    if (found.length === 0) return 0;
    const lsn = found.length === 1
      ? this.writeDelete(keys[found[0]])
      : this.atomicWrites.writeMulti(found.map((i) => ({ kind: "delete", key: keys[i] })));
    for (const i of found) deleted(i, lsn);
    return lsn;
  }

  /**
   * Runs `fn`, whose writes (made synchronously: `writePut`, `writeDelete`, `writeBatch`) belong
   * together: they are written as ONE MULTI record when it returns, so the log, a crash and every
   * replica keep all of them or none. Meanwhile `read`, `has` and `expiresAtMs` see them (not
   * `readRange`, `forEachKey`, `randomKey` or `size`, which see the index). Each write returns the
   * LSN that record takes. A `writeFlush` inside splits it: the writes before it, the FLUSH, the
   * writes after it. Nested calls join the outer one. Redis's `EXEC` and `RENAME` run through here
   * ({@link AtomicWrites.atomically}).
   *
   * @throws what `atomicWrites.writeMulti` throws (nothing of `fn`'s writes is then applied)
   */
  atomically<T>(fn: () => T): T {
    return this.atomicWrites.atomically(fn);
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
   * and with `undefined` when the whole contents were replaced (a FLUSH, a full sync), with a
   * function that tells the keys that changed (those there before or after). Redis's `WATCH`
   * is built on it. Returns a function that unsubscribes; with no listener, writes pay one check.
   */
  onKeyChange(listener: KeyChangeListener): () => void {
    return this.#keys.listen(listener);
  }

  // ---------------------------------------------------------------- reads

  #readSlot(slot: number): Uint8Array {
    const index = this.#keys.index;
    return this.#reader.valueOf(index, slot);
  }

  /**
   * The value of `key`, or undefined. The bytes are the caller's; a small value shares its
   * `ArrayBuffer` with other values read (see `value_blocks.ts`), so use the array, not `.buffer`.
   */
  read(key: Bytes): Uint8Array | undefined {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const capture = this.atomicWrites.capture;
    if (capture !== undefined) {
      const state = capture.lookup(payloadOf(key));
      if (state !== undefined) return state?.value;
    }
    const slot = this.#liveSlot(key);
    return slot === NO_SLOT ? undefined : this.#readSlot(slot);
  }

  /**
   * A hint before several lookups in a row (a pipelined batch of requests): loads into the CPU's
   * caches what looking up each key of `batch` will read, the keys' memory reads overlapped
   * instead of waited for one lookup after another (`KeyIndex.warm`). Changes nothing, and
   * answers nothing: the lookups that follow are as they would be without it, only faster.
   *
   * @example
   * ```ts
   * import { KVStore } from "./store.ts";
   * import { newKeyBatch } from "./key_index.ts";
   * const dir = await Deno.makeTempDir();
   * const store = await KVStore.open(dir);
   * await store.put("a", "1");
   * const batch = newKeyBatch(2);
   * batch.bytes = new TextEncoder().encode("ab");
   * batch.starts.set([0, 1]);
   * batch.ends.set([1, 2]);
   * batch.count = 2;
   * store.warmLookups(batch);
   * console.log(store.read("a")); // Uint8Array [49]
   * await store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  warmLookups(batch: KeyBatch): void {
    if (this.#closed || batch.count === 0) return;
    const index = this.#keys.index;
    this.#warmedSum = (this.#warmedSum + index.warm(batch) +
      this.#reader.cache.warm(index, batch.slots, batch.count)) | 0;
  }

  /**
   * The values of `keys` as they all are now, to be read later (`held_values.ts`): a read of
   * many keys in steps (Redis's `MGET`) that must answer with one state while writes go on
   * between its steps. Looks every key up now and pins the segments the values lie in until
   * `release()`.
   *
   * @example
   * ```ts
   * import { KVStore } from "./store.ts";
   * const dir = await Deno.makeTempDir();
   * const store = await KVStore.open(dir);
   * await store.put("a", "1");
   * const held = store.holdValues([new TextEncoder().encode("a")]);
   * await store.put("a", "2"); // after the instant: not seen
   * try {
   *   console.log(new TextDecoder().decode(held.value(0))); // 1
   * } finally {
   *   held.release();
   * }
   * await store.close();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  holdValues(keys: readonly Bytes[]): HeldValues {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const index = this.#keys.index;
    const reader = this.#reader;
    const held = new HeldValues(
      keys.length,
      (segment, offset, length) => reader.value(segment, offset, length),
      () => {
        if (this.#closed) throw new StoreClosedError(this.dir);
      },
      // A compaction skipped these segments while they were pinned: without this it would wait
      // for the next write to look again.
      () => {
        if (!this.#closed) this.#compactor.maybeAuto();
      },
    );
    const capture = this.atomicWrites.capture;
    const nowMs = this.#readNowMs();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (capture !== undefined) {
        const state = capture.lookup(payloadOf(key));
        if (state !== undefined) {
          held.holdCaptured(i, state === null ? null : state.value);
          continue;
        }
      }
      const slot = this.#liveSlot(key, nowMs);
      if (slot === NO_SLOT) continue;
      held.holdAt(i, index.segmentOf(slot), index.offsetOf(slot), index.lengthOf(slot));
    }
    return held;
  }

  /**
   * The slot of `key`, or {@link NO_SLOT} when absent or past its expiry time at `nowMs` (default:
   * {@link #readNowMs}, read only for a key that has an expiry time).
   */
  #liveSlot(key: Bytes, nowMs?: number): number {
    const index = this.#keys.index;
    const slot = slotOf(index, key);
    if (slot === NO_SLOT) return slot;
    const expiresAtMs = index.expiryOf(slot);
    return expiresAtMs !== 0 && expiresAtMs <= (nowMs ?? this.#readNowMs()) ? NO_SLOT : slot;
  }

  /** The instant reads judge expiry at (see `readNowMs`). */
  #readNowMs(): number {
    return readNowMs(this.atomicWrites.capture);
  }

  /** Whether `key` exists (a key past its expiry time does not). */
  has(key: Bytes): boolean {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const capture = this.atomicWrites.capture;
    if (capture !== undefined) {
      const state = capture.lookup(payloadOf(key));
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
    const capture = this.atomicWrites.capture;
    if (capture !== undefined) {
      const state = capture.lookup(payloadOf(key));
      if (state !== undefined) return state?.expiresAtMs;
    }
    const slot = this.#liveSlot(key);
    return slot === NO_SLOT ? undefined : this.#keys.index.expiryOf(slot);
  }

  /**
   * {@link read} and {@link expiresAtMs} of `key` with one lookup (a read-modify-write such as
   * Redis's `INCR` needs both): undefined when it does not exist (or its time has passed).
   */
  readExpiring(key: Bytes): { value: Uint8Array; expiresAtMs: number } | undefined {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const capture = this.atomicWrites.capture;
    if (capture !== undefined) {
      const state = capture.lookup(payloadOf(key));
      if (state !== undefined) return state ?? undefined;
    }
    const slot = this.#liveSlot(key);
    if (slot === NO_SLOT) return undefined;
    return { value: this.#readSlot(slot), expiresAtMs: this.#keys.index.expiryOf(slot) };
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
    const index = this.#keys.index;
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
    return forEachKeyCaptured(
      this.#keys.index,
      this.atomicWrites.capture,
      start,
      end,
      limit,
      visit,
    );
  }

  /** A key picked at random (a byte string), or undefined when the store is empty. */
  randomKey(): string | undefined {
    if (this.#closed) throw new StoreClosedError(this.dir);
    return randomLiveKey(this.#keys.index, this.atomicWrites.capture);
  }

  /** Number of keys (with the writes of an atomic call running now). */
  get size(): number {
    const capture = this.atomicWrites.capture;
    return capture === undefined
      ? this.#keys.index.size
      : sizeWithCapture(this.#keys.index, capture);
  }

  // ---------------------------------------------------------------- stats and close

  /** Figures about the store. */
  stats(): StoreStats {
    return {
      keys: this.#keys.index.size,
      ...segmentFigures(this.#segments),
      lastLsn: this.#log.lastLsn,
      durableLsn: this.durableLsn,
      oldestCompleteLsn: this.#segments.oldestCompleteLsn(),
      fsync: this.options.fsync,
      epoch: this.epoch,
      compactions: this.#compactor.compactions,
      compactedBytes: this.#compactor.compactedBytes,
      expiringKeys: this.#keys.index.expiringKeys,
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
    this.replicationLog.closeFiles();
    await this.#compactor.idle();
    await this.#tasks.settled();
    await this.#log.finish();
    this.#closed = true;
    this.#log.close();
    for (const segment of this.#segments.all) segment.closeReader();
    unlockDirectory(this.#lockFile);
  }
}
