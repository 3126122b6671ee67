import assert from "node:assert/strict";
import { CompactionSink, LiveCopier, repointMoved } from "../../src/storage/compaction_copy.ts";
import { Durability } from "../../src/storage/durability.ts";
import { indexValue, unindexSlot } from "../../src/storage/index_entries.ts";
import { KeyIndex } from "../../src/storage/key_index.ts";
import { LogWriter } from "../../src/storage/log_writer.ts";
import {
  checkRecord,
  forEachKey,
  Op,
  PAIR_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  recordLsn,
  recordOp,
} from "../../src/storage/record.ts";
import {
  createSegmentFile,
  newSegmentHeader,
  Segment,
  SEGMENT_HEADER_BYTES,
} from "../../src/storage/segment.ts";
import { SegmentList } from "../../src/storage/segment_list.ts";
import { bytes, withTempDir } from "../helpers/storage.ts";

/** A store's writes in miniature: records through a LogWriter, applied to an index. */
function miniStore(dir: string) {
  const index = new KeyIndex<Segment>();
  const segments = new SegmentList([createSegmentFile(dir, 1, 0, 0)]);
  const writer = new LogWriter(
    dir,
    {
      fsync: "no",
      segmentSizeBytes: 1024 * 1024,
      writeBatchMaxBytes: 1024 * 1024,
      preallocateBytes: 0,
      incrementalFsyncBytes: 0,
    },
    segments,
    new Durability(dir, 0, segments.active),
    { lsn: 0, epoch: 0 },
    () => {},
  );
  const put = (key: string, value: string) => {
    writer.appendPut(0, false, key, value);
    const offset = writer.lastRecordOffset + RECORD_HEADER_BYTES + key.length;
    indexValue(index, key, 0, key.length, writer.active, offset, value.length);
  };
  const batch = (pairs: [string, string][]) => {
    const encoded = pairs.map(([k, v]) => [bytes(k), bytes(v)] as const);
    writer.appendBatch(0, false, encoded);
    let offset = writer.lastRecordOffset + RECORD_HEADER_BYTES;
    for (const [k, v] of encoded) {
      offset += PAIR_HEADER_BYTES + k.length;
      indexValue(index, k, 0, k.length, writer.active, offset, v.length);
      offset += v.length;
    }
  };
  const remove = (key: string) => {
    writer.appendDelete(0, false, key);
    unindexSlot(index, index.find(key));
  };
  return { index, segments, writer, put, batch, remove };
}

/** The records of an output file as [op, lsn, keys]. */
function recordsOf(path: string): [number, number, string[]][] {
  const buf = Deno.readFileSync(path);
  const view = new DataView(buf.buffer);
  const out: [number, number, string[]][] = [];
  for (let at = SEGMENT_HEADER_BYTES; at < buf.length;) {
    const length = checkRecord(buf, view, at, buf.length);
    assert.ok(length > 0);
    const keys: string[] = [];
    forEachKey(buf, view, at, (keyStart, keyLength) => {
      keys.push(new TextDecoder().decode(buf.subarray(keyStart, keyStart + keyLength)));
    });
    out.push([recordOp(buf, at), recordLsn(view, at), keys]);
    at += length;
  }
  return out;
}

/** Copies every live record of `segment` into a new file; returns the sink. */
function copyAll(dir: string, store: ReturnType<typeof miniStore>, isOldest: boolean) {
  const segment = store.segments.all[0];
  const header = newSegmentHeader(1, segment.lastLsn, 0);
  const file = Deno.openSync(`${dir}/out`, { write: true, create: true });
  const sink = new CompactionSink(file, new Segment(1, `${dir}/out`, header, 0));
  sink.appendBytes(new Uint8Array(SEGMENT_HEADER_BYTES));
  const copier = new LiveCopier(store.index, segment, 0, isOldest, sink);
  assert.equal(copier.copy(SEGMENT_HEADER_BYTES, Infinity), segment.sizeBytes);
  sink.writeOut();
  file.close();
  return sink;
}

Deno.test("compaction copy: live records as they are, a batch cut to its live pairs, tombstones kept", async () => {
  await withTempDir(async (dir) => {
    const store = miniStore(dir);
    store.put("a", "1"); // LSN 1, live
    store.batch([["b", "2"], ["c", "3"]]); // LSN 2, c overwritten below
    store.put("gone", "x"); // LSN 3, deleted below
    store.remove("gone"); // LSN 4, a tombstone of an absent key
    store.put("c", "33"); // LSN 5, live
    store.writer.flush();
    const sink = copyAll(dir, store, false);
    assert.deepEqual(recordsOf(`${dir}/out`), [
      [Op.PUT, 1, ["a"]],
      [Op.BATCH, 2, ["b"]],
      [Op.DELETE, 4, ["gone"]],
      [Op.PUT, 5, ["c"]],
    ]);
    assert.equal(sink.moves.length, 3);
    assert.equal(sink.hint.entries, 1, "the kept tombstone");
    const oldest = copyAll(dir, store, true);
    assert.equal(oldest.hint.entries, 0, "the oldest segment's tombstones go");
    await store.writer.finish();
    store.writer.close();
  });
});

Deno.test("compaction copy: re-pointing moves entries to the output, and leaves changed ones alone", async () => {
  await withTempDir(async (dir) => {
    const store = miniStore(dir);
    store.put("a", "1");
    store.put("b", "2");
    store.writer.flush();
    const sink = copyAll(dir, store, true);
    const output = sink.output;
    store.put("b", "22"); // changed after the copy: its copy is garbage
    const liveBefore = output.liveBytes;
    const run = [store.segments.all[0]];
    assert.equal(repointMoved(store.index, sink.moves, 0, 1, run, output), 1, "a bounded step");
    assert.equal(repointMoved(store.index, sink.moves, 1, 1 << 20, run, output), 2);
    assert.equal(store.index.segmentOf(store.index.find("a")), output);
    assert.notEqual(store.index.segmentOf(store.index.find("b")), output);
    assert.ok(output.liveBytes < liveBefore);
    await store.writer.finish();
    store.writer.close();
  });
});
