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

Deno.test("hint writer: the walk in steps keeps every slot still in the segment, drops those that left", async () => {
  await withTempDir(async (dir) => {
    const index = new KeyIndex<Segment>();
    const segment = createSegmentFile(dir, 1, 0, 0);
    segment.noteLsn(1);
    const other = createSegmentFile(dir, 2, 0, 0);
    // Keys inserted out of key order, so slot order and key order differ, interleaved with keys
    // of another segment; more slots than one step of the walk.
    const keys = Array.from({ length: 60 }, (_, i) => `k${String((i * 37) % 60).padStart(2, "0")}`);
    keys.forEach((key, i) => {
      indexValue(index, key, 0, key.length, i % 3 === 0 ? other : segment, 100 + 10 * i, 10);
    });
    const expected = new Map<string, number>();
    keys.forEach((key, i) => {
      if (i % 3 !== 0) expected.set(key, 100 + 10 * i);
    });
    let yields = 0;
    const writer = new HintWriter(dir, 7, {
      index: () => index,
      isClosed: () => false,
      yieldToRequests: () => {
        // Mid-walk, after some slots were marked: a key moves to a newer segment, and new keys
        // arrive there (a write never lands in a sealed segment).
        if (++yields === 3) {
          indexValue(index, keys[1], 0, keys[1].length, other, 9_000, 10);
          expected.delete(keys[1]);
          for (let i = 0; i < 20; i++) indexValue(index, `new${i}`, 0, 5, other, 9_100 + i, 10);
        }
        return Promise.resolve();
      },
      onWritten: () => {},
    });
    await writer.write(segment);
    assert.ok(yields > 3, `${yields} yields: the walk took several steps`);
    const sorted = [...expected].sort(([a], [b]) => (a < b ? -1 : 1));
    assert.deepEqual(
      hintOf(segment),
      sorted.map(([key, offset]) => [HintKind.VALUE, key, offset, 10]),
    );
  });
});
