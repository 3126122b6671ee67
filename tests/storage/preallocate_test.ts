import assert from "node:assert/strict";
import { putRecordBytes } from "../../src/storage/record.ts";
import { CorruptionError, KVStore } from "../../src/storage/mod.ts";
import { segmentFiles, text, withTempDir } from "../helpers/storage.ts";

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

Deno.test("a power loss mid-fsync: zeros inside the unacknowledged records end the log there", async () => {
  await withTempDir(async (dir) => {
    const valueBytes = 1000;
    const recordBytes = putRecordBytes(3, valueBytes);
    const store = await KVStore.open(`${dir}/live`, { fsync: "always" });
    try {
      for (let i = 0; i < 20; i++) {
        await store.put(`k${String(i).padStart(2, "0")}`, "v".repeat(valueBytes));
      }
      for (const name of ["header", "sector", "flipped"]) {
        crashCopy(`${dir}/live`, `${dir}/${name}`);
      }
    } finally {
      await store.close();
    }
    // Record 19 (LSN 19) did not reach the disk, in part or whole; record 20 after it did.
    const recordStart = 40 + 18 * recordBytes;
    const damage = (name: string, offset: number, bytes: Uint8Array) => {
      const [segment] = segmentFiles(`${dir}/${name}`);
      const file = Deno.openSync(segment, { write: true });
      file.seekSync(offset, Deno.SeekMode.Start);
      file.writeSync(bytes);
      file.close();
    };
    damage("header", recordStart, new Uint8Array(recordBytes));
    const sector = Math.ceil((recordStart + 100) / 512) * 512;
    assert.ok(sector + 512 <= recordStart + recordBytes, "the sector lies inside the record");
    damage("sector", sector, new Uint8Array(512));
    damage("flipped", recordStart + 100, new TextEncoder().encode("w"));

    for (const name of ["header", "sector"]) {
      const recovered = await KVStore.open(`${dir}/${name}`);
      try {
        assert.equal(recovered.lastLsn, 18, `${name}: the log ends before the damage`);
        assert.equal(text(recovered.read("k17")), "v".repeat(valueBytes));
        assert.equal(recovered.read("k19"), undefined, `${name}: nothing after the hole`);
        assert.equal(await recovered.put("next", "x"), 19, `${name}: writes go on from there`);
      } finally {
        await recovered.close();
      }
    }
    await assert.rejects(
      () => KVStore.open(`${dir}/flipped`),
      CorruptionError,
      "a changed byte that is not a zero hole is still corruption",
    );
  });
});
