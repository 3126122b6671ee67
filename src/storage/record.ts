/**
 * The log record codec: the one place that encodes and decodes records.
 *
 * ## Record layout (all integers little-endian)
 *
 * ```
 * offset  size  field
 *      0     4  crc32     CRC-32 (IEEE, as node:zlib crc32) of bytes [4, length) of this record
 *      4     4  length    total bytes of the record, this header included (>= 32)
 *      8     8  lsn       log sequence number, an integer below 2^53
 *     16     4  epoch     the writer's epoch (term), for failover fencing; 0 by default
 *     20     1  op        1 PUT, 2 DELETE (tombstone), 3 BATCH (several puts, atomic),
 *                         4 PUT_EXPIRING (a put with an absolute expiry time),
 *                         5 MULTI (puts, expiring puts and deletes, in order, atomic),
 *                         6 FLUSH (every key written before it is gone)
 *     21     1  flags     bit 0 LOCAL (written on a replica, does not consume an LSN),
 *                         bit 1 SNAPSHOT (written by a full sync); other bits 0
 *     22     2  reserved  0
 *     24     4  a         PUT, PUT_EXPIRING, DELETE: key length; BATCH, MULTI: number of
 *                         entries; FLUSH: 0
 *     28     4  b         PUT, PUT_EXPIRING: value length; DELETE, BATCH, MULTI, FLUSH: 0
 *     32     …  payload   PUT: key bytes, value bytes
 *                         PUT_EXPIRING: u64 expiresAtMs, key bytes, value bytes
 *                         DELETE: key bytes
 *                         BATCH: a × (u32 key length, u32 value length, key bytes, value bytes)
 *                         MULTI: a × (u8 kind (1 put, 2 delete), u32 key length, u32 value
 *                         length, u64 expiresAtMs, key bytes, value bytes)
 *                         FLUSH: nothing
 * ```
 *
 * `expiresAtMs` is an absolute time, milliseconds since the Unix epoch, at which the key stops
 * existing (0 in a MULTI entry: it never expires; a PUT_EXPIRING always has one above 0). The
 * master decides when a key is gone and logs a DELETE for it; readers (a replica included) treat
 * a key whose time has passed as absent before that DELETE arrives. A MULTI's entries apply in
 * order, all or nothing (one record, one CRC). A FLUSH removes every key written before it;
 * recovery, compaction and replicas apply it in log order like any record. Ops 4–6 were added
 * after ops 1–3: a log without them is read exactly as before, and a kvstore older than them
 * refuses a record with them as an impossible header (replication refuses such a replica at the
 * handshake instead, see `src/replication/stream_protocol.ts`).
 *
 * Invariants: `length` equals the header plus the payload exactly; a BATCH's pairs fill its
 * payload exactly; LSNs never decrease along the log, and strictly increase among records that
 * are neither LOCAL nor SNAPSHOT. The encoded record is also the replication wire payload: a
 * replica checks its CRC and appends it verbatim.
 *
 * ## What damage looks like
 *
 * A torn tail (the process or machine died during a write) is a record whose header is cut
 * short, whose `length` runs past the end of the file, or whose CRC does not match, with no
 * valid record anywhere after it. {@link checkRecord} tells these apart from a complete record;
 * the segment scanner decides between "torn tail" (truncate) and "corruption" (refuse to start).
 *
 * @module
 */
import { crc32Of } from "./crc32.ts";

/** Bytes of the fixed record header. */
export const RECORD_HEADER_BYTES = 32;
/** Bytes of a BATCH pair's own header (key length, value length). */
export const PAIR_HEADER_BYTES = 8;
/** Bytes of a MULTI entry's own header (kind, key length, value length, expiresAtMs). */
export const MULTI_ENTRY_HEADER_BYTES = 17;
/** Bytes of the expiry field that starts a PUT_EXPIRING's payload. */
export const EXPIRY_BYTES = 8;
/** Kinds of MULTI entries. */
export const MultiKind = { PUT: 1, DELETE: 2 } as const;
/** Largest encodable record (the `length` field is a u32). */
export const MAX_RECORD_BYTES = 0xffff_ffff;
/**
 * Largest epoch (the `epoch` field is a u32): the one bound every part of kvstore checks an epoch
 * against (promotion, the replication stream, NODE_STATE.json).
 */
export const MAX_EPOCH = 0xffff_ffff;

