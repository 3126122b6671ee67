import assert from "node:assert/strict";
import { defaultConfig, loadConfig, SETTINGS } from "../../src/config.ts";
import { DEFAULT_STORE_OPTIONS, storeOptionsFromConfig } from "../../src/storage/mod.ts";

Deno.test("store options: the defaults are the settings table's, not a copy of it", () => {
  assert.equal(DEFAULT_STORE_OPTIONS.fsync, SETTINGS.FSYNC.default);
  assert.equal(DEFAULT_STORE_OPTIONS.segmentSizeBytes, SETTINGS.SEGMENT_SIZE_BYTES.default);
  assert.equal(DEFAULT_STORE_OPTIONS.maxKeyBytes, SETTINGS.MAX_KEY_BYTES.default);
  assert.equal(DEFAULT_STORE_OPTIONS.maxValueBytes, SETTINGS.MAX_VALUE_BYTES.default);
  assert.equal(DEFAULT_STORE_OPTIONS.writeBatchMaxBytes, SETTINGS.WRITE_BATCH_MAX_BYTES.default);
  assert.equal(DEFAULT_STORE_OPTIONS.preallocateBytes, SETTINGS.SEGMENT_PREALLOCATE_BYTES.default);
  assert.equal(
    DEFAULT_STORE_OPTIONS.incrementalFsyncBytes,
    SETTINGS.INCREMENTAL_FSYNC_BYTES.default,
  );
  assert.equal(DEFAULT_STORE_OPTIONS.compactionThreshold, SETTINGS.COMPACTION_THRESHOLD.default);
  assert.equal(DEFAULT_STORE_OPTIONS.compactionMinBytes, SETTINGS.COMPACTION_MIN_BYTES.default);
  assert.equal(DEFAULT_STORE_OPTIONS.compactionChunkBytes, SETTINGS.COMPACTION_CHUNK_BYTES.default);
  assert.equal(DEFAULT_STORE_OPTIONS.replica, SETTINGS.REPLICA.default);
  assert.deepEqual(DEFAULT_STORE_OPTIONS, storeOptionsFromConfig(defaultConfig()));
  assert.ok(Object.isFrozen(DEFAULT_STORE_OPTIONS));
});

Deno.test("store options: every storage flag reaches the store", () => {
  const { config } = loadConfig({
    env: {},
    args: [
      "--fsync=no",
      "--segment-size-bytes=8192",
      "--max-key-bytes=100",
      "--max-value-bytes=200",
      "--write-batch-max-bytes=4096",
      "--segment-preallocate-bytes=0",
      "--incremental-fsync-bytes=0",
      "--compaction-threshold=0.5",
      "--compaction-min-bytes=7",
      "--compaction-chunk-bytes=65536",
      "--expiry-interval-ms=250",
      "--expiry-keys-per-turn=50",
      "--value-cache-bytes=1048576",
      "--dead-value-map-bytes=2097152",
      "--replica",
    ],
  });
  const options = storeOptionsFromConfig(config);
  assert.deepEqual(options, {
    fsync: "no",
    segmentSizeBytes: 8192,
    maxKeyBytes: 100,
    maxValueBytes: 200,
    writeBatchMaxBytes: 4096,
    preallocateBytes: 0,
    incrementalFsyncBytes: 0,
    compactionThreshold: 0.5,
    compactionMinBytes: 7,
    compactionChunkBytes: 65536,
    replica: true,
    autoCompact: true,
    expiryIntervalMs: 250,
    expiryKeysPerTurn: 50,
    valueCacheBytes: 1048576,
    deadValueMapBytes: 2097152,
    recoveryProgressIntervalMs: DEFAULT_STORE_OPTIONS.recoveryProgressIntervalMs,
  });
});
