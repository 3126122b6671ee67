/**
 * Compaction of a mostly dead segment through the index: instead of reading and checking every
 * record of the file to find the few still live (`compaction_copy.ts`), walk the index for the
 * slots that point into the segment and copy just their records.
 *
 * Hot keys overwritten again and again (counters, sessions, transactions) leave a sealed segment
 * holding millions of dead records and a few thousand live ones: a scan spends its time on the
 * CRCs and lookups of records it then drops (9% of an `INCR` load's server CPU and 8% of a MULTI
 * load's, docs/benchmarks.md). A walk costs a read of each index slot, so it is taken when the
 * segment's live bytes are at most a quarter of its file and the index has at most one slot per
 * {@link BYTES_PER_SLOT} bytes of it.
 *
 * Two ways, by what the segment holds:
 *
 * - **Puts only** (`Segment.onlyPuts`, {@link IndexedCopier}): a slot tells where its live record
 *   starts (the header, the expiry time when the key has one, the key, then the value the slot
 *   points at), so only those records are read. Each is checked (header, CRC, that the index
 *   still points at its value) before it is copied as it is.
 * - **Batches or MULTIs, but no tombstones** (`Segment.noTombstones`, {@link HeaderWalker}): a
 *   value inside a batch does not tell where its record starts, so the walk steps from record to
 *   record by their headers and checks (CRC) and copies only those holding a live value the index
 *   gave, through the scan's own copier. A damaged length in a record it steps over could carry
 *   it past a live value unseen, so every value the index gave must be met at an entry of a
 *   checked record, in order, and the records must end where the file does.
 *
 * Either way a record that fails is corruption, and compaction leaves the run as it was, as a
 * scan would; damage in a record holding nothing live is never read. Records are copied in file
 * order, so LSNs stay in order: the offsets found are bucketed by the window of
 * `compactionChunkBytes` they lie in, and each window's few are sorted when it is reached
 * (sorting them all at once would hold the event loop ~50 ms for 400,000).
 *
 * @module
 */
import type { LiveCopier } from "./compaction_copy.ts";
import { CorruptionError } from "./errors.ts";
import type { KeyIndex } from "./key_index.ts";
import { readAtSync } from "./read_at.ts";
import {
  Check,
  checkReason,
  checkRecord,
  EXPIRY_BYTES,
  forEachKey,
  Op,
  RECORD_HEADER_BYTES,
  recordLength,
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
  return segment.onlyPuts && mostlyDead(index, segment);
}

/**
 * Whether compaction finds the live values of `segment` through `index` and steps over the
 * records without one by their headers ({@link HeaderWalker}): a segment with batches or MULTIs
 * but nothing to keep except live values.
 */
export function walksHeaders(index: KeyIndex<Segment>, segment: Segment): boolean {
  return !segment.onlyPuts && segment.noTombstones && mostlyDead(index, segment);
}

/**
 * Whether compaction, were it to take `segment` now, would find its live values through `index`
 * ({@link copiesFromIndex} or {@link walksHeaders}): then no dead-value map of it is read.
 */
export function compactsThroughIndex(index: KeyIndex<Segment>, segment: Segment): boolean {
  return copiesFromIndex(index, segment) || walksHeaders(index, segment);
}

/** At most a quarter of `segment` is live, and `index` is small next to it. */
function mostlyDead(index: KeyIndex<Segment>, segment: Segment): boolean {
  return segment.liveBytes <= segment.sizeBytes * MOSTLY_DEAD_SHARE &&
    index.capacity * BYTES_PER_SLOT <= segment.sizeBytes;
}

/**
 * File offsets of one segment, gathered in any order and grouped by window of the file (a
 * counting sort: linear, in one step); each window's few are sorted when first asked for.
 */
class WindowedOffsets {
  #found = new Uint32Array(1024);
  #count = 0;
  #byWindow = new Uint32Array(0);
  #windowStart = new Uint32Array(1);
  /** 1 for each window already sorted. */
  #sorted = new Uint8Array(0);

  constructor(readonly windows: number, readonly windowBytes: number) {}

  get count(): number {
    return this.#count;
  }

