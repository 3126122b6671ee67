import assert from "node:assert/strict";
import { HintBuilder } from "../../src/storage/hint.ts";
import {
  applyRecord,
  entryBytes,
  indexValue,
  noteTombstone,
  takeLiveBytes,
  unindexSlot,
} from "../../src/storage/index_entries.ts";
import { KeyIndex, NO_SLOT } from "../../src/storage/key_index.ts";
import { deleteRecordBytes, encodeDelete, encodePut } from "../../src/storage/record.ts";
import { newSegmentHeader, Segment, SEGMENT_HEADER_BYTES } from "../../src/storage/segment.ts";
import { bytes } from "../helpers/storage.ts";

function segment(id: number): Segment {
  return new Segment(id, `/nowhere/${id}.log`, newSegmentHeader(id, 0, 0), SEGMENT_HEADER_BYTES);
}

Deno.test("index entries: a value moves its key's live bytes to the segment that holds it", () => {
  const index = new KeyIndex<Segment>();
  const [a, b] = [segment(1), segment(2)];
  indexValue(index, "key", 0, 3, a, 100, 10);
  assert.equal(a.liveBytes, entryBytes(3, 10));
  const k = bytes("key");
  indexValue(index, k, 0, k.length, b, 200, 20);
  assert.equal(a.liveBytes, 0);
  assert.equal(b.liveBytes, entryBytes(3, 20));
  const slot = index.find("key");
  assert.equal(index.segmentOf(slot), b);
  assert.equal(index.offsetOf(slot), 200);
  unindexSlot(index, slot);
  assert.equal(b.liveBytes, 0);
  assert.equal(index.find("key"), NO_SLOT);
});

Deno.test("index entries: live bytes never go negative", () => {
  const a = segment(1);
  a.liveBytes = 5;
  assert.throws(() => takeLiveBytes(a, 6), assert.AssertionError);
});

Deno.test("index entries: an applied record indexes its values; a tombstone goes to the hint", () => {
  const index = new KeyIndex<Segment>();
  const active = segment(1);
  active.hint = new HintBuilder();
  const buf = new Uint8Array(200);
  const view = new DataView(buf.buffer);
  const putLength = encodePut(buf, view, 0, 1, 0, 0, "k", "value");
  const recordOffset = 1000;
  applyRecord(index, active, buf, view, 0, recordOffset);
  const slot = index.find("k");
  assert.equal(index.offsetOf(slot), recordOffset + 32 + 1, "header, key, then the value");
  assert.equal(index.lengthOf(slot), 5);
  encodeDelete(buf, view, putLength, 2, 0, 0, "k");
  applyRecord(index, active, buf, view, putLength, recordOffset + putLength);
  assert.equal(index.find("k"), NO_SLOT);
  assert.equal(active.liveBytes, 0);
  assert.equal(active.tombstoneBytes, deleteRecordBytes(1));
  assert.equal(active.hint.entries, 1);
  noteTombstone(active, "other");
  noteTombstone(active, bytes("third"));
  assert.equal(active.hint.entries, 3);
  assert.equal(active.tombstoneBytes, deleteRecordBytes(1) + deleteRecordBytes(5) * 2);
});
