/**
 * Hint files: the index entries of one sealed segment, so recovery loads them instead of reading
 * every value (the spec's periodic index checkpoint; restart time grows with the active segment,
 * not with history).
 *
 * ## Hint file layout (`NNNNNNNNNNNN.hint`, beside `NNNNNNNNNNNN.log`; integers little-endian)
 *
 * ```
 * offset  size  field
 *      0     8  magic        "KVSTHNT1"
 *      8     8  segment id
 *     16     4  nonce        the segment file's nonce (its header): a hint of another version
 *                            of the segment (rewritten by compaction) does not match
 *     20     4  entries      number of entries
 *     24     8  sizeBytes    the segment file's size when the hint was written
 *     32     8  firstLsn+1   0 when the segment holds no record
 *     40     8  lastLsn+1    0 when the segment holds no record
 *     48     4  lastEpoch    epoch of the segment's last record
 *     52     4  reserved     0
 *     56     …  entries (order below), each:
 *                 u8  kind (1 value, 2 tombstone, 3 expiring value, 4 flush),
 *                 u32 key length, u32 value length,
 *                 u64 value offset in the segment file (0 for a tombstone or a flush),
 *                 u64 expiresAtMs (kind 3 only: absolute expiry time, ms since the epoch),
 *                 key bytes (none for a flush)
 *    end-4   4  crc32        CRC-32 of every byte before it
 * ```
 *
 * A flush entry (a FLUSH record) removes every key replayed before it. Kinds 3 and 4 were added
 * with expiry and FLUSH; a hint without them reads as before.
 *
 * Replaying the entries in order gives exactly what replaying the segment's records would. Two
 * orders do: log order (a hint built while scanning a segment, or a full sync's staging segment,
 * written in key order), and the one the store writes when it seals or compacts a segment: its
 * tombstones in log order, then its live values in key order, each key once (taken from the
 * index). Sorted runs of values let recovery merge the runs of all hints instead of sorting every
 * key (see `KeyIndex.rebuildSorted`). A hint is used only if its CRC, segment id, nonce and size all match the segment; otherwise (a crash
 * while writing it, or a segment rewritten since) the segment is scanned instead. Hints are
 * written to `*.hint.tmp`, fsynced, then renamed, so a torn hint is never seen under its name.
 *
 * @module
 */
import { closeSync, fstatSync, openSync } from "node:fs";
import { crc32 } from "node:zlib";
import { readU64, writeU64 } from "./record.ts";
import { readAtSync } from "./read_at.ts";

const MAGIC = "KVSTHNT1";
/** Bytes of the hint header. */
export const HINT_HEADER_BYTES = 56;
const ENTRY_HEADER_BYTES = 17;

/** Kinds of hint entries. */
export const HintKind = { VALUE: 1, TOMBSTONE: 2, VALUE_EXPIRING: 3, FLUSH: 4 } as const;
const EXPIRY_BYTES = 8;

/** Bytes of an entry's header for `kind` (an expiring value carries its expiry time). */
function entryHeaderBytes(kind: number): number {
  return kind === HintKind.VALUE_EXPIRING ? ENTRY_HEADER_BYTES + EXPIRY_BYTES : ENTRY_HEADER_BYTES;
}

/** Accumulates the entries of the segment being written. */
export class HintBuilder {
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #used = HINT_HEADER_BYTES;
  #entries = 0;

