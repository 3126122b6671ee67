/**
 * The few facts the replication sender reads from encoded log records: length, LSN, epoch, CRC
 * and the LOCAL flag, read through the storage codec (`storage/record.ts`, the one place that
 * knows the record header). The sender never decodes keys or values: records travel verbatim,
 * and the replica checks their CRCs.
 *
 * @module
 */
import {
  Flag,
  RECORD_HEADER_BYTES,
  recordCrc,
  recordEpoch,
  recordFlags,
  recordLength,
  recordLsn,
} from "../storage/record.ts";
import type { DurableBatch } from "./record_queue.ts";

export { RECORD_HEADER_BYTES };

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Total length of the record at `offset`, as its header says. */
export function recordLengthAt(bytes: Uint8Array, offset: number): number {
  return recordLength(view(bytes), offset);
}

/** LSN of the record at `offset`. */
export function recordLsnAt(bytes: Uint8Array, offset: number): number {
  return recordLsn(view(bytes), offset);
}

/** CRC-32 field of the record at `offset` (covers everything after it in the record). */
export function recordCrcAt(bytes: Uint8Array, offset: number): number {
  return recordCrc(view(bytes), offset);
}

/** True for a LOCAL record (a replica's own write, not a master's). */
export function recordIsLocalAt(bytes: Uint8Array, offset: number): boolean {
  return (recordFlags(bytes, offset) & Flag.LOCAL) !== 0;
}

/** Epoch of the record at `offset`. */
export function recordEpochAt(bytes: Uint8Array, offset: number): number {
  return recordEpoch(view(bytes), offset);
}

/**
 * Cuts a durable batch into batches of at most `maxBytes` (a record larger than that travels
 * alone), on record boundaries. A batch that fits is returned as it is.
 */
export function splitBatch(batch: DurableBatch, maxBytes: number): DurableBatch[] {
  const { records } = batch;
  if (records.length <= maxBytes) return [batch];
  const out: DurableBatch[] = [];
  let start = 0;
  let at = 0;
  let firstLsn = batch.firstLsn;
  let lastLsn = firstLsn - 1;
  while (at < records.length) {
    const length = recordLengthAt(records, at);
    if (at > start && at + length - start > maxBytes) {
      out.push({ records: records.subarray(start, at), firstLsn, lastLsn });
      start = at;
      firstLsn = recordLsnAt(records, at);
    }
    lastLsn = recordLsnAt(records, at);
    at += length;
  }
  out.push({ records: records.subarray(start, at), firstLsn, lastLsn });
  return out;
}

/**
 * Where to cut a chunk of the log so that it ends at `uptoLsn`: the byte length of its records up
 * to that LSN and the last one's LSN (`previousLsn` when none is).
 */
export function recordsThrough(
  chunk: Uint8Array,
  uptoLsn: number,
  previousLsn: number,
): { end: number; lastLsn: number } {
  let end = 0;
  let lastLsn = previousLsn;
  while (end + RECORD_HEADER_BYTES <= chunk.length) {
    const lsn = recordLsnAt(chunk, end);
    if (lsn > uptoLsn) break;
    lastLsn = lsn;
    end += recordLengthAt(chunk, end);
  }
  return { end, lastLsn };
}

/** Runs of records (or any bytes) back to back in one new array. */
export function concatRuns(runs: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const run of runs) total += run.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const run of runs) {
    out.set(run, at);
    at += run.length;
  }
  return out;
}