  add(offset: number): void {
    if (this.#count === this.#found.length) {
      const grown = new Uint32Array(this.#found.length * 2);
      grown.set(this.#found);
      this.#found = grown;
    }
    this.#found[this.#count++] = offset;
  }

  /** Groups what was added by window; call once, after the last {@link add}. */
  arrange(): void {
    const { windows, windowBytes } = this;
    const begin = new Uint32Array(windows + 1);
    const found = this.#found;
    // An offset past the file (an index that disagrees with it) goes to the last window, where
    // its check fails, rather than out of the arrays unseen.
    const last = windows - 1;
    for (let i = 0; i < this.#count; i++) {
      begin[Math.min(last, Math.floor(found[i] / windowBytes)) + 1]++;
    }
    for (let w = 0; w < windows; w++) begin[w + 1] += begin[w];
    const next = begin.slice(0, windows);
    const byWindow = new Uint32Array(this.#count);
    for (let i = 0; i < this.#count; i++) {
      byWindow[next[Math.min(last, Math.floor(found[i] / windowBytes))]++] = found[i];
    }
    this.#byWindow = byWindow;
    this.#windowStart = begin;
    this.#sorted = new Uint8Array(windows);
    this.#found = new Uint32Array(0);
  }

  /** The offsets in window `w`, ascending. */
  window(w: number): Uint32Array {
    const offsets = this.#byWindow.subarray(this.#windowStart[w], this.#windowStart[w + 1]);
    if (this.#sorted[w] === 0) {
      offsets.sort();
      this.#sorted[w] = 1;
    }
    return offsets;
  }
}

/** A window of a sealed segment's file in memory, for reading records at chosen offsets. */
class SegmentWindow {
  /** Bytes of the file in memory, and the file offset of their first byte. */
  protected buf: Uint8Array;
  protected view: DataView;
  #bufFrom = 0;
  protected bufBytes = 0;
  /** Windows of the file, each one step. */
  readonly windows: number;
  /** The file offsets the walk of the index found (record starts, or values). */
  protected readonly offsets: WindowedOffsets;

  /**
   * @param copier the scan's copier of the same segment: what is live of a record found is
   * copied through it, so the walks and the scan keep and re-point exactly the same entries
   */
  constructor(
    readonly index: KeyIndex<Segment>,
    readonly segment: Segment,
    readonly copier: LiveCopier,
    readonly windowBytes: number,
  ) {
    this.windows = Math.ceil(segment.sizeBytes / windowBytes);
    this.offsets = new WindowedOffsets(this.windows, windowBytes);
    this.buf = new Uint8Array(Math.min(windowBytes, segment.sizeBytes));
    this.view = new DataView(this.buf.buffer);
  }

  /** Offsets the walk of the index found so far. */
  get found(): number {
    return this.offsets.count;
  }

  /**
   * Notes the offset {@link offsetOf} each live slot among `[from, to)` of the segment; returns
   * where the next walk starts.
   */
  collect(from: number, to: number): number {
    return this.index.forEachSlotIn(this.segment, from, to, (slot) => {
      this.offsets.add(this.offsetOf(slot));
    });
  }

  /** The file offset the walk notes for a live slot of the segment: its value's. */
  protected offsetOf(slot: number): number {
    return this.index.offsetOf(slot);
  }

  /**
   * Makes `[start, start + bytes)` of the file readable in {@link buf} (reading a window from
   * `start` when it is not); returns where `start` is in it.
   */
  protected cover(start: number, bytes: number): number {
    if (start >= this.#bufFrom && start + bytes <= this.#bufFrom + this.bufBytes) {
      return start - this.#bufFrom;
    }
    const want = Math.max(bytes, Math.min(this.windowBytes, this.segment.sizeBytes - start));
    if (want > this.buf.length) {
      this.buf = new Uint8Array(want);
      this.view = new DataView(this.buf.buffer);
    }
    this.#bufFrom = start;
    this.bufBytes = readAtSync(this.segment.reader(), start, this.buf.subarray(0, want));
    return 0;
  }

  /**
   * Reads and checks (header and CRC) the record at file offset `start`; returns where it is in
   * {@link buf} and its length.
   *
   * @throws {CorruptionError} it is damaged, cut short, or starts outside the file
   */
  protected checkedRecord(start: number): { at: number; length: number } {
    const size = this.segment.sizeBytes;
    if (start < SEGMENT_HEADER_BYTES || start + RECORD_HEADER_BYTES > size) {
      this.corrupt(start, "a record would start outside the file");
    }
    let at = this.cover(start, RECORD_HEADER_BYTES);
    let length = checkRecord(this.buf, this.view, at, this.bufBytes);
    if (length === Check.SHORT && this.bufBytes - at >= RECORD_HEADER_BYTES) {
      at = this.cover(start, Math.min(recordLength(this.view, at), size - start));
      length = checkRecord(this.buf, this.view, at, this.bufBytes);
    }
    if (length <= 0) this.corrupt(start, checkReason(length));
    return { at, length };
  }

  protected corrupt(offset: number, reason: string): never {
    throw new CorruptionError(
      this.segment.path,
      offset,
      `${reason} in a sealed segment, found by compaction through the index`,
    );
  }
}

/**
 * Copies the live records of one segment of puts, found through the index: {@link collect} over
 * every slot, then {@link copyWindow} over every window, each a bounded step.
 */
export class IndexedCopier extends SegmentWindow {
  /** Where the live slot's record starts: its value less the key, expiry time and header. */
  protected override offsetOf(slot: number): number {
    const index = this.index;
    const expiryBytes = index.expiryOf(slot) === 0 ? 0 : EXPIRY_BYTES;
    return index.offsetOf(slot) - index.keyOf(slot).length - expiryBytes - RECORD_HEADER_BYTES;
  }

  /**
   * Copies the live records that start in window `w` (the first call arranges what the walk
   * found), in file order.
   *
   * @throws {CorruptionError} a damaged record, or one that is not where the index says
   */
  copyWindow(w: number): void {
    if (w === 0) this.offsets.arrange();
    for (const start of this.offsets.window(w)) {
      const { at, length } = this.checkedRecord(start);
      const op = recordOp(this.buf, at);
      if (op !== Op.PUT && op !== Op.PUT_EXPIRING) {
        this.corrupt(start, `op ${op} where the index expects a put`);
      }
      // Written again or deleted since the walk: the copier keeps nothing of it.
      this.copier.copyRecord(this.buf, this.view, at, length, start);
    }
  }
}

/** The record ops a header may name. */
const KNOWN_OPS = new Set<number>(Object.values(Op));

/**
 * Copies the live values of a segment with batches or MULTIs and no tombstones: the index gives
 * the file offsets of its live values ({@link collect}); then {@link walk} steps from record to
 * record by their headers, and checks (CRC) and copies (through the scan's {@link LiveCopier})
 * only the records that hold one of those values. A damaged length in a skipped record could
 * step the walk over a live value unseen, so every value the index gave must be met at an entry
 * of a checked record, in order, and the records must end where the file does: else the segment
 * is corrupt and compaction leaves the run as it was.
 */
export class HeaderWalker extends SegmentWindow {
  /** The next live value to meet: its window, and its place in the window. */
  #window = 0;
  #next = 0;

  /** The next live value not met yet (Infinity: none). */
  #peek(): number {
    // Bounded by the windows: each turn moves to the next one.
    while (this.#window < this.windows) {
      const offsets = this.offsets.window(this.#window);
      if (this.#next < offsets.length) return offsets[this.#next];
      this.#window++;
      this.#next = 0;
    }
    return Infinity;
  }

  /**
   * Steps over the records from file offset `from` (the segment's first record: the first call)
   * for about a window of the file; returns where the next step starts, the file's size once
   * done.
   *
   * @throws {CorruptionError} a damaged record that holds a live value, or records that do not
   * meet every live value
   */
  walk(from: number): number {
    if (from === SEGMENT_HEADER_BYTES) this.offsets.arrange();
    const size = this.segment.sizeBytes;
    let start = from;
    // Bounded by the window: each turn moves past one record of at least a header's length.
    while (start < size && start < from + this.windowBytes) {
      const at = this.cover(start, Math.min(RECORD_HEADER_BYTES, size - start));
      const length = this.bufBytes - at >= RECORD_HEADER_BYTES ? recordLength(this.view, at) : 0;
      const op = recordOp(this.buf, at);
      if (length < RECORD_HEADER_BYTES || start + length > size || !KNOWN_OPS.has(op)) {
        this.corrupt(start, "impossible record header");
      }
      if (this.#peek() < start + length || op === Op.DELETE || op === Op.FLUSH) {
        this.#copy(start);
      }
      start += length;
    }
    if (start >= size && this.#peek() !== Infinity) {
      this.corrupt(this.#peek(), "a live value the index points at is past the last record");
    }
    return start;
  }

  /** Checks and copies the record at `start`, meeting the live values it holds. */
  #copy(start: number): void {
    const { at, length } = this.checkedRecord(start);
    this.copier.copyRecord(this.buf, this.view, at, length, start);
    forEachKey(this.buf, this.view, at, (_keyStart, _keyLength, valueStart) => {
      if (valueStart >= 0 && start + (valueStart - at) === this.#peek()) this.#next++;
    });
    if (this.#peek() < start + length) {
      this.corrupt(this.#peek(), "a live value the index points at is not at an entry of a record");
    }
  }
}
