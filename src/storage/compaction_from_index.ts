/**
 * Compaction of a mostly dead segment through the index: instead of reading and checking every
 * record of the file to find the few still live (`compaction_copy.ts`), walk the index for the
 * slots that point into the segment and copy just their records.
 *
 * Hot keys overwritten again and again (counters, sessions) leave a sealed segment holding
 * millions of dead records and a few thousand live ones: a scan spends its time on the CRCs and
 * lookups of records it then drops (9% of an `INCR` load's server CPU, docs/benchmarks.md). A walk
 * costs a read of each index slot, so it is taken when the segment's live bytes are at most a
 * quarter of its file and the index has at most one slot per {@link BYTES_PER_SLOT} bytes of it.
 *
 * It needs to know where each live record starts, and a slot tells that only when every record
 * of the segment is a PUT or a PUT_EXPIRING (`Segment.onlyPuts`): the value is then preceded by
 * the header, the expiry time when the key has one, and the key. Each record is read and checked
 * (header, CRC, that the index still points at its value) before it is copied as it is; a record
 * that fails is corruption, and compaction leaves the run as it was, as a scan would.
 *
 * Records are copied in file order, so LSNs stay in order: the slots found are bucketed by the
 * window of `compactionChunkBytes` their record starts in, and each window's few are sorted when
 * it is copied (sorting them all at once would hold the event loop ~50 ms for 400,000).
 *
 * @module
 */
import type { CompactionSink } from "./compaction_copy.ts";
import { CorruptionError } from "./errors.ts";
import { entryBytes } from "./index_entries.ts";
import { type KeyIndex, NO_SLOT } from "./key_index.ts";
import { readAtSync } from "./read_at.ts";
import {
  Check,
  checkReason,
  checkRecord,
  EXPIRY_BYTES,
  Op,
  RECORD_HEADER_BYTES,
  recordEpoch,
  recordKeyLength,
  recordLength,
  recordLsn,
  recordOp,
} from "./record.ts";
import { type Segment, SEGMENT_HEADER_BYTES } from "./segment.ts";

/** Segment bytes per index slot below which walking the index beats scanning the file. */
const BYTES_PER_SLOT = 8;
/** Live bytes of a segment at most this share of its file: a scan would mostly read garbage. */
const MOSTLY_DEAD_SHARE = 0.25;

/**
 * Whether compaction finds the live records of `segment` through `index` rather than by a scan.
 *
 * @example
 * ```ts
 * import { copiesFromIndex } from "./compaction_from_index.ts";
 * import { KeyIndex } from "./key_index.ts";
 * import type { Segment } from "./segment.ts";
 * const segment = { onlyPuts: true, liveBytes: 1000, sizeBytes: 64 << 20 } as Segment;
 * console.log(copiesFromIndex(new KeyIndex<Segment>(), segment)); // true
 * ```
 */
export function copiesFromIndex(index: KeyIndex<Segment>, segment: Segment): boolean {
  return segment.onlyPuts && segment.liveBytes <= segment.sizeBytes * MOSTLY_DEAD_SHARE &&
    index.capacity * BYTES_PER_SLOT <= segment.sizeBytes;
}

/**
 * Copies the live records of one segment of a run, found through the index: {@link collect}
 * over every slot, then {@link copyWindow} over every window, each a bounded step.
 */
export class IndexedCopier {
  /** File offsets of the live records' starts, in the order the walk found them. */
  #found = new Uint32Array(1024);
  #count = 0;
  /** After {@link #arrange}: the starts grouped by window, and where each window's group begins. */
  #byWindow = new Uint32Array(0);
  #windowStart = new Uint32Array(1);
  /** Bytes of the file in memory, and the file offset of their first byte. */
  #buf: Uint8Array;
  #view: DataView;
  #bufFrom = 0;
  #bufBytes = 0;
  /** Windows of the file, each copied in one step. */
  readonly windows: number;

