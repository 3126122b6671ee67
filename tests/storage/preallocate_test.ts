import assert from "node:assert/strict";
import { putRecordBytes } from "../../src/storage/record.ts";
import { KVStore } from "../../src/storage/mod.ts";
import { segmentFiles, text, withTempDir } from "./helpers.ts";

function sizeOf(path: string): number {
  return Deno.statSync(path).size;
}

/** Copies the files of an open store, as a crash at this instant would leave them on disk. */
function crashCopy(from: string, to: string): void {
  Deno.mkdirSync(to);
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isFile && entry.name !== "LOCK") {
      Deno.copyFileSync(`${from}/${entry.name}`, `${to}/${entry.name}`);
    }
  }
}

Deno.test("fsync always zero-fills the active segment ahead and trims it on close", async () => {
  await withTempDir(async (dir) => {
    const plainDir = `${dir}/plain`;
    const plain = await KVStore.open(plainDir, { fsync: "always", preallocateBytes: 0 });
    const store = await KVStore.open(`${dir}/zeroed`, { fsync: "always" });
    for (let i = 0; i < 50; i++) {
      await Promise.all([plain.put(`k${i}`, `v${i}`), store.put(`k${i}`, `v${i}`)]);
    }
    const [records] = segmentFiles(plainDir);
    const [segment] = segmentFiles(`${dir}/zeroed`);
    assert.equal(sizeOf(records) < 64 * 1024, true);
    assert.equal(sizeOf(segment), 40 + 64 * 1024, "the first step is 64 KiB past the header");
    const tail = Deno.readFileSync(segment).subarray(sizeOf(records));
    assert.ok(tail.every((byte) => byte === 0), "past the records there are only zeros");
    await plain.close();
    await store.close();
    assert.equal(sizeOf(segment), sizeOf(records), "close trims the zeros");
    assert.deepEqual(
      Deno.readFileSync(segment).subarray(40),
      Deno.readFileSync(records).subarray(40),
    );
  });
});

Deno.test("a crash leaves zeros after the last record: recovery keeps every record, trims them", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(`${dir}/live`, { fsync: "always" });
    try {
      for (let i = 0; i < 20; i++) await store.put(`k${i}`, `v${i}`);
      crashCopy(`${dir}/live`, `${dir}/crashed`);
      // A record written only in part over the zeros is a torn tail, as without them.
      await store.put("last", "x".repeat(100));
      crashCopy(`${dir}/live`, `${dir}/torn`);
    } finally {
      await store.close();
    }
    const [closedSegment] = segmentFiles(`${dir}/live`);
    const [tornSegment] = segmentFiles(`${dir}/torn`);
    const file = Deno.openSync(tornSegment, { read: true, write: true });
    file.seekSync(sizeOf(closedSegment) - 20, Deno.SeekMode.Start);
    file.writeSync(new Uint8Array(20)); // the last record's final 20 bytes never reached the disk
    file.close();

    const crashed = await KVStore.open(`${dir}/crashed`);
    assert.equal(crashed.lastLsn, 20);
    assert.equal(text(crashed.read("k19")), "v19");
    await crashed.close();
    const [crashedSegment] = segmentFiles(`${dir}/crashed`);
    const lastRecordBytes = putRecordBytes("last".length, 100);
    assert.equal(sizeOf(crashedSegment), sizeOf(closedSegment) - lastRecordBytes, "trimmed");

    const torn = await KVStore.open(`${dir}/torn`);
    assert.equal(torn.lastLsn, 20);
    assert.equal(torn.read("last"), undefined);
    assert.equal(text(torn.read("k19")), "v19");
    await torn.close();
  });
});

Deno.test("sealed segments carry no zeros: they scan cleanly without their hints", async () => {
  await withTempDir(async (dir) => {
    const options = { fsync: "always" as const, segmentSizeBytes: 8192 };
    const store = await KVStore.open(dir, options);
    for (let i = 0; i < 400; i++) await store.put(`key${i}`, "v".repeat(30));
    await store.close();
    const segments = segmentFiles(dir);
    assert.ok(segments.length >= 3, `${segments.length} segments`);
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.name.endsWith(".hint")) Deno.removeSync(`${dir}/${entry.name}`);
    }
    // A sealed segment with a zero tail would be a damaged record in a sealed segment.
    const reopened = await KVStore.open(dir, options);
    assert.equal(reopened.size, 400);
    assert.equal(text(reopened.read("key399")), "v".repeat(30));
    await reopened.close();
  });
});
