/**
 * `KVStore`: a log-structured key-value store. Every write is a record appended to the active
 * segment of a write-ahead log; an in-memory index maps each live key to its value's bytes on
 * disk. See `docs/ARCHITECTURE.md` ("Storage") for the design and `record.ts`, `segment.ts`,
 * `hint.ts` for the on-disk formats.
 *
 * Writes are two steps: `write*` encodes the record into the pending group-commit buffer and
 * applies it to the index synchronously, returning its LSN; `whenDurable(lsn)` resolves at the
 * fsync policy's durability point. The pending buffer is written with one `writeSync` at the end
 * of the current task (a microtask), so every write of one network read becomes one write; with
 * `always`, one `fdatasync` right after that write (on this thread, see `#flush`) covers every
 * record of every connection whose request arrived in the same turn of the event loop.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FsyncPolicy } from "../config.ts";
import { getLog } from "../log.ts";
import {
  BatchTooLargeError,
  CorruptionError,
  KeyTooLargeError,
  LogGapError,
  RangeTooLargeError,
  ReplicationStreamError,
  StorageError,
  StoreClosedError,
  StoreFailedError,
  StoreLockedError,
  ValueTooLargeError,
} from "./errors.ts";
import {
  FULL_SYNC_MARKER_NAME,
  isTemporaryFileName,
  LOCK_FILE_NAME,
  parseSegmentFileName,
  parseSegmentOrHintFileName,
  parseStagedSegmentFileName,
  segmentPath,
  stagedPathOf,
  temporaryPathOf,
  unstagedPathOf,
} from "./file_names.ts";
import { DATA_DIR_MODE, DATA_FILE_MODE, fsyncDir, writeSyncedFile } from "./durable_file.ts";
import { HintBuilder, HintKind, loadHint } from "./hint.ts";
import { KeyIndex, type Location, NO_SLOT } from "./key_index.ts";
import { bytesToKey, toBytes } from "./keys.ts";
import {
  batchRecordBytes,
  checkReason,
  checkRecord,
  deleteRecordBytes,
  encodeBatch,
  encodeDelete,
  encodePut,
  Flag,
  forEachKey,
  MAX_EPOCH,
  MAX_RECORD_BYTES,
  Op,
  PAIR_HEADER_BYTES,
  type Payload,
  putRecordBytes,
  RECORD_HEADER_BYTES,
  recordEpoch,
  recordFlags,
  recordKeyLength,
  recordLength,
  recordLsn,
  recordOp,
} from "./record.ts";
import {
  createSegmentFile,
  encodeSegmentHeader,
  newSegmentHeader,
  openSegmentFile,
  Segment,
  SEGMENT_HEADER_BYTES,
  SegmentFlag,
  truncateSegmentFile,
} from "./segment.ts";
import { scanSegment } from "./segment_scan.ts";
import { readAtSync } from "./read_at.ts";
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from "./store_options.ts";
import { ValueBlocks } from "./value_blocks.ts";
import { writeAllSync } from "../write_all.ts";

/** The first zero-fill step of an active segment ({@link StoreOptions.preallocateBytes}). */
const PREALLOCATE_MIN_BYTES = 64 * 1024;
let zeros: Uint8Array | undefined;

/** A block of zeros to fill segments with, made on first use. */
function zeroBlock(): Uint8Array {
  zeros ??= new Uint8Array(PREALLOCATE_MIN_BYTES);
  return zeros;
}

const log = getLog("storage");

/** Figures describing a store. */
export interface StoreStats {
  /** Live keys. */
  keys: number;
  /** Approximate bytes of live records (keys, values and their headers). */
  liveBytes: number;
  /** Approximate bytes of superseded records and tombstones on disk. */
  garbageBytes: number;
  /** Bytes of all segment files. */
  diskBytes: number;
  /** Segment files, the active one included. */
  segments: number;
  /** LSN of the last record appended. */
  lastLsn: number;
  /** LSN of the last record at the policy's durability point. */
  durableLsn: number;
  /** The log holds every record after this LSN (compaction or a full sync dropped some before). */
  oldestCompleteLsn: number;
  /** Durability policy. */
  fsync: FsyncPolicy;
  /** Epoch stamped on new records. */
  epoch: number;
  /** Compaction runs finished since open, and bytes they reclaimed. */
  compactions: number;
  compactedBytes: number;
  /** Why the store refuses writes, when it does. */
  failure?: string;
}

/** What a compaction did. */
export interface CompactionReport {
  /** Runs of adjacent sealed segments rewritten (each into one file). */
  runs: number;
  /** Segment files and their bytes before and after. */
  segmentsBefore: number;
  segmentsAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  elapsedMs: number;
}

/** A consistent view of a store's pairs at one LSN (see {@link KVStore.snapshot}). */
export interface StoreSnapshot {
  /** Every record up to this LSN is in the view, none after it. */
  lsn: number;
  /** Number of pairs. */
  keys: number;
  /** The pairs in key byte order. */
  entries: AsyncIterable<[Uint8Array, Uint8Array]>;
  /** Unpins the segments; call once done (iteration afterwards throws). */
  release(): void;
}

/** A key or value: bytes, or a string (UTF-8 encoded). */
export type Bytes = Uint8Array | string;

/** Whether every code unit of `key` is ASCII (then the string is its own byte string). */
function isAscii(key: string): boolean {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) >= 0x80) return false;
  return true;
}

/**
 * A key or value as the codec and the index take it: bytes, or an ASCII string (its own byte
 * string, so it needs no `TextEncoder`, see docs/ARCHITECTURE.md, "Measured costs"); other strings
 * are UTF-8 encoded.
 */
function payloadOf(data: Bytes): Payload {
  return typeof data === "string" && !isAscii(data) ? toBytes(data) : data;
}

/** The index slot of a key payload, or {@link NO_SLOT}. */
function slotOfPayload(index: KeyIndex<Segment>, key: Payload): number {
  return typeof key === "string" ? index.find(key) : index.findBytes(key, 0, key.length);
}

/** The index slot of `key`, or {@link NO_SLOT}; creates no string for byte or ASCII keys. */
function slotOf(index: KeyIndex<Segment>, key: Bytes): number {
  return slotOfPayload(index, payloadOf(key));
}

/** Bytes a live entry is accounted for (its share of a record). */
function entryBytes(keyLength: number, valueLength: number): number {
  return keyLength + valueLength + RECORD_HEADER_BYTES;
}

/**
 * Points the key `source[start, end)` (a byte string or bytes) at a value in `segment` and moves
 * its live-byte account from the segment of the value it replaces.
 */
function indexValue(
  index: KeyIndex<Segment>,
  source: Payload,
  start: number,
  end: number,
  segment: Segment,
  offset: number,
  length: number,
): void {
  const slot = typeof source === "string"
    ? index.find(source)
    : index.findBytes(source, start, end);
  if (slot === NO_SLOT) {
    const key = typeof source === "string" ? source : bytesToKey(source, start, end);
    index.insertMissed(key, segment, offset, length);
  } else {
    index.segmentOf(slot).liveBytes -= entryBytes(end - start, index.lengthOf(slot));
    index.update(slot, segment, offset, length);
  }
  segment.liveBytes += entryBytes(end - start, length);
}

/** Removes the key of a live slot and its live-byte account. */
function unindexSlot(index: KeyIndex<Segment>, slot: number): void {
  index.segmentOf(slot).liveBytes -= entryBytes(index.keyOf(slot).length, index.lengthOf(slot));
  index.remove(slot);
}

/**
 * The live entries one compaction run copied, as parallel u32 columns (a run can copy hundreds of
 * thousands; an object each would cost more memory than the index itself): the entry's slot, the
 * run segment and file offset it was copied from, its offset in the output, value and key length.
 */
class MoveList {
  static readonly #COLUMNS = 6;
  #data = new Uint32Array(1024 * MoveList.#COLUMNS);
  length = 0;

