import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { segmentFileName } from "../../src/storage/file_names.ts";
import {
  decodeSegmentHeader,
  encodeSegmentHeader,
  SEGMENT_HEADER_BYTES,
} from "../../src/storage/segment.ts";
import { segmentFiles, text, withTempDir } from "../helpers/storage.ts";

async function pairs(
  iterable: AsyncIterable<readonly [Uint8Array, Uint8Array, number?]>,
): Promise<string[][]> {
  const out: string[][] = [];
  for await (const [k, v] of iterable) out.push([text(k) as string, text(v) as string]);
  return out;
}

Deno.test("a snapshot keeps its view through writes, deletes and compaction", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { segmentSizeBytes: 4096, autoCompact: false });
    try {
      for (let i = 0; i < 100; i++) store.writePut(`k${String(i).padStart(3, "0")}`, `v${i}`);
      const snapshot = await store.replicationLog.snapshot();
      assert.equal(snapshot.lsn, 100);
      for (let i = 0; i < 100; i += 2) store.writePut(`k${String(i).padStart(3, "0")}`, "new");
      for (let i = 1; i < 100; i += 4) store.writeDelete(`k${String(i).padStart(3, "0")}`);
      store.writePut("k500", "added");
      await store.compact();
      const seen = await pairs(snapshot.entries);
      snapshot.release();
      assert.equal(seen.length, 100);
      assert.deepEqual(seen[0], ["k000", "v0"]);
      assert.deepEqual(seen[99], ["k099", "v99"]);
      assert.equal(text(store.read("k000")), "new");
      await store.compact(); // released: now everything may be compacted
    } finally {
      await store.close();
    }
  });
});

Deno.test("a full sync replaces a replica's contents atomically and survives reopen", async () => {
  await withTempDir(async (dir) => {
    let replica = await KVStore.open(dir, { replica: true, segmentSizeBytes: 4096 });
    await replica.put("stale", "old");
    const sync = await replica.replicationLog.beginFullSync(500);
    assert.throws(() => replica.writePut("x", "y"), /full sync/);
    for (let i = 0; i < 200; i++) sync.put(new TextEncoder().encode(`key${i}`), new Uint8Array(30));
    assert.equal(text(replica.read("stale")), "old", "reads see the old contents meanwhile");
    await sync.finish();
    assert.equal(replica.read("stale"), undefined);
    assert.equal(replica.size, 200);
    assert.equal(replica.lastLsn, 500);
    assert.equal(replica.stats().oldestCompleteLsn, 500);
    await replica.close();
    replica = await KVStore.open(dir, { replica: true, segmentSizeBytes: 4096 });
    assert.equal(replica.size, 200);
    assert.equal(replica.lastLsn, 500);
    assert.equal(replica.read("stale"), undefined);
    await replica.close();
  });
});

Deno.test("a full sync interrupted before its commit leaves the old store", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, { segmentSizeBytes: 4096 });
    await store.put("kept", "yes");
    const sync = await store.replicationLog.beginFullSync(99);
    for (let i = 0; i < 200; i++) sync.put(new TextEncoder().encode(`new${i}`), new Uint8Array(30));
    // Simulate a crash: the process dies with staging files on disk and no commit marker.
    await store.close();
    assert.ok([...Deno.readDirSync(dir)].some((e) => e.name.endsWith(".log.sync")));
    store = await KVStore.open(dir, { segmentSizeBytes: 4096 });
    assert.equal(text(store.read("kept")), "yes");
    assert.equal(store.read("new1"), undefined);
    assert.equal(store.lastLsn, 1);
    assert.ok(![...Deno.readDirSync(dir)].some((e) => e.name.endsWith(".sync")));
    await store.close();
  });
});

Deno.test("a full sync interrupted after its commit marker is completed on open", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { segmentSizeBytes: 4096 });
    await store.put("old", "1");
    await store.close();
    // Stage a new segment by hand, as a crash right after the marker leaves it.
    const bytes = await withTempDir(async (sourceDir) => {
      const source = await KVStore.open(sourceDir);
      await source.put("fresh", "2");
      await source.close();
      const [staged] = segmentFiles(sourceDir);
      return Deno.readFileSync(staged);
    });
    const header = decodeSegmentHeader(bytes.subarray(0, SEGMENT_HEADER_BYTES), "staged");
    bytes.set(encodeSegmentHeader({ ...header, id: 7, coveredLastLsn: 1 }), 0);
    Deno.writeFileSync(`${dir}/${segmentFileName(7)}.sync`, bytes);
    Deno.writeTextFileSync(`${dir}/FULLSYNC`, "7\n");
    const reopened = await KVStore.open(dir);
    assert.equal(reopened.read("old"), undefined);
    assert.equal(text(reopened.read("fresh")), "2");
    await reopened.close();
  });
});
