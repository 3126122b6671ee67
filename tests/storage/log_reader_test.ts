import assert from "node:assert/strict";
import { Durability } from "../../src/storage/durability.ts";
import { LogGapError } from "../../src/storage/errors.ts";
import { type LogSource, readLog } from "../../src/storage/log_reader.ts";
import { LogWriter } from "../../src/storage/log_writer.ts";
import { checkRecord, recordLsn } from "../../src/storage/record.ts";
import { createSegmentFile } from "../../src/storage/segment.ts";
import { SegmentList } from "../../src/storage/segment_list.ts";
import { withTempDir } from "../helpers/storage.ts";

/** A log in `dir` with segments of 4 KiB, written through a LogWriter. */
function openLog(dir: string) {
  const segments = new SegmentList([createSegmentFile(dir, 1, 0, 0)]);
  const durability = new Durability(dir, 0, segments.active);
  const writer = new LogWriter(
    dir,
    {
      fsync: "no",
      segmentSizeBytes: 4096,
      writeBatchMaxBytes: 1024 * 1024,
      preallocateBytes: 0,
      incrementalFsyncBytes: 0,
    },
    segments,
    durability,
    { lsn: 0, epoch: 0 },
    () => {},
  );
  const source: LogSource = { segments, durability, isClosed: () => false };
  return { writer, source };
}

/** Every chunk of the log after `afterLsn`, and the LSNs of their records. */
async function read(source: LogSource, afterLsn: number, maxChunkBytes: number) {
  const chunks: Uint8Array[] = [];
  for await (const chunk of readLog(source, afterLsn, maxChunkBytes)) chunks.push(chunk);
  const lsns: number[] = [];
  for (const chunk of chunks) {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let at = 0; at < chunk.length;) {
      const length = checkRecord(chunk, view, at, chunk.length);
      assert.ok(length > 0, "chunks hold whole records");
      lsns.push(recordLsn(view, at));
      at += length;
    }
  }
  return { chunks, lsns };
}

Deno.test("log reader: the records after an LSN, across segments, up to the durable position", async () => {
  await withTempDir(async (dir) => {
    const { writer, source } = openLog(dir);
    for (let i = 0; i < 100; i++) writer.appendPut(0, false, `key${i}`, "v".repeat(100));
    writer.flush();
    assert.ok(source.segments.length > 2);
    const { chunks, lsns } = await read(source, 37, 1000);
    assert.deepEqual(lsns, Array.from({ length: 63 }, (_, i) => 38 + i));
    assert.ok(chunks.every((chunk) => chunk.length <= 1000));
    assert.ok(source.segments.all.every((segment) => segment.pins === 0), "pins released");
    // Durable only to the end of the second segment: nothing after it is read.
    const second = source.segments.all[1];
    const durability = { durableSegment: second, durableOffset: second.sizeBytes };
    const partial = await read({ ...source, durability }, 0, 1000);
    assert.deepEqual(partial.lsns, Array.from({ length: second.lastLsn }, (_, i) => i + 1));
    await writer.finish();
    writer.close();
  });
});

Deno.test("log reader: a record larger than a chunk comes whole; LOCAL records reuse an LSN", async () => {
  await withTempDir(async (dir) => {
    const { writer, source } = openLog(dir);
    writer.appendPut(0, false, "big", "b".repeat(2000));
    writer.appendPut(0, true, "local", "x");
    writer.appendPut(0, false, "next", "n");
    writer.flush();
    const { chunks, lsns } = await read(source, 0, 100);
    assert.ok(chunks[0].length > 2000);
    // A LOCAL record that starts a chunk is left out (a receiver skips it anyway: its LSN is not
    // above the one before); inside a chunk it rides along.
    assert.deepEqual(lsns, [1, 2]);
    assert.deepEqual((await read(source, 0, 4000)).lsns, [1, 1, 2]);
    await writer.finish();
    writer.close();
  });
});

Deno.test("log reader: a missing record is a gap, not a silent skip", async () => {
  await withTempDir(async (dir) => {
    const { writer, source } = openLog(dir);
    writer.appendPut(0, false, "a", "1");
    const record = new Uint8Array(64);
    const view = new DataView(record.buffer);
    const { encodePut } = await import("../../src/storage/record.ts");
    const length = encodePut(record, view, 0, 5, 0, 0, "b", "2");
    writer.appendEncoded(record, 0, length, 5, 0); // LSNs 2 to 4 never written
    writer.flush();
    await assert.rejects(read(source, 0, 1000), LogGapError);
    await writer.finish();
    writer.close();
  });
});
