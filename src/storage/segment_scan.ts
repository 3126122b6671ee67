/**
 * The segment scanner: reads the records of a segment file back in order (recovery, compaction)
 * and tells a torn tail from corruption.
 *
 * ## Torn tail versus corruption
 *
 * A scan stops at the first record that is cut short or fails its checks. If no intact record
 * starts anywhere after that point, the damage is a torn tail: the last write did not complete,
 * nothing after it was ever acknowledged, and the active segment is truncated there (the byte
 * count is logged). If an intact record does follow, bytes in the middle of the log changed:
 * that is corruption, and the store refuses to open, naming the file and offset. One exception,
 * in the active segment only: damage that holds zeros (a record header of zeros, or a whole
 * sector of them) is a power loss during an fdatasync into the segment's zero-filled space, which
 * can persist a later page and not an earlier one; nothing from there on was acknowledged, so it
 * is a torn tail too (see {@link scanSegment}).
 *
 * @module
 */
import { CorruptionError } from "./errors.ts";
import { readAtSync } from "./read_at.ts";
import {
  Check,
  checkReason,
  checkRecord,
  RECORD_HEADER_BYTES,
  recordLength,
  recordLsn,
} from "./record.ts";

/** Called for each intact record: its bytes are `buf[at, at + length)`, at file offset `fileOffset`. */
export type RecordVisitor = (
  buf: Uint8Array,
  view: DataView,
  at: number,
  length: number,
  fileOffset: number,
) => void;

/** What a scan found. */
export interface ScanResult {
  /** File offset just past the last intact record. */
  validEnd: number;
  /** Bytes after `validEnd` (a torn tail when `damage` is "torn"). */
  tailBytes: number;
  /**
   * "none": the file ends cleanly; "torn": a torn tail follows `validEnd`; "zeros": only zeros
   * follow `validEnd` (an active segment's preallocated space, see `log_writer.ts`).
   */
  damage: "none" | "torn" | "zeros";
  /** Why the record at `validEnd` failed, when damage is "torn". */
  reason?: string;
  records: number;
  firstLsn: number;
  lastLsn: number;
}

const SCAN_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * Reads every record of a segment from `from` (normally just past the header) to `fileSize`,
 * calling `visit` for each, in order. On a damaged record, searches the rest of the file for an
 * intact one: if there is one, throws {@link CorruptionError} (file and offset named); otherwise
 * reports a torn tail, which the caller truncates or, for a sealed segment, treats as
 * corruption.
 *
 * With `stopAt`, the scan ends after the first record that ends at or past that file offset,
 * with `validEnd` where the next scan should start (a segment read in bounded steps).
 *
 * With `zeroHoleEndsLog` (recovery of the active segment), damage that holds zeros where data
 * was written ends the log even when intact records follow: the active segment is zero-filled
 * ahead of its records (`log_writer.ts` preallocates), and a power loss during an fdatasync can
 * persist a later page of it and not an earlier one, which still holds the zeros. Nothing from the
 * damage on was acknowledged (an acknowledgement under `always` follows the fdatasync that covers
 * it), so it is a torn tail, reported as "torn" with the offset of the intact record in
 * `reason`. The sign is a record header of zeros, or a whole 512-byte disk sector of zeros in the
 * damaged record; other damage stays corruption.
 */
export function scanSegment(
  fd: number,
  path: string,
  fileSize: number,
  from: number,
  visit: RecordVisitor,
  stopAt = Infinity,
  zeroHoleEndsLog = false,
): ScanResult {
  const window = Math.min(SCAN_WINDOW_BYTES, fileSize - from, stopAt - from);
  let buf = new Uint8Array(Math.max(window, 0));
  let view = new DataView(buf.buffer);
  let bufStart = from; // file offset of buf[0]
  let bufEnd = 0; // valid bytes in buf
  let at = 0;
  let records = 0;
  let firstLsn = 0;
  let lastLsn = 0;
  const refill = (needBytes: number): boolean => {
    const keep = bufEnd - at;
    if (needBytes > buf.length) {
      const bigger = new Uint8Array(needBytes);
      bigger.set(buf.subarray(at, bufEnd));
      buf = bigger;
      view = new DataView(buf.buffer);
    } else {
      buf.copyWithin(0, at, bufEnd);
    }
    bufStart += at;
    at = 0;
    bufEnd = keep;
    const want = Math.min(buf.length - keep, fileSize - (bufStart + keep));
    if (want <= 0) return false;
    const got = readAtSync(fd, bufStart + keep, buf.subarray(keep, keep + want));
    bufEnd += got;
    return got > 0;
  };
  // Bounded by the file size: each iteration consumes a record or reads more of the file.
  while (bufStart + at < fileSize) {
    const result = checkRecord(buf, view, at, bufEnd);
    if (result > 0) {
      const lsn = recordLsn(view, at);
      if (records > 0 && lsn < lastLsn) {
        throw new CorruptionError(
          path,
          bufStart + at,
          `LSN ${lsn} follows LSN ${lastLsn} (LSNs never decrease)`,
        );
      }
      if (records === 0) firstLsn = lsn;
      lastLsn = lsn;
      records++;
      visit(buf, view, at, result, bufStart + at);
      at += result;
      if (bufStart + at >= stopAt) {
        const end = bufStart + at;
        return { validEnd: end, tailBytes: 0, damage: "none", records, firstLsn, lastLsn };
      }
      continue;
    }
    if (result === Check.SHORT && bufStart + bufEnd < fileSize) {
      const needed = bufEnd - at >= RECORD_HEADER_BYTES
        ? Math.max(recordLength(view, at), RECORD_HEADER_BYTES)
        : RECORD_HEADER_BYTES;
      if (needed <= fileSize - (bufStart + at) && refill(Math.max(needed, buf.length))) continue;
    }
    const counts = { records, firstLsn, lastLsn };
    return classifyDamage(fd, path, bufStart + at, fileSize, result, zeroHoleEndsLog, counts);
  }
  return { validEnd: fileSize, tailBytes: 0, damage: "none", records, firstLsn, lastLsn };
}

