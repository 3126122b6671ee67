/**
 * The few facts the replication sender reads from encoded log records: length, LSN and epoch
 * (the record header, documented beside the storage codec). The sender never decodes keys or
 * values: records travel verbatim, and the replica checks their CRCs.
 *
 * @module
 */
import type { DurableBatch } from "./record_queue.ts";

/** Bytes of the record header (storage codec). */
export const RECORD_HEADER_BYTES = 32;
const TWO_32 = 0x1_0000_0000;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Total length of the record at `offset`, as its header says. */
export function recordLengthAt(bytes: Uint8Array, offset: number): number {
  return view(bytes).getUint32(offset + 4, true);
}

/** LSN of the record at `offset`. */
export function recordLsnAt(bytes: Uint8Array, offset: number): number {
  const v = view(bytes);
  return v.getUint32(offset + 8, true) + v.getUint32(offset + 12, true) * TWO_32;
}

/** CRC-32 field of the record at `offset` (covers everything after it in the record). */
export function recordCrcAt(bytes: Uint8Array, offset: number): number {
  return view(bytes).getUint32(offset, true);
}

/** True for a LOCAL record (a replica's own write, not a master's). */
export function recordIsLocalAt(bytes: Uint8Array, offset: number): boolean {
  return (bytes[offset + 21] & 1) !== 0;
}

/** Epoch of the record at `offset`. */
export function recordEpochAt(bytes: Uint8Array, offset: number): number {
  return view(bytes).getUint32(offset + 16, true);
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
