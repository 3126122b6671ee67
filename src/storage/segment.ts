/**
 * Segment files: the file header, the {@link Segment} the store tracks for each file, and
 * creating, opening and truncating the files. Records are read back by `segment_scan.ts`.
 *
 * ## Segment file layout
 *
 * A data directory holds segments `NNNNNNNNNNNN.log` (the segment id, 12 decimal digits; every
 * file name is in `file_names.ts`). The highest id is the active segment, the only one appended
 * to; the others are sealed (fsynced before the next one was created, so they never have a torn
 * tail). Order of ids is order of writes; compaction rewrites a run of segments into a file with
 * the first id of the run.
 *
 * ```
 * offset  size  field
 *      0     8  magic            "KVSTLOG1"
 *      8     8  segment id       u64 LE, equal to the number in the file name
 *     16     8  coveredLastLsn   u64 LE: 0 for a segment as written; for a compaction or full-sync
 *                                output, the highest LSN of what it replaced (records up to it may
 *                                have been dropped, so the log is complete only after it)
 *     24     4  flags            bit 0 COMPACTED, bit 1 FULL_SYNC
 *     28     4  nonce            random u32, new for each file; hint files name it
 *     32     4  reserved         0
 *     36     4  crc32            CRC-32 of bytes [0, 36)
 *     40     …  records          back to back (see record.ts), no padding
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { closeSync, openSync } from "node:fs";
import { crc32 } from "node:zlib";
import { getLog } from "../log.ts";
import { writeAllSync } from "../write_all.ts";
import { DATA_FILE_MODE, fsyncDir } from "./durable_file.ts";
import { CorruptionError } from "./errors.ts";
import { hintPathOf, segmentPath } from "./file_names.ts";
import { HintBuilder } from "./hint.ts";
import { readAtSync } from "./read_at.ts";
import { readU64, writeU64 } from "./record.ts";

const log = getLog("storage");

/** Bytes of the segment file header; the first record starts here. */
export const SEGMENT_HEADER_BYTES = 40;
const MAGIC = "KVSTLOG1";

/** Segment header flag bits. */
export const SegmentFlag = { COMPACTED: 1, FULL_SYNC: 2 } as const;

/** The decoded segment file header. */
export interface SegmentHeader {
  id: number;
  coveredLastLsn: number;
  flags: number;
  nonce: number;
}

/** Encodes a segment header. */
export function encodeSegmentHeader(header: SegmentHeader): Uint8Array {
  const bytes = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < MAGIC.length; i++) bytes[i] = MAGIC.charCodeAt(i);
  writeU64(view, 8, header.id);
  writeU64(view, 16, header.coveredLastLsn);
  view.setUint32(24, header.flags, true);
  view.setUint32(28, header.nonce, true);
  view.setUint32(36, crc32(bytes.subarray(0, 36)), true);
  return bytes;
}

/** Decodes and checks a segment header; throws {@link CorruptionError} naming the file. */
export function decodeSegmentHeader(bytes: Uint8Array, path: string): SegmentHeader {
  if (bytes.length < SEGMENT_HEADER_BYTES) {
    throw new CorruptionError(path, 0, `segment header is ${bytes.length} bytes, expected 40`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, SEGMENT_HEADER_BYTES);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC.charCodeAt(i)) {
      throw new CorruptionError(path, 0, "not a kvstore segment (bad magic)");
    }
  }
  if (crc32(bytes.subarray(0, 36)) !== view.getUint32(36, true)) {
    throw new CorruptionError(path, 0, "segment header CRC mismatch");
  }
  return {
    id: readU64(view, 8),
    coveredLastLsn: readU64(view, 16),
    flags: view.getUint32(24, true),
    nonce: view.getUint32(28, true),
  };
}

/** A segment header for a new file: a fresh random nonce, so no older hint matches it. */
export function newSegmentHeader(id: number, coveredLastLsn: number, flags: number): SegmentHeader {
  return { id, coveredLastLsn, flags, nonce: crypto.getRandomValues(new Uint32Array(1))[0] };
}

/** One segment file as the store tracks it. */
export class Segment {
  /** Bytes in the file (for the active segment: written to the OS, pending excluded). */
  sizeBytes: number;
  /** Accounted bytes of live entries in this segment (never negative). */
  liveBytes = 0;
  /** Bytes of tombstone records (compaction may have to keep them). */
  tombstoneBytes = 0;
  /** LSN of the first and last record (-1 when there is none). */
  firstLsn = -1;
  lastLsn = -1;
  /** Replaced by compaction or a full sync: close once nothing pins it. */
  retired = false;
  /** Epoch of the last record. */
  lastEpoch = 0;
  /**
   * Hint entries gathered while the segment is written: its tombstones only (the live values are
   * taken from the index, in key order, when the hint is written), or every entry when
   * {@link hintComplete} (a full-sync staging segment, a sealed segment recovered by a scan).
   */
  hint: HintBuilder | undefined;
  /** {@link hint} holds every entry, not only the tombstones. */
  hintComplete = false;
  /** While its hint file is being written: that write, which never rejects (compaction waits). */
  hintWriting: Promise<void> | undefined;
  /** Which of its values the index left, when it has a map (`dead_values.ts`). */
  deadValues: Uint8Array | undefined;
  /**
   * Every record is a PUT or a PUT_EXPIRING, so a live value's record starts at a place its
   * index slot tells (compaction may find a mostly dead segment's live records through the index,
   * `compaction_from_index.ts`). Known of segments created since open; false when unknown.
   */
  onlyPuts = false;
  /**
   * No record is a DELETE or a FLUSH, and no MULTI deletes a key: compaction keeps nothing of it
   * but live values, so it may check only the records that hold them
   * (`compaction_from_index.ts`). Known of segments created since open; false when unknown.
   */
  noTombstones = false;
  #pins = 0;
  #fd = -1;

