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
 * Automatic compaction never takes the newest sealed segment: its values are the youngest, and
 * young values die soonest. Under a load that overwrites a hot set of keys (counters, sessions),
 * the segment sealed last holds the whole set live; rewriting it at once copies the set only for
 * the next segment to kill every copy. Once a newer segment is sealed, the same segment is nearly
 * all garbage and its rewrite copies almost nothing. The cost is disk: up to one more segment of
 * garbage waits. Manual compaction takes every segment.
 *
 * Nor does automatic compaction copy a small segment's live values for nothing: a small segment
 * holding more than `compactionMinBytes` (and 1/64 of a segment) live joins a run only when the
 * run's output is no longer small. Otherwise a small segment of cold values next to a run of
 * garbage would be rewritten with every such run, and stay small.
 *
 * @module
 */
import { SEGMENT_HEADER_BYTES } from "./segment.ts";
import type { StoreOptions } from "./store_options.ts";

/** A small segment holds more than 1/this of a segment live before it is held back. */
const HELD_BACK_SHARE_DIVISOR = 64;

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
 * first when it is sealed and `sealed[0] === oldest`) worth rewriting into one, or undefined. In
 * `auto` mode the last of `sealed`, the newest, is never taken, nor a small segment holding more
 * than `compactionMinBytes` (and 1/64 of a segment) live unless the run's output is no longer
 * small.
 * `available(segment)` says whether a segment may be taken now (not pinned, its hint written, not
 * already done by this compaction); a run never spans one that may not.
 *
 * @example
 * ```ts
 * import { pickRun } from "./compaction_plan.ts";
 * const limits = { segmentSizeBytes: 4096, compactionThreshold: 0.3, compactionMinBytes: 0 };
 * const full = { sizeBytes: 4000, liveBytes: 3900, tombstoneBytes: 0 };
 * const garbage = { sizeBytes: 4000, liveBytes: 100, tombstoneBytes: 0 };
 * const newest = { sizeBytes: 4000, liveBytes: 1000, tombstoneBytes: 0 };
 * const run = pickRun([full, garbage, newest], full, limits, "auto", () => true);
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
  const newest = sealed[sealed.length - 1];
  const wanted = (segment: S) =>
    available(segment) &&
    (mode === "manual"
      ? reclaimable(segment) > 0 || segment.sizeBytes < limit / 2
      : segment !== newest && (autoCandidate(segment) || segment.sizeBytes < limit / 4));
  /**
   * A small segment whose live values automatic compaction copies only to end up larger. Past
   * 1/64 of a segment too, so at most 16 of them lie side by side before a run of them is large
   * enough, whatever `compactionMinBytes` (0 included).
   */
  const heldBack = (segment: S) =>
    !autoCandidate(segment) &&
    segment.liveBytes > Math.max(limits.compactionMinBytes, limit / HELD_BACK_SHARE_DIVISOR);
  const worth = (run: readonly S[]) =>
    mode === "auto"
      ? run.some(autoCandidate) || run.length > 1
      : run.some((segment) => reclaimable(segment) > 0) || run.length > 1;
  for (let i = 0; i < sealed.length; i++) {
    if (!wanted(sealed[i])) continue;
    const run = [sealed[i]];
    let keptBytes = keptBytesOf(sealed[i]);
    for (let j = i + 1; j < sealed.length; j++) {
      const next = sealed[j];
      if (!wanted(next) || keptBytes + keptBytesOf(next) > limit) break;
      keptBytes += keptBytesOf(next);
      run.push(next);
    }
    if (mode === "auto" && keptBytes < limit / 4 && run.some(heldBack)) {
      // The output would still be small: the run without the small live segments, if worth it.
      const pieces = splitAt(run, heldBack);
      const piece = pieces.find(worth);
      if (piece !== undefined) return piece;
      continue;
    }
    if (worth(run)) return run;
  }
  return undefined;
}

/** What a rewrite of `segment` keeps: its live values and its tombstones. */
function keptBytesOf(segment: SegmentFigures): number {
  return segment.liveBytes + segment.tombstoneBytes;
}

/** The runs of adjacent segments of `run` between those that `cut` says to leave out. */
function splitAt<S>(run: readonly S[], cut: (segment: S) => boolean): S[][] {
  const pieces: S[][] = [[]];
  for (const segment of run) {
    if (cut(segment)) pieces.push([]);
    else pieces[pieces.length - 1].push(segment);
  }
  return pieces.filter((piece) => piece.length > 0);
}
