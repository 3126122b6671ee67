/**
 * The storage engine: a log-structured key-value store (`KVStore`) over a segmented write-ahead
 * log with an in-memory sorted index. This file is the module's public surface.
 *
 * @module
 */
export {
  AtomicWrites,
  type Bytes,
  type CompactionReport,
  type DurableListener,
  type ExpiryStats,
  FullSync,
  type KeyChangeListener,
  KVStore,
  MAX_EXPIRES_AT_MS,
  type MultiEntry,
  ReplicationLog,
  type SnapshotEntry,
  type StoreSnapshot,
  type StoreStats,
} from "./store.ts";
export {
  DEFAULT_STORE_OPTIONS,
  type StoreOptions,
  storeOptionsFromConfig,
} from "./store_options.ts";
export {
  BatchTooLargeError,
  CorruptionError,
  KeyTooLargeError,
  LogGapError,
  RangeTooLargeError,
  ReplicationStreamError,
  StorageError,
  StoreClosedError,
  StoreFailedError,
  StoreLockedError,
  ValueTooLargeError,
} from "./errors.ts";
export { DATA_DIR_MODE, DATA_FILE_MODE } from "./durable_file.ts";
export { bytesToKey, keyToBytes, toBytes } from "./keys.ts";
export { MAX_EPOCH } from "./record.ts";
export { type KeyBatch, MAX_KEY_STRING, newKeyBatch } from "./key_index.ts";
export { type RepairAction, type RepairReport, repairStore } from "./repair.ts";
