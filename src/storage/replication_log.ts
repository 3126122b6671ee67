/**
 * `ReplicationLog`: what the store's log gives and takes for copies of the store (replication and
 * backups), reached as `KVStore.replicationLog`. Records going out: `onDurable` as they become
 * durable, `readLogFrom` to catch up from an LSN, `snapshot` for a full sync or a backup. Records
 * coming in: `appendReplicated`/`writeReplicated` (a master's records, verbatim, on a replica) and
 * `beginFullSync` (a master's snapshot replacing the contents). The role the store writes in:
 * `promote` (replica → master in a new epoch) and `demote` (master → replica).
 *
 * Invariants (asserted): LSNs never go back (a replicated append ends at or after where it
 * started; a promotion's marker comes after every earlier record), and what is durable or in a
 * snapshot never passes what was appended.
 *
 * @module
 */
import assert from "node:assert/strict";
import { getLog } from "../log.ts";
import type { Compactor } from "./compactor.ts";
import { LogGapError, StorageError, StoreClosedError } from "./errors.ts";
import { FullSync, type FullSyncContents, StagedLog } from "./full_sync.ts";
import type { HintWriter } from "./hint_writer.ts";
import { applyRecord } from "./index_entries.ts";
import type { Location } from "./key_index.ts";
import { bytesToKey } from "./keys.ts";
import type { Keyspace } from "./keyspace.ts";
import { readLog } from "./log_reader.ts";
import type { DurableListener, LogWriter } from "./log_writer.ts";
import {
  forEachKey,
  MAX_EPOCH,
  Op,
  recordEpoch,
  recordLength,
  recordLsn,
  recordOp,
} from "./record.ts";
import type { Segment } from "./segment.ts";
import type { SegmentList } from "./segment_list.ts";
import { type StoreSnapshot, takeSnapshot } from "./snapshot.ts";
import type { WriteStamp } from "./store_options.ts";
import type { ValueReader } from "./value_reader.ts";
import { checkReplicatedRecords, checkWritable } from "./write_checks.ts";

const logger = getLog("storage");

/** The parts of a store its replication log works on. */
export interface ReplicationLogParts {
  readonly dir: string;
  readonly log: LogWriter;
  readonly segments: SegmentList;
  readonly reader: ValueReader;
  readonly compactor: Pick<Compactor, "idle" | "compactingFrom">;
  readonly hints: Pick<HintWriter, "write">;
  readonly keyspace: Keyspace;
  readonly stamp: WriteStamp;
  /** The store is closed; or it is closing (no new snapshot then). */
  closed(): boolean;
  closing(): boolean;
  /** Runs `task` in the background (the store's close waits for it). */
  background(task: Promise<unknown>): void;
}

/** A store's log as replication and backups see it (`KVStore.replicationLog`). */
export class ReplicationLog {
  readonly #parts: ReplicationLogParts;
  #fullSync: StagedLog | undefined;

  constructor(parts: ReplicationLogParts) {
    this.#parts = parts;
  }

  /** Whether a full sync is replacing the contents now (the store refuses writes meanwhile). */
  get fullSyncing(): boolean {
    return this.#fullSync !== undefined;
  }

  /** Closes the staging files of a full sync in progress (the store is closing). */
  closeFiles(): void {
    this.#fullSync?.closeFiles();
  }

  #checkWritable(): void {
    const { dir, log } = this.#parts;
    checkWritable(dir, this.#parts.closed(), log.failure, this.#fullSync !== undefined);
  }

  /**
   * Calls `listener(records, firstLsn, lastLsn)` with the exact encoded bytes of records once they
   * reach the durability point (after fsync for `always`; after the OS write otherwise), in log
   * order. The bytes are the listener's to keep. Listeners run just before the same records'
   * `whenDurable` promises resolve (so replication starts before the writers hear OK).
   * Returns a function that unsubscribes.
   */
  onDurable(listener: DurableListener): () => void {
    return this.#parts.log.onDurable(listener);
  }

  /** Epoch of the last record in the log (0 for an empty log). */
  get lastEpoch(): number {
    return this.#parts.log.lastEpoch;
  }