/** Record operation codes. */
export const Op = { PUT: 1, DELETE: 2, BATCH: 3, PUT_EXPIRING: 4, MULTI: 5, FLUSH: 6 } as const;
/** A record operation code. */
export type OpCode = typeof Op[keyof typeof Op];

/** Record flag bits. */
export const Flag = { LOCAL: 1, SNAPSHOT: 2 } as const;
const KNOWN_FLAGS = Flag.LOCAL | Flag.SNAPSHOT;

const TWO_32 = 0x1_0000_0000;

/** Result codes of {@link checkRecord} below zero. */
export const Check = {
  /** Fewer bytes are available than the header or the record's length needs. */
  SHORT: -1,
  /** The header is impossible (unknown op, flags, lengths that do not add up). */
  BAD_HEADER: -2,
  /** The CRC does not match. */
  BAD_CRC: -3,
  /** The CRC matches but a BATCH's pairs or a MULTI's entries do not fill its payload. */
  BAD_PAYLOAD: -4,
} as const;

/** Why {@link checkRecord} rejected a record, in words. */
export function checkReason(code: number): string {
  switch (code) {
    case Check.SHORT:
      return "record cut short (header or payload runs past the end of the data)";
    case Check.BAD_HEADER:
      return "impossible record header";
    case Check.BAD_CRC:
      return "CRC mismatch";
    case Check.BAD_PAYLOAD:
      return "batch or multi entries do not fill the record";
    default:
      return `unknown check result ${code}`;
  }
}

/**
 * Key or value bytes to encode: a `Uint8Array`, or a byte string (one UTF-16 code unit 0–255 per
 * byte, see `keys.ts`; an ASCII string is its own byte string), copied without a `TextEncoder`.
 */
export type Payload = Uint8Array | string;

/** Payloads up to this long are copied byte by byte (see {@link copyPayload}). */
const SHORT_PAYLOAD_BYTES = 32;

/** Copies `payload` into `buf` at `at`. */
function copyPayload(buf: Uint8Array, at: number, payload: Payload): void {
  if (typeof payload !== "string") {
    // A key's few bytes copy faster in a loop than through `set` (docs/ARCHITECTURE.md,
    // "Measured costs").
    if (payload.length > SHORT_PAYLOAD_BYTES) buf.set(payload, at);
    else for (let i = 0; i < payload.length; i++) buf[at + i] = payload[i];
    return;
  }
  for (let i = 0; i < payload.length; i++) buf[at + i] = payload.charCodeAt(i);
}

/** Bytes of a PUT record. */
export function putRecordBytes(keyBytes: number, valueBytes: number): number {
  return RECORD_HEADER_BYTES + keyBytes + valueBytes;
}

/** Bytes of a DELETE record. */
export function deleteRecordBytes(keyBytes: number): number {
  return RECORD_HEADER_BYTES + keyBytes;
}

/** Bytes of a PUT_EXPIRING record. */
export function putExpiringRecordBytes(keyBytes: number, valueBytes: number): number {
  return RECORD_HEADER_BYTES + EXPIRY_BYTES + keyBytes + valueBytes;
}

/** One entry of a MULTI record: a put (expiresAtMs 0: it never expires) or a delete. */
export type MultiRecordEntry =
  | {
    readonly kind: typeof MultiKind.PUT;
    readonly key: Payload;
    readonly value: Payload;
    readonly expiresAtMs: number;
  }
  | { readonly kind: typeof MultiKind.DELETE; readonly key: Payload };

/** Bytes of a MULTI record holding these entries. */
export function multiRecordBytes(entries: readonly MultiRecordEntry[]): number {
  let total = RECORD_HEADER_BYTES;
  for (const entry of entries) {
    total += MULTI_ENTRY_HEADER_BYTES + entry.key.length;
    if (entry.kind === MultiKind.PUT) total += entry.value.length;
  }
  return total;
}

/** Bytes of a BATCH record holding these pairs. */
export function batchRecordBytes(pairs: readonly (readonly [Uint8Array, Uint8Array])[]): number {
  let total = RECORD_HEADER_BYTES;
  for (const [key, value] of pairs) total += PAIR_HEADER_BYTES + key.length + value.length;
  return total;
}

/** Reads a u64 LSN (below 2^53) at `offset`. */
export function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * TWO_32;
}

