import assert from "node:assert/strict";
import {
  type CompactionLimits,
  pickRun,
  reclaimableBytes,
  type SegmentFigures,
} from "../../src/storage/compaction_plan.ts";
import { SEGMENT_HEADER_BYTES } from "../../src/storage/segment.ts";

const limits: CompactionLimits = {
  segmentSizeBytes: 10_000,
  compactionThreshold: 0.3,
  compactionMinBytes: 1000,
};

/** A segment of `sizeBytes` holding `liveBytes` of live entries and `tombstoneBytes`. */
function seg(sizeBytes: number, liveBytes: number, tombstoneBytes = 0): SegmentFigures {
  return { sizeBytes, liveBytes, tombstoneBytes };
}

const always = () => true;

Deno.test("compaction plan: reclaimable bytes count tombstones only in the oldest segment", () => {
  const segment = seg(5000, 2000, 1000);
  assert.equal(reclaimableBytes(segment, false), 5000 - SEGMENT_HEADER_BYTES - 2000 - 1000);
  assert.equal(reclaimableBytes(segment, true), 5000 - SEGMENT_HEADER_BYTES - 2000);
  assert.equal(reclaimableBytes(seg(100, 500), false), 0, "never negative");
});

Deno.test("compaction plan: auto takes a segment past the threshold and the minimum only", () => {
  const full = seg(9000, 8900);
  const garbage = seg(9000, 2000); // 6,960 reclaimable: past 30 % and 1,000 bytes
  const little = seg(9000, 7000); // 1,960 reclaimable: past 1,000 bytes but under 30 %
  assert.deepEqual(pickRun([full, garbage, little], full, limits, "auto", always), [garbage]);
  assert.equal(pickRun([full, little], full, limits, "auto", always), undefined);
  const strict = { ...limits, compactionMinBytes: 7000 };
  assert.equal(pickRun([full, garbage], full, strict, "auto", always), undefined);
});

Deno.test("compaction plan: manual takes any gain; neither takes a lone full segment", () => {
  const full = seg(9000, 9000 - SEGMENT_HEADER_BYTES);
  const some = seg(9000, 8000);
  assert.deepEqual(pickRun([full, some], full, limits, "manual", always), [some]);
  assert.equal(pickRun([full], full, limits, "manual", always), undefined);
  assert.equal(pickRun([full], full, limits, "auto", always), undefined);
});

Deno.test("compaction plan: small neighbours merge while what they keep fits one segment", () => {
  const small = [seg(2000, 1900), seg(2000, 1900), seg(2000, 1900), seg(2000, 1900)];
  const oldest = seg(9000, 9000 - SEGMENT_HEADER_BYTES);
  const sealed = [oldest, ...small, seg(2000, 1900), seg(2000, 1900)];
  const run = pickRun(sealed, oldest, limits, "auto", always);
  assert.ok(run !== undefined);
  assert.equal(run[0], small[0]);
  // 1,900 kept each: five fit in 10,000 bytes, a sixth does not.
  assert.equal(run.length, 5);
  assert.ok(run.reduce((n, s) => n + s.liveBytes, 0) <= limits.segmentSizeBytes);
});

Deno.test("compaction plan: a run never takes or spans a segment that is not available", () => {
  const a = seg(2000, 500);
  const busy = seg(2000, 500);
  const b = seg(2000, 500);
  const oldest = seg(9000, 9000 - SEGMENT_HEADER_BYTES);
  const available = (segment: SegmentFigures) => segment !== busy;
  assert.deepEqual(pickRun([oldest, a, busy, b], oldest, limits, "manual", available), [a]);
  const notA = (segment: SegmentFigures) => segment !== a && segment !== busy;
  assert.deepEqual(pickRun([oldest, a, busy, b], oldest, limits, "manual", notA), [b]);
  assert.equal(pickRun([oldest, a, b], oldest, limits, "manual", () => false), undefined);
});

Deno.test("compaction plan: the oldest segment's tombstones are garbage, a later one's are kept", () => {
  const tombstones = seg(9000, 0, 8900);
  const last = seg(9000, 9000 - SEGMENT_HEADER_BYTES);
  assert.deepEqual(pickRun([tombstones, last], tombstones, limits, "auto", always), [tombstones]);
  const older = seg(9000, 9000 - SEGMENT_HEADER_BYTES);
  assert.equal(pickRun([older, tombstones, last], older, limits, "auto", always), undefined);
});

Deno.test("compaction plan: auto leaves the newest sealed segment to age; manual takes it", () => {
  // A hot set overwritten again and again: the segment sealed last holds all of it live, the one
  // before it is dead through (the next segment rewrote every key).
  const dead = seg(9000, 0);
  const hot = seg(9000, 2000);
  const oldest = seg(9000, 9000 - SEGMENT_HEADER_BYTES);
  assert.equal(pickRun([oldest, hot], oldest, limits, "auto", always), undefined);
  assert.deepEqual(pickRun([oldest, dead, hot], oldest, limits, "auto", always), [dead]);
  assert.deepEqual(pickRun([oldest, hot], oldest, limits, "manual", always), [hot]);
  // Alone, the newest is also the oldest: auto waits for the next one to be sealed.
  assert.equal(pickRun([dead], dead, limits, "auto", always), undefined);
  assert.deepEqual(pickRun([dead], dead, limits, "manual", always), [dead]);
});

Deno.test("compaction plan: auto copies a small live segment only when the output grows past small", () => {
  const oldest = seg(9000, 9000 - SEGMENT_HEADER_BYTES);
  const cold = seg(2000, 1900); // small (under 2,500), 1,900 live: more than compactionMinBytes
  const dead = seg(9000, 0);
  const newest = seg(9000, 2000);
  // The dead segment alone: rewriting the cold one with it would copy 1,900 bytes and leave a
  // small segment again, run after run.
  assert.deepEqual(pickRun([oldest, cold, dead, newest], oldest, limits, "auto", always), [dead]);
  // A small segment with little live (a rewrite's leftovers) still joins.
  const leftovers = seg(400, 50);
  assert.deepEqual(
    pickRun([oldest, cold, leftovers, dead, newest], oldest, limits, "auto", always),
    [leftovers, dead],
  );
  // Small live segments that together make one past small still merge.
  const cold2 = seg(2000, 1900);
  assert.deepEqual(pickRun([oldest, cold, cold2, newest], oldest, limits, "auto", always), [
    cold,
    cold2,
  ]);
  // Manual compaction takes every gain.
  assert.deepEqual(pickRun([oldest, cold, dead], oldest, limits, "manual", always), [cold, dead]);
  // With no minimum, a rewrite's fresh output of under 1/64 of a segment live (156 bytes here;
  // not garbage yet) still joins: outputs of a few live values do not pile up as files.
  const none = { ...limits, compactionMinBytes: 0 };
  const fresh = seg(200, 150);
  assert.deepEqual(
    pickRun([oldest, cold, fresh, dead, newest], oldest, none, "auto", always),
    [fresh, dead],
  );
});
