import assert from "node:assert/strict";
import { Durability } from "../../src/storage/durability.ts";
import { CorruptionError } from "../../src/storage/errors.ts";
import { LogWriter, type LogWriterOptions } from "../../src/storage/log_writer.ts";
import {
  checkRecord,
  encodeDelete,
  Flag,
  putRecordBytes,
  recordFlags,
  recordLsn,
} from "../../src/storage/record.ts";
import { createSegmentFile, Segment, SEGMENT_HEADER_BYTES } from "../../src/storage/segment.ts";
import { SegmentList } from "../../src/storage/segment_list.ts";
import { ValueReader } from "../../src/storage/value_reader.ts";
import { text, withTempDir } from "../helpers/storage.ts";

const OPTIONS: LogWriterOptions = {
  fsync: "no",
  segmentSizeBytes: 4096,
  writeBatchMaxBytes: 1024 * 1024,
  preallocateBytes: 0,
  incrementalFsyncBytes: 0,
};

/** A writer over a fresh segment 1 of `dir`; `sealed` collects the segments it seals. */
function openWriter(dir: string, options: Partial<LogWriterOptions> = {}, first?: Segment) {
  const segments = new SegmentList([first ?? createSegmentFile(dir, 1, 0, 0)]);
  const durability = new Durability(dir, 0, segments.active);
  const sealed: Segment[] = [];
  const writer = new LogWriter(
    dir,
    { ...OPTIONS, ...options },
    segments,
    durability,
    { lsn: 0, epoch: 0 },
    (segment) => sealed.push(segment),
  );
  return { writer, segments, durability, sealed };
}

/** The LSNs and flags of the records in a segment file. */
function recordsOf(path: string): { lsn: number; flags: number }[] {
  const bytes = Deno.readFileSync(path);
  const view = new DataView(bytes.buffer);
  const out: { lsn: number; flags: number }[] = [];
  for (let at = SEGMENT_HEADER_BYTES; at < bytes.length;) {
    const length = checkRecord(bytes, view, at, bytes.length);
    if (length <= 0) break;
    out.push({ lsn: recordLsn(view, at), flags: recordFlags(bytes, at) });
    at += length;
  }
  return out;
}

Deno.test("log writer: the writes of one turn become one write, durable at its end", async () => {
  await withTempDir(async (dir) => {
    const { writer, segments, durability } = openWriter(dir);
    const heard: [number, number, number][] = [];
    writer.onDurable((records, first, last) => heard.push([records.length, first, last]));
    assert.equal(writer.appendPut(0, false, "a", "1"), 1);
    assert.equal(writer.appendPut(0, false, "b", "2"), 2);
    assert.equal(writer.appendPut(0, true, "c", "3"), 2, "a LOCAL record takes no new LSN");
    assert.equal(writer.lastRecordOffset, SEGMENT_HEADER_BYTES + 2 * putRecordBytes(1, 1));
    const reader = new ValueReader(writer);
    const valueAt = writer.lastRecordOffset + 32 + 1;
    assert.equal(text(reader.value(segments.active, valueAt, 1)), "3", "read from pending");
    assert.equal(Deno.statSync(segments.active.path).size, SEGMENT_HEADER_BYTES);
    await durability.whenDurable(2);
    assert.deepEqual(heard, [[3 * putRecordBytes(1, 1), 1, 2]]);
    assert.deepEqual(recordsOf(segments.active.path), [
      { lsn: 1, flags: 0 },
      { lsn: 2, flags: 0 },
      { lsn: 2, flags: Flag.LOCAL },
    ]);
    assert.equal(text(reader.value(segments.active, valueAt, 1)), "3", "read from the file");
    await writer.finish();
    writer.close();
  });
});