/** Writes a u64 (below 2^53) at `offset`. */
export function writeU64(view: DataView, offset: number, value: number): void {
  // The low 32 bits of a whole number below 2^53, exactly; cheaper than `%` and `Math.floor`
  // (docs/ARCHITECTURE.md, "Measured costs").
  const low = value >>> 0;
  view.setUint32(offset, low, true);
  view.setUint32(offset + 4, (value - low) / TWO_32, true);
}

function writeHeader(
  view: DataView,
  at: number,
  length: number,
  lsn: number,
  epoch: number,
  op: OpCode,
  flags: number,
  a: number,
  b: number,
): void {
  view.setUint32(at + 4, length, true);
  writeU64(view, at + 8, lsn);
  view.setUint32(at + 16, epoch, true);
  view.setUint8(at + 20, op);
  view.setUint8(at + 21, flags);
  view.setUint16(at + 22, 0, true);
  view.setUint32(at + 24, a, true);
  view.setUint32(at + 28, b, true);
}

function sealCrc(buf: Uint8Array, view: DataView, at: number, length: number): void {
  view.setUint32(at, crc32Of(buf, at + 4, at + length), true);
}

/**
 * Encodes a PUT record into `buf` at `at` (which must have room) and returns its length; with
 * `expiresAtMs` above 0, a PUT_EXPIRING record (the key is gone at that time). `view` is a
 * DataView over the same buffer.
 */
export function encodePut(
  buf: Uint8Array,
  view: DataView,
  at: number,
  lsn: number,
  epoch: number,
  flags: number,
  key: Payload,
  value: Payload,
  expiresAtMs = 0,
): number {
  const expiring = expiresAtMs !== 0;
  const length = expiring
    ? putExpiringRecordBytes(key.length, value.length)
    : putRecordBytes(key.length, value.length);
  const op = expiring ? Op.PUT_EXPIRING : Op.PUT;
  writeHeader(view, at, length, lsn, epoch, op, flags, key.length, value.length);
  let keyAt = at + RECORD_HEADER_BYTES;
  if (expiring) {
    writeU64(view, keyAt, expiresAtMs);
    keyAt += EXPIRY_BYTES;
  }
  copyPayload(buf, keyAt, key);
  copyPayload(buf, keyAt + key.length, value);
  sealCrc(buf, view, at, length);
  return length;
}

/** Encodes a MULTI record of `entries` (applied in order, all or nothing); returns its length. */
export function encodeMulti(
  buf: Uint8Array,
  view: DataView,
  at: number,
  lsn: number,
  epoch: number,
  flags: number,
  entries: readonly MultiRecordEntry[],
): number {
  let pos = at + RECORD_HEADER_BYTES;
  for (const entry of entries) {
    const isPut = entry.kind === MultiKind.PUT;
    const valueLength = isPut ? entry.value.length : 0;
    buf[pos] = entry.kind;
    view.setUint32(pos + 1, entry.key.length, true);
    view.setUint32(pos + 5, valueLength, true);
    writeU64(view, pos + 9, isPut ? entry.expiresAtMs : 0);
    pos += MULTI_ENTRY_HEADER_BYTES;
    copyPayload(buf, pos, entry.key);
    pos += entry.key.length;
    if (isPut) copyPayload(buf, pos, entry.value);
    pos += valueLength;
  }
  const length = pos - at;
  writeHeader(view, at, length, lsn, epoch, Op.MULTI, flags, entries.length, 0);
  sealCrc(buf, view, at, length);
  return length;
}

/** Encodes a FLUSH record (every key written before it is gone) and returns its length. */
export function encodeFlush(
  buf: Uint8Array,
  view: DataView,
  at: number,
  lsn: number,
  epoch: number,
  flags: number,
): number {
  writeHeader(view, at, RECORD_HEADER_BYTES, lsn, epoch, Op.FLUSH, flags, 0, 0);
  sealCrc(buf, view, at, RECORD_HEADER_BYTES);
  return RECORD_HEADER_BYTES;
}

/** Encodes a DELETE record into `buf` at `at` and returns its length. */
export function encodeDelete(
  buf: Uint8Array,
  view: DataView,
  at: number,
  lsn: number,
  epoch: number,
  flags: number,
  key: Payload,
): number {
  const length = deleteRecordBytes(key.length);
  writeHeader(view, at, length, lsn, epoch, Op.DELETE, flags, key.length, 0);
  copyPayload(buf, at + RECORD_HEADER_BYTES, key);
  sealCrc(buf, view, at, length);
  return length;
}

