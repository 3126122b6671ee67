/**
 * The storage settings: durability (fsync), segments, key and value bounds, write batches,
 * compaction, active expiry and the cache of values read.
 *
 * One part of the settings table that `src/config.ts` assembles into `SETTINGS` and `Config`. A new
 * storage setting goes here: a field of {@link StorageConfig} and its row in {@link
 * STORAGE_SETTINGS} (the row's place is its place in `--help` and in docs/configuration.md).
 *
 * @module
 */
import { GIB, KIB, MIB, type SettingSpec } from "./setting.ts";

/** Durability policy of the write-ahead log. */
export type FsyncPolicy = "always" | "everysec" | "no";

/** The storage part of the typed settings of one node. */
export interface StorageConfig {
  FSYNC: FsyncPolicy;
  SEGMENT_SIZE_BYTES: number;
  SEGMENT_PREALLOCATE_BYTES: number;
  INCREMENTAL_FSYNC_BYTES: number;
  MAX_KEY_BYTES: number;
  MAX_VALUE_BYTES: number;
  WRITE_BATCH_MAX_BYTES: number;
  COMPACTION_THRESHOLD: number;
  COMPACTION_MIN_BYTES: number;
  COMPACTION_CHUNK_BYTES: number;
  EXPIRY_INTERVAL_MS: number;
  EXPIRY_KEYS_PER_TURN: number;
  VALUE_CACHE_BYTES: number;
  DEAD_VALUE_MAP_BYTES: number;
}

/** The storage rows of the settings table, in `--help` order. */
export const STORAGE_SETTINGS: { readonly [name in keyof StorageConfig]: SettingSpec } = {
  FSYNC: {
    kind: "enum",
    default: "always",
    group: "storage",
    choices: ["always", "everysec", "no"],
    description:
      "always: a write is acknowledged after its bytes are on disk (group commit); everysec: " +
      "fsync once a second; no: leave it to the OS.",
  },
  SEGMENT_SIZE_BYTES: {
    kind: "int",
    default: 64 * MIB,
    group: "storage",
    min: 4 * KIB,
    max: 4 * GIB,
    description: "Size at which the active log segment is sealed and a new one started.",
  },
  SEGMENT_PREALLOCATE_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "storage",
    min: 0,
    max: 64 * MIB,
    description: "With --fsync always, the active segment is zero-filled this far ahead of its " +
      "last record, so an fsync writes data only, not the file's new size (0: off).",
  },
  INCREMENTAL_FSYNC_BYTES: {
    kind: "int",
    default: 4 * MIB,
    group: "storage",
    min: 0,
    max: 4 * GIB,
    description: "With --fsync everysec or no, an fsync in the background after every this many " +
      "bytes written, so sealing a segment never waits for a large one (Redis's " +
      "aof-rewrite-incremental-fsync; 0: off).",
  },
  MAX_KEY_BYTES: {
    kind: "int",
    default: 64 * KIB,
    group: "storage",
    min: 1,
    max: 16 * MIB,
    description: "Largest key, in bytes.",
  },
  MAX_VALUE_BYTES: {
    kind: "int",
    default: 64 * MIB,
    group: "storage",
    min: 1,
    max: 1 * GIB,
    description: "Largest value, in bytes.",
  },
  WRITE_BATCH_MAX_BYTES: {
    kind: "int",
    default: 4 * MIB,
    group: "storage",
    min: 4 * KIB,
    max: 1 * GIB,
    description: "Most bytes one group-commit write gathers before it is flushed.",
  },
  COMPACTION_THRESHOLD: {
    kind: "float",
    default: 0.3,
    group: "storage",
    placeholder: "<ratio 0..1>",
    min: 0,
    max: 1,
    description: "Garbage ratio of a sealed segment past which it is compacted automatically " +
      "(once a newer segment is sealed: the newest sealed one is left to age).",
  },
  COMPACTION_MIN_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "storage",
    min: 0,
    max: 1024 * GIB,
    description: "Garbage bytes a sealed segment must hold before it is compacted automatically.",
  },
  COMPACTION_CHUNK_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "storage",
    min: 64 * KIB,
    max: 64 * MIB,
    description:
      "Log bytes compaction reads (or index entries it re-points) in one step before it yields " +
      "to requests; bounds how long compaction holds the event loop.",
  },
  EXPIRY_INTERVAL_MS: {
    kind: "int",
    default: 100,
    group: "storage",
    min: 0,
    max: 60_000,
    description:
      "How often a master looks for keys past their expiry time and deletes them (a DELETE " +
      "record each, replicated); 0: never (reads still treat such keys as gone).",
  },
  EXPIRY_KEYS_PER_TURN: {
    kind: "int",
    default: 500,
    min: 1,
    max: 100_000,
    group: "storage",
    description:
      "Most expired keys one turn of active expiry deletes before it yields to requests; " +
      "bounds the pause a million keys expiring at once can cause.",
  },
  VALUE_CACHE_BYTES: {
    kind: "int",
    default: 64 * MIB,
    group: "storage",
    min: 0,
    max: 64 * GIB,
    description:
      "Memory that keeps values read from the log for the next read of the same key (filled on " +
      "read, oldest dropped first; plain writes never fill it), each beside a copy of its key; a " +
      "value that with its key and 4 bytes exceeds 1 MiB is not kept; once used, the index's " +
      "slots widen from 16 to 32 bytes a key (as the first key with a TTL also does). 0: off.",
  },
  DEAD_VALUE_MAP_BYTES: {
    kind: "int",
    default: 64 * MIB,
    group: "storage",
    min: 0,
    max: 64 * GIB,
    description:
      "Memory for maps of the values writes made dead, a bit per 8 bytes of each segment written " +
      "since start (1/64 of its size), so compaction skips them without looking their keys up; " +
      "past it the oldest map goes and its segment's values are looked up. 0: off.",
  },
};
