/**
 * The checks a write passes before the store appends anything: key and value sizes, an expiry
 * time, and replicated records (whole, intact, continuing the log). A refused write changes
 * nothing.
 *
 * @module
 */
import {
  KeyTooLargeError,
  ReplicationStreamError,
  StorageError,
  StoreClosedError,
  type StoreFailedError,
  ValueTooLargeError,
} from "./errors.ts";
import { payloadOf } from "./keys.ts";
import type { Bytes } from "./keys.ts";
import {
  checkReason,
  checkRecord,
  MultiKind,
  type MultiRecordEntry,
  type Payload,
  recordLsn,
} from "./record.ts";
import type { StoreOptions } from "./store_options.ts";

/** Largest expiry time a record can hold: 2^53 - 1 ms (about 285,000 years from 1970). */
export const MAX_EXPIRES_AT_MS = Number.MAX_SAFE_INTEGER;

/**
 * @throws {StoreClosedError} the store in `dir` is closed
 * @throws {StoreFailedError} its log failed (`failure`)
 * @throws {StorageError} a full sync is replacing its contents
 */
export function checkWritable(
  dir: string,
  closed: boolean,
  failure: StoreFailedError | undefined,
  fullSyncing: boolean,
): void {
  if (closed) throw new StoreClosedError(dir);
  if (failure) throw failure;
  if (fullSyncing) {
    throw new StorageError(`store ${dir} is replacing its contents (full sync); retry after`);
  }
}

/** @throws {KeyTooLargeError} past the configured limit */
export function checkKey(options: Readonly<StoreOptions>, key: Payload): void {
  if (key.length > options.maxKeyBytes) throw new KeyTooLargeError(key.length, options.maxKeyBytes);
}

/** @throws {StorageError} an expiry time that is not a whole number of ms from 0 to 2^53 - 1 */
export function checkExpiry(expiresAtMs: number): void {
  if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs < 0) {
    throw new StorageError(
      `expiry time ${expiresAtMs} is not a whole number of ms from 0 to ${MAX_EXPIRES_AT_MS}`,
    );
  }
}

/** @throws {ValueTooLargeError} past the configured limit */
export function checkValue(options: Readonly<StoreOptions>, value: Payload): void {
  if (value.length > options.maxValueBytes) {
    throw new ValueTooLargeError(value.length, options.maxValueBytes);
  }
}

/**
 * Checks replicated `records` before any is appended: each whole and intact (CRC), and their
 * LSNs continuing the log after `lastLsn` without a gap (records at or below it are resends).
 *
 * @throws {ReplicationStreamError} naming the damaged record or the LSN that does not follow
 */
export function checkReplicatedRecords(records: Uint8Array, view: DataView, lastLsn: number): void {
  let expected = lastLsn;
  for (let at = 0; at < records.length;) {
    const length = checkRecord(records, view, at, records.length);
    if (length < 0) {
      throw new ReplicationStreamError(
        `replicated record at byte ${at} of ${records.length} is damaged: ${checkReason(length)}`,
      );
    }
    const lsn = recordLsn(view, at);
    if (lsn > expected) {
      if (lsn !== expected + 1) {
        throw new ReplicationStreamError(
          `replicated record has LSN ${lsn} but this log continues at LSN ${expected + 1}`,
        );
      }
      expected = lsn;
    }
    at += length;
  }
}

/**
 * One write of {@link KVStore.writeMulti}: a put (expiring at `expiresAtMs`, ms since the Unix
 * epoch, when given and above 0) or a delete.
 */
export type MultiEntry =
  | {
    readonly kind: "put";
    readonly key: Bytes;
    readonly value: Bytes;
    readonly expiresAtMs?: number;
  }
  | { readonly kind: "delete"; readonly key: Bytes };

/**
 * The entries of a MULTI as the codec takes them, each checked (key and value sizes, expiry).
 *
 * @throws {KeyTooLargeError | ValueTooLargeError | StorageError} naming the first bad entry
 */
export function checkMultiEntries(
  options: Readonly<StoreOptions>,
  entries: readonly MultiEntry[],
): MultiRecordEntry[] {
  return entries.map((entry) => {
    const key = payloadOf(entry.key);
    checkKey(options, key);
    if (entry.kind === "delete") return { kind: MultiKind.DELETE, key };
    const value = payloadOf(entry.value);
    checkValue(options, value);
    const expiresAtMs = entry.expiresAtMs ?? 0;
    checkExpiry(expiresAtMs);
    return { kind: MultiKind.PUT, key, value, expiresAtMs };
  });
}
