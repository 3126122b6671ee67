/**
 * Replication's views of a {@link KVStore}: the master's (its durable records, its log, its
 * snapshots) and the replica's (opened with `replica: true`, so its direct writes are LOCAL
 * records that take no master LSN).
 *
 * @module
 */
import { type KVStore, LogGapError } from "../storage/mod.ts";
import { RECORD_HEADER_BYTES, recordCrcAt, recordIsLocalAt, recordLsnAt } from "./log_records.ts";
import type { ReplicationSource } from "./link_context.ts";
import type { ReplicaStore } from "./replica_applier.ts";

/** Bytes read to find the replica's last record (one small chunk of the log's tail). */
const CRC_PROBE_BYTES = 64 * 1024;

/**
 * Adapts a master's store to the {@link Replicator}. `position` is where the replicator starts:
 * `"last"` (the store's last LSN) for one created with the store, before any write; `"durable"`
 * for one created at runtime (first `REPLICAS ADD`, or after `PROMOTE`), because records appended
 * but not yet durable reach it through `onDurable`, after it exists.
 */
export function masterSourceOf(
  store: KVStore,
  position: "last" | "durable" = "last",
): ReplicationSource {
  return {
    get lastLsn() {
      return position === "last" ? store.lastLsn : store.durableLsn;
    },
    get epoch() {
      return store.epoch;
    },
    get oldestCompleteLsn() {
      return store.replicationLog.oldestCompleteLsn;
    },
    onDurable: (listener) => store.replicationLog.onDurable(listener),
    readLogFrom: (lsn, maxChunkBytes) => store.replicationLog.readLogFrom(lsn, maxChunkBytes),
    snapshot: async () => {
      // Key and value bytes, for the progress both sides log: the live records' bytes less one
      // header each (an estimate for batches, whose pairs share a header).
      const stats = store.stats();
      const bytes = Math.max(0, stats.liveBytes - stats.keys * RECORD_HEADER_BYTES);
      const snapshot = await store.replicationLog.snapshot();
      return {
        lsn: snapshot.lsn,
        keys: snapshot.keys,
        bytes,
        entries: snapshot.entries,
        release: () => snapshot.release(),
      };
    },
  };
}

/** Adapts a replica's store to the applier. */
export function replicaStoreOf(store: KVStore): ReplicaStore {
  return {
    get lastLsn() {
      return store.lastLsn;
    },
    get lastEpoch() {
      return store.replicationLog.lastEpoch;
    },
    lastRecordCrc: async () => {
      const lsn = store.lastLsn;
      if (lsn === 0) return 0;
      try {
        for await (const chunk of store.replicationLog.readLogFrom(lsn - 1, CRC_PROBE_BYTES)) {
          const isMasterRecord = chunk.length >= RECORD_HEADER_BYTES &&
            recordLsnAt(chunk, 0) === lsn && !recordIsLocalAt(chunk, 0);
          return isMasterRecord ? recordCrcAt(chunk, 0) : 0;
        }
        return 0;
      } catch (error) {
        if (error instanceof LogGapError) return 0; // a full sync left only later records
        throw error;
      }
    },
    // The records are appended and applied before this returns; the caller waits for
    // durability through the server (whenDurable of the LSN), which also reports a log failure.
    appendReplicated: (records) => store.replicationLog.writeReplicated(records),
    putLocal: async (key, value) => {
      await store.put(key, value);
    },
    batchPutLocal: async (pairs) => {
      await store.batchPut(pairs);
    },
    deleteLocal: (key) => store.delete(key),
    beginFullSync: async (lsn, epoch) => {
      const sync = await store.replicationLog.beginFullSync(lsn, epoch);
      return {
        add: (pairs) => {
          for (const [key, value, expiresAtMs] of pairs) sync.put(key, value, expiresAtMs);
        },
        commit: () => sync.finish(),
        abort: () => sync.abort(),
      };
    },
  };
}