  constructor(
    readonly id: number,
    readonly path: string,
    readonly header: SegmentHeader,
    sizeBytes: number,
  ) {
    this.sizeBytes = sizeBytes;
  }

  /**
   * A read-only `node:fs` descriptor, opened on first use. Every read through it is positional
   * (`pread`, see `readAtSync`), so readers never share or move a file position.
   */
  reader(): number {
    if (this.#fd === -1) this.#fd = openSync(this.path, "r");
    return this.#fd;
  }

  /** Path of its hint file. */
  get hintPath(): string {
    return hintPathOf(this.path);
  }

  /** Snapshots and readers that need this file as it is (compaction leaves it alone). */
  get pins(): number {
    return this.#pins;
  }

  /** Takes one pin. */
  pin(): void {
    this.#pins++;
  }

  /** Releases one pin; a retired segment closes its handle when the last pin goes. */
  unpin(): void {
    if (this.#pins <= 0) assert.fail(`segment ${this.id} unpinned more often than pinned`);
    this.#pins--;
    if (this.retired && this.#pins === 0) this.closeReader();
  }

  /** Marks it replaced: its handle closes now, or when the last pin goes. */
  retire(): void {
    this.retired = true;
    if (this.#pins === 0) this.closeReader();
  }

  /** Closes the read handle (reopened on next use). */
  closeReader(): void {
    if (this.#fd === -1) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }

  /** Notes a record appended or recovered in this segment (LSNs never go back in a segment). */
  noteLsn(lsn: number): void {
    if (lsn < this.lastLsn) assert.fail(`LSN ${lsn} after ${this.lastLsn} in segment ${this.id}`);
    if (this.firstLsn === -1) this.firstLsn = lsn;
    this.lastLsn = lsn;
  }
}

/**
 * Creates segment `id` in `dir` holding only its header, durably (the file and the directory are
 * synced): the next active segment, or a full sync's first one after its records.
 */
export function createSegmentFile(
  dir: string,
  id: number,
  coveredLastLsn: number,
  flags: number,
): Segment {
  const path = segmentPath(dir, id);
  const header = newSegmentHeader(id, coveredLastLsn, flags);
  const file = Deno.openSync(path, { write: true, createNew: true, mode: DATA_FILE_MODE });
  try {
    writeAllSync(file, encodeSegmentHeader(header));
    file.syncDataSync();
  } finally {
    file.close();
  }
  fsyncDir(dir);
  const segment = new Segment(id, path, header, SEGMENT_HEADER_BYTES);
  segment.hint = new HintBuilder();
  // No record yet: the log writer notes the first that is not a put, or that deletes.
  segment.onlyPuts = true;
  segment.noTombstones = true;
  return segment;
}

/**
 * Opens segment `id` of `dir` found at startup, checking its header; undefined when it is the
 * last segment and was created but never got its header (a crash at creation: the file is
 * removed, nothing was in it).
 *
 * @throws {CorruptionError} a damaged header, or a sealed segment too short for one
 */
export function openSegmentFile(dir: string, id: number, isLast: boolean): Segment | undefined {
  const path = segmentPath(dir, id);
  const size = Deno.statSync(path).size;
  if (size < SEGMENT_HEADER_BYTES) {
    if (!isLast) throw new CorruptionError(path, 0, `sealed segment is only ${size} bytes`);
    log.warn("removing unfinished segment {path} ({sizeBytes} bytes)", { path, sizeBytes: size });
    Deno.removeSync(path);
    return undefined;
  }
  const headerBytes = new Uint8Array(SEGMENT_HEADER_BYTES);
  const fd = openSync(path, "r");
  try {
    readAtSync(fd, 0, headerBytes);
  } finally {
    closeSync(fd);
  }
  const header = decodeSegmentHeader(headerBytes, path);
  if (header.id !== id) {
    throw new CorruptionError(path, 8, `header names segment ${header.id}, file name ${id}`);
  }
  return new Segment(id, path, header, size);
}

/** Cuts a segment's file to `sizeBytes`, durably (a torn tail, or zeros after the records). */
export function truncateSegmentFile(segment: Segment, sizeBytes: number): void {
  const file = Deno.openSync(segment.path, { write: true });
  try {
    file.truncateSync(sizeBytes);
    file.syncDataSync();
  } finally {
    file.close();
  }
  segment.sizeBytes = sizeBytes;
}
