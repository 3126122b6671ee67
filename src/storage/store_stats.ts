/**
 * The figures a store reports (`KVStore.stats()`: INFO's storage section, the metrics, the status
 * page), and the ones it adds up from its segments.
 *
 * @module
 */
import type { FsyncPolicy } from "../config.ts";
import { SEGMENT_HEADER_BYTES } from "./segment.ts";
import type { SegmentList } from "./segment_list.ts";

/** Figures describing a store. */
export interface StoreStats {
  /** Live keys. */
  keys: number;
  /** Approximate bytes of live records (keys, values and their headers). */
  liveBytes: number;
  /** Approximate bytes of superseded records and tombstones on disk. */
  garbageBytes: number;
  /** Bytes of all segment files. */
  diskBytes: number;
  /** Segment files, the active one included. */
  segments: number;
  /** LSN of the last record appended. */
  lastLsn: number;
  /** LSN of the last record at the policy's durability point. */
  durableLsn: number;
  /** The log holds every record after this LSN (compaction or a full sync dropped some before). */
  oldestCompleteLsn: number;
  /** Durability policy. */
  fsync: FsyncPolicy;
  /** Epoch stamped on new records. */
  epoch: number;
  /** Compaction runs finished since open, and bytes they reclaimed. */
  compactions: number;
  compactedBytes: number;
  /** Live keys with an expiry time (some may have passed it, not yet deleted). */
  expiringKeys: number;
  /** Keys active expiry deleted since open (Redis's `expired_keys`). */
  expiredKeys: number;
  /** Turns of active expiry that deleted keys, and the longest one's duration in ms. */
  expiryTurns: number;
  longestExpiryTurnMs: number;
  /** Why the store refuses writes, when it does. */
  failure?: string;
}

/** Live, garbage and disk bytes of the store's segments, and how many there are. */
export function segmentFigures(
  segments: SegmentList,
): Pick<StoreStats, "liveBytes" | "garbageBytes" | "diskBytes" | "segments"> {
  let liveBytes = 0;
  for (const segment of segments.all) liveBytes += segment.liveBytes;
  const diskBytes = segments.sizeBytes();
  const headers = segments.length * SEGMENT_HEADER_BYTES;
  return {
    liveBytes,
    garbageBytes: Math.max(0, diskBytes - headers - liveBytes),
    diskBytes,
    segments: segments.length,
  };
}
