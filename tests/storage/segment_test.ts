import assert from "node:assert/strict";
import { CorruptionError } from "../../src/storage/errors.ts";
import { segmentPath } from "../../src/storage/file_names.ts";
import {
  createSegmentFile,
  decodeSegmentHeader,
  encodeSegmentHeader,
  newSegmentHeader,
  openSegmentFile,
  Segment,
  SEGMENT_HEADER_BYTES,
  SegmentFlag,
  truncateSegmentFile,
} from "../../src/storage/segment.ts";
import { SegmentList } from "../../src/storage/segment_list.ts";
import { withTempDir } from "../helpers/storage.ts";

function fakeSegment(id: number, coveredLastLsn = 0): Segment {
  const header = newSegmentHeader(id, coveredLastLsn, 0);
  return new Segment(id, `/nowhere/${id}.log`, header, SEGMENT_HEADER_BYTES);
}

Deno.test("segment: a created segment opens again with the same header", async () => {
  await withTempDir((dir) => {
    const created = createSegmentFile(dir, 3, 17, SegmentFlag.FULL_SYNC);
    assert.equal(created.sizeBytes, SEGMENT_HEADER_BYTES);
    assert.equal(Deno.statSync(created.path).size, SEGMENT_HEADER_BYTES);
    const opened = openSegmentFile(dir, 3, false);
    assert.deepEqual(opened?.header, created.header);
    assert.throws(() => createSegmentFile(dir, 3, 0, 0), Deno.errors.AlreadyExists);
    const again = encodeSegmentHeader(created.header);
    assert.deepEqual(decodeSegmentHeader(again, "x"), created.header);
    opened?.closeReader();
  });
});

Deno.test("segment: opening refuses a bad header and removes an unfinished last segment", async () => {
  await withTempDir((dir) => {
    Deno.writeFileSync(segmentPath(dir, 1), new Uint8Array(10));
    assert.throws(() => openSegmentFile(dir, 1, false), CorruptionError, "sealed segment");
    assert.equal(openSegmentFile(dir, 1, true), undefined, "a crash at creation: nothing in it");
    assert.throws(() => Deno.statSync(segmentPath(dir, 1)), Deno.errors.NotFound);
    createSegmentFile(dir, 2, 0, 0);
    Deno.renameSync(segmentPath(dir, 2), segmentPath(dir, 5));
    assert.throws(() => openSegmentFile(dir, 5, true), CorruptionError, "names segment 2");
  });
});

Deno.test("segment: truncation cuts the file and its size", async () => {
  await withTempDir((dir) => {
    const segment = createSegmentFile(dir, 1, 0, 0);
    Deno.writeFileSync(segment.path, new Uint8Array(100), { append: true });
    segment.sizeBytes += 100;
    truncateSegmentFile(segment, SEGMENT_HEADER_BYTES + 10);
    assert.equal(segment.sizeBytes, SEGMENT_HEADER_BYTES + 10);
    assert.equal(Deno.statSync(segment.path).size, SEGMENT_HEADER_BYTES + 10);
  });
});

Deno.test("segment: pins never go negative; a retired segment closes when the last pin goes", async () => {
  await withTempDir((dir) => {
    const segment = createSegmentFile(dir, 1, 0, 0);
    assert.throws(() => segment.unpin(), assert.AssertionError);
    segment.pin();
    segment.pin();
    const fd = segment.reader();
    segment.retire();
    segment.unpin();
    assert.equal(segment.reader(), fd, "still pinned: the handle stays open");
    segment.unpin();
    assert.equal(segment.pins, 0);
    assert.throws(() => segment.unpin(), assert.AssertionError);
    segment.closeReader();
  });
});

Deno.test("segment: LSNs noted in a segment never go back", () => {
  const segment = fakeSegment(1);
  segment.noteLsn(5);
  segment.noteLsn(5); // a LOCAL record reuses the LSN before it
  segment.noteLsn(6);
  assert.equal(segment.firstLsn, 5);
  assert.equal(segment.lastLsn, 6);
  assert.throws(() => segment.noteLsn(4), assert.AssertionError);
});

Deno.test("segment list: ids ascend, the last is active, runs and full syncs replace", () => {
  const [a, b, c, d] = [1, 2, 3, 4].map((id) => fakeSegment(id, id === 1 ? 7 : 0));
  const list = new SegmentList([a, b]);
  assert.equal(list.active, b);
  assert.equal(list.oldest, a);
  list.push(c);
  assert.equal(list.active, c);
  assert.throws(() => list.push(fakeSegment(2)), assert.AssertionError);
  assert.deepEqual(list.sealed(), [a, b]);
  assert.equal(list.oldestCompleteLsn(), 7);
  const merged = fakeSegment(1, 9);
  list.replaceRun([a, b], merged);
  assert.deepEqual(list.all, [merged, c]);
  assert.equal(list.oldestCompleteLsn(), 9);
  assert.throws(() => list.replaceRun([c], fakeSegment(3)), assert.AssertionError, "active");
  b.retired = true;
  assert.equal(list.firstFrom(2), c);
  list.replaceAll([d]);
  assert.equal(list.active, d);
  assert.equal(list.sizeBytes(), SEGMENT_HEADER_BYTES);
  assert.throws(() => list.replaceAll([]), assert.AssertionError);
  assert.throws(() => new SegmentList([c, a]), assert.AssertionError);
});
