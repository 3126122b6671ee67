/**
 * `KVStore.deleteExisting`, Redis's `DEL` in the store: the keys that exist go, all in one
 * record, a key named twice once, a key past its expiry time not at all; a restart keeps it.
 */
import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { bytes, withTempDir } from "../helpers/storage.ts";

Deno.test("deleteExisting: several keys in one record; duplicates, missing and expired keys are not counted", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir);
    for (const key of ["a", "b", "c", "keep"]) store.writePut(key, "v");
    store.writePut("expired", "v", Date.now() - 1);
    await store.whenDurable(store.lastLsn);
    const before = store.lastLsn;
    const keys = ["a", "b", "missing", "a", "expired", "c"].map(bytes);
    const deleted: [number, number][] = [];
    const lsn = store.deleteExisting(keys, (i, at) => deleted.push([i, at]));
    assert.equal(lsn, before + 1, "one record for all of them");
    assert.deepEqual(deleted, [[0, lsn], [1, lsn], [5, lsn]]);
    for (const key of ["a", "b", "c"]) assert.equal(store.has(key), false);
    assert.equal(store.has("keep"), true);
    await store.whenDurable(lsn);
    await store.close();
    store = await KVStore.open(dir);
    assert.deepEqual(["a", "b", "c", "keep"].map((key) => store.has(key)), [
      false,
      false,
      false,
      true,
    ]);
    // One existing key: a plain DELETE record; none existing: nothing written.
    const one = store.deleteExisting([bytes("keep")], () => {});
    assert.equal(one, store.lastLsn);
    const lastLsn = store.lastLsn;
    assert.equal(store.deleteExisting([bytes("a"), bytes("b")], () => assert.fail("deleted")), 0);
    assert.equal(store.lastLsn, lastLsn);
    await store.close();
  });
});

Deno.test("deleteExisting: inside an atomic call the deletes join its record", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    try {
      await store.put("a", "1");
      await store.put("b", "2");
      const before = store.lastLsn;
      let count = 0;
      store.atomically(() => {
        store.writePut("c", "3");
        store.deleteExisting(["a", "c", "zzz"].map(bytes), () => count++);
      });
      assert.equal(count, 2);
      assert.equal(store.lastLsn, before + 1);
      assert.deepEqual(["a", "b", "c"].map((key) => store.has(key)), [false, true, false]);
    } finally {
      await store.close();
    }
  });
});
