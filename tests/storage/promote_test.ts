import assert from "node:assert/strict";
import { KVStore, StorageError } from "../../src/storage/mod.ts";
import { recordEpoch, recordLsn } from "../../src/storage/record.ts";
import { bytes, text, withTempDir } from "../helpers/storage.ts";

async function epochsOfLog(store: KVStore): Promise<[number, number][]> {
  const found: [number, number][] = [];
  for await (const chunk of store.replicationLog.readLogFrom(0)) {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let at = 0; at < chunk.length; at += view.getUint32(at + 4, true)) {
      found.push([recordLsn(view, at), recordEpoch(view, at)]);
    }
  }
  return found;
}

Deno.test("promote: a replica's store takes LSNs in the new epoch, which survives a restart", async () => {
  await withTempDir(async (dir) => {
    const master = await KVStore.open(`${dir}/master`);
    await master.put("a", "1");
    await master.put("b", "2");
    const records: Uint8Array[] = [];
    for await (const chunk of master.replicationLog.readLogFrom(0)) records.push(chunk);
    await master.close();

    const replica = await KVStore.open(`${dir}/replica`, { replica: true });
    for (const chunk of records) await replica.replicationLog.appendReplicated(chunk);
    await replica.put("local", "x"); // a LOCAL record: no LSN of its own
    assert.equal(replica.lastLsn, 2);
    assert.throws(() => replica.replicationLog.promote(0), StorageError);
    const marker = replica.replicationLog.promote(1);
    assert.equal(marker, 3);
    await replica.whenDurable(marker);
    assert.equal(await replica.put("c", "3"), 4);
    assert.equal(replica.replicationLog.lastEpoch, 1);
    assert.throws(() => replica.replicationLog.promote(1), /must be a whole number above 1/);
    await replica.close();

    const reopened = await KVStore.open(`${dir}/replica`);
    try {
      assert.equal(reopened.epoch, 1);
      assert.equal(reopened.lastLsn, 4);
      assert.equal(text(reopened.read("a")), "1");
      assert.equal(text(reopened.read("c")), "3");
      // [LSN, epoch]: the LOCAL record reuses LSN 2; the marker opens epoch 1 at LSN 3.
      assert.deepEqual(await epochsOfLog(reopened), [[1, 0], [2, 0], [2, 0], [3, 1], [4, 1]]);
    } finally {
      await reopened.close();
    }
  });
});

Deno.test("a full sync carries its snapshot's epoch, kept across a restart, with or without pairs", async () => {
  await withTempDir(async (dir) => {
    for (const pairs of [[["k", "v"]], []] as [string, string][][]) {
      const path = `${dir}/pairs-${pairs.length}`;
      const store = await KVStore.open(path, { replica: true });
      await store.put("local", "x");
      const sync = await store.replicationLog.beginFullSync(7, 3);
      for (const [key, value] of pairs) sync.put(bytes(key), bytes(value));
      await sync.finish();
      assert.deepEqual([store.lastLsn, store.replicationLog.lastEpoch, store.epoch], [7, 3, 3]);
      await store.close();
      const reopened = await KVStore.open(path, { replica: true });
      try {
        assert.deepEqual(
          [reopened.lastLsn, reopened.replicationLog.lastEpoch],
          [7, 3],
          `${pairs.length} pairs`,
        );
        assert.equal(text(reopened.read("k")), pairs.length === 0 ? undefined : "v");
        assert.equal(reopened.read("local"), undefined);
      } finally {
        await reopened.close();
      }
    }
  });
});
