/**
 * The bounded in-memory buffer of one replica: the master's durable batches of encoded records
 * that this replica has not acknowledged yet (sent or not), oldest first.
 *
 * The spec's `REPLICATION_QUEUE_SIZE` bounds it, counted in records. When a batch would exceed the
 * bound, the buffer is discarded and {@link RecordQueue.push} says so: the sender then reads what
 * the replica misses from the log on disk (catch-up). Nothing is dropped from the replica's
 * point of view, only from this cache of the log.
 *
 * @module
 */
import assert from "node:assert/strict";

/** One durable batch: consecutive records `firstLsn..lastLsn`, encoded as in the log. */
export interface DurableBatch {
  /** Encoded records, exactly as the storage log holds them. */
  records: Uint8Array;
  firstLsn: number;
  lastLsn: number;
}

/** Result of {@link RecordQueue.push}. */
export type PushResult =
  | { kind: "queued" }
  /** The buffer was discarded: `discardedRecords` records were in it, plus the new batch. */
  | { kind: "overflow"; discardedRecords: number };

/** Records in a batch (LSNs are consecutive on a master). */
export function batchRecordCount(batch: DurableBatch): number {
  return batch.lastLsn - batch.firstLsn + 1;
}

/** FIFO of durable batches bounded by a record count. */
export class RecordQueue {
  readonly capacityRecords: number;
  #batches: DurableBatch[] = [];
  #head = 0;
  #sizeRecords = 0;

  constructor(capacityRecords: number) {
    assert.ok(Number.isInteger(capacityRecords) && capacityRecords >= 1);
    this.capacityRecords = capacityRecords;
  }

  /** Records held now. */
  get sizeRecords(): number {
    return this.#sizeRecords;
  }

  /** Batches held now. */
  get length(): number {
    return this.#batches.length - this.#head;
  }

  /** First LSN held, or undefined when empty. */
  get firstLsn(): number | undefined {
    return this.length === 0 ? undefined : this.#batches[this.#head].firstLsn;
  }

  /** Last LSN held, or undefined when empty. */
  get lastLsn(): number | undefined {
    return this.length === 0 ? undefined : this.#batches[this.#batches.length - 1].lastLsn;
  }

  /**
   * Appends a batch that directly follows the last one held (or starts a new run when empty).
   * Past the capacity the whole buffer, the new batch included, is discarded.
   */
  push(batch: DurableBatch): PushResult {
    // Checked with `if` first: assert.ok has a cost per call (more with the message built), on
    // every batch for every replica (docs/ARCHITECTURE.md, "Measured costs").
    if (batch.lastLsn < batch.firstLsn) assert.fail("batch LSNs out of order");
    const last = this.lastLsn;
    if (last !== undefined && batch.firstLsn !== last + 1) {
      assert.fail(`batch ${batch.firstLsn} does not follow ${last}`);
    }
    const count = batchRecordCount(batch);
    if (this.#sizeRecords + count > this.capacityRecords) {
      const discardedRecords = this.#sizeRecords;
      this.clear();
      return { kind: "overflow", discardedRecords };
    }
    this.#batches.push(batch);
    this.#sizeRecords += count;
    return { kind: "queued" };
  }

  /** Removes the batches whose records are all at or below `lsn` (acknowledged). */
  releaseThrough(lsn: number): void {
    while (this.#head < this.#batches.length && this.#batches[this.#head].lastLsn <= lsn) {
      this.#sizeRecords -= batchRecordCount(this.#batches[this.#head]);
      this.#head++;
    }
    if (this.#head > 64 && this.#head * 2 > this.#batches.length) {
      this.#batches = this.#batches.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Empties the buffer. */
  clear(): void {
    this.#batches = [];
    this.#head = 0;
    this.#sizeRecords = 0;
  }

  /**
   * The held batches that contain records after `lsn`, oldest first, stopping before the one
   * that would take the total past `maxBytes` (the first batch is always included).
   * A batch that starts at or before `lsn` is included whole: replicas skip records they have.
   */
  batchesAfter(lsn: number, maxBytes: number): DurableBatch[] {
    const out: DurableBatch[] = [];
    let bytes = 0;
    let lo = this.#head;
    let hi = this.#batches.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#batches[mid].lastLsn > lsn) hi = mid;
      else lo = mid + 1;
    }
    for (let i = lo; i < this.#batches.length; i++) {
      const batch = this.#batches[i];
      if (out.length > 0 && bytes + batch.records.length > maxBytes) break;
      out.push(batch);
      bytes += batch.records.length;
    }
    return out;
  }
}
