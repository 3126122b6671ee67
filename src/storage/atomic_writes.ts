/**
 * `AtomicWrites`: the writes that change many keys in one record, all or nothing (in the log,
 * after a crash, on replicas, through compaction), reached as `KVStore.atomicWrites`. A MULTI
 * record holds ordered puts and deletes: given whole (`writeMulti`), or gathered from the writes
 * of an `atomically(fn)` call (Redis's `EXEC` and `RENAME`), which reads through the store see
 * meanwhile (`write_capture.ts`). A FLUSH record removes every key written before it
 * (`writeFlush`, Redis's `FLUSHALL`); inside an atomic call it splits the group.
 *
 * @module
 */
import assert from "node:assert/strict";
import { BatchTooLargeError } from "./errors.ts";
import { indexMulti } from "./index_entries.ts";
import type { Keyspace } from "./keyspace.ts";
import type { LogWriter } from "./log_writer.ts";
import { MAX_RECORD_BYTES, multiRecordBytes } from "./record.ts";
import type { SegmentList } from "./segment_list.ts";
import type { WriteStamp } from "./store_options.ts";
import { WriteCapture } from "./write_capture.ts";
import { checkMultiEntries, type MultiEntry } from "./write_checks.ts";

/** The parts of a store its atomic writes work on. */
export interface AtomicWritesParts {
  readonly log: LogWriter;
  readonly segments: SegmentList;
  readonly keyspace: Keyspace;
  readonly stamp: WriteStamp;
  /** Throws unless the store takes writes now (open, its log not failed, no full sync). */
  checkWritable(): void;
}

/** A store's MULTI and FLUSH writes and the atomic call running now (`KVStore.atomicWrites`). */
export class AtomicWrites {
  readonly #parts: AtomicWritesParts;
  #capture: WriteCapture | undefined;

  constructor(parts: AtomicWritesParts) {
    this.#parts = parts;
  }

  /** The writes of the {@link atomically} call running now, or undefined (the store's writes
   * and reads look here first). */
  get capture(): WriteCapture | undefined {
    return this.#capture;
  }

  /**
   * Runs `fn`, whose writes (made synchronously: `writePut`, `writeDelete`, `writeBatch`) belong
   * together: they are written as ONE MULTI record when it returns (see `KVStore.atomically`).
   * Nested calls join the outer one.
   *
   * @throws what {@link writeMulti} throws (nothing of `fn`'s writes is then applied)
   */
  atomically<T>(fn: () => T): T {
    if (this.#capture !== undefined) return fn();
    this.#parts.checkWritable();
    const capture = this.#capture = new WriteCapture(this.#nextLsn());
    let result: T;
    try {
      result = fn();
    } finally {
      this.#capture = undefined;
    }
    if (capture.entries.length > 0) {
      const lsn = this.writeMulti(capture.entries);
      assert.equal(lsn, capture.lsn, "the atomic call's record took another LSN");
    }
    return result;
  }

  /** The LSN the next record appended will take (a replica's LOCAL records take none). */
  #nextLsn(): number {
    const { log, stamp } = this.#parts;
    return stamp.options.replica ? log.lastLsn : log.lastLsn + 1;
  }

  /**
   * Appends one MULTI record holding `entries` and applies them in order: all or nothing, in the
   * log, after a crash, on replicas, through compaction. Returns its LSN (durable once
   * `KVStore.whenDurable` of it resolves). A delete of an absent key is kept (it changes nothing).
   *
   * @throws {KeyTooLargeError | ValueTooLargeError | BatchTooLargeError} past the limits
   */
  writeMulti(entries: readonly MultiEntry[]): number {
    const { log, keyspace, stamp } = this.#parts;
    this.#parts.checkWritable();
    const encoded = checkMultiEntries(stamp.options, entries);
    const length = multiRecordBytes(encoded);
    if (length > MAX_RECORD_BYTES) throw new BatchTooLargeError(length, MAX_RECORD_BYTES);
    const lsn = log.appendMulti(stamp.epoch, stamp.options.replica, encoded);
    indexMulti(keyspace.index, log.active, log.lastRecordOffset, encoded, keyspace.changed);
    return lsn;
  }

  /** {@link writeMulti}, resolving with its LSN once durable. */
  async applyMulti(entries: readonly MultiEntry[]): Promise<number> {
    const lsn = this.writeMulti(entries);
    await this.#parts.log.durability.whenDurable(lsn);
    return lsn;
  }

  /**
   * Appends a FLUSH record: every key written before it is gone (after a restart, through
   * compaction, on replicas). Returns its LSN (durable once `KVStore.whenDurable` of it
   * resolves). Snapshots taken before keep seeing the old contents. Inside an atomic call, its
   * writes so far go first, in their own MULTI record; the ones after follow the FLUSH.
   */
  writeFlush(): number {
    const { log, segments, keyspace, stamp } = this.#parts;
    this.#parts.checkWritable();
    const capture = this.#capture;
    if (capture !== undefined) {
      const before = capture.takeAll(0);
      if (before.length > 0) this.writeMulti(before);
    }
    const lsn = log.appendFlush(stamp.epoch, stamp.options.replica);
    keyspace.flush(segments.all, log.active);
    capture?.takeAll(this.#nextLsn());
    return lsn;
  }

  /** {@link writeFlush}, resolving with its LSN once durable. */
  async flushAll(): Promise<number> {
    const lsn = this.writeFlush();
    await this.#parts.log.durability.whenDurable(lsn);
    return lsn;
  }
}
