/**
 * Full sync: replacing a store's whole contents with a snapshot at one LSN (a replica that fell
 * too far behind or diverged, or a backup's restore). The pairs go to staged segment files
 * (`NNNNNNNNNNNN.log.sync`, SNAPSHOT records at the snapshot's LSN, in key order) while the old
 * contents stay in place and readable. `finish()` commits: it writes the `FULLSYNC` marker (the
 * commit point), renames the staged files into the log, deletes the old segments, starts a new
 * active segment whose header says the log is complete only after the snapshot's LSN, and removes
 * the marker. A crash before the marker leaves the old store (recovery removes the staged files);
 * a crash after it is finished by recovery ({@link settleFullSync}): never a mix of the two.
 *
 * @module
 */
import { getLog } from "../log.ts";
import { writeAllSync } from "../write_all.ts";
import { DATA_FILE_MODE, fsyncDir, writeFileDurablySync } from "./durable_file.ts";
import { KeyTooLargeError, StorageError, ValueTooLargeError } from "./errors.ts";
import {
  FULL_SYNC_MARKER_NAME,
  parseSegmentOrHintFileName,
  parseStagedSegmentFileName,
  segmentPath,
  stagedPathOf,
  unstagedPathOf,
} from "./file_names.ts";
import { HintBuilder, HintKind } from "./hint.ts";
import { indexValue } from "./index_entries.ts";
import { KeyIndex } from "./key_index.ts";
import {
  batchRecordBytes,
  encodeBatch,
  encodePut,
  EXPIRY_BYTES,
  Flag,
  putExpiringRecordBytes,
  putRecordBytes,
  RECORD_HEADER_BYTES,
} from "./record.ts";
import {
  createSegmentFile,
  encodeSegmentHeader,
  newSegmentHeader,
  Segment,
  SEGMENT_HEADER_BYTES,
  SegmentFlag,
} from "./segment.ts";
import type { StoreOptions } from "./store_options.ts";

const log = getLog("storage");
const STAGING_BUFFER_BYTES = 1024 * 1024;

/** The contents a committed full sync leaves: the store takes them over. */
export interface FullSyncContents {
  /** The staged segments, now in the log, then the new active segment. */
  staged: Segment[];
  active: Segment;
  index: KeyIndex<Segment>;
  /** The snapshot's LSN and epoch: the store's last LSN and epoch from now on. */
  lsn: number;
  epoch: number;
}

/** What a full sync needs of the store it replaces the contents of. */
export interface FullSyncTarget {
  readonly dir: string;
  readonly options: Pick<StoreOptions, "maxKeyBytes" | "maxValueBytes" | "segmentSizeBytes">;
  /** The segments the new contents replace (deleted at the commit). */
  replaced(): readonly Segment[];
  /** Takes over the committed contents (their files are in place). */
  install(contents: FullSyncContents): void;
  /** The sync ended without committing (aborted, or its commit failed). */
  end(): void;
}

/**
 * The staged log of a full sync: its segment files, written through a 1 MiB buffer, and the
 * index of what they hold.
 */
export class StagedLog {
  readonly index = new KeyIndex<Segment>();
  readonly segments: Segment[] = [];
  #file: Deno.FsFile | undefined;
  #segment: Segment | undefined;
  #buf = new Uint8Array(STAGING_BUFFER_BYTES);
  #view = new DataView(this.#buf.buffer);
  #used = 0;
  #closed = false;

  constructor(
    readonly target: FullSyncTarget,
    readonly lsn: number,
    readonly baseId: number,
    readonly epoch: number,
  ) {
    this.index.deferSorting();
  }

