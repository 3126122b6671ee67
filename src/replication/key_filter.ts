/**
 * Selective replication: a replica given key prefixes receives only the keys that start with one
 * of them. The master filters what it sends to that replica, record by record, keeping the LSNs:
 *
 * - a PUT, PUT_EXPIRING or DELETE of a matching key goes as it is;
 * - a BATCH goes with only its matching pairs, a MULTI with only its matching entries (in order),
 *   each still one record (atomic for what it keeps);
 * - a FLUSH goes as it is (every key goes, the filtered ones too);
 * - a record with nothing to keep becomes an empty BATCH at the same LSN and epoch (32 bytes): the
 *   replica's log stays gapless, its position means the same on every node, and it acknowledges
 *   every LSN as any replica does.
 *
 * A rewritten record gets its own CRC; the master compares a filtered replica's last record with
 * the filtered form of its own at a handshake (see `ReplicaLink`), so the check that finds a
 * diverged log works for filtered replicas too.
 *
 * @module
 */
import {
  batchRecordBytes,
  encodeBatch,
  encodeMulti,
  forEachKey,
  MultiKind,
  multiRecordBytes,
  type MultiRecordEntry,
  Op,
  recordEpoch,
  recordFlags,
  recordLength,
  recordLsn,
  recordOp,
} from "../storage/record.ts";
import { concatRuns } from "./log_records.ts";

const encoder = new TextEncoder();

/** Most prefixes one replica's filter may hold. */
export const MAX_FILTER_PREFIXES = 64;
/** Longest prefix, in bytes. */
export const MAX_PREFIX_BYTES = 256;

/** A key filter that cannot be used (too many prefixes, an empty or too long one). */
export class KeyFilterError extends Error {
  override name = "KeyFilterError";
}

/** The keys one replica receives: those starting with one of its prefixes. */
export class KeyFilter {
  /** The prefixes as given (text), in order. */
  readonly prefixes: readonly string[];
  readonly #bytes: Uint8Array[];

  /** Throws {@link KeyFilterError} for an empty list, an empty prefix, or past the bounds. */
  constructor(prefixes: readonly string[]) {
    if (prefixes.length === 0) throw new KeyFilterError("a key filter needs at least one prefix");
    if (prefixes.length > MAX_FILTER_PREFIXES) {
      throw new KeyFilterError(
        `a key filter has ${prefixes.length} prefixes, more than ${MAX_FILTER_PREFIXES}`,
      );
    }
    this.#bytes = prefixes.map((prefix) => {
      const bytes = encoder.encode(prefix);
      if (bytes.length === 0) throw new KeyFilterError("a key prefix may not be empty");
      if (bytes.length > MAX_PREFIX_BYTES) {
        throw new KeyFilterError(
          `key prefix "${prefix.slice(0, 40)}..." has ${bytes.length} bytes, more than ` +
            `${MAX_PREFIX_BYTES}`,
        );
      }
      return bytes;
    });
    this.prefixes = [...prefixes];
  }

  /** The filter of `prefixes`, or undefined for none (an empty or absent list). */
  static of(prefixes: readonly string[] | undefined): KeyFilter | undefined {
    return prefixes === undefined || prefixes.length === 0 ? undefined : new KeyFilter(prefixes);
  }

  /** True when `buf[start, start + length)` starts with one of the prefixes. */
  matches(buf: Uint8Array, start = 0, length = buf.length - start): boolean {
    outer: for (const prefix of this.#bytes) {
      if (prefix.length > length) continue;
      for (let i = 0; i < prefix.length; i++) {
        if (buf[start + i] !== prefix[i]) continue outer;
      }
      return true;
    }
    return false;
  }

  /** `[p1,p2]` as the settings and INFO write it. */
  toString(): string {
    return `[${this.prefixes.join(",")}]`;
  }
}

/** True when two prefix lists hold the same prefixes (order and repeats do not count). */
export function samePrefixes(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((p) => right.has(p));
}

/**
 * The run of whole records `records`, as a replica with `filter` receives it (see the module
 * comment): the same array when every record passes unchanged, else a new one.
 *
 * @throws {KeyFilterError} a record of an operation this filter does not know how to split
 */
export function filterRecords(records: Uint8Array, filter: KeyFilter): Uint8Array {
  const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
  let parts: Uint8Array[] | undefined;
  let passedFrom = 0;
  for (let at = 0; at < records.length;) {
    const length = recordLength(view, at);
    const kept = filterRecord(records, view, at, filter);
    if (kept !== undefined) {
      parts ??= [];
      if (passedFrom < at) parts.push(records.subarray(passedFrom, at));
      parts.push(kept);
      passedFrom = at + length;
    }
    at += length;
  }
  if (parts === undefined) return records;
  if (passedFrom < records.length) parts.push(records.subarray(passedFrom));
  return concatRuns(parts);
}

/** The record at `at` rewritten for `filter`, or undefined when it passes as it is. */
function filterRecord(
  buf: Uint8Array,
  view: DataView,
  at: number,
  filter: KeyFilter,
): Uint8Array | undefined {
  const op = recordOp(buf, at);
  if (op === Op.FLUSH) return undefined; // every key goes: the filtered ones too
  if (!FILTERABLE.has(op)) {
    throw new KeyFilterError(
      `record op ${op} at LSN ${recordLsn(view, at)} cannot be filtered by key (this node does ` +
        `not know it)`,
    );
  }
  const batch: [Uint8Array, Uint8Array][] = [];
  const multi: MultiRecordEntry[] = [];
  let dropped = 0;
  forEachKey(buf, view, at, (keyStart, keyLength, valueStart, valueLength, expiresAtMs) => {
    if (!filter.matches(buf, keyStart, keyLength)) {
      dropped++;
      return;
    }
    const key = buf.subarray(keyStart, keyStart + keyLength);
    if (valueStart < 0) {
      multi.push({ kind: MultiKind.DELETE, key });
      return;
    }
    const value = buf.subarray(valueStart, valueStart + valueLength);
    batch.push([key, value]);
    multi.push({ kind: MultiKind.PUT, key, value, expiresAtMs });
  });
  if (dropped === 0) return undefined;
  const lsn = recordLsn(view, at);
  const epoch = recordEpoch(view, at);
  const flags = recordFlags(buf, at);
  // A MULTI keeps its matching entries (in order, still atomic); a BATCH its matching pairs; a
  // single-key record that does not match becomes an empty BATCH holding its LSN.
  if (op === Op.MULTI && multi.length > 0) {
    const out = new Uint8Array(multiRecordBytes(multi));
    encodeMulti(out, new DataView(out.buffer), 0, lsn, epoch, flags, multi);
    return out;
  }
  const pairs = op === Op.BATCH ? batch : [];
  const out = new Uint8Array(batchRecordBytes(pairs));
  encodeBatch(out, new DataView(out.buffer), 0, lsn, epoch, flags, pairs);
  return out;
}

/** The operations whose keys a filter selects (FLUSH has none and always passes). */
const FILTERABLE: ReadonlySet<number> = new Set([
  Op.PUT,
  Op.DELETE,
  Op.BATCH,
  Op.PUT_EXPIRING,
  Op.MULTI,
]);