Deno.test("log writer: a full segment is sealed, fsynced and reported, and the next one started", async () => {
  await withTempDir(async (dir) => {
    const { writer, segments, sealed } = openWriter(dir);
    const value = "v".repeat(500);
    let lsn = 0;
    for (let i = 0; i < 20; i++) lsn = writer.appendPut(0, false, `k${i}`, value);
    writer.flush();
    assert.ok(segments.length >= 3);
    assert.deepEqual(sealed, segments.sealed());
    for (const segment of sealed) {
      assert.ok(segment.sizeBytes <= OPTIONS.segmentSizeBytes);
      assert.equal(Deno.statSync(segment.path).size, segment.sizeBytes);
    }
    const lsns = segments.all.flatMap((segment) => recordsOf(segment.path).map((r) => r.lsn));
    assert.deepEqual(lsns, Array.from({ length: lsn }, (_, i) => i + 1));
    await writer.finish();
    writer.close();
  });
});

Deno.test("log writer: always zero-fills ahead of its records, and trims the zeros at the end", async () => {
  await withTempDir(async (dir) => {
    const { writer, segments, durability } = openWriter(dir, {
      fsync: "always",
      preallocateBytes: 64 * 1024,
      segmentSizeBytes: 1024 * 1024,
    });
    let fsyncs = 0;
    writer.fsyncObserver = () => fsyncs++;
    writer.appendPut(0, false, "a", "1");
    writer.flush();
    assert.equal(fsyncs, 1);
    assert.equal(durability.durableLsn, 1);
    assert.ok(Deno.statSync(segments.active.path).size >= 64 * 1024);
    await writer.finish();
    writer.close();
    assert.equal(Deno.statSync(segments.active.path).size, segments.active.sizeBytes);
  });
});

Deno.test("log writer: LSNs never go back, a replicated record must follow the last", async () => {
  await withTempDir(async (dir) => {
    const { writer } = openWriter(dir);
    writer.appendPut(0, false, "a", "1");
    const record = new Uint8Array(64);
    assert.throws(() => writer.appendEncoded(record, 0, 40, 1, 0), assert.AssertionError);
    await writer.finish();
    writer.close();
  });
});

Deno.test({
  name: "log writer: a failed write fails the log for good and rejects its waiters",
  // /dev/full refuses every write with ENOSPC; Deno opens a device file only with --allow-all,
  // which a test cannot take, so a child process runs the writer.
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const fixture = new URL("../fixtures/full_disk_writer.ts", import.meta.url).pathname;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", fixture],
      cwd: new URL("../..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
      flush: "StoreFailedError",
      waiter: "StoreFailedError",
      again: "StoreFailedError",
      later: "StoreFailedError",
      durableLsn: 0,
    });
  },
});

Deno.test("value reader: a value that ends past its file is corruption, naming file and offset", async () => {
  await withTempDir(async (dir) => {
    const { writer, segments } = openWriter(dir);
    writer.appendPut(0, false, "a", "1");
    writer.flush();
    const sealedLike = createSegmentFile(dir, 9, 0, 0);
    const reader = new ValueReader(writer);
    assert.throws(
      () => reader.value(sealedLike, SEGMENT_HEADER_BYTES, 10),
      (error: Error) => error instanceof CorruptionError && error.path === sealedLike.path,
    );
    assert.equal(reader.value(segments.active, 0, 0).length, 0);
    sealedLike.closeReader();
    await writer.finish();
    writer.close();
  });
});

Deno.test("log writer: a segment holds puts only until a record of another kind, replicated or not", async () => {
  await withTempDir((dir) => {
    const { writer } = openWriter(dir, { segmentSizeBytes: 1024 * 1024 });
    writer.appendPut(0, false, "a", "1");
    writer.appendPutExpiring(0, false, "b", "2", Date.now() + 3_600_000);
    assert.equal(writer.active.onlyPuts, true);
    // A master's DELETE, as a replica appends it: compaction must scan this segment.
    const record = new Uint8Array(64);
    const length = encodeDelete(record, new DataView(record.buffer), 0, 3, 0, 0, "a");
    writer.appendEncoded(record, 0, length, 3, 0);
    assert.equal(writer.active.onlyPuts, false);
    writer.flush();
    writer.sealActive();
    assert.equal(writer.active.onlyPuts, true, "a new segment starts with no record");
    writer.close();
  });
});