  #room(bytes: number): void {
    if (this.#used + bytes <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#used + bytes, this.#buf.length * 2));
    grown.set(this.#buf.subarray(0, this.#used));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }

  /** Writes an entry's header at the end; returns where its key goes. */
  #header(
    kind: number,
    keyLength: number,
    valueOffset: number,
    valueLength: number,
    expiresAtMs: number,
  ): number {
    // A value with an expiry time is an expiring value (the callers pass VALUE for both).
    if (kind === HintKind.VALUE && expiresAtMs > 0) kind = HintKind.VALUE_EXPIRING;
    const headerBytes = entryHeaderBytes(kind);
    this.#room(headerBytes + keyLength);
    const at = this.#used;
    this.#buf[at] = kind;
    this.#view.setUint32(at + 1, keyLength, true);
    this.#view.setUint32(at + 5, valueLength, true);
    writeU64(this.#view, at + 9, valueOffset);
    if (kind === HintKind.VALUE_EXPIRING) {
      writeU64(this.#view, at + ENTRY_HEADER_BYTES, expiresAtMs);
    }
    this.#used = at + headerBytes + keyLength;
    this.#entries++;
    return at + headerBytes;
  }

  /**
   * Adds an entry whose key is `source[keyStart, keyStart + keyLength)`; a VALUE with
   * `expiresAtMs` above 0 is written as an expiring value.
   */
  add(
    kind: number,
    source: Uint8Array,
    keyStart: number,
    keyLength: number,
    valueOffset: number,
    valueLength: number,
    expiresAtMs = 0,
  ): void {
    const keyAt = this.#header(kind, keyLength, valueOffset, valueLength, expiresAtMs);
    this.#buf.set(source.subarray(keyStart, keyStart + keyLength), keyAt);
  }

  /** Adds a flush entry: every key replayed before it is gone. */
  addFlush(): void {
    this.#header(HintKind.FLUSH, 0, 0, 0, 0);
  }

  /** Adds an entry whose key is the byte string `key` (one code unit 0–255 per byte). */
  addKey(
    kind: number,
    key: string,
    valueOffset: number,
    valueLength: number,
    expiresAtMs = 0,
  ): void {
    const keyAt = this.#header(kind, key.length, valueOffset, valueLength, expiresAtMs);
    for (let i = 0; i < key.length; i++) this.#buf[keyAt + i] = key.charCodeAt(i);
  }

  /** Number of entries added. */
  get entries(): number {
    return this.#entries;
  }

  /** The finished hint file bytes. */
  finish(
    segment: { id: number; nonce: number; sizeBytes: number },
    firstLsn: number,
    lastLsn: number,
    lastEpoch: number,
  ): Uint8Array {
    this.#room(4);
    const bytes = this.#buf;
    const view = this.#view;
    for (let i = 0; i < MAGIC.length; i++) bytes[i] = MAGIC.charCodeAt(i);
    writeU64(view, 8, segment.id);
    view.setUint32(16, segment.nonce, true);
    view.setUint32(20, this.#entries, true);
    writeU64(view, 24, segment.sizeBytes);
    writeU64(view, 32, firstLsn + 1);
    writeU64(view, 40, lastLsn + 1);
    view.setUint32(48, lastEpoch, true);
    view.setUint32(52, 0, true);
    view.setUint32(this.#used, crc32(bytes.subarray(0, this.#used)), true);
    return bytes.subarray(0, this.#used + 4);
  }
}

/** The header facts of a loaded hint. */
export interface HintSummary {
  firstLsn: number;
  lastLsn: number;
  lastEpoch: number;
}

/**
 * Visits one hint entry; the key is `buf[keyStart, keyStart + keyLength)`. An expiring value comes
 * as kind VALUE with `expiresAtMs` above 0 (0 for every other entry).
 */
export type HintVisitor = (
  kind: number,
  buf: Uint8Array,
  keyStart: number,
  keyLength: number,
  valueOffset: number,
  valueLength: number,
  expiresAtMs: number,
) => void;

/** Bytes of the window a hint is read through (a hint of a 64 MiB segment is ~14 MiB). */
const READ_WINDOW_BYTES = 1024 * 1024;

/**
 * Reads a region of a file front to back through one window, never holding more than the window
 * (or the largest single entry): recovery reads hints this way so that a hint's bytes are not
 * allocated whole, then freed, leaving the allocator's memory behind.
 */
class WindowReader {
  buf = new Uint8Array(0);
  view = new DataView(this.buf.buffer);
  /** File offset of `buf[0]`, and of the end of the valid bytes. */
  #start = 0;
  #end = 0;
  /** CRC-32 of every byte read so far, in file order. */
  crc = 0;

  constructor(readonly fd: number, from: number, readonly limit: number) {
    this.#start = this.#end = from;
  }

  /**
   * Makes `[position, position + length)` (within the limit) readable in `buf`; returns its index
   * there. Positions only move forward; bytes skipped over are still read (for the CRC).
   */
  at(position: number, length: number): number {
    // Bounded by the limit: each pass reads at least one byte or stops.
    while (this.#end < position && this.#fill(this.#end, position - this.#end) > 0);
    if (position + length > this.#end) this.#fill(position, length);
    return position - this.#start;
  }

  /** Reads from `#end` on so that `[position, position + length)` is in `buf`; returns bytes read. */
  #fill(position: number, length: number): number {
    const keep = this.#end - position;
    const size = Math.max(READ_WINDOW_BYTES, length);
    if (size > this.buf.length) {
      const grown = new Uint8Array(Math.min(size, Math.max(this.limit - position, length)));
      grown.set(this.buf.subarray(position - this.#start, this.#end - this.#start));
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    } else {
      this.buf.copyWithin(0, position - this.#start, this.#end - this.#start);
    }
    this.#start = position;
    const want = Math.min(this.buf.length - keep, this.limit - this.#end);
    const got = readAtSync(this.fd, this.#end, this.buf.subarray(keep, keep + want));
    this.crc = crc32(this.buf.subarray(keep, keep + got), this.crc);
    this.#end += got;
    return got;
  }

  /** Reads the rest up to the limit (for the CRC). */
  drain(): void {
    this.at(this.limit, 0);
  }

  /** Whether every byte up to the limit was read. */
  get complete(): boolean {
    return this.#end === this.limit;
  }
}

/**
 * Reads the hint at `path` and replays its entries when it matches the segment; returns undefined
 * (having visited nothing) when the hint is missing, damaged, or of another segment version.
 * `expect(entries)` is called once the hint is known good, before the first visit. The file is
 * read twice through a 1 MiB window: once to check its CRC and structure, once to visit.
 */
export function loadHint(
  path: string,
  segment: { id: number; nonce: number; sizeBytes: number },
  visit: HintVisitor,
  expect: (entries: number) => void = () => {},
): HintSummary | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const size = fstatSync(fd).size;
    if (size < HINT_HEADER_BYTES + 4) return undefined;
    const end = size - 4;
    const header = new Uint8Array(HINT_HEADER_BYTES);
    const trailer = new Uint8Array(4);
    readAtSync(fd, 0, header);
    readAtSync(fd, end, trailer);
    const view = new DataView(header.buffer);
    if (!headerMatches(header, segment)) return undefined;
    const entries = view.getUint32(20, true);
    // Check the CRC and the structure before visiting anything, so a bad hint changes nothing.
    const crc = new DataView(trailer.buffer).getUint32(0, true);
    if (!entriesIntact(fd, end, entries, crc)) return undefined;
    expect(entries);
    replayEntries(fd, end, entries, visit);
    return {
      firstLsn: readU64(view, 32) - 1,
      lastLsn: readU64(view, 40) - 1,
      lastEpoch: view.getUint32(48, true),
    };
  } finally {
    closeSync(fd);
  }
}

/** The hint header names this version of the segment (its magic, id, nonce and size). */
function headerMatches(
  header: Uint8Array,
  segment: { id: number; nonce: number; sizeBytes: number },
): boolean {
  for (let i = 0; i < MAGIC.length; i++) if (header[i] !== MAGIC.charCodeAt(i)) return false;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  return readU64(view, 8) === segment.id && view.getUint32(16, true) === segment.nonce &&
    readU64(view, 24) === segment.sizeBytes;
}

/**
 * The `entries` entries after the header end exactly at `end`, each of a known kind, and the CRC
 * of everything before `end` is `crc`.
 */
function entriesIntact(fd: number, end: number, entries: number, crc: number): boolean {
  const check = new WindowReader(fd, 0, end);
  let at = HINT_HEADER_BYTES;
  check.at(0, HINT_HEADER_BYTES);
  for (let i = 0; i < entries; i++) {
    if (end - at < ENTRY_HEADER_BYTES) return false;
    const e = check.at(at, ENTRY_HEADER_BYTES); // may replace check.view: read it after
    const kind = check.buf[e];
    if (kind < HintKind.VALUE || kind > HintKind.FLUSH) return false;
    const keyLength = check.view.getUint32(e + 1, true);
    at += entryHeaderBytes(kind) + keyLength;
    if (at > end) return false;
  }
  if (at !== end) return false;
  check.drain();
  return check.complete && check.crc === crc;
}

/** Visits the `entries` entries of a hint checked by {@link entriesIntact}, in order. */
function replayEntries(fd: number, end: number, entries: number, visit: HintVisitor): void {
  const reader = new WindowReader(fd, HINT_HEADER_BYTES, end);
  let at = HINT_HEADER_BYTES;
  for (let i = 0; i < entries; i++) {
    const h = reader.at(at, ENTRY_HEADER_BYTES); // may replace reader.view: read it after
    const kind = reader.buf[h];
    const keyLength = reader.view.getUint32(h + 1, true);
    const headerBytes = entryHeaderBytes(kind);
    const e = reader.at(at, headerBytes + keyLength);
    const buf = reader.buf;
    const expiring = kind === HintKind.VALUE_EXPIRING;
    visit(
      expiring ? HintKind.VALUE : kind,
      buf,
      e + headerBytes,
      keyLength,
      readU64(reader.view, e + 9),
      reader.view.getUint32(e + 5, true),
      expiring ? readU64(reader.view, e + ENTRY_HEADER_BYTES) : 0,
    );
    at += headerBytes + keyLength;
  }
}