  constructor(
    readonly index: KeyIndex<Segment>,
    readonly segment: Segment,
    readonly runIndex: number,
    readonly sink: CompactionSink,
    readonly windowBytes: number,
  ) {
    this.windows = Math.ceil(segment.sizeBytes / windowBytes);
    this.#buf = new Uint8Array(Math.min(windowBytes, segment.sizeBytes));
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Records found by the walk so far. */
  get found(): number {
    return this.#count;
  }

  /** Notes the live records of the slots in `[from, to)`; returns where the next walk starts. */
  collect(from: number, to: number): number {
    const index = this.index;
    return index.forEachSlotIn(this.segment, from, to, (slot) => {
      const expiryBytes = index.expiryOf(slot) === 0 ? 0 : EXPIRY_BYTES;
      const keyLength = index.keyOf(slot).length;
      this.#add(index.offsetOf(slot) - keyLength - expiryBytes - RECORD_HEADER_BYTES);
    });
  }

  #add(start: number): void {
    if (this.#count === this.#found.length) {
      const grown = new Uint32Array(this.#found.length * 2);
      grown.set(this.#found);
      this.#found = grown;
    }
    this.#found[this.#count++] = start;
  }

  /** Groups the starts found by window (a counting sort: linear, in one step). */
  #arrange(): void {
    const windows = this.windows;
    const begin = new Uint32Array(windows + 1);
    const found = this.#found;
    const windowBytes = this.windowBytes;
    for (let i = 0; i < this.#count; i++) begin[Math.floor(found[i] / windowBytes) + 1]++;
    for (let w = 0; w < windows; w++) begin[w + 1] += begin[w];
    const next = begin.slice(0, windows);
    const byWindow = new Uint32Array(this.#count);
    for (let i = 0; i < this.#count; i++) {
      byWindow[next[Math.floor(found[i] / windowBytes)]++] = found[i];
    }
    this.#byWindow = byWindow;
    this.#windowStart = begin;
    this.#found = new Uint32Array(0);
  }

  /**
   * Copies the live records that start in window `w` (the first call arranges what the walk
   * found), in file order.
   *
   * @throws {CorruptionError} a damaged record, or one that is not where the index says
   */
  copyWindow(w: number): void {
    if (w === 0) this.#arrange();
    const starts = this.#byWindow.subarray(this.#windowStart[w], this.#windowStart[w + 1]);
    starts.sort();
    for (const start of starts) this.#copyRecord(start);
  }

  #copyRecord(start: number): void {
    const { index, segment, sink } = this;
    if (start < SEGMENT_HEADER_BYTES || start + RECORD_HEADER_BYTES > segment.sizeBytes) {
      this.#corrupt(start, "a live value's record would start outside the file");
    }
    let at = this.#cover(start, RECORD_HEADER_BYTES);
    let length = checkRecord(this.#buf, this.#view, at, this.#bufBytes);
    if (length === Check.SHORT && this.#bufBytes - at >= RECORD_HEADER_BYTES) {
      at = this.#cover(start, Math.min(recordLength(this.#view, at), segment.sizeBytes - start));
      length = checkRecord(this.#buf, this.#view, at, this.#bufBytes);
    }
    if (length <= 0) this.#corrupt(start, checkReason(length));
    const buf = this.#buf;
    const view = this.#view;
    const op = recordOp(buf, at);
    if (op !== Op.PUT && op !== Op.PUT_EXPIRING) {
      this.#corrupt(start, `op ${op} where the index expects a put`);
    }
    const keyLength = recordKeyLength(view, at);
    const keyStart = at + RECORD_HEADER_BYTES + (op === Op.PUT ? 0 : EXPIRY_BYTES);
    const valueStart = keyStart + keyLength;
    const fromOffset = start + (valueStart - at);
    const slot = index.findBytes(buf, keyStart, valueStart);
    // Written again or deleted since the walk: nothing to keep.
    if (slot === NO_SLOT || index.segmentOf(slot) !== segment) return;
    if (index.offsetOf(slot) !== fromOffset) return;
    const valueLength = length - (valueStart - at);
    const recordOffset = sink.append(buf, at, length, recordLsn(view, at), recordEpoch(view, at));
    sink.moves.push(
      slot,
      this.runIndex,
      fromOffset,
      recordOffset + (valueStart - at),
      valueLength,
      keyLength,
    );
    sink.output.liveBytes += entryBytes(keyLength, valueLength);
  }

  /**
   * Makes `[start, start + bytes)` of the file readable in {@link #buf} (reading a window from
   * `start` when it is not); returns where `start` is in it.
   */
  #cover(start: number, bytes: number): number {
    if (start >= this.#bufFrom && start + bytes <= this.#bufFrom + this.#bufBytes) {
      return start - this.#bufFrom;
    }
    const want = Math.max(bytes, Math.min(this.windowBytes, this.segment.sizeBytes - start));
    if (want > this.#buf.length) {
      this.#buf = new Uint8Array(want);
      this.#view = new DataView(this.#buf.buffer);
    }
    this.#bufFrom = start;
    this.#bufBytes = readAtSync(this.segment.reader(), start, this.#buf.subarray(0, want));
    return 0;
  }

  #corrupt(offset: number, reason: string): never {
    throw new CorruptionError(
      this.segment.path,
      offset,
      `${reason} in a sealed segment, found by compaction through the index`,
    );
  }
}
