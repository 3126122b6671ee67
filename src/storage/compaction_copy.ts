/**
 * One compaction run's copying: the live records of the run's segments go into one output file
 * (through a {@link CompactionSink}), and the index entries they hold are re-pointed at their
 * copies afterwards ({@link repointMoved}), in bounded steps.
 *
 * A record is copied as it is when every entry in it is still live; a BATCH with only some live
 * pairs is re-encoded with those pairs, keeping its LSN, epoch and flags. A tombstone is kept
 * while an older segment may still hold a value of its key (not in the oldest segment, and only
 * while the key is absent from the index); a FLUSH is kept unless its segment is the oldest. A
 * MULTI with only some entries to keep (live puts, needed deletes) is re-encoded with those, in
 * order, keeping its LSN: after a crash the copy is wholly there or absent, as the original.
 *
 * @module
 */
import { writeAllSync } from "../write_all.ts";
import { CorruptionError } from "./errors.ts";
import { HintBuilder, HintKind } from "./hint.ts";
import { entryBytes, takeLiveBytes } from "./index_entries.ts";
import { isDeadValue } from "./dead_values.ts";
import { type KeyIndex, NO_SLOT } from "./key_index.ts";
import {
  batchRecordBytes,
  encodeBatch,
  encodeMulti,
  forEachKey,
  MULTI_ENTRY_HEADER_BYTES,
  MultiKind,
  multiRecordBytes,
  type MultiRecordEntry,
  Op,
  PAIR_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  recordEpoch,
  recordFlags,
  recordKeyLength,
  recordLsn,
  recordOp,
} from "./record.ts";
import type { Segment } from "./segment.ts";
import { scanSegment } from "./segment_scan.ts";

/**
 * The live entries one compaction run copied, as parallel u32 columns (a run can copy hundreds of
 * thousands; an object each would cost more memory than the index itself): the entry's slot, the
 * run segment and file offset it was copied from, its offset in the output, value and key length.
 */
export class MoveList {
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
export class CompactionSink {
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

