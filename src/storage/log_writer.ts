/**
 * The log writer: appends records to the active segment through a group-commit buffer, applies
 * the fsync policy, rolls to a new segment when the active one is full, and moves the
 * durability counters (`durability.ts`).
 *
 * Each `append*` encodes one record into the pending buffer and returns its LSN. The pending
 * buffer is written with one `writeSync` at the end of the current task (a microtask), so every
 * write of one network read becomes one write; with `always`, one `fdatasync` right after that
 * write (on this thread, see {@link LogWriter.flush}) covers every record of every connection
 * whose request arrived in the same turn of the event loop. `everysec` fsyncs once a second on a
 * worker thread, `no` leaves it to the OS; both also fsync in the background after every
 * `incrementalFsyncBytes` written. A failed write or fsync fails the log for good: nothing more
 * is acknowledged and every waiter is rejected.
 *
 * @module
 */
import assert from "node:assert/strict";
import { getLog } from "../log.ts";
import { writeAllSync } from "../write_all.ts";
import type { Durability } from "./durability.ts";
import { StoreFailedError } from "./errors.ts";
import {
  batchRecordBytes,
  deleteRecordBytes,
  encodeBatch,
  encodeDelete,
  encodeFlush,
  encodeMulti,
  encodePut,
  Flag,
  forEachKey,
  multiRecordBytes,
  type MultiRecordEntry,
  Op,
  type Payload,
  putExpiringRecordBytes,
  putRecordBytes,
  RECORD_HEADER_BYTES,
  recordOp,
} from "./record.ts";
import { createSegmentFile, type Segment, SEGMENT_HEADER_BYTES } from "./segment.ts";
import type { SegmentList } from "./segment_list.ts";
import type { StoreOptions } from "./store_options.ts";

const log = getLog("storage");

/** The first zero-fill step of an active segment ({@link StoreOptions.preallocateBytes}). */
const PREALLOCATE_MIN_BYTES = 64 * 1024;
const INITIAL_PENDING_BYTES = 64 * 1024;
const EVERYSEC_INTERVAL_MS = 1000;
let zeros: Uint8Array | undefined;

/** A block of zeros to fill segments with, made on first use. */
function zeroBlock(): Uint8Array {
  zeros ??= new Uint8Array(PREALLOCATE_MIN_BYTES);
  return zeros;
}

/** Receives encoded records once they reach the durability point (see `ReplicationLog.onDurable`). */
export type DurableListener = (records: Uint8Array, firstLsn: number, lastLsn: number) => void;

/** What the writer reads of the store's options. */
export type LogWriterOptions = Pick<
  StoreOptions,
  | "fsync"
  | "segmentSizeBytes"
  | "writeBatchMaxBytes"
  | "preallocateBytes"
  | "incrementalFsyncBytes"
>;

