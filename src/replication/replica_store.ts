/**
 * The replica-side view of a {@link KVStore} opened with `replica: true` (its direct writes are
 * LOCAL records that take no master LSN), as the {@link ReplicaApplier} uses it.
 *
 * @module
 */
import type { KVStore } from "../storage/mod.ts";
import { type ReplicaStore, ReplicateError } from "./replica_applier.ts";

/** Adapts a replica's store to the applier. */
export function replicaStoreOf(store: KVStore): ReplicaStore {
  return {
    get lastLsn() {
      return store.lastLsn;
    },
    get lastEpoch() {
      return store.lastEpoch;
    },
    appendReplicated: (records) => store.appendReplicated(records),
    putLocal: async (key, value) => {
      await store.put(key, value);
    },
    batchPutLocal: async (pairs) => {
      await store.batchPut(pairs);
    },
    deleteLocal: (key) => store.delete(key),
    beginFullSync: () => {
      throw new ReplicateError("this replica's storage cannot take a full sync yet");
    },
  };
}