  push(
    slot: number,
    runIndex: number,
    fromOffset: number,
    offset: number,
    valueLength: number,
    keyLength: number,
  ): void {
    const at = this.length * MoveList.#COLUMNS;
    if (at + MoveList.#COLUMNS > this.#data.length) {
      const grown = new Uint32Array(this.#data.length * 2);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data[at] = slot;
    this.#data[at + 1] = runIndex;
    this.#data[at + 2] = fromOffset;
    this.#data[at + 3] = offset;
    this.#data[at + 4] = valueLength;
    this.#data[at + 5] = keyLength;
    this.length++;
  }

  slot(i: number): number {
    return this.#data[i * MoveList.#COLUMNS];
  }
  runIndex(i: number): number {
    return this.#data[i * MoveList.#COLUMNS + 1];
  }
  fromOffset(i: number): number {
    return this.#data[i * MoveList.#COLUMNS + 2];
  }
  offset(i: number): number {
    return this.#data[i * MoveList.#COLUMNS + 3];
  }
  valueLength(i: number): number {
    return this.#data[i * MoveList.#COLUMNS + 4];
  }
  keyLength(i: number): number {
    return this.#data[i * MoveList.#COLUMNS + 5];
  }
}

/**
 * Where a compaction run writes: a 1 MiB buffer in front of the output file, the tombstones it
 * keeps (for its hint), the live entries it copied.
 */
class CompactionSink {
  readonly hint = new HintBuilder();
  readonly moves = new MoveList();
  #buf = new Uint8Array(1024 * 1024);
  #view = new DataView(this.#buf.buffer);
  #used = 0;

  constructor(private readonly file: Deno.FsFile, readonly output: Segment) {}

  /** Writes the buffered bytes to the output file. */
  writeOut(): void {
    writeAllSync(this.file, this.#buf.subarray(0, this.#used));
    this.output.sizeBytes += this.#used;
    this.#used = 0;
  }

  #room(bytes: number): void {
    if (this.#used + bytes <= this.#buf.length) return;
    this.writeOut();
    if (bytes > this.#buf.length) {
      this.#buf = new Uint8Array(bytes);
      this.#view = new DataView(this.#buf.buffer);
    }
  }

  /** Appends raw bytes (the segment header). */
  appendBytes(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buf.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  /** Appends the record `source[from, from + length)` as it is; returns its output file offset. */
  append(source: Uint8Array, from: number, length: number, lsn: number, epoch: number): number {
    this.#room(length);
    this.#buf.set(source.subarray(from, from + length), this.#used);
    return this.#noteRecord(length, lsn, epoch);
  }

  /** Appends a BATCH record of `pairs`; returns its output file offset. */
  encodeBatch(
    pairs: [Uint8Array, Uint8Array][],
    lsn: number,
    epoch: number,
    flags: number,
  ): number {
    this.#room(batchRecordBytes(pairs));
    const length = encodeBatch(this.#buf, this.#view, this.#used, lsn, epoch, flags, pairs);
    return this.#noteRecord(length, lsn, epoch);
  }

  #noteRecord(length: number, lsn: number, epoch: number): number {
    const fileOffset = this.output.sizeBytes + this.#used;
    this.#used += length;
    this.output.noteLsn(lsn);
    this.output.lastEpoch = epoch;
    return fileOffset;
  }
}

interface Waiter {
  seq: number;
  /** LSN of the last record appended when the waiter was made: what its promise resolves to. */
  lsn: number;
  promise: Promise<number>;
  resolve: (lsn: number) => void;
  reject: (error: Error) => void;
}

/** Receives encoded records once they reach the durability point (see {@link KVStore.onDurable}). */
export type DurableListener = (records: Uint8Array, firstLsn: number, lastLsn: number) => void;

const RESOLVED: Promise<void> = Promise.resolve();
const ignore = (): void => {};

/**
 * `promise`, marked handled: a caller that awaits it only later (a connection awaits the
 * durability of one batch after the batches before it) still sees its rejection, and its
 * rejection is never reported as unhandled meanwhile.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}
const INITIAL_PENDING_BYTES = 64 * 1024;
/** Values read are carved from shared blocks of this size when at most {@link CARVED_VALUE_BYTES}. */
const VALUE_BLOCK_BYTES = 8 * 1024;
const CARVED_VALUE_BYTES = 1024;
const EVERYSEC_INTERVAL_MS = 1000;

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
  epoch = 0;
  /** Called with the seconds each group-commit fsync took (metrics); unset, nothing is timed. */
  fsyncObserver: ((elapsedSeconds: number) => void) | undefined;
  /** Settings; replaced (replica → master) by {@link promote}. */
  options: Readonly<StoreOptions>;
  readonly dir: string;

  #lockFile: Deno.FsFile;
  #values = new ValueBlocks(VALUE_BLOCK_BYTES, CARVED_VALUE_BYTES);
  #index = new KeyIndex<Segment>();
  #segments: Segment[] = []; // ascending id; the last is active
  #active!: Segment;
  #writer!: Deno.FsFile;
  #retiredWriters: Deno.FsFile[] = [];

  #pending = new Uint8Array(INITIAL_PENDING_BYTES);
  #pendingView = new DataView(this.#pending.buffer);
  #pendingBytes = 0;
  #pendingFirstLsn = 0;
  #flushQueued = false;

  #lastLsn = 0;
  #appendedSeq = 0;
  #writtenSeq = 0;
  #writtenLsn = 0;
  #syncedSeq = 0;
  #durableSeq = 0;
  #durableLsn = 0;
  /** The log is durable up to this segment and file offset. */
  #durableSegment!: Segment;
  #durableOffset = 0;
  #lastEpoch = 0;
  #waiters: Waiter[] = [];
  /** What {@link whenDurable} callers wait on: resolved once every record up to `seq` is. */
  #nextDurable:
    | { seq: number; promise: Promise<void>; resolve: () => void; reject: (e: Error) => void }
    | undefined;
  #listeners: DurableListener[] = [];
  #syncRunning: Promise<void> | undefined;
  /** Active-segment offset at which the last incremental fsync was asked for. */
  #incrementalFsyncAt = 0;
  /** Length of the active segment's file: its records, then zeros (see {@link #preallocate}). */
  #zeroedEnd = 0;
  #everysecTimer: ReturnType<typeof setInterval> | undefined;

  #failure: StoreFailedError | undefined;
  #closed = false;
  #closing = false;
  #tasks = new Set<Promise<void>>();
  #compaction: Promise<CompactionReport> | undefined;
  /** Segments a committed compaction run is re-pointing index entries away from. */
  #compactingFrom: Segment[] = [];
  #fullSync: FullSync | undefined;
  #compactions = 0;
  #compactedBytes = 0;

  private constructor(dir: string, options: StoreOptions, lockFile: Deno.FsFile) {
    this.dir = dir;
    this.options = options;
    this.#lockFile = lockFile;
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
    const lockFile = Deno.openSync(`${dir}/${LOCK_FILE_NAME}`, {
      read: true,
      write: true,
      create: true,
      mode: DATA_FILE_MODE,
    });
    if (!lockFile.tryLockSync(true)) {
      lockFile.close();
      throw new StoreLockedError(dir);
    }
    const store = new KVStore(dir, merged, lockFile);
    try {
      store.#recover();
    } catch (error) {
      store.#closeHandles();
      throw error;
    }
    if (merged.fsync === "everysec") {
      const timer = setInterval(() => store.#requestSync(), EVERYSEC_INTERVAL_MS);
      Deno.unrefTimer(timer);
      store.#everysecTimer = timer;
    }
    return store;
  }

  // ---------------------------------------------------------------- recovery

  #recover(): void {
    const started = performance.now();
    this.#settleFullSync();
    const ids: number[] = [];
    for (const entry of Deno.readDirSync(this.dir)) {
      if (!entry.isFile) continue;
      const id = parseSegmentFileName(entry.name);
      if (id !== undefined) ids.push(id);
      else if (isTemporaryFileName(entry.name)) Deno.removeSync(`${this.dir}/${entry.name}`);
    }
    ids.sort((a, b) => a - b);
    let tornBytes = 0;
    let progressLoggedMs = started;
    this.#index.deferSorting();
    for (let i = 0; i < ids.length; i++) {
      const nowMs = performance.now();
      if (nowMs - progressLoggedMs >= this.options.recoveryProgressIntervalMs) {
        progressLoggedMs = nowMs;
        log.info(
          "recovering {dir}: {segmentsDone} of {segments} segments, {keys} keys so far, " +
            "{elapsedMs} ms",
          {
            dir: this.dir,
            segmentsDone: i,
            segments: ids.length,
            keys: this.#index.size,
            elapsedMs: Math.round(nowMs - started),
          },
        );
      }
      const isLast = i === ids.length - 1;
      const segment = openSegmentFile(this.dir, ids[i], isLast);
      if (segment === undefined) continue;
      if (isLast || !this.#loadHintInto(segment)) {
        // The active segment keeps gathering tombstones; a sealed one gets its hint now.
        segment.hint = new HintBuilder();
        segment.hintComplete = !isLast;
        tornBytes += this.#scanInto(segment, isLast);
        if (!isLast) this.#writeHintSync(segment);
      }
      this.#segments.push(segment);
    }
    this.#index.rebuildSorted();
    if (this.#segments.length === 0) {
      this.#active = createSegmentFile(this.dir, 1, 0, 0);
      this.#segments.push(this.#active);
    } else {
      this.#active = this.#segments[this.#segments.length - 1];
    }
    this.#openWriter(this.#active);
    for (const segment of this.#segments) {
      this.#lastLsn = Math.max(this.#lastLsn, segment.lastLsn, segment.header.coveredLastLsn);
    }
    this.#writtenLsn = this.#durableLsn = this.#lastLsn;
    this.#durableSegment = this.#active;
    this.#durableOffset = this.#active.sizeBytes;
    log.info(
      "opened {dir}: {keys} keys, {segments} segments, last LSN {lastLsn}, in {elapsedMs} ms",
      {
        dir: this.dir,
        keys: this.#index.size,
        segments: this.#segments.length,
        lastLsn: this.#lastLsn,
        elapsedMs: Math.round(performance.now() - started),
        tornBytes,
      },
    );
  }

  /**
   * Completes a full sync whose commit marker was written, or discards one that never committed,
   * so a crash mid full sync never leaves half-old, half-new contents.
   */
  #settleFullSync(): void {
    const markerPath = `${this.dir}/${FULL_SYNC_MARKER_NAME}`;
    let baseId: number | undefined;
    try {
      baseId = Number(Deno.readTextFileSync(markerPath).trim());
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    for (const entry of Deno.readDirSync(this.dir)) {
      const stagedId = parseStagedSegmentFileName(entry.name);
      const path = `${this.dir}/${entry.name}`;
      if (stagedId === undefined) continue;
      if (baseId !== undefined && stagedId >= baseId) {
        Deno.renameSync(path, unstagedPathOf(path));
      } else {
        Deno.removeSync(path);
      }
    }
    if (baseId === undefined) return;
    for (const entry of Deno.readDirSync(this.dir)) {
      const id = parseSegmentOrHintFileName(entry.name) ?? NaN;
      if (id < baseId) Deno.removeSync(`${this.dir}/${entry.name}`);
    }
    fsyncDir(this.dir);
    Deno.removeSync(markerPath);
    fsyncDir(this.dir);
    log.info("completed an interrupted full sync (segments from {baseId})", { baseId });
  }

  /** Applies one recovered entry (from a hint or a scan) to the index. */
  #applyRecovered(
    segment: Segment,
    kind: number,
    buf: Uint8Array,
    keyStart: number,
    keyLength: number,
    valueOffset: number,
    valueLength: number,
  ): void {
    const keyEnd = keyStart + keyLength;
    if (kind === HintKind.TOMBSTONE) {
      const slot = this.#index.findBytes(buf, keyStart, keyEnd);
      if (slot !== NO_SLOT) unindexSlot(this.#index, slot);
      segment.tombstoneBytes += deleteRecordBytes(keyLength);
    } else {
      indexValue(this.#index, buf, keyStart, keyEnd, segment, valueOffset, valueLength);
    }
  }

  /** Replays the hint of a sealed segment; false when it has no usable hint. */
  #loadHintInto(segment: Segment): boolean {
    const summary = loadHint(segment.hintPath, {
      id: segment.id,
      nonce: segment.header.nonce,
      sizeBytes: segment.sizeBytes,
    }, (kind, buf, keyStart, keyLength, valueOffset, valueLength) => {
      this.#applyRecovered(segment, kind, buf, keyStart, keyLength, valueOffset, valueLength);
    }, (entries) => this.#index.reserve(this.#index.size + entries));
    if (summary === undefined) return false;
    segment.firstLsn = summary.firstLsn;
    segment.lastLsn = summary.lastLsn;
    segment.lastEpoch = summary.lastEpoch;
    if (summary.lastLsn !== -1) this.#lastEpoch = this.epoch = summary.lastEpoch;
    return true;
  }

  #hintBytes(segment: Segment, hint: HintBuilder): Uint8Array {
    return hint.finish(
      { id: segment.id, nonce: segment.header.nonce, sizeBytes: segment.sizeBytes },
      segment.firstLsn,
      segment.lastLsn,
      segment.lastEpoch,
    );
  }

  /**
   * Adds the live values of a sealed segment to its hint, in key order, walking the index's
   * sorted set in steps (about `compactionChunkBytes / 64` keys each) with yields between. After
   * the segment's tombstones, replaying these entries gives exactly what replaying its records
   * would: a key whose last record here is a PUT is live here (nothing newer can be in an older
   * or sealed segment), and an entry that moves away during the walk has its newer record in a
   * later segment, replayed after this one. Sorted hints let recovery merge instead of sort.
   */
  async #addLiveValues(segment: Segment, hint: HintBuilder): Promise<void> {
    const index = this.#index;
    const step = Math.max(1024, this.options.compactionChunkBytes >>> 6);
    let visited = 0;
    for (const chunk of index.sortedChunks()) {
      for (let i = 0; i < chunk.length; i++) {
        const slot = chunk[i];
        if (index.segmentOf(slot) === segment) {
          hint.addKey(
            HintKind.VALUE,
            index.keyOf(slot),
            index.offsetOf(slot),
            index.lengthOf(slot),
          );
        }
      }
      visited += chunk.length;
      if (visited >= step) {
        visited = 0;
        await this.#yieldToRequests();
        if (index !== this.#index || segment.retired) return; // a full sync replaced it
      }
    }
  }

  /** Writes a sealed segment's hint now (recovery of a segment that had none). */
  #writeHintSync(segment: Segment): void {
    const bytes = this.#hintBytes(segment, segment.hint ?? new HintBuilder());
    segment.hint = undefined;
    const tmp = temporaryPathOf(segment.hintPath);
    const file = Deno.openSync(tmp, {
      write: true,
      create: true,
      truncate: true,
      mode: DATA_FILE_MODE,
    });
    try {
      writeAllSync(file, bytes);
      file.syncDataSync();
    } finally {
      file.close();
    }
    Deno.renameSync(tmp, segment.hintPath);
    fsyncDir(this.dir);
  }

  /**
   * Writes a sealed segment's hint (in the background after a seal; a crash before it only costs
   * a scan at the next open).
   */
  #writeHint(segment: Segment): Promise<void> {
    const writing = this.#writeHintFile(segment).finally(() => {
      if (segment.hintWriting === writing) segment.hintWriting = undefined;
      this.#maybeAutoCompact();
    });
    segment.hintWriting = writing;
    return writing;
  }

  async #writeHintFile(segment: Segment): Promise<void> {
    const hint = segment.hint ?? new HintBuilder();
    const complete = segment.hintComplete;
    segment.hint = undefined;
    const tmp = temporaryPathOf(segment.hintPath);
    try {
      if (!complete) await this.#addLiveValues(segment, hint);
      if (segment.retired || this.#closed) return;
      await writeSyncedFile(tmp, this.#hintBytes(segment, hint));
      if (segment.retired || this.#closed) {
        await Deno.remove(tmp);
        return;
      }
      await Deno.rename(tmp, segment.hintPath);
      fsyncDir(this.dir);
    } catch (error) {
      log.warn("could not write hint file {path}: {error}; recovery will scan the segment", {
        path: segment.hintPath,
        error: String(error),
      });
    }
  }

  /** Applies every record of `segment` to the index; returns bytes truncated from a torn tail. */
  #scanInto(segment: Segment, isLast: boolean): number {
    const hint = segment.hint as HintBuilder;
    const complete = segment.hintComplete;
    let recordAt = 0;
    let recordOffset = 0;
    let kind = 0;
    const applyKey = (
      buf: Uint8Array,
      keyStart: number,
      keyLength: number,
      valueStart: number,
      valueLength: number,
    ): void => {
      const valueOffset = kind === HintKind.TOMBSTONE ? 0 : recordOffset + (valueStart - recordAt);
      if (complete || kind === HintKind.TOMBSTONE) {
        hint.add(kind, buf, keyStart, keyLength, valueOffset, valueLength);
      }
      this.#applyRecovered(segment, kind, buf, keyStart, keyLength, valueOffset, valueLength);
    };
    const result = scanSegment(
      segment.reader(),
      segment.path,
      segment.sizeBytes,
      SEGMENT_HEADER_BYTES,
      (buf, view, at, _length, fileOffset) => {
        recordAt = at;
        recordOffset = fileOffset;
        kind = recordOp(buf, at) === Op.DELETE ? HintKind.TOMBSTONE : HintKind.VALUE;
        segment.noteLsn(recordLsn(view, at));
        segment.lastEpoch = this.#lastEpoch = this.epoch = recordEpoch(view, at);
        forEachKey(buf, view, at, (ks, kl, vs, vl) => applyKey(buf, ks, kl, vs, vl));
      },
      Infinity,
      isLast,
    );
    if (result.damage === "none") return 0;
    if (result.damage === "zeros" && isLast) {
      // The zero-filled space ahead of the last record (#preallocate) of a store that stopped
      // without closing: nothing was lost.
      log.debug("trimming {bytes} preallocated bytes of {path}", {
        path: segment.path,
        bytes: result.tailBytes,
      });
      truncateSegmentFile(segment, result.validEnd);
      return 0;
    }
    if (!isLast) {
      throw new CorruptionError(
        segment.path,
        result.validEnd,
        `${result.reason} in a sealed segment (${result.tailBytes} bytes to its end)`,
      );
    }
    log.warn(
      "truncating torn tail of {path}: {tornBytes} bytes after offset {offset} ({reason})",
      {
        path: segment.path,
        tornBytes: result.tailBytes,
        offset: result.validEnd,
        reason: result.reason,
      },
    );
    truncateSegmentFile(segment, result.validEnd);
    return result.tailBytes;
  }

  // ---------------------------------------------------------------- writes

  /** LSN of the last record appended (acknowledged or not). */
  get lastLsn(): number {
    return this.#lastLsn;
  }

  /** LSN of the last record that reached the durability point. */
  get durableLsn(): number {
    return this.#durableLsn;
  }

  #checkWritable(): void {
    if (this.#closed) throw new StoreClosedError(this.dir);
    if (this.#failure) throw this.#failure;
    if (this.#fullSync) {
      throw new StorageError(
        `store ${this.dir} is replacing its contents (full sync); retry after`,
      );
    }
  }

  #checkKey(key: Payload): void {
    if (key.length > this.options.maxKeyBytes) {
      throw new KeyTooLargeError(key.length, this.options.maxKeyBytes);
    }
  }

  #checkValue(value: Payload): void {
    if (value.length > this.options.maxValueBytes) {
      throw new ValueTooLargeError(value.length, this.options.maxValueBytes);
    }
  }

  /** LSN and flags for a new direct write. */
  #nextLsn(): number {
    if (this.options.replica) return this.#lastLsn;
    return ++this.#lastLsn;
  }

  get #writeFlags(): number {
    return this.options.replica ? Flag.LOCAL : 0;
  }

  /** Makes room for a record of `length` bytes; returns its offset in the pending buffer. */
  #reserve(length: number): number {
    if (this.#pendingBytes > 0 && this.#pendingBytes + length > this.options.writeBatchMaxBytes) {
      this.#flush();
    }
    const activeEnd = this.#active.sizeBytes + this.#pendingBytes;
    if (activeEnd + length > this.options.segmentSizeBytes && activeEnd > SEGMENT_HEADER_BYTES) {
      this.#flush();
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
    if (at === 0) this.#pendingFirstLsn = lsn;
    this.#lastEpoch = epoch;
    this.#active.lastEpoch = epoch;
    this.#active.noteLsn(lsn);
    this.#appendedSeq++;
  }

  /**
   * Appends a PUT and applies it to the index; returns its LSN. Durable once
   * {@link whenDurable} of that LSN resolves.
   *
   * @throws {KeyTooLargeError | ValueTooLargeError} past the configured limits
   * @throws {StoreFailedError} after a write to the log failed
   */
  writePut(key: Bytes, value: Bytes): number {
    this.#checkWritable();
    const k = payloadOf(key);
    const v = payloadOf(value);
    this.#checkKey(k);
    this.#checkValue(v);
    const at = this.#reserve(putRecordBytes(k.length, v.length));
    const lsn = this.#nextLsn();
    const pending = this.#pending;
    encodePut(pending, this.#pendingView, at, lsn, this.epoch, this.#writeFlags, k, v);
    this.#appended(lsn, at, this.epoch);
    const offset = this.#active.sizeBytes + at + RECORD_HEADER_BYTES + k.length;
    indexValue(this.#index, k, 0, k.length, this.#active, offset, v.length);
    return lsn;
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
      this.#checkKey(key);
      this.#checkValue(value);
    }
    const length = batchRecordBytes(encoded);
    if (length > MAX_RECORD_BYTES) throw new BatchTooLargeError(length, MAX_RECORD_BYTES);
    const at = this.#reserve(length);
    const lsn = this.#nextLsn();
    encodeBatch(this.#pending, this.#pendingView, at, lsn, this.epoch, this.#writeFlags, encoded);
    this.#appended(lsn, at, this.epoch);
    let offset = this.#active.sizeBytes + at + RECORD_HEADER_BYTES;
    for (const [key, value] of encoded) {
      offset += PAIR_HEADER_BYTES + key.length;
      indexValue(this.#index, key, 0, key.length, this.#active, offset, value.length);
      offset += value.length;
    }
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
    this.#checkKey(k);
    const slot = slotOfPayload(this.#index, k);
    if (slot === NO_SLOT) return this.#lastLsn;
    const at = this.#reserve(deleteRecordBytes(k.length));
    const lsn = this.#nextLsn();
    encodeDelete(this.#pending, this.#pendingView, at, lsn, this.epoch, this.#writeFlags, k);
    this.#appended(lsn, at, this.epoch);
    this.#active.hint?.add(
      HintKind.TOMBSTONE,
      this.#pending,
      at + RECORD_HEADER_BYTES,
      k.length,
      0,
      0,
    );
    this.#active.tombstoneBytes += deleteRecordBytes(k.length);
    unindexSlot(this.#index, slot);
    return lsn;
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
    const highest = Math.max(this.epoch, this.#lastEpoch);
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
   * Resolves when every record appended so far with an LSN up to `lsn` reached the durability
   * point of the fsync policy; rejects with {@link StoreFailedError} if the log failed first.
   */
  whenDurable(lsn: number): Promise<void> {
    if (this.#failure) return handled(Promise.reject(this.#failure));
    if (this.#durableSeq === this.#appendedSeq || lsn < this.#durableLsn) return RESOLVED;
    if (this.#closed) return handled(Promise.reject(new StoreClosedError(this.dir)));
    // Whatever is not durable yet is in the pending buffer, and the next #flush makes all of it
    // durable at once: every caller until then shares one promise (a server asks once per
    // network read; promises per read are measurable: docs/ARCHITECTURE.md, "Measured costs").
    let next = this.#nextDurable;
    if (next === undefined) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      next = this.#nextDurable = { seq: 0, promise: handled(promise), resolve, reject };
    }
    next.seq = this.#appendedSeq;
    return next.promise;
  }

  /**
   * Resolves with the LSN of the last record appended so far once it reached the durability
   * point: right after a write, that write's LSN (so `put` needs no promise of its own).
   */
  #untilDurable(): Promise<number> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#durableSeq === this.#appendedSeq) return Promise.resolve(this.#lastLsn);
    if (this.#closed) return Promise.reject(new StoreClosedError(this.dir));
    const target = this.#appendedSeq;
    const last = this.#waiters[this.#waiters.length - 1];
    if (last !== undefined && last.seq === target) return last.promise;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#waiters.push({ seq: target, lsn: this.#lastLsn, promise, resolve, reject });
    return promise;
  }

  /** Writes `key` = `value` and resolves with its LSN once durable. */
  put(key: Bytes, value: Bytes): Promise<number> {
    // Not an async function, and no promise of its own: the durability promise made right after
    // the write resolves to its LSN (an async frame and a `then` per put are measurable:
    // docs/ARCHITECTURE.md, "Measured costs").
    try {
      this.writePut(key, value);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#untilDurable();
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

  // ---------------------------------------------------------------- group commit

  #flushQueuedWrites(): void {
    this.#flushQueued = false;
    if (this.#closed || this.#failure) return;
    try {
      this.#flush();
    } catch {
      // #flush recorded the failure; waiters were rejected.
    }
  }

  /** Writes the pending buffer to the active segment with one `writeSync` (and notifies). */
  #flush(): void {
    if (this.#pendingBytes === 0) return;
    if (this.#failure) throw this.#failure;
    const bytes = this.#pending.subarray(0, this.#pendingBytes);
    const end = this.#active.sizeBytes + bytes.length;
    if (
      end > this.#zeroedEnd && this.options.fsync === "always" && this.options.preallocateBytes > 0
    ) {
      this.#preallocate(end);
    }
    try {
      writeAllSync(this.#writer, bytes);
    } catch (error) {
      throw this.#fail(error);
    }
    this.#active.sizeBytes += bytes.length;
    const firstLsn = this.#pendingFirstLsn;
    const lastLsn = this.#lastLsn;
    const chunk = this.#listeners.length > 0 ? bytes.slice() : undefined;
    this.#pendingBytes = 0;
    if (this.#pending.length > 2 * this.options.writeBatchMaxBytes) {
      this.#pending = new Uint8Array(INITIAL_PENDING_BYTES);
      this.#pendingView = new DataView(this.#pending.buffer);
    }
    this.#writtenSeq = this.#appendedSeq;
    this.#writtenLsn = lastLsn;
    if (this.options.fsync === "always") this.#syncWritten();
    else if (
      this.options.incrementalFsyncBytes > 0 &&
      this.#active.sizeBytes - this.#incrementalFsyncAt >= this.options.incrementalFsyncBytes
    ) {
      // Bounds the dirty data a seal's blocking fsync must write: with a whole 64 MiB segment
      // dirty it stalled every request (docs/ARCHITECTURE.md, "Measured costs").
      this.#incrementalFsyncAt = this.#active.sizeBytes;
      this.#requestSync();
    }
    // Listeners first: the replication sender is woken before the writers' OKs are sent, so a
    // replica has the record on its way before a client can ask the replica for it.
    if (chunk) this.#notify(chunk, firstLsn, lastLsn);
    this.#markDurable(this.#writtenSeq, lastLsn, this.#active, this.#active.sizeBytes);
  }

  /** Makes `segment` the one the writer appends to, at its end. */
  #openWriter(segment: Segment): void {
    this.#writer = Deno.openSync(segment.path, { write: true });
    this.#writer.seekSync(segment.sizeBytes, Deno.SeekMode.Start);
    this.#zeroedEnd = segment.sizeBytes;
    this.#incrementalFsyncAt = segment.sizeBytes;
  }

  /**
   * `always`: zero-fills the active segment's file ahead of its records, up to at least `end`.
   * An fdatasync after an append that grows the file must also commit the file's new size (an
   * ext4 journal commit); one after writes into blocks that are already on disk writes data only,
   * in about half the time (docs/ARCHITECTURE.md, "Measured costs"). The zeros become durable with the fsync of the records that follow them; recovery trims a tail of
   * zeros silently, and sealing or closing the segment trims it first ({@link #trimZeros}).
   * Steps double from {@link PREALLOCATE_MIN_BYTES} up to the configured size, and stop at the
   * segment size, so a small store or segment is not padded with a whole step.
   */
  #preallocate(end: number): void {
    const active = this.#active;
    const step = Math.min(
      this.options.preallocateBytes,
      Math.max(PREALLOCATE_MIN_BYTES, active.sizeBytes),
    );
    // Never before the records' end, whatever wrote them (zeros must not overwrite a record).
    const from = Math.max(this.#zeroedEnd, active.sizeBytes);
    const target = Math.max(end, Math.min(from + step, this.options.segmentSizeBytes));
    const zeros = zeroBlock();
    try {
      this.#writer.seekSync(from, Deno.SeekMode.Start);
      // Bounded: each step writes at least one byte.
      for (let at = from; at < target;) {
        const bytes = zeros.subarray(0, Math.min(zeros.length, target - at));
        writeAllSync(this.#writer, bytes);
        at += bytes.length;
      }
      this.#writer.seekSync(active.sizeBytes, Deno.SeekMode.Start);
    } catch (error) {
      throw this.#fail(error);
    }
    this.#zeroedEnd = target;
  }

  /** Cuts the active segment's file back to its records (before it is sealed or closed). */
  #trimZeros(): void {
    const size = this.#active.sizeBytes;
    if (this.#zeroedEnd <= size) return;
    this.#writer.truncateSync(size);
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
      this.#writer.syncDataSync();
    } catch (error) {
      throw this.#fail(error);
    }
    this.fsyncObserver?.((performance.now() - startedMs) / 1000);
    this.#syncedSeq = this.#writtenSeq;
  }

  /**
   * `everysec` (the timer): one fsync on a worker thread covering what was written so far, unless
   * one is still running. One per tick, not back to back: under a steady load the previous loop
   * went on syncing as long as writes arrived during each fsync.
   */
  #requestSync(): void {
    if (this.#syncRunning || this.#failure || this.#syncedSeq >= this.#writtenSeq) return;
    this.#syncRunning = this.#syncInBackground().finally(() => {
      this.#syncRunning = undefined;
      for (const file of this.#retiredWriters.splice(0)) file.close();
    });
  }

  async #syncInBackground(): Promise<void> {
    const targetSeq = this.#writtenSeq;
    const startedMs = this.fsyncObserver === undefined ? 0 : performance.now();
    try {
      await this.#writer.syncData();
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.fsyncObserver?.((performance.now() - startedMs) / 1000);
    this.#synced(targetSeq);
  }

  #synced(seq: number): void {
    if (seq > this.#syncedSeq) this.#syncedSeq = seq;
  }

  #markDurable(seq: number, lsn: number, segment: Segment, offset: number): void {
    if (seq <= this.#durableSeq) return;
    this.#durableSeq = seq;
    this.#durableLsn = lsn;
    this.#durableSegment = segment;
    this.#durableOffset = offset;
    let done = 0;
    while (done < this.#waiters.length && this.#waiters[done].seq <= seq) {
      this.#waiters[done].resolve(this.#waiters[done].lsn);
      done++;
    }
    if (done > 0) this.#waiters.splice(0, done);
    const next = this.#nextDurable;
    if (next !== undefined && next.seq <= seq) {
      this.#nextDurable = undefined;
      next.resolve();
    }
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

  /** Records a log failure: rejects every waiter and refuses further writes. */
  #fail(cause: unknown): StoreFailedError {
    if (this.#failure) return this.#failure;
    const failure = new StoreFailedError(this.dir, { cause });
    this.#failure = failure;
    log.error("{message}", { message: failure.message, dir: this.dir });
    for (const waiter of this.#waiters.splice(0)) waiter.reject(failure);
    this.#nextDurable?.reject(failure);
    this.#nextDurable = undefined;
    return failure;
  }

  /** Runs `task` in the background; {@link close} waits for it. */
  #background(task: Promise<unknown>): void {
    const tracked = task.then(() => {}, (error) => {
      log.error("background storage task failed: {error}", { error: String(error) });
    });
    this.#tasks.add(tracked);
    tracked.finally(() => this.#tasks.delete(tracked));
  }

  /** Seals the active segment (fsynced whatever the policy) and starts the next one. */
  #roll(): void {
    const old = this.#active;
    try {
      this.#trimZeros();
      this.#writer.syncDataSync();
    } catch (error) {
      throw this.#fail(error);
    }
    this.#synced(this.#writtenSeq);
    if (this.#syncRunning) this.#retiredWriters.push(this.#writer);
    else this.#writer.close();
    let next: Segment;
    try {
      next = createSegmentFile(this.dir, old.id + 1, 0, 0);
      this.#openWriter(next);
    } catch (error) {
      throw this.#fail(error);
    }
    this.#segments.push(next);
    this.#active = next;
    this.#background(this.#writeHint(old));
    log.debug("sealed segment {id} ({sizeBytes} bytes)", { id: old.id, sizeBytes: old.sizeBytes });
  }

  // ---------------------------------------------------------------- compaction

  /** Bytes compaction of `segment` would free (tombstones count only in the oldest segment). */
  #reclaimable(segment: Segment): number {
    const keptTombstones = segment === this.#segments[0] ? 0 : segment.tombstoneBytes;
    return Math.max(
      0,
      segment.sizeBytes - SEGMENT_HEADER_BYTES - segment.liveBytes - keptTombstones,
    );
  }

  #isAutoCandidate(segment: Segment): boolean {
    const reclaimable = this.#reclaimable(segment);
    return reclaimable > 0 && reclaimable >= this.options.compactionMinBytes &&
      reclaimable >= this.options.compactionThreshold * segment.sizeBytes;
  }

  #compactable(segment: Segment): boolean {
    return segment !== this.#active && segment.pins === 0 && segment.hintWriting === undefined &&
      !segment.retired;
  }

  /** The next run of adjacent sealed segments worth rewriting into one, or undefined. */
  #pickRun(mode: "manual" | "auto", done: Set<Segment>): Segment[] | undefined {
    if (this.#fullSync) return undefined;
    const limit = this.options.segmentSizeBytes;
    const small = (segment: Segment) => segment.sizeBytes < limit / 4;
    const wanted = (segment: Segment) =>
      mode === "manual"
        ? this.#reclaimable(segment) > 0 || segment.sizeBytes < limit / 2
        : this.#isAutoCandidate(segment) || small(segment);
    const sealed = this.#segments.slice(0, -1);
    for (let i = 0; i < sealed.length; i++) {
      const first = sealed[i];
      if (!this.#compactable(first) || done.has(first) || !wanted(first)) continue;
      const run = [first];
      let keptBytes = first.liveBytes + first.tombstoneBytes;
      for (let j = i + 1; j < sealed.length; j++) {
        const next = sealed[j];
        if (!this.#compactable(next) || done.has(next) || !wanted(next)) break;
        if (keptBytes + next.liveBytes + next.tombstoneBytes > limit) break;
        keptBytes += next.liveBytes + next.tombstoneBytes;
        run.push(next);
      }
      const gain = run.some((segment) => this.#reclaimable(segment) > 0);
      if (
        mode === "auto"
          ? run.some((s) => this.#isAutoCandidate(s)) || run.length > 1
          : gain || run.length > 1
      ) {
        return run;
      }
    }
    return undefined;
  }

  #maybeAutoCompact(): void {
    if (!this.options.autoCompact || this.#compaction || this.#closing || this.#failure) return;
    if (this.#pickRun("auto", new Set()) === undefined) return;
    this.#background(this.#startCompaction("auto"));
  }

  /**
   * Rewrites the sealed segments that hold garbage (and merges small neighbours) into fewer,
   * smaller files, keeping every live record with its LSN. Online: writes and reads continue; a
   * crash at any point leaves a store that opens with all acknowledged data (new file written and
   * fsynced under a temporary name, renamed over the first segment of the run, directory fsynced,
   * then the rest of the run deleted in order). Tombstones are dropped only from the oldest
   * segment, so no deleted key comes back. Segments pinned by a snapshot or a log reader wait.
   */
  compact(): Promise<CompactionReport> {
    if (this.#closed || this.#closing) return Promise.reject(new StoreClosedError(this.dir));
    return this.#startCompaction("manual");
  }

  #startCompaction(mode: "manual" | "auto"): Promise<CompactionReport> {
    const previous = this.#compaction;
    const run: Promise<CompactionReport> = (previous ? previous.catch(() => undefined) : RESOLVED)
      .then(() => this.#compactNow(mode));
    this.#compaction = run;
    const clear = () => {
      if (this.#compaction === run) this.#compaction = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  async #compactNow(mode: "manual" | "auto"): Promise<CompactionReport> {
    const started = performance.now();
    const bytesOf = () => this.#segments.reduce((n, s) => n + s.sizeBytes, 0);
    const segmentsBefore = this.#segments.length;
    const bytesBefore = bytesOf();
    if (mode === "manual") {
      if (this.#active.sizeBytes > SEGMENT_HEADER_BYTES && !this.#failure) {
        this.#flush();
        this.#roll();
      }
      // Segments whose hints are still being written (the one just sealed, and any sealed by
      // writes moments ago) cannot be compacted yet; on demand means all of them, so wait. Only
      // for these: segments sealed meanwhile by a steady write load could otherwise keep it
      // waiting indefinitely.
      await Promise.all(this.#segments.map((segment) => segment.hintWriting));
    }
    const done = new Set<Segment>();
    let runs = 0;
    // Bounded: each pass rewrites a run into a segment marked done, and segments are finite.
    for (let pass = 0; pass <= segmentsBefore && !this.#closing && !this.#failure; pass++) {
      const run = this.#pickRun(mode, done);
      if (run === undefined) break;
      done.add(await this.#compactRun(run));
      runs++;
    }
    const report: CompactionReport = {
      runs,
      segmentsBefore,
      segmentsAfter: this.#segments.length,
      bytesBefore,
      bytesAfter: bytesOf(),
      elapsedMs: Math.round(performance.now() - started),
    };
    if (runs > 0) {
      this.#compactions++;
      this.#compactedBytes += Math.max(0, report.bytesBefore - report.bytesAfter);
      log.info(
        "compaction ({mode}): {runs} runs, {segmentsBefore} -> {segmentsAfter} segments, " +
          "{bytesBefore} -> {bytesAfter} bytes in {elapsedMs} ms",
        { mode, ...report },
      );
    }
    return report;
  }

  /** Lets requests run between two bounded steps of a long job (compaction). */
  #yieldToRequests(): Promise<void> {
    // setTimeout, not setImmediate: setImmediate lets almost no network I/O in
    // (docs/ARCHITECTURE.md, "Compaction works in bounded steps").
    return new Promise((resolve) => setTimeout(resolve, 0));
  }

  /**
   * Rewrites `run` (adjacent sealed segments) into one file with the first one's id. Every step
   * is bounded by `compactionChunkBytes` (log bytes scanned, or bytes of index entries re-pointed)
   * and followed by a yield, so reads and writes keep flowing while it runs.
   */
  async #compactRun(run: Segment[]): Promise<Segment> {
    const first = run[0];
    const isOldest = this.#segments[0] === first;
    let covered = 0;
    for (const segment of run) {
      covered = Math.max(covered, segment.lastLsn, segment.header.coveredLastLsn);
      segment.pin();
      segment.reader(); // opened before the rename, so it keeps reading the old file
    }
    const header = newSegmentHeader(first.id, covered, SegmentFlag.COMPACTED);
    const tmpPath = temporaryPathOf(first.path, "compact");
    const out = Deno.openSync(tmpPath, {
      write: true,
      create: true,
      truncate: true,
      mode: DATA_FILE_MODE,
    });
    const output = new Segment(first.id, first.path, header, 0);
    const sink = new CompactionSink(out, output);
    const chunkBytes = this.options.compactionChunkBytes;
    let committed = false;
    try {
      sink.appendBytes(encodeSegmentHeader(header));
      for (let r = 0; r < run.length; r++) {
        const segment = run[r];
        let offset = SEGMENT_HEADER_BYTES;
        // Bounded by the segment size: each step scans at least one record or throws.
        while (offset < segment.sizeBytes) {
          if (this.#closing || this.#failure) throw new StoreClosedError(this.dir);
          offset = this.#copyLive(segment, r, offset, offset + chunkBytes, isOldest, sink);
          await this.#yieldToRequests();
        }
      }
      sink.writeOut();
      await out.syncData();
      out.close();
      if (this.#closing || this.#failure) throw new StoreClosedError(this.dir);
      // Commit point. Index entries still point into the run's segments until they are re-pointed
      // below, in steps; the run's files stay readable meanwhile through the descriptors opened
      // above (pinned until the end; snapshots taken meanwhile pin them too).
      Deno.renameSync(tmpPath, first.path);
      fsyncDir(this.dir);
      committed = true;
      this.#segments.splice(this.#segments.indexOf(first), run.length, output);
      for (const segment of run) segment.retire();
      this.#compactingFrom = run;
      // Delete the rest of the run in order, and every hint of the run (the first one's names the
      // replaced file; the output's own is written once its entries are re-pointed).
      for (const segment of run) {
        if (segment !== first) Deno.removeSync(segment.path);
        try {
          Deno.removeSync(segment.hintPath);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
        fsyncDir(this.dir);
      }
      // Bounded by the moves: each step re-points at least one entry.
      for (let i = 0; i < sink.moves.length;) {
        i = this.#applyMoves(sink.moves, i, chunkBytes, run, output);
        if (i < sink.moves.length) await this.#yieldToRequests();
      }
      // Its hint: the kept tombstones, then the live values in key order (from the index).
      output.hint = sink.hint;
      await this.#writeHint(output);
      return output;
    } finally {
      if (this.#compactingFrom === run) this.#compactingFrom = [];
      for (const segment of run) segment.unpin();
      if (!committed) {
        try {
          out.close();
        } catch {
          // already closed
        }
        try {
          Deno.removeSync(tmpPath);
        } catch {
          // never created
        }
      }
    }
  }

  /**
   * Re-points index entries at their copies in `output`, from move `from` on, for about
   * `budgetBytes` of entries; returns the next move. An entry changed since it was copied (a
   * newer write, a delete; a slot freed and reused points into the active segment) is left alone
   * and its copy counted as garbage.
   */
  #applyMoves(
    moves: MoveList,
    from: number,
    budgetBytes: number,
    run: Segment[],
    output: Segment,
  ): number {
    const index = this.#index;
    let spent = 0;
    let i = from;
    for (; i < moves.length && spent < budgetBytes; i++) {
      const slot = moves.slot(i);
      const length = moves.valueLength(i);
      const bytes = entryBytes(moves.keyLength(i), length);
      spent += bytes;
      if (
        index.segmentOf(slot) === run[moves.runIndex(i)] &&
        index.offsetOf(slot) === moves.fromOffset(i)
      ) {
        index.update(slot, output, moves.offset(i), length);
      } else {
        output.liveBytes -= bytes;
      }
    }
    return i;
  }

  /**
   * Copies the live records of `segment` from file offset `from` into a compaction output,
   * stopping after the record that reaches `stopAt`; returns where the next step starts.
   *
   * @throws {CorruptionError} a damaged record (compaction then leaves the run as it was)
   */
  #copyLive(
    segment: Segment,
    runIndex: number,
    from: number,
    stopAt: number,
    isOldest: boolean,
    sink: CompactionSink,
  ): number {
    const index = this.#index;
    const output = sink.output;
    const live: {
      slot: number;
      fromOffset: number;
      length: number;
      keyStart: number;
      keyLength: number;
      valueStart: number;
    }[] = [];
    const result = scanSegment(
      segment.reader(),
      segment.path,
      segment.sizeBytes,
      from,
      (buf, view, at, length, fileOffset) => {
        const lsn = recordLsn(view, at);
        const epoch = recordEpoch(view, at);
        const op = recordOp(buf, at);
        if (op === Op.DELETE) {
          const keyLength = recordKeyLength(view, at);
          const keyStart = at + RECORD_HEADER_BYTES;
          // A tombstone is needed while an older segment may hold a value of its key.
          if (isOldest || index.findBytes(buf, keyStart, keyStart + keyLength) !== NO_SLOT) return;
          sink.append(buf, at, length, lsn, epoch);
          sink.hint.add(HintKind.TOMBSTONE, buf, keyStart, keyLength, 0, 0);
          output.tombstoneBytes += length;
          return;
        }
        live.length = 0;
        let pairs = 0;
        forEachKey(buf, view, at, (keyStart, keyLength, valueStart) => {
          pairs++;
          const slot = index.findBytes(buf, keyStart, keyStart + keyLength);
          const fromOffset = fileOffset + (valueStart - at);
          if (
            slot !== NO_SLOT && index.segmentOf(slot) === segment &&
            index.offsetOf(slot) === fromOffset
          ) {
            const length = index.lengthOf(slot);
            live.push({ slot, fromOffset, length, keyStart, keyLength, valueStart });
          }
        });
        if (live.length === 0) return;
        let base: number;
        if (live.length === pairs) {
          base = sink.append(buf, at, length, lsn, epoch) - at;
        } else {
          const kept: [Uint8Array, Uint8Array][] = live.map((entry) => [
            buf.subarray(entry.keyStart, entry.keyStart + entry.keyLength),
            buf.subarray(entry.valueStart, entry.valueStart + entry.length),
          ]);
          const recordOffset = sink.encodeBatch(kept, lsn, epoch, recordFlags(buf, at));
          // Re-encoded: value offsets follow the batch layout.
          let offset = recordOffset + RECORD_HEADER_BYTES;
          for (const entry of live) {
            offset += PAIR_HEADER_BYTES + entry.keyLength;
            entry.valueStart = offset;
            offset += entry.length;
          }
          base = 0;
        }
        for (const entry of live) {
          const offset = base + entry.valueStart;
          sink.moves.push(
            entry.slot,
            runIndex,
            entry.fromOffset,
            offset,
            entry.length,
            entry.keyLength,
          );
          output.liveBytes += entryBytes(entry.keyLength, entry.length);
        }
      },
      stopAt,
    );
    if (result.damage !== "none") {
      throw new CorruptionError(
        segment.path,
        result.validEnd,
        `${result.reason} in a sealed segment, found by compaction`,
      );
    }
    return result.validEnd;
  }

  // ---------------------------------------------------------------- reads

  /** The `length` value bytes at `offset` of `segment` (or of the pending buffer beyond it). */
  #readValue(segment: Segment, offset: number, length: number): Uint8Array {
    const out = this.#values.take(length);
    if (length === 0) return out;
    if (segment === this.#active && offset >= segment.sizeBytes) {
      const start = offset - segment.sizeBytes;
      out.set(this.#pending.subarray(start, start + length));
      return out;
    }
    const got = readAtSync(segment.reader(), offset, out);
    if (got !== length) {
      throw new CorruptionError(
        segment.path,
        offset,
        `value of ${length} bytes ends past the end of the file (read ${got})`,
      );
    }
    return out;
  }

  /** The bytes of a key string, carved like values (see `value_blocks.ts`). */
  #keyBytes(key: string): Uint8Array {
    const bytes = this.#values.take(key.length);
    for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
    return bytes;
  }

  #readSlot(slot: number): Uint8Array {
    const index = this.#index;
    return this.#readValue(index.segmentOf(slot), index.offsetOf(slot), index.lengthOf(slot));
  }

  /**
   * The value of `key`, or undefined. The bytes are the caller's; a small value shares its
   * `ArrayBuffer` with other values read (see `value_blocks.ts`), so use the array, not `.buffer`.
   */
  read(key: Bytes): Uint8Array | undefined {
    if (this.#closed) throw new StoreClosedError(this.dir);
    const slot = slotOf(this.#index, key);
    return slot === NO_SLOT ? undefined : this.#readSlot(slot);
  }

  /** Whether `key` exists. */
  has(key: Bytes): boolean {
    if (this.#closed) throw new StoreClosedError(this.dir);
    return slotOf(this.#index, key) !== NO_SLOT;
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
    const slots = [
      ...index.range(bytesToKey(toBytes(start)), bytesToKey(toBytes(end)), options.limit),
    ];
    if (options.maxBytes !== undefined) {
      // Sizes come from the index, so an oversized range is refused before any value is read.
      let bytes = 0;
      for (const slot of slots) {
        bytes += index.keyOf(slot).length + index.lengthOf(slot);
        if (bytes > options.maxBytes) throw new RangeTooLargeError(options.maxBytes);
      }
    }
    return slots.map((slot) => [this.#keyBytes(index.keyOf(slot)), this.#readSlot(slot)]);
  }

  /** Number of live keys. */
  get size(): number {
    return this.#index.size;
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
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i !== -1) this.#listeners.splice(i, 1);
    };
  }

  /** Epoch of the last record in the log (0 for an empty log). */
  get lastEpoch(): number {
    return this.#lastEpoch;
  }

  /** The log holds every record after this LSN (compaction or a full sync dropped some before). */
  get oldestCompleteLsn(): number {
    let lsn = 0;
    for (const segment of this.#segments) lsn = Math.max(lsn, segment.header.coveredLastLsn);
    return lsn;
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
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
    let expected = this.#lastLsn;
    for (let at = 0; at < records.length;) {
      const length = checkRecord(records, view, at, records.length);
      if (length < 0) {
        throw new ReplicationStreamError(
          `replicated record at byte ${at} of ${records.length} is damaged: ${checkReason(length)}`,
        );
      }
      const lsn = recordLsn(view, at);
      if (lsn > expected) {
        if (lsn !== expected + 1) {
          throw new ReplicationStreamError(
            `replicated record has LSN ${lsn} but this log continues at LSN ${expected + 1}`,
          );
        }
        expected = lsn;
      }
      at += length;
    }
    for (let at = 0; at < records.length;) {
      const length = recordLength(view, at);
      const lsn = recordLsn(view, at);
      if (lsn > this.#lastLsn) this.#appendEncoded(records, view, at, length, lsn);
      at += length;
    }
    return this.#lastLsn;
  }

  /** Appends one checked record verbatim and applies it to the index. */
  #appendEncoded(
    source: Uint8Array,
    sourceView: DataView,
    from: number,
    length: number,
    lsn: number,
  ): void {
    const at = this.#reserve(length);
    const pending = this.#pending;
    pending.set(source.subarray(from, from + length), at);
    this.#lastLsn = lsn;
    this.#appended(lsn, at, recordEpoch(sourceView, from));
    const segment = this.#active;
    const base = segment.sizeBytes; // file offset of pending[0]
    const op = recordOp(pending, at);
    forEachKey(pending, this.#pendingView, at, (keyStart, keyLength, valueStart, valueLength) => {
      const keyEnd = keyStart + keyLength;
      if (op === Op.DELETE) {
        segment.hint?.add(HintKind.TOMBSTONE, pending, keyStart, keyLength, 0, 0);
        segment.tombstoneBytes += deleteRecordBytes(keyLength);
        const slot = this.#index.findBytes(pending, keyStart, keyEnd);
        if (slot !== NO_SLOT) unindexSlot(this.#index, slot);
      } else {
        indexValue(this.#index, pending, keyStart, keyEnd, segment, base + valueStart, valueLength);
      }
    });
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
    return this.#readLog(afterLsn, maxChunkBytes);
  }

  async *#readLog(afterLsn: number, maxChunkBytes: number): AsyncGenerator<Uint8Array> {
    let expected = afterLsn;
    let nextId = 0;
    // Bounded by the segments that exist: each pass reads one segment with a higher id.
    while (!this.#closed) {
      const segment = this.#segments.find((s) => s.id >= nextId && !s.retired);
      if (segment === undefined) return;
      nextId = segment.id + 1;
      if (segment.lastLsn !== -1 && segment.lastLsn <= afterLsn) continue;
      segment.pin();
      const file = segment.reader();
      try {
        let offset = SEGMENT_HEADER_BYTES;
        // Bounded by the segment's durable end: each pass consumes at least one record.
        while (true) {
          const end = segment === this.#durableSegment
            ? this.#durableOffset
            : segment.id < this.#durableSegment.id
            ? segment.sizeBytes
            : offset;
          if (offset >= end || this.#closed) break;
          const want = Math.min(end - offset, maxChunkBytes);
          let buf = new Uint8Array(want);
          readAtSync(file, offset, buf);
          let view = new DataView(buf.buffer);
          let used = 0;
          if (checkRecord(buf, view, 0, buf.length) < 0) {
            // A single record larger than the chunk: read it whole.
            const length = recordLength(view, 0);
            buf = new Uint8Array(length);
            readAtSync(file, offset, buf);
            view = new DataView(buf.buffer);
          }
          let keepFrom = -1;
          while (used < buf.length) {
            const length = checkRecord(buf, view, used, buf.length);
            if (length < 0) break;
            const lsn = recordLsn(view, used);
            if (lsn > expected) {
              if (lsn !== expected + 1 && (recordFlags(buf, used) & Flag.LOCAL) === 0) {
                throw new LogGapError(afterLsn, lsn - 1);
              }
              expected = lsn;
              if (keepFrom === -1) keepFrom = used;
            } else if (keepFrom !== -1) {
              expected = Math.max(expected, lsn);
            }
            used += length;
          }
          if (used === 0) {
            throw new CorruptionError(segment.path, offset, "unreadable record while reading log");
          }
          if (keepFrom !== -1) yield buf.subarray(keepFrom, used);
          offset += used;
        }
      } finally {
        segment.unpin();
      }
      if (segment === this.#durableSegment) return;
    }
  }

  /**
   * A consistent view of every pair as of {@link StoreSnapshot.lsn} (durable before this
   * resolves), for a replica's full sync. The segments it reads are pinned (compaction leaves
   * them) until `release()`. Writes continue meanwhile and are not seen by the snapshot.
   */
  async snapshot(): Promise<StoreSnapshot> {
    if (this.#closed || this.#closing) throw new StoreClosedError(this.dir);
    const view = this.#index.snapshot();
    const lsn = this.#lastLsn;
    // Entries may still point into a compacted run (see #compactRun): pin those segments too.
    const pinned = [...this.#segments, ...this.#compactingFrom];
    for (const segment of pinned) segment.pin();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      view.release();
      for (const segment of pinned) segment.unpin();
    };
    try {
      await this.whenDurable(lsn);
    } catch (error) {
      release();
      throw error;
    }
    const keyBytes = (key: string) => this.#keyBytes(key);
    const readValue = (location: Location<Segment>) =>
      this.#readValue(location.segment, location.offset, location.length);
    const closed = () => this.#closed;
    return {
      lsn,
      keys: view.size,
      release,
      entries: (async function* () {
        for (const slot of view.sorted.slots()) {
          if (released || closed()) throw new StorageError("snapshot used after release or close");
          const key = keyBytes(view.keyOf(slot));
          yield [key, readValue(view.locationOf(slot))] as [Uint8Array, Uint8Array];
        }
      })(),
    };
  }

  /**
   * Starts replacing this store's whole contents with a master's snapshot at `lsn` (a replica's
   * full sync). Writes are refused until it finishes; reads see the old contents until then. The
   * new contents go to staging files; `finish()` commits them atomically (a marker file), so a
   * crash at any point leaves either the old store or the new one, never a mix.
   */
  async beginFullSync(lsn: number, epoch = 0): Promise<FullSync> {
    this.#checkWritable();
    if (this.#compaction) await this.#compaction.catch(() => undefined);
    this.#flush();
    await this.whenDurable(this.#lastLsn);
    this.#checkWritable();
    const sync = new FullSync(this, lsn, this.#active.id + 1, epoch);
    this.#fullSync = sync;
    return sync;
  }

  /** @internal Called by {@link FullSync.finish}: swaps in the staged contents. */
  commitFullSync(sync: FullSync, staged: Segment[], index: KeyIndex<Segment>): void {
    assert.equal(this.#fullSync, sync);
    const markerPath = `${this.dir}/${FULL_SYNC_MARKER_NAME}`;
    const markerTmp = temporaryPathOf(markerPath);
    Deno.writeTextFileSync(markerTmp, `${sync.baseId}\n`, { mode: DATA_FILE_MODE });
    const marker = Deno.openSync(markerTmp, { read: true, write: true });
    marker.syncDataSync();
    marker.close();
    Deno.renameSync(markerTmp, markerPath);
    fsyncDir(this.dir); // commit point
    for (const segment of staged) Deno.renameSync(stagedPathOf(segment.path), segment.path);
    fsyncDir(this.dir);
    const old = this.#segments;
    for (const segment of old) {
      Deno.removeSync(segment.path);
      try {
        Deno.removeSync(segment.hintPath);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    fsyncDir(this.dir);
    const lastId = staged.length > 0 ? staged[staged.length - 1].id : sync.baseId - 1;
    const active = createSegmentFile(this.dir, lastId + 1, sync.lsn, SegmentFlag.FULL_SYNC);
    Deno.removeSync(markerPath);
    fsyncDir(this.dir);
    if (this.#syncRunning) this.#retiredWriters.push(this.#writer);
    else this.#writer.close();
    this.#openWriter(active);
    for (const segment of old) segment.retire();
    this.#segments = [...staged, active];
    this.#active = active;
    this.#index = index;
    this.#lastLsn = this.#writtenLsn = sync.lsn;
    this.#lastEpoch = this.epoch = sync.epoch;
    this.#markDurable(this.#appendedSeq, sync.lsn, active, active.sizeBytes);
    this.#durableLsn = sync.lsn;
    this.#fullSync = undefined;
    for (const segment of staged) this.#background(this.#writeHint(segment));
    log.info("full sync finished: {keys} keys at LSN {lsn}", { keys: index.size, lsn: sync.lsn });
  }

  /** @internal Called by {@link FullSync.abort}. */
  endFullSync(sync: FullSync): void {
    if (this.#fullSync === sync) this.#fullSync = undefined;
  }

  /** @internal Creates a staging segment file for a full sync. */
  createStagingSegment(id: number, lsn: number): [Segment, Deno.FsFile] {
    const path = segmentPath(this.dir, id);
    const header = newSegmentHeader(id, lsn, SegmentFlag.FULL_SYNC);
    const file = Deno.openSync(stagedPathOf(path), {
      write: true,
      create: true,
      truncate: true,
      mode: DATA_FILE_MODE,
    });
    writeAllSync(file, encodeSegmentHeader(header));
    const segment = new Segment(id, path, header, SEGMENT_HEADER_BYTES);
    segment.hint = new HintBuilder();
    segment.hintComplete = true; // every pair is added as it is put (in key order)
    return [segment, file];
  }

  // ---------------------------------------------------------------- stats and close

  /** Figures about the store. */
  stats(): StoreStats {
    let liveBytes = 0;
    let diskBytes = 0;
    for (const segment of this.#segments) {
      liveBytes += segment.liveBytes;
      diskBytes += segment.sizeBytes;
    }
    const oldestCompleteLsn = this.oldestCompleteLsn;
    const headers = this.#segments.length * SEGMENT_HEADER_BYTES;
    return {
      keys: this.#index.size,
      liveBytes,
      garbageBytes: Math.max(0, diskBytes - headers - liveBytes),
      diskBytes,
      segments: this.#segments.length,
      lastLsn: this.#lastLsn,
      durableLsn: this.#durableLsn,
      oldestCompleteLsn,
      fsync: this.options.fsync,
      epoch: this.epoch,
      compactions: this.#compactions,
      compactedBytes: this.#compactedBytes,
      failure: this.#failure?.message,
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
    this.#fullSync?.closeFiles();
    if (this.#compaction) await this.#compaction.catch(() => {});
    await Promise.all(this.#tasks);
    if (!this.#failure) {
      try {
        this.#flush();
      } catch {
        // recorded as the failure
      }
    }
    if (this.#syncRunning) await this.#syncRunning;
    if (!this.#failure) {
      try {
        this.#trimZeros();
        this.#writer.syncDataSync();
        const active = this.#active;
        this.#synced(this.#writtenSeq);
        this.#markDurable(this.#writtenSeq, this.#writtenLsn, active, active.sizeBytes);
      } catch (error) {
        this.#fail(error);
      }
    }
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(this.#failure ?? new StoreClosedError(this.dir));
    }
    this.#nextDurable?.reject(this.#failure ?? new StoreClosedError(this.dir));
    this.#nextDurable = undefined;
    this.#closeHandles();
  }

  #closeHandles(): void {
    if (this.#everysecTimer !== undefined) clearInterval(this.#everysecTimer);
    for (const segment of this.#segments) segment.closeReader();
    for (const file of this.#retiredWriters.splice(0)) file.close();
    try {
      this.#writer?.close();
    } catch {
      // already closed
    }
    this.#lockFile.unlockSync();
    this.#lockFile.close();
  }
}

/**
 * One full sync in progress on a replica (from {@link KVStore.beginFullSync}): `put` the
 * snapshot's pairs, then `finish()` to swap them in atomically, or `abort()`.
 */
export class FullSync {
  #index = new KeyIndex<Segment>();
  #staged: Segment[] = [];
  #file: Deno.FsFile | undefined;
  #segment: Segment | undefined;
  #buf = new Uint8Array(1024 * 1024);
  #view = new DataView(this.#buf.buffer);
  #used = 0;
  #done = false;

  constructor(
    private readonly store: KVStore,
    /** The snapshot's LSN: the store's last LSN once finished. */
    readonly lsn: number,
    /** First staging segment id. */
    readonly baseId: number,
    /** The snapshot's epoch: its records carry it, and the store's last epoch becomes it. */
    readonly epoch = 0,
  ) {
    this.#index.deferSorting();
  }

  #writeOut(): void {
    const file = this.#file as Deno.FsFile;
    writeAllSync(file, this.#buf.subarray(0, this.#used));
    (this.#segment as Segment).sizeBytes += this.#used;
    this.#used = 0;
  }

  #seal(): void {
    if (this.#file === undefined) return;
    this.#writeOut();
    this.#file.syncDataSync();
    this.#file.close();
    this.#file = undefined;
  }

  /** Adds one pair of the snapshot. */
  put(key: Uint8Array, value: Uint8Array): void {
    if (this.#done) throw new StorageError("full sync already finished or aborted");
    const { maxKeyBytes, maxValueBytes } = this.store.options;
    if (key.length > maxKeyBytes) throw new KeyTooLargeError(key.length, maxKeyBytes);
    if (value.length > maxValueBytes) throw new ValueTooLargeError(value.length, maxValueBytes);
    const length = putRecordBytes(key.length, value.length);
    const [segment, at] = this.#reserve(length);
    encodePut(this.#buf, this.#view, at, this.lsn, this.epoch, Flag.SNAPSHOT, key, value);
    this.#used += length;
    const offset = segment.sizeBytes + at + RECORD_HEADER_BYTES + key.length;
    segment.noteLsn(this.lsn);
    segment.lastEpoch = this.epoch;
    segment.hint?.add(HintKind.VALUE, key, 0, key.length, offset, value.length);
    indexValue(this.#index, key, 0, key.length, segment, offset, value.length);
  }

  /**
   * An empty BATCH record in the snapshot's epoch at its LSN, last in the staged log: the store's
   * epoch then survives a restart even when the snapshot holds no pair.
   */
  #putEpochMarker(): void {
    const length = batchRecordBytes([]);
    const [segment, at] = this.#reserve(length);
    encodeBatch(this.#buf, this.#view, at, this.lsn, this.epoch, Flag.SNAPSHOT, []);
    this.#used += length;
    segment.noteLsn(this.lsn);
    segment.lastEpoch = this.epoch;
  }

  /** Room for a record of `length` bytes: its staging segment and offset in the buffer. */
  #reserve(length: number): [Segment, number] {
    const { segmentSizeBytes } = this.store.options;
    let segment = this.#segment;
    if (
      segment === undefined || (segment.sizeBytes + this.#used + length > segmentSizeBytes &&
        segment.sizeBytes + this.#used > SEGMENT_HEADER_BYTES)
    ) {
      this.#seal();
      const id = this.baseId + this.#staged.length;
      [segment, this.#file] = this.store.createStagingSegment(id, this.lsn);
      this.#segment = segment;
      this.#staged.push(segment);
    }
    if (this.#used + length > this.#buf.length) {
      this.#writeOut();
      if (length > this.#buf.length) {
        this.#buf = new Uint8Array(length);
        this.#view = new DataView(this.#buf.buffer);
      }
    }
    return [segment, this.#used];
  }

  /** @internal Closes the staging file (the store is closing; recovery discards the files). */
  closeFiles(): void {
    this.#done = true;
    this.#file?.close();
    this.#file = undefined;
  }

  /** Commits: the store holds exactly the pairs put, at {@link lsn}. */
  finish(): Promise<void> {
    if (this.#done) throw new StorageError("full sync already finished or aborted");
    this.#done = true;
    try {
      if (this.epoch > 0) this.#putEpochMarker();
      this.#seal();
      this.#index.rebuildSorted();
      this.store.commitFullSync(this, this.#staged, this.#index);
    } catch (error) {
      this.store.endFullSync(this);
      throw error;
    }
    return Promise.resolve();
  }

  /** Abandons the sync: staging files are removed and the old contents stay. */
  abort(): Promise<void> {
    if (this.#done) return Promise.resolve();
    this.#done = true;
    this.#file?.close();
    for (const segment of this.#staged) {
      try {
        Deno.removeSync(stagedPathOf(segment.path));
      } catch {
        // never written
      }
    }
    this.store.endFullSync(this);
    return Promise.resolve();
  }
}
