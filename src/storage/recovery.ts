/**
 * Recovery: rebuilds a store's segments and index from its directory at open. It first settles
 * an interrupted full sync, removes temporary files, then replays the segments oldest first: a
 * sealed segment through its hint file when the hint matches, otherwise (and always for the
 * active one) by scanning its records. A sealed segment that was scanned gets its hint now. A
 * torn tail of the active segment is truncated (logged with its byte count); a tail of zeros (its
 * preallocated space) is trimmed silently; damage anywhere else refuses to open
 * (`CorruptionError`, naming file and offset: `kvstore repair` truncates there).
 *
 * @module
 */
import { getLog } from "../log.ts";
import { CorruptionError } from "./errors.ts";
import { isTemporaryFileName, parseSegmentFileName } from "./file_names.ts";
import { settleFullSync } from "./full_sync.ts";
import { HintBuilder, HintKind, loadHint } from "./hint.ts";
import { writeHintSync } from "./hint_writer.ts";
import { applyEntry, flushSegments } from "./index_entries.ts";
import { KeyIndex } from "./key_index.ts";
import { forEachKey, Op, recordEpoch, recordLsn, recordOp } from "./record.ts";
import {
  createSegmentFile,
  openSegmentFile,
  type Segment,
  SEGMENT_HEADER_BYTES,
  truncateSegmentFile,
} from "./segment.ts";
import { scanSegment } from "./segment_scan.ts";

const log = getLog("storage");

/** What a directory holds, recovered. */
export interface RecoveredStore {
  /** Its segments, oldest first; the last is the active one (created when there was none). */
  segments: Segment[];
  index: KeyIndex<Segment>;
  /** LSN and epoch of the last record (0 for an empty log). */
  lastLsn: number;
  lastEpoch: number;
}

/**
 * Recovers the store in `dir` (see the module comment); logs progress every
 * `progressIntervalMs` while it runs, and a summary when done.
 *
 * @throws {CorruptionError} damage before the tail of the log
 */
export function recover(dir: string, progressIntervalMs: number): RecoveredStore {
  return new Recovery(dir, progressIntervalMs).run();
}

/** One recovery run. */
class Recovery {
  index = new KeyIndex<Segment>();
  /** The segments replayed so far, the one being replayed included. */
  readonly segments: Segment[] = [];
  #lastEpoch = 0;
  #tornBytes = 0;
  readonly #started = performance.now();
  #progressLoggedMs = this.#started;

  constructor(readonly dir: string, readonly progressIntervalMs: number) {}