  /** Whether its files were closed ({@link closeFiles}). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Adds one pair as a SNAPSHOT PUT record (a PUT_EXPIRING one when `expiresAtMs` is above 0:
   * the key keeps its expiry time).
   */
  put(key: Uint8Array, value: Uint8Array, expiresAtMs = 0): void {
    const expiring = expiresAtMs > 0;
    const length = expiring
      ? putExpiringRecordBytes(key.length, value.length)
      : putRecordBytes(key.length, value.length);
    const [segment, at] = this.#reserve(length);
    const flag = Flag.SNAPSHOT;
    encodePut(this.#buf, this.#view, at, this.lsn, this.epoch, flag, key, value, expiresAtMs);
    this.#used += length;
    const keyAt = at + RECORD_HEADER_BYTES + (expiring ? EXPIRY_BYTES : 0);
    const offset = segment.sizeBytes + keyAt + key.length;
    segment.noteLsn(this.lsn);
    segment.lastEpoch = this.epoch;
    segment.hint?.add(HintKind.VALUE, key, 0, key.length, offset, value.length, expiresAtMs);
    indexValue(this.index, key, 0, key.length, segment, offset, value.length, expiresAtMs);
  }

  /**
   * An empty BATCH record in the snapshot's epoch at its LSN, last in the staged log: the store's
   * epoch then survives a restart even when the snapshot holds no pair.
   */
  putEpochMarker(): void {
    const length = batchRecordBytes([]);
    const [segment, at] = this.#reserve(length);
    encodeBatch(this.#buf, this.#view, at, this.lsn, this.epoch, Flag.SNAPSHOT, []);
    this.#used += length;
    segment.noteLsn(this.lsn);
    segment.lastEpoch = this.epoch;
  }

  /** Writes out and fsyncs the staged segment being written. */
  seal(): void {
    if (this.#file === undefined) return;
    this.#writeOut();
    this.#file.syncDataSync();
    this.#file.close();
    this.#file = undefined;
  }

  /** Closes the staging file (the store is closing: recovery discards the staged files). */
  closeFiles(): void {
    this.#closed = true;
    this.#file?.close();
    this.#file = undefined;
  }

  /** Closes the staging file and deletes every staged file. */
  removeFiles(): void {
    this.closeFiles();
    for (const segment of this.segments) {
      try {
        Deno.removeSync(stagedPathOf(segment.path));
      } catch {
        // never written
      }
    }
  }

  #writeOut(): void {
    writeAllSync(this.#file as Deno.FsFile, this.#buf.subarray(0, this.#used));
    (this.#segment as Segment).sizeBytes += this.#used;
    this.#used = 0;
  }

  /** Room for a record of `length` bytes: its staged segment and offset in the buffer. */
  #reserve(length: number): [Segment, number] {
    const { segmentSizeBytes } = this.target.options;
    let segment = this.#segment;
    if (
      segment === undefined || (segment.sizeBytes + this.#used + length > segmentSizeBytes &&
        segment.sizeBytes + this.#used > SEGMENT_HEADER_BYTES)
    ) {
      this.seal();
      segment = this.#createSegment(this.baseId + this.segments.length);
      this.#segment = segment;
      this.segments.push(segment);
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

  /** Creates staged segment `id` (its header written) and makes it the one written. */
  #createSegment(id: number): Segment {
    const path = segmentPath(this.target.dir, id);
    const header = newSegmentHeader(id, this.lsn, SegmentFlag.FULL_SYNC);
    this.#file = Deno.openSync(stagedPathOf(path), {
      write: true,
      create: true,
      truncate: true,
      mode: DATA_FILE_MODE,
    });
    writeAllSync(this.#file, encodeSegmentHeader(header));
    const segment = new Segment(id, path, header, SEGMENT_HEADER_BYTES);
    segment.hint = new HintBuilder();
    segment.hintComplete = true; // every pair is added as it is put (in key order)
    return segment;
  }
}

/**
 * One full sync in progress (from `ReplicationLog.beginFullSync`): `put` the snapshot's pairs, then
 * `finish()` to swap them in atomically, or `abort()`.
 */
export class FullSync {
  #done = false;

  constructor(readonly staging: StagedLog) {}

  /** The snapshot's LSN: the store's last LSN once finished. */
  get lsn(): number {
    return this.staging.lsn;
  }

  /** The snapshot's epoch: its records carry it, and the store's last epoch becomes it. */
  get epoch(): number {
    return this.staging.epoch;
  }

  /** Adds one pair of the snapshot (expiring at `expiresAtMs`, ms since the epoch, if above 0). */
  put(key: Uint8Array, value: Uint8Array, expiresAtMs = 0): void {
    if (this.#done || this.staging.closed) {
      throw new StorageError("full sync already finished or aborted");
    }
    const { maxKeyBytes, maxValueBytes } = this.staging.target.options;
    if (key.length > maxKeyBytes) throw new KeyTooLargeError(key.length, maxKeyBytes);
    if (value.length > maxValueBytes) throw new ValueTooLargeError(value.length, maxValueBytes);
    if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs < 0) {
      throw new StorageError(`snapshot expiry time ${expiresAtMs} is not a whole number of ms`);
    }
    this.staging.put(key, value, expiresAtMs);
  }

  /** Commits: the store holds exactly the pairs put, at {@link lsn}. */
  finish(): Promise<void> {
    if (this.#done || this.staging.closed) {
      throw new StorageError("full sync already finished or aborted");
    }
    this.#done = true;
    const staging = this.staging;
    const target = staging.target;
    try {
      if (staging.epoch > 0) staging.putEpochMarker();
      staging.seal();
      staging.index.rebuildSorted();
      const active = commitStagedFiles(target.dir, staging, target.replaced());
      target.install({
        staged: staging.segments,
        active,
        index: staging.index,
        lsn: staging.lsn,
        epoch: staging.epoch,
      });
    } catch (error) {
      target.end();
      throw error;
    }
    return Promise.resolve();
  }

  /** Abandons the sync: staging files are removed and the old contents stay. */
  abort(): Promise<void> {
    if (this.#done || this.staging.closed) return Promise.resolve();
    this.#done = true;
    this.staging.removeFiles();
    this.staging.target.end();
    return Promise.resolve();
  }
}

/**
 * The file steps of the commit: the marker (the commit point), the staged files renamed into the
 * log, the `replaced` segments and their hints deleted, a new active segment; returns it.
 */
function commitStagedFiles(
  dir: string,
  staging: StagedLog,
  replaced: readonly Segment[],
): Segment {
  const marker = new TextEncoder().encode(`${staging.baseId}\n`);
  writeFileDurablySync(dir, FULL_SYNC_MARKER_NAME, marker); // the commit point
  for (const segment of staging.segments) Deno.renameSync(stagedPathOf(segment.path), segment.path);
  fsyncDir(dir);
  for (const segment of replaced) {
    Deno.removeSync(segment.path);
    try {
      Deno.removeSync(segment.hintPath);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  fsyncDir(dir);
  const staged = staging.segments;
  const lastId = staged.length > 0 ? staged[staged.length - 1].id : staging.baseId - 1;
  const active = createSegmentFile(dir, lastId + 1, staging.lsn, SegmentFlag.FULL_SYNC);
  Deno.removeSync(`${dir}/${FULL_SYNC_MARKER_NAME}`);
  fsyncDir(dir);
  return active;
}

/**
 * At open: completes a full sync whose commit marker was written, or discards one that never
 * committed, so a crash mid full sync never leaves half-old, half-new contents.
 */
export function settleFullSync(dir: string): void {
  const markerPath = `${dir}/${FULL_SYNC_MARKER_NAME}`;
  let baseId: number | undefined;
  try {
    baseId = Number(Deno.readTextFileSync(markerPath).trim());
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const entry of Deno.readDirSync(dir)) {
    const stagedId = parseStagedSegmentFileName(entry.name);
    const path = `${dir}/${entry.name}`;
    if (stagedId === undefined) continue;
    if (baseId !== undefined && stagedId >= baseId) {
      Deno.renameSync(path, unstagedPathOf(path));
    } else {
      Deno.removeSync(path);
    }
  }
  if (baseId === undefined) return;
  for (const entry of Deno.readDirSync(dir)) {
    const id = parseSegmentOrHintFileName(entry.name) ?? NaN;
    if (id < baseId) Deno.removeSync(`${dir}/${entry.name}`);
  }
  fsyncDir(dir);
  Deno.removeSync(markerPath);
  fsyncDir(dir);
  log.info("completed an interrupted full sync (segments from {baseId})", { baseId });
}