  /** Appends a MULTI record of `entries`; returns its output file offset. */
  encodeMulti(entries: MultiRecordEntry[], lsn: number, epoch: number, flags: number): number {
    this.#room(multiRecordBytes(entries));
    const length = encodeMulti(this.#buf, this.#view, this.#used, lsn, epoch, flags, entries);
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

/** A live entry of the record being copied. */
interface LiveEntry {
  slot: number;
  fromOffset: number;
  length: number;
  keyStart: number;
  keyLength: number;
  /** Where its value starts: in the source buffer, then (re-encoded) in the output file. */
  valueStart: number;
}

/** Copies the live records of one segment of a run into the run's sink. */
export class LiveCopier {
  /** The live entries of the record being copied (reused from record to record). */
  #live: LiveEntry[] = [];

  /**
   * @param runIndex the segment's place in the run (its moves name it)
   * @param isOldest the segment is the store's oldest: its tombstones can all go
   */
  constructor(
    readonly index: KeyIndex<Segment>,
    readonly segment: Segment,
    readonly runIndex: number,
    readonly isOldest: boolean,
    readonly sink: CompactionSink,
  ) {}

  /**
   * Copies the live records from file offset `from`, stopping after the record that reaches
   * `stopAt`; returns where the next step starts.
   *
   * @throws {CorruptionError} a damaged record (compaction then leaves the run as it was)
   */
  copy(from: number, stopAt: number): number {
    const segment = this.segment;
    const result = scanSegment(
      segment.reader(),
      segment.path,
      segment.sizeBytes,
      from,
      (buf, view, at, length, fileOffset) => this.copyRecord(buf, view, at, length, fileOffset),
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

  /** Copies what is live of the checked record `buf[at, at + length)`, at file offset `fileOffset`. */
  copyRecord(
    buf: Uint8Array,
    view: DataView,
    at: number,
    length: number,
    fileOffset: number,
  ): void {
    const op = recordOp(buf, at);
    if (op === Op.DELETE) this.#copyTombstone(buf, view, at, length);
    else if (op === Op.FLUSH) this.#copyFlush(buf, view, at, length);
    else if (op === Op.MULTI) this.#copyMulti(buf, view, at, length, fileOffset);
    else this.#copyValues(buf, view, at, length, fileOffset);
  }

  #copyTombstone(buf: Uint8Array, view: DataView, at: number, length: number): void {
    const keyLength = recordKeyLength(view, at);
    const keyStart = at + RECORD_HEADER_BYTES;
    // A tombstone is needed while an older segment may hold a value of its key.
    if (this.isOldest || this.index.findBytes(buf, keyStart, keyStart + keyLength) !== NO_SLOT) {
      return;
    }
    const sink = this.sink;
    sink.append(buf, at, length, recordLsn(view, at), recordEpoch(view, at));
    sink.hint.add(HintKind.TOMBSTONE, buf, keyStart, keyLength, 0, 0);
    sink.output.tombstoneBytes += length;
  }

  /** A FLUSH is needed while an older segment may hold a key written before it. */
  #copyFlush(buf: Uint8Array, view: DataView, at: number, length: number): void {
    if (this.isOldest) return;
    const sink = this.sink;
    sink.append(buf, at, length, recordLsn(view, at), recordEpoch(view, at));
    sink.hint.addFlush();
    sink.output.tombstoneBytes += length;
  }

  /**
   * A MULTI: its live puts and the deletes still needed, in order; as it is when that is every
   * entry, else re-encoded with those entries (same LSN, epoch and flags).
   */
  #copyMulti(buf: Uint8Array, view: DataView, at: number, length: number, fileOffset: number) {
    this.#findLive(buf, view, at, fileOffset);
    const live = this.#live;
    const kept: MultiRecordEntry[] = [];
    const keptValues: number[] = []; // index in `kept` of each live entry, in order
    let entries = 0;
    let next = 0;
    forEachKey(buf, view, at, (keyStart, keyLength, valueStart, valueLength, expiresAtMs) => {
      entries++;
      const key = buf.subarray(keyStart, keyStart + keyLength);
      if (valueStart < 0) {
        if (
          !this.isOldest && this.index.findBytes(buf, keyStart, keyStart + keyLength) === NO_SLOT
        ) {
          kept.push({ kind: MultiKind.DELETE, key });
          this.sink.hint.add(HintKind.TOMBSTONE, buf, keyStart, keyLength, 0, 0);
        }
      } else if (next < live.length && live[next].valueStart === valueStart) {
        next++;
        keptValues.push(kept.length);
        const value = buf.subarray(valueStart, valueStart + valueLength);
        kept.push({ kind: MultiKind.PUT, key, value, expiresAtMs });
      }
    });
    if (kept.length === 0) return;
    const sink = this.sink;
    const lsn = recordLsn(view, at);
    const epoch = recordEpoch(view, at);
    let base: number;
    if (kept.length === entries) {
      base = sink.append(buf, at, length, lsn, epoch) - at;
    } else {
      const recordOffset = sink.encodeMulti(kept, lsn, epoch, recordFlags(buf, at));
      let offset = recordOffset + RECORD_HEADER_BYTES;
      let liveAt = 0;
      for (let i = 0; i < kept.length; i++) {
        const entry = kept[i];
        offset += MULTI_ENTRY_HEADER_BYTES + entry.key.length;
        if (entry.kind === MultiKind.PUT) {
          if (keptValues[liveAt] === i) live[liveAt++].valueStart = offset;
          offset += entry.value.length;
        }
      }
      base = 0;
    }
    for (const entry of kept) {
      if (entry.kind === MultiKind.DELETE) sink.output.tombstoneBytes += entry.key.length;
    }
    this.#noteMoves(base);
  }

  #copyValues(buf: Uint8Array, view: DataView, at: number, length: number, fileOffset: number) {
    const pairs = this.#findLive(buf, view, at, fileOffset);
    const live = this.#live;
    if (live.length === 0) return;
    const sink = this.sink;
    const lsn = recordLsn(view, at);
    const epoch = recordEpoch(view, at);
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
    this.#noteMoves(base);
  }

  /** Records the moves of {@link #live}, whose value starts are at `base + valueStart`. */
  #noteMoves(base: number): void {
    const sink = this.sink;
    for (const entry of this.#live) {
      const offset = base + entry.valueStart;
      sink.moves.push(
        entry.slot,
        this.runIndex,
        entry.fromOffset,
        offset,
        entry.length,
        entry.keyLength,
      );
      sink.output.liveBytes += entryBytes(entry.keyLength, entry.length);
    }
  }

  /**
   * Fills {@link #live} with the entries of the record at `at` that the index still points at
   * (in this segment, at this very value); returns how many pairs the record holds.
   */
  #findLive(buf: Uint8Array, view: DataView, at: number, fileOffset: number): number {
    const { index, segment } = this;
    const live = this.#live;
    live.length = 0;
    let pairs = 0;
    const dead = segment.deadValues;
    forEachKey(buf, view, at, (keyStart, keyLength, valueStart) => {
      pairs++;
      if (valueStart < 0) return; // a MULTI's delete
      const fromOffset = fileOffset + (valueStart - at);
      // Known dead (its key was moved off it): no lookup needed.
      if (dead !== undefined && isDeadValue(dead, fromOffset)) return;
      const slot = index.findBytes(buf, keyStart, keyStart + keyLength);
      if (
        slot !== NO_SLOT && index.segmentOf(slot) === segment &&
        index.offsetOf(slot) === fromOffset
      ) {
        live.push({
          slot,
          fromOffset,
          length: index.lengthOf(slot),
          keyStart,
          keyLength,
          valueStart,
        });
      }
    });
    return pairs;
  }
}

/**
 * Re-points index entries at their copies in `output`, from move `from` on, for about
 * `budgetBytes` of entries; returns the next move. An entry changed since it was copied (a newer
 * write, a delete; a slot freed and reused points into the active segment) is left alone and its
 * copy counted as garbage.
 */
export function repointMoved(
  index: KeyIndex<Segment>,
  moves: MoveList,
  from: number,
  budgetBytes: number,
  run: readonly Segment[],
  output: Segment,
): number {
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
      index.move(slot, output, moves.offset(i));
    } else {
      takeLiveBytes(output, bytes);
    }
  }
  return i;
}
