/**
 * The settings of a store, derived from the node's settings table (`src/config.ts`), which is
 * the one source of their defaults and bounds.
 *
 * @module
 */
import { type Config, defaultConfig, type FsyncPolicy } from "../config.ts";

/** Settings of a store (from `src/config.ts`, see {@link storeOptionsFromConfig}). */
export interface StoreOptions {
  /** Durability policy: `always` acknowledges after fsync, `everysec`/`no` after the OS write. */
  fsync: FsyncPolicy;
  /** Size at which the active segment is sealed and a new one started. */
  segmentSizeBytes: number;
  /** Largest key. */
  maxKeyBytes: number;
  /** Largest value. */
  maxValueBytes: number;
  /** Most pending bytes gathered before a group-commit write is forced. */
  writeBatchMaxBytes: number;
  /**
   * With `fsync: "always"`, how far ahead of its last record the active segment is zero-filled
   * (0: not at all). See `log_writer.ts`.
   */
  preallocateBytes: number;
  /**
   * With `fsync: "everysec"` or `"no"`, a background fsync after every this many bytes written
   * (0: never), so the blocking fsync that seals a segment finds little dirty data.
   */
  incrementalFsyncBytes: number;
  /** Garbage ratio of a sealed segment past which it is compacted automatically. */
  compactionThreshold: number;
  /** Garbage bytes a sealed segment must hold before automatic compaction. */
  compactionMinBytes: number;
  /** Log bytes compaction scans (or index entries it re-points) before it yields. */
  compactionChunkBytes: number;
  /** Replica mode: direct writes are LOCAL records that do not consume a master LSN. */
  replica: boolean;
  /** Compact automatically (set false in tests that want to control compaction). */
  autoCompact: boolean;
  /** How often active expiry looks for keys past their time (0: never; reads still hide them). */
  expiryIntervalMs: number;
  /** Most keys one turn of active expiry deletes before it yields to requests. */
  expiryKeysPerTurn: number;
  /** Bound of the memory that keeps values read from segment files for the next read (0: none). */
  valueCacheBytes: number;
  /** Bound of the maps of dead values compaction skips without a lookup (0: none). */
  deadValueMapBytes: number;
  /** How often a long recovery logs how far it got (segments and keys so far). */
  recoveryProgressIntervalMs: number;
}

/** How often a long recovery logs its progress (not a node setting: it bounds nothing). */
const RECOVERY_PROGRESS_INTERVAL_MS = 5000;

/**
 * The options a {@link Config} implies.
 *
 * @example
 * ```ts
 * import { loadConfig } from "../config.ts";
 * import { storeOptionsFromConfig } from "./store_options.ts";
 * const { config } = loadConfig({ args: ["--fsync", "everysec"], env: {} });
 * console.log(storeOptionsFromConfig(config).fsync); // everysec
 * ```
 */
export function storeOptionsFromConfig(config: Config): StoreOptions {
  return {
    fsync: config.FSYNC,
    segmentSizeBytes: config.SEGMENT_SIZE_BYTES,
    maxKeyBytes: config.MAX_KEY_BYTES,
    maxValueBytes: config.MAX_VALUE_BYTES,
    writeBatchMaxBytes: config.WRITE_BATCH_MAX_BYTES,
    preallocateBytes: config.SEGMENT_PREALLOCATE_BYTES,
    incrementalFsyncBytes: config.INCREMENTAL_FSYNC_BYTES,
    compactionThreshold: config.COMPACTION_THRESHOLD,
    compactionMinBytes: config.COMPACTION_MIN_BYTES,
    compactionChunkBytes: config.COMPACTION_CHUNK_BYTES,
    replica: config.REPLICA,
    autoCompact: true,
    expiryIntervalMs: config.EXPIRY_INTERVAL_MS,
    expiryKeysPerTurn: config.EXPIRY_KEYS_PER_TURN,
    valueCacheBytes: config.VALUE_CACHE_BYTES,
    deadValueMapBytes: config.DEAD_VALUE_MAP_BYTES,
    recoveryProgressIntervalMs: RECOVERY_PROGRESS_INTERVAL_MS,
  };
}

/** Defaults of {@link StoreOptions}: those of the settings table in `src/config.ts`. */
export const DEFAULT_STORE_OPTIONS: Readonly<StoreOptions> = Object.freeze(
  storeOptionsFromConfig(defaultConfig()),
);

/**
 * How the store stamps its direct writes: their epoch, and its settings (`replica`: they are
 * LOCAL records, which take no LSN). A promotion, a demotion and a full sync change it.
 */
export interface WriteStamp {
  epoch: number;
  options: Readonly<StoreOptions>;
}