/** Encodes a BATCH record into `buf` at `at` and returns its length. */
export function encodeBatch(
  buf: Uint8Array,
  view: DataView,
  at: number,
  lsn: number,
  epoch: number,
  flags: number,
  pairs: readonly (readonly [Uint8Array, Uint8Array])[],
): number {
  let pos = at + RECORD_HEADER_BYTES;
  for (const [key, value] of pairs) {
    view.setUint32(pos, key.length, true);
    view.setUint32(pos + 4, value.length, true);
    buf.set(key, pos + PAIR_HEADER_BYTES);
    buf.set(value, pos + PAIR_HEADER_BYTES + key.length);
    pos += PAIR_HEADER_BYTES + key.length + value.length;
  }
  const length = pos - at;
  writeHeader(view, at, length, lsn, epoch, Op.BATCH, flags, pairs.length, 0);
  sealCrc(buf, view, at, length);
  return length;
}

/**
 * Checks the record starting at `at`, with `end` the end of the valid data in `buf`. Returns the
 * record's length when it is complete and intact, else a negative {@link Check} code.
 */
export function checkRecord(buf: Uint8Array, view: DataView, at: number, end: number): number {
  if (end - at < RECORD_HEADER_BYTES) return Check.SHORT;
  const length = view.getUint32(at + 4, true);
  const op = buf[at + 20];
  const flags = buf[at + 21];
  const a = view.getUint32(at + 24, true);
  const b = view.getUint32(at + 28, true);
  if (length < RECORD_HEADER_BYTES || (flags & ~KNOWN_FLAGS) !== 0) return Check.BAD_HEADER;
  if (view.getUint16(at + 22, true) !== 0 || view.getUint32(at + 12, true) >= 0x20_0000) {
    return Check.BAD_HEADER;
  }
  if (op === Op.PUT) {
    if (RECORD_HEADER_BYTES + a + b !== length) return Check.BAD_HEADER;
  } else if (op === Op.DELETE) {
    if (b !== 0 || RECORD_HEADER_BYTES + a !== length) return Check.BAD_HEADER;
  } else if (op === Op.BATCH) {
    if (b !== 0 || a * PAIR_HEADER_BYTES > length - RECORD_HEADER_BYTES) return Check.BAD_HEADER;
  } else if (op === Op.PUT_EXPIRING) {
    if (RECORD_HEADER_BYTES + EXPIRY_BYTES + a + b !== length) return Check.BAD_HEADER;
  } else if (op === Op.MULTI) {
    if (b !== 0 || a * MULTI_ENTRY_HEADER_BYTES > length - RECORD_HEADER_BYTES) {
      return Check.BAD_HEADER;
    }
  } else if (op === Op.FLUSH) {
    if (a !== 0 || b !== 0 || length !== RECORD_HEADER_BYTES) return Check.BAD_HEADER;
  } else {
    return Check.BAD_HEADER;
  }
  if (end - at < length) return Check.SHORT;
  if (crc32Of(buf, at + 4, at + length) !== view.getUint32(at, true)) return Check.BAD_CRC;
  if (op === Op.BATCH) {
    let pos = at + RECORD_HEADER_BYTES;
    const recordEnd = at + length;
    for (let i = 0; i < a; i++) {
      if (recordEnd - pos < PAIR_HEADER_BYTES) return Check.BAD_PAYLOAD;
      pos += PAIR_HEADER_BYTES + view.getUint32(pos, true) + view.getUint32(pos + 4, true);
      if (pos > recordEnd) return Check.BAD_PAYLOAD;
    }
    if (pos !== recordEnd) return Check.BAD_PAYLOAD;
  } else if (op === Op.MULTI) {
    if (!multiEntriesFit(buf, view, at, a, length)) return Check.BAD_PAYLOAD;
  } else if (op === Op.PUT_EXPIRING) {
    if (readU64(view, at + RECORD_HEADER_BYTES) === 0) return Check.BAD_PAYLOAD;
  }
  return length;
}