  /** The log holds every record after this LSN (compaction or a full sync dropped some before). */
  get oldestCompleteLsn(): number {
    return this.#parts.segments.oldestCompleteLsn();
  }

  /**
   * On a replica: appends records encoded by the master (`records` holds whole records back to
   * back, as {@link onDurable} and {@link readLogFrom} give them) verbatim, with the master's LSNs,
   * and applies them. Records with an LSN at or below the store's last LSN are skipped (an
   * idempotent resend); the others must continue the log without a gap. Every record's CRC is
   * checked before any is applied. Resolves with the last LSN once durable by the local policy.
   *
   * @throws {ReplicationStreamError} a damaged record, or an LSN that does not follow
   */
  appendReplicated(records: Uint8Array): Promise<number> {
    const lastLsn = this.writeReplicated(records);
    return this.#parts.log.durability.whenDurable(lastLsn).then(() => lastLsn);
  }

  /**
   * {@link appendReplicated} without its promise (as `KVStore.writePut` is to `put`): appends and
   * applies the records now and returns the last LSN held, durable once `KVStore.whenDurable` of
   * it resolves. A replica's server, which waits for durability once per network read, takes no
   * promise per frame this way.
   *
   * @throws {ReplicationStreamError} a damaged record, or an LSN that does not follow
   */
  writeReplicated(records: Uint8Array): number {
    this.#checkWritable();
    const { log, keyspace } = this.#parts;
    const startLsn = log.lastLsn;
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
    checkReplicatedRecords(records, view, startLsn);
    for (let at = 0; at < records.length;) {
      const length = recordLength(view, at);
      const lsn = recordLsn(view, at);
      if (lsn > log.lastLsn) {
        log.appendEncoded(records, at, length, lsn, recordEpoch(view, at));
        if (recordOp(records, at) === Op.FLUSH) {
          keyspace.flush(this.#parts.segments.all, log.active);
        } else {
          applyRecord(keyspace.index, log.active, records, view, at, log.lastRecordOffset);
          const changed = keyspace.changed;
          if (changed !== undefined) {
            forEachKey(records, view, at, (start, length) => {
              changed(bytesToKey(records, start, start + length));
            });
          }
        }
      }
      at += length;
    }
    if (log.lastLsn < startLsn) assert.fail(`LSN went back from ${startLsn} to ${log.lastLsn}`);
    return log.lastLsn;
  }

  /**
   * The durable records with an LSN above `afterLsn`, in LSN order, from sealed and active
   * segments, as chunks of whole encoded records of at most `maxChunkBytes` (a single larger
   * record is a chunk of its own). The iteration ends at the durable point reached meanwhile;
   * later records arrive through {@link onDurable}.
   *
   * @throws {LogGapError} the log no longer holds every record after `afterLsn` (compaction or
   *   a full sync dropped some): the reader needs a full sync
   */
  readLogFrom(afterLsn: number, maxChunkBytes = 1024 * 1024): AsyncIterable<Uint8Array> {
    const { dir, log, segments } = this.#parts;
    if (this.#parts.closed()) throw new StoreClosedError(dir);
    const durableLsn = log.durability.durableLsn;
    if (durableLsn > log.lastLsn) assert.fail(`durable LSN ${durableLsn} past ${log.lastLsn}`);
    const oldestComplete = this.oldestCompleteLsn;
    if (afterLsn < oldestComplete) throw new LogGapError(afterLsn, oldestComplete);
    const source = { segments, durability: log.durability, isClosed: () => this.#parts.closed() };
    return readLog(source, afterLsn, maxChunkBytes);
  }

  /**
   * A consistent view of every pair as of {@link StoreSnapshot.lsn} (durable before this
   * resolves), for a replica's full sync or a backup. The segments it reads are pinned
   * (compaction leaves them) until `release()`. Writes continue meanwhile and are not seen by
   * the snapshot.
   */
  snapshot(): Promise<StoreSnapshot> {
    const { dir, log, reader } = this.#parts;
    if (this.#parts.closed() || this.#parts.closing()) {
      return Promise.reject(new StoreClosedError(dir));
    }
    return takeSnapshot({
      index: this.#parts.keyspace.index,
      lsn: log.lastLsn,
      // Entries may still point into a compacted run (see compactor.ts): pin those segments too.
      segments: [...this.#parts.segments.all, ...this.#parts.compactor.compactingFrom],
      whenDurable: (lsn) => log.durability.whenDurable(lsn),
      keyBytes: (key) => reader.key(key),
      readValue: (location: Location<Segment>) =>
        reader.value(location.segment, location.offset, location.length),
      isClosed: () => this.#parts.closed(),
    });
  }

  /**
   * Starts replacing the store's whole contents with a master's snapshot at `lsn` (a replica's
   * full sync, a backup's restore). Writes are refused until it finishes; reads see the old
   * contents until then. The new contents go to staging files; `finish()` commits them atomically
   * (a marker file), so a crash at any point leaves either the old store or the new one, never a
   * mix.
   */
  async beginFullSync(lsn: number, epoch = 0): Promise<FullSync> {
    const { dir, log, segments, stamp } = this.#parts;
    this.#checkWritable();
    await this.#parts.compactor.idle();
    log.flush();
    await log.durability.whenDurable(log.lastLsn);
    this.#checkWritable();
    const staging = new StagedLog(
      {
        dir,
        options: stamp.options,
        replaced: () => segments.all,
        install: (contents) => this.#installFullSync(staging, contents),
        end: () => {
          if (this.#fullSync === staging) this.#fullSync = undefined;
        },
      },
      lsn,
      segments.active.id + 1,
      epoch,
    );
    this.#fullSync = staging;
    return new FullSync(staging);
  }

  /** Takes over the contents a full sync committed: its files are in place. */
  #installFullSync(staging: StagedLog, contents: FullSyncContents): void {
    assert.equal(this.#fullSync, staging);
    const { segments, log, stamp } = this.#parts;
    const old = segments.all;
    segments.replaceAll([...contents.staged, contents.active]);
    for (const segment of old) segment.retire();
    log.restartAt(contents.lsn, contents.epoch);
    stamp.epoch = contents.epoch;
    this.#fullSync = undefined;
    this.#parts.keyspace.replace(contents.index);
    for (const segment of contents.staged) this.#parts.background(this.#parts.hints.write(segment));
    logger.info("full sync finished: {keys} keys at LSN {lsn}", {
      keys: contents.index.size,
      lsn: contents.lsn,
    });
  }

  /**
   * Makes a replica's store a master's (failover): direct writes then take new LSNs, no longer
   * LOCAL records, stamped with `epoch`, which must be above every epoch the store has seen.
   * Appends an empty BATCH record in the new epoch, so the epoch is in the log: a restart keeps
   * it, and replicas learn it from the stream. Returns that record's LSN (durable once
   * `KVStore.whenDurable` of it resolves).
   */
  promote(epoch: number): number {
    this.#checkWritable();
    const { log, stamp } = this.#parts;
    const highest = Math.max(stamp.epoch, log.lastEpoch);
    if (!Number.isInteger(epoch) || epoch <= highest || epoch > MAX_EPOCH) {
      throw new StorageError(
        `cannot promote to epoch ${epoch}: it must be a whole number above ${highest} (the ` +
          `highest epoch seen) and at most ${MAX_EPOCH}`,
      );
    }
    stamp.options = { ...stamp.options, replica: false };
    stamp.epoch = epoch;
    const before = log.lastLsn;
    const lsn = log.appendBatch(epoch, false, []); // an empty batch changes no key
    if (lsn <= before) assert.fail(`promotion marker LSN ${lsn} after LSN ${before}`);
    return lsn;
  }

  /**
   * Makes a master's store a replica's (a demotion at runtime, `REPLICAOF`): direct writes are
   * LOCAL records from now on, and the master's records come through {@link writeReplicated}.
   */
  demote(): void {
    this.#checkWritable();
    this.#parts.stamp.options = { ...this.#parts.stamp.options, replica: true };
  }
}
