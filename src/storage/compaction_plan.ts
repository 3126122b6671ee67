/**
 * What to compact: a pure choice over the figures of the sealed segments (no files, no index),
 * so it is tested on its own.
 *
 * A sealed segment is worth rewriting when it holds garbage (bytes that are neither live values
 * nor tombstones it must keep) or is small; adjacent such segments are merged into one run as long
 * as what they keep fits in one segment. Automatic compaction asks for more: a segment past
 * `compactionThreshold` garbage and `compactionMinBytes`, or small neighbours to merge. A
 * tombstone can be dropped only from the oldest segment (nothing older holds a value it hides).
 *
 * @module
 */
import { SEGMENT_HEADER_BYTES } from "./segment.ts";
import type { StoreOptions } from "./store_options.ts";

/** The figures of a segment the choice reads. */
export interface SegmentFigures {
  /** Bytes of the file. */
  readonly sizeBytes: number;
  /** Bytes of its live entries. */
  readonly liveBytes: number;
  /** Bytes of its tombstone records. */
  readonly tombstoneBytes: number;
}

/** The settings the choice reads. */
export type CompactionLimits = Pick<
  StoreOptions,
  "segmentSizeBytes" | "compactionThreshold" | "compactionMinBytes"
>;

/** Manual compaction takes every gain; automatic compaction only what passes its thresholds. */
export type CompactionMode = "manual" | "auto";

/** Bytes compaction of `segment` would free (tombstones count only in the oldest segment). */
export function reclaimableBytes(segment: SegmentFigures, isOldest: boolean): number {
  const keptTombstones = isOldest ? 0 : segment.tombstoneBytes;
  return Math.max(
    0,
    segment.sizeBytes - SEGMENT_HEADER_BYTES - segment.liveBytes - keptTombstones,
  );
}

/** Whether automatic compaction wants `segment` for its garbage alone. */
function isAutoCandidate(
  segment: SegmentFigures,
  isOldest: boolean,
  limits: CompactionLimits,
): boolean {
  const reclaimable = reclaimableBytes(segment, isOldest);
  return reclaimable > 0 && reclaimable >= limits.compactionMinBytes &&
    reclaimable >= limits.compactionThreshold * segment.sizeBytes;
}

/**
 * The first run of adjacent segments of `sealed` (oldest first, the oldest segment of the store
 * first when it is sealed and `sealed[0] === oldest`) worth rewriting into one, or undefined.
 * `available(segment)` says whether a segment may be taken now (not pinned, its hint written, not
 * already done by this compaction); a run never spans one that may not.
 *
 * @example
 * ```ts
 * import { pickRun } from "./compaction_plan.ts";
 * const limits = { segmentSizeBytes: 4096, compactionThreshold: 0.3, compactionMinBytes: 0 };
 * const full = { sizeBytes: 4000, liveBytes: 3900, tombstoneBytes: 0 };
 * const garbage = { sizeBytes: 4000, liveBytes: 100, tombstoneBytes: 0 };
 * const run = pickRun([full, garbage], full, limits, "auto", () => true);
 * console.log(run?.length, run?.[0] === garbage); // 1 true
 * ```
 */
export function pickRun<S extends SegmentFigures>(
  sealed: readonly S[],
  oldest: S,
  limits: CompactionLimits,
  mode: CompactionMode,
  available: (segment: S) => boolean,
): S[] | undefined {
  const limit = limits.segmentSizeBytes;
  const reclaimable = (segment: S) => reclaimableBytes(segment, segment === oldest);
  const autoCandidate = (segment: S) => isAutoCandidate(segment, segment === oldest, limits);
  const wanted = (segment: S) =>
    available(segment) &&
    (mode === "manual"
      ? reclaimable(segment) > 0 || segment.sizeBytes < limit / 2
      : autoCandidate(segment) || segment.sizeBytes < limit / 4);
  for (let i = 0; i < sealed.length; i++) {
    if (!wanted(sealed[i])) continue;
    const run = [sealed[i]];
    let keptBytes = sealed[i].liveBytes + sealed[i].tombstoneBytes;
    for (let j = i + 1; j < sealed.length; j++) {
      const next = sealed[j];
      if (!wanted(next) || keptBytes + next.liveBytes + next.tombstoneBytes > limit) break;
      keptBytes += next.liveBytes + next.tombstoneBytes;
      run.push(next);
    }
    const worth = mode === "auto"
      ? run.some(autoCandidate) || run.length > 1
      : run.some((segment) => reclaimable(segment) > 0) || run.length > 1;
    if (worth) return run;
  }
  return undefined;
}
