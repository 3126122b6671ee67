/**
 * The log reader: the durable records after an LSN, read back from the segment files in LSN
 * order, in chunks of whole encoded records (replication's catch-up, `ReplicationLog.readLogFrom`).
 * It reads only up to the durable position, so it never hands out a record the store could
 * still lose; records after that arrive through `ReplicationLog.onDurable`.
 *
 * @module
 */
import type { Durability } from "./durability.ts";
import { CorruptionError, LogGapError } from "./errors.ts";
import { readAtSync } from "./read_at.ts";
import { checkRecord, Flag, recordFlags, recordLength, recordLsn } from "./record.ts";
import { type Segment, SEGMENT_HEADER_BYTES } from "./segment.ts";
import type { SegmentList } from "./segment_list.ts";

/** What the reader reads: the segments, how far they are durable, and whether the store closed. */
export interface LogSource {
  readonly segments: SegmentList;
  readonly durability: Pick<Durability, "durableSegment" | "durableOffset">;
  isClosed(): boolean;
}

/**
 * The durable records with an LSN above `afterLsn`, in LSN order, as chunks of whole encoded
 * records of at most `maxChunkBytes` (a single larger record is a chunk of its own). Each segment
 * read is pinned meanwhile. The iteration ends at the durable point reached by then.
 *
 * @throws {LogGapError} a record is missing after `afterLsn` (the caller checked the log still
 *   starts early enough; this is a log that changed meanwhile)
 * @throws {CorruptionError} a record that does not check in the durable part of the log
 */
export async function* readLog(
  source: LogSource,
  afterLsn: number,
  maxChunkBytes: number,
): AsyncGenerator<Uint8Array> {
  const cursor = new LsnCursor(afterLsn);
  let nextId = 0;
  // Bounded by the segments that exist: each pass reads one segment with a higher id.
  while (!source.isClosed()) {
    const segment = source.segments.firstFrom(nextId);
    if (segment === undefined) return;
    nextId = segment.id + 1;
    if (segment.lastLsn !== -1 && segment.lastLsn <= afterLsn) continue;
    segment.pin();
    try {
      yield* readSegment(source, segment, cursor, maxChunkBytes);
    } finally {
      segment.unpin();
    }
    if (segment === source.durability.durableSegment) return;
  }
}

/** The chunks of one segment's records, from its first record to its durable end. */
function* readSegment(
  source: LogSource,
  segment: Segment,
  cursor: LsnCursor,
  maxChunkBytes: number,
): Generator<Uint8Array> {
  const file = segment.reader();
  let offset = SEGMENT_HEADER_BYTES;
  // Bounded by the segment's durable end: each pass consumes at least one record.
  while (true) {
    const end = durableEnd(source, segment, offset);
    if (offset >= end || source.isClosed()) return;
    const buf = readRecords(file, offset, Math.min(end - offset, maxChunkBytes));
    const used = cursor.take(buf);
    if (used === 0) {
      throw new CorruptionError(segment.path, offset, "unreadable record while reading log");
    }
    if (cursor.keepFrom !== -1) yield buf.subarray(cursor.keepFrom, used);
    offset += used;
  }
}

/** Where the durable records of `segment` end (`offset`, the reader's position: none more). */
function durableEnd(source: LogSource, segment: Segment, offset: number): number {
  const { durableSegment, durableOffset } = source.durability;
  if (segment === durableSegment) return durableOffset;
  return segment.id < durableSegment.id ? segment.sizeBytes : offset;
}

/** `want` bytes of records at `offset`, or the whole first record when it is larger. */
function readRecords(file: number, offset: number, want: number): Uint8Array {
  const buf = new Uint8Array(want);
  readAtSync(file, offset, buf);
  const view = new DataView(buf.buffer);
  if (checkRecord(buf, view, 0, buf.length) >= 0) return buf;
  // A single record larger than the chunk: read it whole.
  const whole = new Uint8Array(recordLength(view, 0));
  readAtSync(file, offset, whole);
  return whole;
}

/**
 * Which records are new to the reader: those above the last LSN it got, which must follow it
 * without a gap (a LOCAL record, a replica's own write, reuses the LSN before it).
 */
class LsnCursor {
  /** Where the records to hand out start in the last chunk taken (-1: none). */
  keepFrom = -1;
  #expected: number;

  constructor(readonly afterLsn: number) {
    this.#expected = afterLsn;
  }

  /** Walks the whole records at the start of `buf`; returns their bytes (0: none is whole). */
  take(buf: Uint8Array): number {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.keepFrom = -1;
    let used = 0;
    // Bounded by the buffer: each pass consumes one record.
    while (used < buf.length) {
      const length = checkRecord(buf, view, used, buf.length);
      if (length < 0) break;
      const lsn = recordLsn(view, used);
      if (lsn > this.#expected) {
        if (lsn !== this.#expected + 1 && (recordFlags(buf, used) & Flag.LOCAL) === 0) {
          throw new LogGapError(this.afterLsn, lsn - 1);
        }
        this.#expected = lsn;
        if (this.keepFrom === -1) this.keepFrom = used;
      } else if (this.keepFrom !== -1) {
        this.#expected = Math.max(this.#expected, lsn);
      }
      used += length;
    }
    return used;
  }
}
