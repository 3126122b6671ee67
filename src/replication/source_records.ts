/**
 * The master's record at one LSN as a replica holds it: its epoch and CRC, read from the log, in
 * the filtered form for a replica with a key filter. What the handshake, the check of a
 * sub-replica that was ahead, and the common-LSN search compare the replica's record with.
 *
 * @module
 */
import { LogGapError } from "../storage/errors.ts";
import { filterRecords, type KeyFilter } from "./key_filter.ts";
import type { ReplicationSource } from "./link_context.ts";
import {
  RECORD_HEADER_BYTES,
  recordCrcAt,
  recordEpochAt,
  recordLengthAt,
  recordLsnAt,
} from "./log_records.ts";

/** Epoch and CRC-32 of one record. */
export interface RecordMark {
  epoch: number;
  crc: number;
}

/**
 * Epoch and CRC of the master's record at `lsn` (epoch 0 and CRC 0 for LSN 0), or undefined
 * when the log no longer holds everything after `lsn`. A replica with a key filter holds the
 * filtered form of the record: its CRC is that one's (its filter is read when the record is).
 */
export async function recordAt(
  source: ReplicationSource,
  lsn: number,
  replica: { readonly keyFilter: KeyFilter | undefined },
): Promise<RecordMark | undefined> {
  const oldest = source.oldestCompleteLsn ?? 0;
  if (lsn === 0) return oldest === 0 ? { epoch: 0, crc: 0 } : undefined;
  if (lsn - 1 < oldest) return undefined;
  try {
    for await (const chunk of source.readLogFrom(lsn - 1)) {
      if (chunk.length < RECORD_HEADER_BYTES || recordLsnAt(chunk, 0) !== lsn) return undefined;
      const filter = replica.keyFilter;
      const record = filter === undefined
        ? chunk
        : filterRecords(chunk.subarray(0, recordLengthAt(chunk, 0)), filter);
      return { epoch: recordEpochAt(record, 0), crc: recordCrcAt(record, 0) };
    }
    return undefined;
  } catch (error) {
    if (error instanceof LogGapError) return undefined;
    throw error;
  }
}
