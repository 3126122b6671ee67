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
 *     56     …  entries, in log order, each:
 *                 u8  kind (1 value, 2 tombstone), u32 key length, u32 value length,
 *                 u64 value offset in the segment file (0 for a tombstone), key bytes
 *    end-4   4  crc32        CRC-32 of every byte before it
 * ```
 *
 * Replaying the entries in order gives exactly what replaying the segment's records would. A hint
 * is used only if its CRC, segment id, nonce and size all match the segment; otherwise (a crash
 * while writing it, or a segment rewritten since) the segment is scanned instead. Hints are
 * written to `*.hint.tmp`, fsynced, then renamed, so a torn hint is never seen under its name.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { readU64, writeU64 } from "./record.ts";

const MAGIC = "KVSTHNT1";
/** Bytes of the hint header. */
export const HINT_HEADER_BYTES = 56;
const ENTRY_HEADER_BYTES = 17;

/** Kinds of hint entries. */
export const HintKind = { VALUE: 1, TOMBSTONE: 2 } as const;

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

  /** Adds an entry whose key is `source[keyStart, keyStart + keyLength)`. */
  add(
    kind: number,
    source: Uint8Array,
    keyStart: number,
    keyLength: number,
    valueOffset: number,
    valueLength: number,
  ): void {
    this.#room(ENTRY_HEADER_BYTES + keyLength);
    const at = this.#used;
    this.#buf[at] = kind;
    this.#view.setUint32(at + 1, keyLength, true);
    this.#view.setUint32(at + 5, valueLength, true);
    writeU64(this.#view, at + 9, valueOffset);
    this.#buf.set(source.subarray(keyStart, keyStart + keyLength), at + ENTRY_HEADER_BYTES);
    this.#used = at + ENTRY_HEADER_BYTES + keyLength;
    this.#entries++;
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

/** Visits one hint entry; the key is `buf[keyStart, keyStart + keyLength)`. */
export type HintVisitor = (
  kind: number,
  buf: Uint8Array,
  keyStart: number,
  keyLength: number,
  valueOffset: number,
  valueLength: number,
) => void;

/**
 * Reads the hint at `path` and replays its entries when it matches the segment; returns undefined
 * (having visited nothing) when the hint is missing, damaged, or of another segment version.
 * `expect(entries)` is called once the hint is known good, before the first visit.
 */
export function loadHint(
  path: string,
  segment: { id: number; nonce: number; sizeBytes: number },
  visit: HintVisitor,
  expect: (entries: number) => void = () => {},
): HintSummary | undefined {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  if (bytes.length < HINT_HEADER_BYTES + 4) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC.charCodeAt(i)) return undefined;
  const end = bytes.length - 4;
  if (crc32(bytes.subarray(0, end)) !== view.getUint32(end, true)) return undefined;
  if (
    readU64(view, 8) !== segment.id || view.getUint32(16, true) !== segment.nonce ||
    readU64(view, 24) !== segment.sizeBytes
  ) {
    return undefined;
  }
  const entries = view.getUint32(20, true);
  // Check the structure before visiting anything, so a bad hint changes nothing.
  let at = HINT_HEADER_BYTES;
  for (let i = 0; i < entries; i++) {
    if (end - at < ENTRY_HEADER_BYTES) return undefined;
    at += ENTRY_HEADER_BYTES + view.getUint32(at + 1, true);
    if (at > end) return undefined;
  }
  if (at !== end) return undefined;
  expect(entries);
  at = HINT_HEADER_BYTES;
  for (let i = 0; i < entries; i++) {
    const keyLength = view.getUint32(at + 1, true);
    visit(
      bytes[at],
      bytes,
      at + ENTRY_HEADER_BYTES,
      keyLength,
      readU64(view, at + 9),
      view.getUint32(at + 5, true),
    );
    at += ENTRY_HEADER_BYTES + keyLength;
  }
  return {
    firstLsn: readU64(view, 32) - 1,
    lastLsn: readU64(view, 40) - 1,
    lastEpoch: view.getUint32(48, true),
  };
}
