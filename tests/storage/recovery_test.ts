import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { hintPathOf, segmentFileName } from "../../src/storage/file_names.ts";
import { recover } from "../../src/storage/recovery.ts";
import { segmentFiles, withTempDir } from "../helpers/storage.ts";

/** Closes the read handles recovery opened. */
function closeAll(recovered: ReturnType<typeof recover>): void {
  for (const segment of recovered.segments) segment.closeReader();
}

Deno.test("recovery: an empty directory gets segment 1 and an empty index", async () => {
  await withTempDir((dir) => {
    const recovered = recover(dir, 5000);
    assert.deepEqual(recovered.segments.map((s) => s.id), [1]);
    assert.equal(recovered.index.size, 0);
    assert.equal(recovered.lastLsn, 0);
    assert.equal(recovered.lastEpoch, 0);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [segmentFileName(1)]);
    closeAll(recovered);
  });
});

Deno.test("recovery: segments, index, last LSN and epoch come back; missing hints are written", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { segmentSizeBytes: 4096, autoCompact: false });
    for (let i = 0; i < 200; i++) store.writePut(`key${i % 40}`, `value${i}`);
    store.writeDelete("key0");
    store.replicationLog.promote(4); // an empty BATCH in epoch 4
    await store.whenDurable(store.lastLsn);
    const lastLsn = store.lastLsn;
    await store.close();
    const files = segmentFiles(dir);
    for (const file of files.slice(0, -1)) Deno.removeSync(hintPathOf(file)); // crash before hints
    Deno.writeFileSync(`${dir}/000000000001.hint.tmp`, new Uint8Array(3)); // a half-written one
    const recovered = recover(dir, 5000);
    assert.equal(recovered.segments.length, files.length);
    assert.equal(recovered.index.size, 39);
    assert.equal(recovered.lastLsn, lastLsn);
    assert.equal(recovered.lastEpoch, 4);
    for (const file of files.slice(0, -1)) Deno.statSync(hintPathOf(file));
    assert.throws(() => Deno.statSync(`${dir}/000000000001.hint.tmp`), Deno.errors.NotFound);
    const live = recovered.segments.reduce((n, s) => n + s.liveBytes, 0);
    assert.ok(live > 0);
    closeAll(recovered);
  });
});

Deno.test("recovery: a torn tail of the active segment is cut, the records before it kept", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    for (let i = 0; i < 10; i++) store.writePut(`key${i}`, "v");
    await store.whenDurable(store.lastLsn);
    await store.close();
    const [active] = segmentFiles(dir);
    const size = Deno.statSync(active).size;
    Deno.truncateSync(active, size - 3);
    const recovered = recover(dir, 5000);
    assert.equal(recovered.lastLsn, 9);
    assert.equal(recovered.index.size, 9);
    assert.ok(Deno.statSync(active).size < size - 3, "cut back to the last whole record");
    closeAll(recovered);
  });
});
