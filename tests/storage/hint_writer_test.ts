import assert from "node:assert/strict";
import { HintBuilder, HintKind, loadHint } from "../../src/storage/hint.ts";
import { HintWriter, writeHintSync } from "../../src/storage/hint_writer.ts";
import { indexValue } from "../../src/storage/index_entries.ts";
import { KeyIndex } from "../../src/storage/key_index.ts";
import { createSegmentFile, type Segment } from "../../src/storage/segment.ts";
import { bytes, withTempDir } from "../helpers/storage.ts";

/** The entries of `segment`'s hint file as [kind, key, offset, length], or undefined. */
function hintOf(segment: Segment): [number, string, number, number][] | undefined {
  const entries: [number, string, number, number][] = [];
  const summary = loadHint(segment.hintPath, {
    id: segment.id,
    nonce: segment.header.nonce,
    sizeBytes: segment.sizeBytes,
  }, (kind, buf, keyStart, keyLength, offset, length) => {
    const key = new TextDecoder().decode(buf.subarray(keyStart, keyStart + keyLength));
    entries.push([kind, key, offset, length]);
  });
  return summary === undefined ? undefined : entries;
}

Deno.test("hint writer: a sealed segment's hint is its tombstones, then its live values in key order", async () => {
  await withTempDir(async (dir) => {
    const index = new KeyIndex<Segment>();
    const segment = createSegmentFile(dir, 1, 0, 0);
    segment.noteLsn(1);
    segment.noteLsn(4);
    segment.hint?.add(HintKind.TOMBSTONE, bytes("gone"), 0, 4, 0, 0);
    for (const [key, offset] of [["b", 300], ["c", 200], ["a", 100]] as const) {
      indexValue(index, key, 0, 1, segment, offset, 10);
    }
    const other = createSegmentFile(dir, 2, 0, 0);
    indexValue(index, "elsewhere", 0, 9, other, 50, 5); // not this segment's
    let written = 0;
    const writer = new HintWriter(dir, 1, {
      index: () => index,
      isClosed: () => false,
      yieldToRequests: () => Promise.resolve(),
      onWritten: () => written++,
    });
    const writing = writer.write(segment);
    assert.equal(segment.hintWriting, writing);
    await writing;
    assert.equal(segment.hintWriting, undefined);
    assert.equal(written, 1);
    assert.deepEqual(hintOf(segment), [
      [HintKind.TOMBSTONE, "gone", 0, 0],
      [HintKind.VALUE, "a", 100, 10],
      [HintKind.VALUE, "b", 300, 10],
      [HintKind.VALUE, "c", 200, 10],
    ]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "000000000001.hint",
      "000000000001.log",
      "000000000002.log",
    ]);
  });
});

Deno.test("hint writer: a segment retired meanwhile gets no hint; recovery writes one at once", async () => {
  await withTempDir(async (dir) => {
    const index = new KeyIndex<Segment>();
    const segment = createSegmentFile(dir, 1, 0, 0);
    const writer = new HintWriter(dir, 1, {
      index: () => index,
      isClosed: () => false,
      yieldToRequests: () => Promise.resolve(),
      onWritten: () => {},
    });
    segment.retire();
    await writer.write(segment);
    assert.equal(hintOf(segment), undefined);
    const scanned = createSegmentFile(dir, 2, 0, 0);
    scanned.hint = new HintBuilder();
    scanned.hint.add(HintKind.VALUE, bytes("k"), 0, 1, 60, 3);
    writeHintSync(dir, scanned);
    assert.equal(scanned.hint, undefined, "the entries are written and dropped");
    assert.deepEqual(hintOf(scanned), [[HintKind.VALUE, "k", 60, 3]]);
  });
});