/**
 * What the damage at `damagedAt` (a record that failed its check with `check`) is: only zeros to
 * the end, a torn tail, or corruption (thrown) when an intact record follows it (see
 * {@link scanSegment} for `zeroHoleEndsLog`).
 */
function classifyDamage(
  fd: number,
  path: string,
  damagedAt: number,
  fileSize: number,
  check: number,
  zeroHoleEndsLog: boolean,
  counts: { records: number; firstLsn: number; lastLsn: number },
): ScanResult {
  const tailBytes = fileSize - damagedAt;
  if (isZeroFilled(fd, damagedAt, fileSize)) {
    const reason = "only zero bytes from here to the end";
    return { validEnd: damagedAt, tailBytes, damage: "zeros", reason, ...counts };
  }
  const intactAt = findIntactRecord(fd, damagedAt + 1, fileSize, counts.lastLsn);
  if (intactAt === undefined) {
    return {
      validEnd: damagedAt,
      tailBytes,
      damage: "torn",
      reason: checkReason(check),
      ...counts,
    };
  }
  if (zeroHoleEndsLog && hasUnwrittenSector(fd, damagedAt, intactAt)) {
    const reason =
      `zero bytes where a record should start, then records from offset ${intactAt}: ` +
      "an fsync a crash interrupted, none of it acknowledged";
    return { validEnd: damagedAt, tailBytes, damage: "torn", reason, ...counts };
  }
  throw new CorruptionError(
    path,
    damagedAt,
    `${checkReason(check)}, yet an intact record follows at offset ${intactAt}`,
  );
}

const SECTOR_BYTES = 512;

/**
 * True when the damaged bytes `[from, to)` look like data that never reached the disk: they start
 * with a record header of zeros, or hold a whole sector-aligned run of {@link SECTOR_BYTES} zeros.
 */
function hasUnwrittenSector(fd: number, from: number, to: number): boolean {
  if (isZeroFilled(fd, from, Math.min(from + RECORD_HEADER_BYTES, to))) return true;
  // Bounded by `to`: each step moves one sector on.
  for (let sector = Math.ceil(from / SECTOR_BYTES) * SECTOR_BYTES; sector + SECTOR_BYTES <= to;) {
    if (isZeroFilled(fd, sector, sector + SECTOR_BYTES)) return true;
    sector += SECTOR_BYTES;
  }
  return false;
}

/** True when every byte of the file in `[from, fileSize)` is zero. */
function isZeroFilled(fd: number, from: number, fileSize: number): boolean {
  const window = new Uint8Array(Math.min(SCAN_WINDOW_BYTES, fileSize - from));
  // Bounded by the file size: each window advances by at least one byte.
  for (let start = from; start < fileSize;) {
    const got = readAtSync(
      fd,
      start,
      window.subarray(0, Math.min(window.length, fileSize - start)),
    );
    if (got === 0) return false;
    for (let i = 0; i < got; i++) if (window[i] !== 0) return false;
    start += got;
  }
  return true;
}

/**
 * The file offset of the first intact record starting in `[from, fileSize)` whose LSN is at
 * least `minLsn`, or undefined. Used only after damage was found, to tell a torn tail from
 * corruption.
 */
export function findIntactRecord(
  fd: number,
  from: number,
  fileSize: number,
  minLsn: number,
): number | undefined {
  const window = new Uint8Array(SCAN_WINDOW_BYTES);
  const windowView = new DataView(window.buffer);
  // Bounded by the file size: each window advances by at least one byte.
  for (let start = from; start + RECORD_HEADER_BYTES <= fileSize;) {
    const got = readAtSync(
      fd,
      start,
      window.subarray(0, Math.min(window.length, fileSize - start)),
    );
    const last = got - RECORD_HEADER_BYTES;
    for (let i = 0; i <= last; i++) {
      const result = checkRecord(window, windowView, i, got);
      if (result === Check.SHORT) {
        const length = recordLength(windowView, i);
        if (length > RECORD_HEADER_BYTES && start + i + length <= fileSize) {
          const whole = new Uint8Array(length);
          readAtSync(fd, start + i, whole);
          if (checkRecord(whole, new DataView(whole.buffer), 0, length) === length) {
            if (recordLsn(new DataView(whole.buffer), 0) >= minLsn) return start + i;
          }
        }
        continue;
      }
      if (result > 0 && recordLsn(windowView, i) >= minLsn) return start + i;
    }
    if (last < 0) break;
    start += last + 1;
  }
  return undefined;
}