/** Appends records to the active segment of a log (see the module comment). */
export class LogWriter {
  /** Called with the seconds each fsync took (metrics); unset, nothing is timed. */
  fsyncObserver: ((elapsedSeconds: number) => void) | undefined;
  /** File offset, in the active segment, of the record appended last. */
  lastRecordOffset = 0;
  #file: Deno.FsFile;
  /** Files of sealed segments a background fsync may still be using. */
  #retiredFiles: Deno.FsFile[] = [];
  #pending = new Uint8Array(INITIAL_PENDING_BYTES);
  #pendingView = new DataView(this.#pending.buffer);
  #pendingBytes = 0;
  #pendingFirstLsn = 0;
  #flushQueued = false;
  #lastLsn: number;
  #lastEpoch: number;
  #listeners: DurableListener[] = [];
  #syncRunning: Promise<void> | undefined;
  /** Active-segment offset at which the last incremental fsync was asked for. */
  #incrementalFsyncAt = 0;
  /** Length of the active segment's file: its records, then zeros (see {@link #preallocate}). */
  #zeroedEnd = 0;
  #everysecTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /**
   * Starts appending at the end of `segments.active`, after the record `lastLsn` in `lastEpoch`.
   * `onSealed` is told of each segment sealed by a roll.
   */
  constructor(
    readonly dir: string,
    readonly options: LogWriterOptions,
    readonly segments: SegmentList,
    readonly durability: Durability,
    last: { lsn: number; epoch: number },
    private readonly onSealed: (segment: Segment) => void,
  ) {
    this.#lastLsn = last.lsn;
    this.#lastEpoch = last.epoch;
    this.#file = this.#openFile(segments.active);
    if (options.fsync === "everysec") {
      this.#everysecTimer = setInterval(() => this.#requestSync(), EVERYSEC_INTERVAL_MS);
      Deno.unrefTimer(this.#everysecTimer);
    }
  }

  /** LSN of the last record appended (acknowledged or not). */
  get lastLsn(): number {
    return this.#lastLsn;
  }

  /** Epoch of the last record appended. */
  get lastEpoch(): number {
    return this.#lastEpoch;
  }

  /** The segment appended to. */
  get active(): Segment {
    return this.segments.active;
  }

  /** Why the log refuses writes, once it does. */
  get failure(): StoreFailedError | undefined {
    return this.durability.failure;
  }

  // ---------------------------------------------------------------- appends

  /** Appends a PUT; `local`: a replica's own write (LOCAL, it takes no new LSN). */
  appendPut(epoch: number, local: boolean, key: Payload, value: Payload): number {
    const at = this.#reserve(putRecordBytes(key.length, value.length));
    const lsn = local ? this.#lastLsn : this.#lastLsn + 1;
    encodePut(this.#pending, this.#pendingView, at, lsn, epoch, local ? Flag.LOCAL : 0, key, value);
    this.#appended(lsn, at, epoch);
    return lsn;
  }

  /** Appends a BATCH of `pairs` (see {@link appendPut} for `local`). */
  appendBatch(
    epoch: number,
    local: boolean,
    pairs: readonly (readonly [Uint8Array, Uint8Array])[],
  ): number {
    const at = this.#reserve(batchRecordBytes(pairs));
    const lsn = local ? this.#lastLsn : this.#lastLsn + 1;
    encodeBatch(this.#pending, this.#pendingView, at, lsn, epoch, local ? Flag.LOCAL : 0, pairs);
    this.#appended(lsn, at, epoch);
    return lsn;
  }

  /** Appends a PUT_EXPIRING: a put whose key is gone at `expiresAtMs` (above 0). */
  appendPutExpiring(
    epoch: number,
    local: boolean,
    key: Payload,
    value: Payload,
    expiresAtMs: number,
  ): number {
    const at = this.#reserve(putExpiringRecordBytes(key.length, value.length));
    const lsn = local ? this.#lastLsn : this.#lastLsn + 1;
    const flags = local ? Flag.LOCAL : 0;
    const pending = this.#pending;
    encodePut(pending, this.#pendingView, at, lsn, epoch, flags, key, value, expiresAtMs);
    this.#appended(lsn, at, epoch);
    return lsn;
  }

  /** Appends a MULTI of `entries` (applied in order, all or nothing). */
  appendMulti(epoch: number, local: boolean, entries: readonly MultiRecordEntry[]): number {
    const at = this.#reserve(multiRecordBytes(entries));
    const lsn = local ? this.#lastLsn : this.#lastLsn + 1;
    encodeMulti(this.#pending, this.#pendingView, at, lsn, epoch, local ? Flag.LOCAL : 0, entries);
    this.#appended(lsn, at, epoch);
    return lsn;
  }

  /** Appends a FLUSH: every key written before it is gone. */
  appendFlush(epoch: number, local: boolean): number {
    const at = this.#reserve(RECORD_HEADER_BYTES);
    const lsn = local ? this.#lastLsn : this.#lastLsn + 1;
    encodeFlush(this.#pending, this.#pendingView, at, lsn, epoch, local ? Flag.LOCAL : 0);
    this.#appended(lsn, at, epoch);
    return lsn;
  }

  /** Appends a DELETE (see {@link appendPut} for `local`). */
  appendDelete(epoch: number, local: boolean, key: Payload): number {
    const at = this.#reserve(deleteRecordBytes(key.length));
    const lsn = local ? this.#lastLsn : this.#lastLsn + 1;
    encodeDelete(this.#pending, this.#pendingView, at, lsn, epoch, local ? Flag.LOCAL : 0, key);
    this.#appended(lsn, at, epoch);
    return lsn;
  }

  /**
   * Appends the checked record `source[from, from + length)` verbatim (a master's record on a
   * replica): its LSN `lsn` must be above the last one.
   */
  appendEncoded(
    source: Uint8Array,
    from: number,
    length: number,
    lsn: number,
    epoch: number,
  ): void {
    if (lsn <= this.#lastLsn) assert.fail(`replicated LSN ${lsn} after LSN ${this.#lastLsn}`);
    const at = this.#reserve(length);
    this.#pending.set(source.subarray(from, from + length), at);
    this.#appended(lsn, at, epoch);
  }

  /** Copies the bytes at file offset `offset` of the active segment, still pending, into `out`. */
  copyPending(offset: number, out: Uint8Array): void {
    const start = offset - this.segments.active.sizeBytes;
    out.set(this.#pending.subarray(start, start + out.length));
  }

  /** Makes room for a record of `length` bytes; returns its offset in the pending buffer. */
  #reserve(length: number): number {
    if (this.#pendingBytes > 0 && this.#pendingBytes + length > this.options.writeBatchMaxBytes) {
      this.flush();
    }
    const activeEnd = this.segments.active.sizeBytes + this.#pendingBytes;
    if (activeEnd + length > this.options.segmentSizeBytes && activeEnd > SEGMENT_HEADER_BYTES) {
      this.flush();
      this.#roll();
    }
    const need = this.#pendingBytes + length;
    if (need > this.#pending.length) {
      const grown = new Uint8Array(Math.max(need, this.#pending.length * 2));
      grown.set(this.#pending.subarray(0, this.#pendingBytes));
      this.#pending = grown;
      this.#pendingView = new DataView(grown.buffer);
    }
    const at = this.#pendingBytes;
    this.#pendingBytes = need;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flushQueuedWrites());
    }
    return at;
  }

  #appended(lsn: number, at: number, epoch: number): void {
    if (lsn < this.#lastLsn) assert.fail(`LSN ${lsn} appended after LSN ${this.#lastLsn}`);
    if (at === 0) this.#pendingFirstLsn = lsn;
    this.#lastLsn = lsn;
    this.#lastEpoch = epoch;
    const active = this.segments.active;
    if (active.noTombstones) this.#noteKind(active, at);
    active.lastEpoch = epoch;
    active.noteLsn(lsn);
    this.lastRecordOffset = active.sizeBytes + at;
    this.durability.appended();
  }

  /** Notes in `active` whether the record at `at` of the pending buffer is a put, or deletes. */
  #noteKind(active: Segment, at: number): void {
    const op = recordOp(this.#pending, at);
    if (op === Op.PUT || op === Op.PUT_EXPIRING) return;
    active.onlyPuts = false;
    if (op === Op.DELETE || op === Op.FLUSH) active.noTombstones = false;
    else if (op === Op.MULTI) {
      forEachKey(this.#pending, this.#pendingView, at, (_keyStart, _keyLength, valueStart) => {
        if (valueStart < 0) active.noTombstones = false;
      });
    }
  }

  // ---------------------------------------------------------------- group commit

  /** Calls `listener` with the records of each flush at its durability point (see the store). */
  onDurable(listener: DurableListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i !== -1) this.#listeners.splice(i, 1);
    };
  }

  #flushQueuedWrites(): void {
    this.#flushQueued = false;
    if (this.#closed || this.failure) return;
    try {
      this.flush();
    } catch {
      // flush recorded the failure; waiters were rejected.
    }
  }

  /**
   * Writes the pending buffer to the active segment with one `writeSync`, fsyncs it under
   * `always`, tells the listeners and marks it durable.
   *
   * @throws {StoreFailedError} the write or the fsync failed (now or before)
   */
  flush(): void {
    if (this.#pendingBytes === 0) return;
    if (this.failure) throw this.failure;
    const active = this.segments.active;
    const bytes = this.#pending.subarray(0, this.#pendingBytes);
    const end = active.sizeBytes + bytes.length;
    if (
      end > this.#zeroedEnd && this.options.fsync === "always" && this.options.preallocateBytes > 0
    ) {
      this.#preallocate(end);
    }
    try {
      writeAllSync(this.#file, bytes);
    } catch (error) {
      throw this.#fail(error);
    }
    active.sizeBytes += bytes.length;
    const firstLsn = this.#pendingFirstLsn;
    const lastLsn = this.#lastLsn;
    const chunk = this.#listeners.length > 0 ? bytes.slice() : undefined;
    this.#pendingBytes = 0;
    if (this.#pending.length > 2 * this.options.writeBatchMaxBytes) {
      this.#pending = new Uint8Array(INITIAL_PENDING_BYTES);
      this.#pendingView = new DataView(this.#pending.buffer);
    }
    this.durability.written(lastLsn);
    if (this.options.fsync === "always") this.#syncWritten();
    else if (
      this.options.incrementalFsyncBytes > 0 &&
      active.sizeBytes - this.#incrementalFsyncAt >= this.options.incrementalFsyncBytes
    ) {
      // Bounds the dirty data a seal's blocking fsync must write: with a whole 64 MiB segment
      // dirty it stalled every request (docs/ARCHITECTURE.md, "Measured costs").
      this.#incrementalFsyncAt = active.sizeBytes;
      this.#requestSync();
    }
    // Listeners first: the replication sender is woken before the writers' OKs are sent, so a
    // replica has the record on its way before a client can ask the replica for it.
    if (chunk) this.#notify(chunk, firstLsn, lastLsn);
    this.durability.markDurable(this.durability.writtenSeq, lastLsn, active, active.sizeBytes);
  }

  #notify(records: Uint8Array, firstLsn: number, lastLsn: number): void {
    for (const listener of this.#listeners) {
      try {
        listener(records, firstLsn, lastLsn);
      } catch (error) {
        log.error("a durable-records listener threw: {error}", { error });
      }
    }
  }

  /** Opens `segment`'s file for appending, at its end. */
  #openFile(segment: Segment): Deno.FsFile {
    const file = Deno.openSync(segment.path, { write: true });
    file.seekSync(segment.sizeBytes, Deno.SeekMode.Start);
    this.#zeroedEnd = segment.sizeBytes;
    this.#incrementalFsyncAt = segment.sizeBytes;
    return file;
  }

  /** Closes the file appended to so far, once a background fsync no longer uses it. */
  #retireFile(): void {
    if (this.#syncRunning) this.#retiredFiles.push(this.#file);
    else this.#file.close();
  }

  /**
   * `always`: zero-fills the active segment's file ahead of its records, up to at least `end`.
   * An fdatasync after an append that grows the file must also commit the file's new size (an
   * ext4 journal commit); one after writes into blocks that are already on disk writes data only,
   * in about half the time (docs/ARCHITECTURE.md, "Measured costs"). The zeros become durable
   * with the fsync of the records that follow them; recovery trims a tail of zeros silently, and
   * sealing or closing the segment trims it first ({@link #trimZeros}). Steps double from
   * {@link PREALLOCATE_MIN_BYTES} up to the configured size, and stop at the segment size, so a
   * small store or segment is not padded with a whole step.
   */
  #preallocate(end: number): void {
    const active = this.segments.active;
    const step = Math.min(
      this.options.preallocateBytes,
      Math.max(PREALLOCATE_MIN_BYTES, active.sizeBytes),
    );
    // Never before the records' end, whatever wrote them (zeros must not overwrite a record).
    const from = Math.max(this.#zeroedEnd, active.sizeBytes);
    const target = Math.max(end, Math.min(from + step, this.options.segmentSizeBytes));
    const zeros = zeroBlock();
    try {
      this.#file.seekSync(from, Deno.SeekMode.Start);
      // Bounded: each step writes at least one byte.
      for (let at = from; at < target;) {
        const bytes = zeros.subarray(0, Math.min(zeros.length, target - at));
        writeAllSync(this.#file, bytes);
        at += bytes.length;
      }
      this.#file.seekSync(active.sizeBytes, Deno.SeekMode.Start);
    } catch (error) {
      throw this.#fail(error);
    }
    this.#zeroedEnd = target;
  }

  /** Cuts the active segment's file back to its records (before it is sealed or closed). */
  #trimZeros(): void {
    const size = this.segments.active.sizeBytes;
    if (this.#zeroedEnd <= size) return;
    this.#file.truncateSync(size);
    this.#zeroedEnd = size;
  }

  /**
   * `always`: makes everything written so far durable now, with a blocking `fdatasync` on this
   * thread: handing it to a worker thread (`await syncData()`) cost more main-thread time than it
   * saved and made smaller batches (docs/ARCHITECTURE.md, "Group commit is per event-loop turn").
   * The price is Redis's `appendfsync always` one: nothing else runs during the fsync, so a read
   * that arrives meanwhile waits for it.
   */
  #syncWritten(): void {
    const startedMs = this.fsyncObserver === undefined ? 0 : performance.now();
    try {
      this.#file.syncDataSync();
    } catch (error) {
      throw this.#fail(error);
    }
    this.fsyncObserver?.((performance.now() - startedMs) / 1000);
    this.durability.syncedAll();
  }

  /**
   * `everysec` (the timer) and incremental fsyncs: one fsync on a worker thread covering what was
   * written so far, unless one is still running. One per tick, not back to back: under a steady
   * load the previous loop went on syncing as long as writes arrived during each fsync.
   */
  #requestSync(): void {
    if (this.#syncRunning || this.failure || !this.durability.unsynced) return;
    this.#syncRunning = this.#syncInBackground().finally(() => {
      this.#syncRunning = undefined;
      for (const file of this.#retiredFiles.splice(0)) file.close();
    });
  }

  async #syncInBackground(): Promise<void> {
    const targetSeq = this.durability.writtenSeq;
    const startedMs = this.fsyncObserver === undefined ? 0 : performance.now();
    try {
      await this.#file.syncData();
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.fsyncObserver?.((performance.now() - startedMs) / 1000);
    this.durability.synced(targetSeq);
  }

  // ---------------------------------------------------------------- segments

  /** Seals the active segment (fsynced whatever the policy) and starts the next one. */
  #roll(): void {
    const old = this.segments.active;
    try {
      this.#trimZeros();
      this.#file.syncDataSync();
    } catch (error) {
      throw this.#fail(error);
    }
    this.durability.synced(this.durability.writtenSeq);
    this.#retireFile();
    let next: Segment;
    try {
      next = createSegmentFile(this.dir, old.id + 1, 0, 0);
      this.#file = this.#openFile(next);
    } catch (error) {
      throw this.#fail(error);
    }
    this.segments.push(next);
    this.onSealed(old);
    log.debug("sealed segment {id} ({sizeBytes} bytes)", { id: old.id, sizeBytes: old.sizeBytes });
  }

  /** Writes what is pending and seals the active segment, if records were written to it. */
  sealActive(): void {
    if (this.segments.active.sizeBytes <= SEGMENT_HEADER_BYTES || this.failure) return;
    this.flush();
    this.#roll();
  }

  /**
   * Appends from now on to `segments.active`, a new segment after a full sync replaced the log,
   * whose last record is `lsn` in `epoch`.
   */
  restartAt(lsn: number, epoch: number): void {
    assert.equal(this.#pendingBytes, 0, "a full sync starts with nothing pending");
    this.#retireFile();
    this.#file = this.#openFile(this.segments.active);
    this.#lastLsn = lsn;
    this.#lastEpoch = epoch;
    this.durability.restart(lsn, this.segments.active);
  }

  /** Records a log failure: rejects every waiter and refuses further writes. */
  #fail(cause: unknown): StoreFailedError {
    if (this.failure) return this.failure;
    const failure = new StoreFailedError(this.dir, { cause });
    log.error("{message}", { message: failure.message, dir: this.dir });
    this.durability.fail(failure);
    return failure;
  }

  /**
   * Writes and fsyncs everything pending (whatever the policy) and trims the active segment's
   * zeros: before the store closes.
   */
  async finish(): Promise<void> {
    if (!this.failure) {
      try {
        this.flush();
      } catch {
        // recorded as the failure
      }
    }
    if (this.#syncRunning) await this.#syncRunning;
    if (this.failure) return;
    try {
      this.#trimZeros();
      this.#file.syncDataSync();
      const { durability } = this;
      const active = this.segments.active;
      durability.synced(durability.writtenSeq);
      durability.markDurable(
        durability.writtenSeq,
        durability.writtenLsn,
        active,
        active.sizeBytes,
      );
    } catch (error) {
      this.#fail(error);
    }
  }

  /**
   * Rejects the waiters left, stops the timer and closes the files (after {@link finish}, or when
   * the store fails to open).
   */
  close(): void {
    this.#closed = true;
    this.durability.close();
    if (this.#everysecTimer !== undefined) clearInterval(this.#everysecTimer);
    for (const file of this.#retiredFiles.splice(0)) file.close();
    try {
      this.#file.close();
    } catch {
      // already closed
    }
  }
}