/** Whether the `count` entries of the MULTI record at `at` fill its `length` bytes exactly. */
function multiEntriesFit(
  buf: Uint8Array,
  view: DataView,
  at: number,
  count: number,
  length: number,
): boolean {
  let pos = at + RECORD_HEADER_BYTES;
  const recordEnd = at + length;
  for (let i = 0; i < count; i++) {
    if (recordEnd - pos < MULTI_ENTRY_HEADER_BYTES) return false;
    const kind = buf[pos];
    const valueLength = view.getUint32(pos + 5, true);
    if (kind !== MultiKind.PUT && kind !== MultiKind.DELETE) return false;
    if (kind === MultiKind.DELETE && (valueLength !== 0 || readU64(view, pos + 9) !== 0)) {
      return false;
    }
    if (readU64(view, pos + 9) > Number.MAX_SAFE_INTEGER) return false;
    pos += MULTI_ENTRY_HEADER_BYTES + view.getUint32(pos + 1, true) + valueLength;
    if (pos > recordEnd) return false;
  }
  return pos === recordEnd;
}

/** The LSN of the record at `at`. */
export function recordLsn(view: DataView, at: number): number {
  return readU64(view, at + 8);
}

/** The epoch of the record at `at`. */
export function recordEpoch(view: DataView, at: number): number {
  return view.getUint32(at + 16, true);
}

/** The op of the record at `at`. */
export function recordOp(buf: Uint8Array, at: number): OpCode {
  return buf[at + 20] as OpCode;
}

/** The flags of the record at `at`. */
export function recordFlags(buf: Uint8Array, at: number): number {
  return buf[at + 21];
}

/** The total length of the record at `at`, as its header says. */
export function recordLength(view: DataView, at: number): number {
  return view.getUint32(at + 4, true);
}

/** The CRC-32 field of the record at `at` (it covers the rest of the record). */
export function recordCrc(view: DataView, at: number): number {
  return view.getUint32(at, true);
}

/** The key length of the PUT or DELETE record at `at` (a BATCH's keys: {@link forEachKey}). */
export function recordKeyLength(view: DataView, at: number): number {
  return view.getUint32(at + 24, true);
}

/**
 * Visits one key of a record: `valueStart` is -1 (and `valueLength` 0) for a delete;
 * `expiresAtMs` is 0 for a value that never expires.
 */
export type KeyVisitor = (
  keyStart: number,
  keyLength: number,
  valueStart: number,
  valueLength: number,
  expiresAtMs: number,
) => void;

/**
 * Calls `visit(keyStart, keyLength, valueStart, valueLength, expiresAtMs)` for each key of a
 * checked record, in order (offsets into the same buffer). For a delete (a DELETE, or a MULTI's
 * delete entry) `valueStart` is -1 and `valueLength` 0. A FLUSH has no key: callers check
 * {@link recordOp} for it.
 */
export function forEachKey(buf: Uint8Array, view: DataView, at: number, visit: KeyVisitor): void {
  const op = buf[at + 20];
  const a = view.getUint32(at + 24, true);
  if (op === Op.PUT) {
    const keyStart = at + RECORD_HEADER_BYTES;
    visit(keyStart, a, keyStart + a, view.getUint32(at + 28, true), 0);
  } else if (op === Op.DELETE) {
    visit(at + RECORD_HEADER_BYTES, a, -1, 0, 0);
  } else if (op === Op.PUT_EXPIRING) {
    const keyStart = at + RECORD_HEADER_BYTES + EXPIRY_BYTES;
    const expiresAtMs = readU64(view, at + RECORD_HEADER_BYTES);
    visit(keyStart, a, keyStart + a, view.getUint32(at + 28, true), expiresAtMs);
  } else if (op === Op.MULTI) {
    let pos = at + RECORD_HEADER_BYTES;
    for (let i = 0; i < a; i++) {
      const keyLength = view.getUint32(pos + 1, true);
      const valueLength = view.getUint32(pos + 5, true);
      const keyStart = pos + MULTI_ENTRY_HEADER_BYTES;
      if (buf[pos] === MultiKind.DELETE) visit(keyStart, keyLength, -1, 0, 0);
      else visit(keyStart, keyLength, keyStart + keyLength, valueLength, readU64(view, pos + 9));
      pos = keyStart + keyLength + valueLength;
    }
  } else if (op === Op.BATCH) {
    let pos = at + RECORD_HEADER_BYTES;
    for (let i = 0; i < a; i++) {
      const keyLength = view.getUint32(pos, true);
      const valueLength = view.getUint32(pos + 4, true);
      const keyStart = pos + PAIR_HEADER_BYTES;
      visit(keyStart, keyLength, keyStart + keyLength, valueLength, 0);
      pos = keyStart + keyLength + valueLength;
    }
  }
}