  run(): RecoveredStore {
    settleFullSync(this.dir);
    const ids = this.#segmentIds();
    const segments = this.segments;
    this.index.deferSorting();
    for (let i = 0; i < ids.length; i++) {
      this.#logProgress(i, ids.length);
      const isLast = i === ids.length - 1;
      const segment = openSegmentFile(this.dir, ids[i], isLast);
      if (segment === undefined) continue;
      segments.push(segment);
      try {
        this.#replay(segment, isLast);
      } catch (error) {
        for (const opened of segments) opened.closeReader();
        throw error;
      }
    }
    this.index.rebuildSorted();
    if (segments.length === 0) segments.push(createSegmentFile(this.dir, 1, 0, 0));
    let lastLsn = 0;
    for (const segment of segments) {
      lastLsn = Math.max(lastLsn, segment.lastLsn, segment.header.coveredLastLsn);
    }
    log.info(
      "opened {dir}: {keys} keys, {segments} segments, last LSN {lastLsn}, in {elapsedMs} ms",
      {
        dir: this.dir,
        keys: this.index.size,
        segments: segments.length,
        lastLsn,
        elapsedMs: Math.round(performance.now() - this.#started),
        tornBytes: this.#tornBytes,
      },
    );
    return { segments, index: this.index, lastLsn, lastEpoch: this.#lastEpoch };
  }

  /** The ids of the segment files, ascending; temporary files left by a crash are removed. */
  #segmentIds(): number[] {
    const ids: number[] = [];
    for (const entry of Deno.readDirSync(this.dir)) {
      if (!entry.isFile) continue;
      const id = parseSegmentFileName(entry.name);
      if (id !== undefined) ids.push(id);
      else if (isTemporaryFileName(entry.name)) Deno.removeSync(`${this.dir}/${entry.name}`);
    }
    return ids.sort((a, b) => a - b);
  }

  #logProgress(segmentsDone: number, segments: number): void {
    const nowMs = performance.now();
    if (nowMs - this.#progressLoggedMs < this.progressIntervalMs) return;
    this.#progressLoggedMs = nowMs;
    log.info(
      "recovering {dir}: {segmentsDone} of {segments} segments, {keys} keys so far, " +
        "{elapsedMs} ms",
      {
        dir: this.dir,
        segmentsDone,
        segments,
        keys: this.index.size,
        elapsedMs: Math.round(nowMs - this.#started),
      },
    );
  }

  /** Applies `segment` to the index: from its hint, or by a scan (then it gets a hint). */
  #replay(segment: Segment, isLast: boolean): void {
    if (!isLast && this.#loadHint(segment)) return;
    // The active segment keeps gathering tombstones; a sealed one gets its hint now.
    segment.hint = new HintBuilder();
    segment.hintComplete = !isLast;
    this.#scan(segment, isLast);
    if (!isLast) writeHintSync(this.dir, segment);
  }

  /**
   * A FLUSH record or hint entry in `segment`: every key so far is gone. The index starts over
   * (nothing else holds it during recovery) and no segment holds a live byte any more.
   */
  #flush(segment: Segment): void {
    this.index = new KeyIndex<Segment>();
    this.index.deferSorting();
    flushSegments(this.segments, segment);
  }

  /** Replays the hint of a sealed segment; false when it has no usable hint. */
  #loadHint(segment: Segment): boolean {
    let reserve = 0;
    const summary = loadHint(segment.hintPath, {
      id: segment.id,
      nonce: segment.header.nonce,
      sizeBytes: segment.sizeBytes,
    }, (kind, buf, keyStart, keyLength, valueOffset, valueLength, expiresAtMs) => {
      if (kind === HintKind.FLUSH) {
        this.#flush(segment);
        this.index.reserve(reserve);
        return;
      }
      applyEntry(
        this.index,
        segment,
        kind,
        buf,
        keyStart,
        keyLength,
        valueOffset,
        valueLength,
        expiresAtMs,
      );
    }, (entries) => {
      reserve = entries;
      this.index.reserve(this.index.size + entries);
    });
    if (summary === undefined) return false;
    segment.firstLsn = summary.firstLsn;
    segment.lastLsn = summary.lastLsn;
    segment.lastEpoch = summary.lastEpoch;
    if (summary.lastLsn !== -1) this.#lastEpoch = summary.lastEpoch;
    return true;
  }

  /** Applies every record of `segment` to the index, truncating a torn tail of the last one. */
  #scan(segment: Segment, isLast: boolean): void {
    const hint = segment.hint as HintBuilder;
    const complete = segment.hintComplete;
    const result = scanSegment(
      segment.reader(),
      segment.path,
      segment.sizeBytes,
      SEGMENT_HEADER_BYTES,
      (buf, view, at, _length, fileOffset) => {
        segment.noteLsn(recordLsn(view, at));
        segment.lastEpoch = this.#lastEpoch = recordEpoch(view, at);
        if (recordOp(buf, at) === Op.FLUSH) {
          this.#flush(segment); // adds the flush to the segment's hint
          return;
        }
        const base = fileOffset - at; // file offset of buf[0]
        const index = this.index;
        forEachKey(buf, view, at, (keyStart, keyLength, valueStart, valueLength, expiresAtMs) => {
          const kind = valueStart < 0 ? HintKind.TOMBSTONE : HintKind.VALUE;
          const valueOffset = valueStart < 0 ? 0 : base + valueStart;
          if (complete || kind === HintKind.TOMBSTONE) {
            hint.add(kind, buf, keyStart, keyLength, valueOffset, valueLength, expiresAtMs);
          }
          applyEntry(
            index,
            segment,
            kind,
            buf,
            keyStart,
            keyLength,
            valueOffset,
            valueLength,
            expiresAtMs,
          );
        });
      },
      Infinity,
      isLast,
    );
    if (result.damage === "none") return;
    if (result.damage === "zeros" && isLast) {
      // The zero-filled space ahead of the last record (preallocated by the log writer) of a
      // store that stopped without closing: nothing was lost.
      log.debug("trimming {bytes} preallocated bytes of {path}", {
        path: segment.path,
        bytes: result.tailBytes,
      });
      truncateSegmentFile(segment, result.validEnd);
      return;
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
    this.#tornBytes += result.tailBytes;
  }
}
