/**
 * MULTI records (several puts and deletes, in order, all or nothing) and FLUSH records (every key
 * before it gone): applied the same by the store, recovery (hints and scans), compaction,
 * replication (appended records) and full sync; a torn MULTI is never half applied.
 */
import assert from "node:assert/strict";
import { KVStore, StorageError } from "../../src/storage/mod.ts";
import { segmentFiles, text, withTempDir } from "../helpers/storage.ts";

const OPTIONS = { segmentSizeBytes: 4096, autoCompact: false, fsync: "always" } as const;

function contents(store: KVStore): [string, string, number][] {
  return store.readRange("", "\xff\xff\xff\xff").map((
    [k, v],
  ) => [text(k) as string, text(v) as string, store.expiresAtMs(k) ?? -1]);
}

Deno.test("MULTI applies its entries in order; a later entry for a key wins", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, OPTIONS);
    await store.put("gone", "x");
    const at = Date.now() + 60_000;
    await store.atomicWrites.applyMulti([
      { kind: "put", key: "a", value: "1" },
      { kind: "delete", key: "gone" },
      { kind: "put", key: "b", value: "2", expiresAtMs: at },
      { kind: "delete", key: "a" },
      { kind: "put", key: "a", value: "3" },
      { kind: "delete", key: "never-was" },
    ]);
    const expected: [string, string, number][] = [["a", "3", 0], ["b", "2", at]];
    assert.deepEqual(contents(store), expected);
    assert.throws(
      () => store.atomicWrites.writeMulti([{ kind: "put", key: "c", value: "1", expiresAtMs: -5 }]),
      StorageError,
    );
    assert.deepEqual(store.read("c"), undefined, "a refused MULTI writes nothing");
    await store.close();
    const reopened = await KVStore.open(dir, OPTIONS);
    assert.deepEqual(contents(reopened), expected);
    await reopened.close();
  });
});

Deno.test("a MULTI record cut anywhere by a crash is wholly absent after recovery", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { ...OPTIONS, segmentSizeBytes: 1 << 20 });
    await store.put("before", "b");
    await store.close();
    const active = segmentFiles(dir).at(-1) as string;
    const sizeBefore = Deno.statSync(active).size;
    const again = await KVStore.open(dir, { ...OPTIONS, segmentSizeBytes: 1 << 20 });
    await again.atomicWrites.applyMulti([
      { kind: "delete", key: "before" },
      { kind: "put", key: "x", value: "x".repeat(100) },
      { kind: "put", key: "y", value: "y".repeat(100), expiresAtMs: Date.now() + 60_000 },
    ]);
    await again.close();
    const full = Deno.readFileSync(active);
    const recordBytes = full.length - sizeBefore;
    for (const cut of [1, 31, 32, 50, 140, recordBytes - 1]) {
      Deno.writeFileSync(active, full.subarray(0, sizeBefore + cut));
      const crashed = await KVStore.open(dir, { ...OPTIONS, segmentSizeBytes: 1 << 20 });
      assert.deepEqual(contents(crashed), [["before", "b", 0]], `cut after ${cut} bytes`);
      await crashed.close();
    }
    Deno.writeFileSync(active, full);
    const whole = await KVStore.open(dir, { ...OPTIONS, segmentSizeBytes: 1 << 20 });
    assert.deepEqual(contents(whole).map(([k]) => k), ["x", "y"]);
    await whole.close();
  });
});

Deno.test("FLUSH removes every earlier key: at once, after restarts, through compaction", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, OPTIONS);
    for (let i = 0; i < 200; i++) {
      await store.put(`old${i}`, "v".repeat(40), i % 2 ? Date.now() + 1e6 : 0);
    }
    const snapshot = await store.replicationLog.snapshot();
    await store.atomicWrites.flushAll();
    assert.deepEqual(store.size, 0);
    assert.deepEqual(store.stats().expiringKeys, 0);
    let seen = 0;
    for await (const _ of snapshot.entries) seen++;
    snapshot.release();
    assert.deepEqual(seen, 200, "a snapshot taken before keeps the old contents");
    for (let i = 0; i < 150; i++) await store.put(`new${i}`, "w".repeat(40));
    await store.put("old3", "back");
    const expected = contents(store);
    assert.deepEqual(expected.length, 151);
    await store.close();
    for (const step of ["scan", "hints", "compacted", "compacted again"]) {
      if (step === "scan") {
        for (const f of Deno.readDirSync(dir)) {
          if (f.name.endsWith(".hint")) Deno.removeSync(`${dir}/${f.name}`);
        }
      }
      const reopened = await KVStore.open(dir, OPTIONS);
      if (step.startsWith("compacted")) await reopened.compact();
      assert.deepEqual(contents(reopened), expected, step);
      await reopened.close();
    }
  });
});

Deno.test("compaction keeps a MULTI's live puts and needed deletes, and every TTL", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, OPTIONS);
    const at = Date.now() + 600_000;
    for (let i = 0; i < 40; i++) await store.put(`k${i}`, "a".repeat(50));
    for (let i = 0; i < 20; i++) {
      await store.atomicWrites.applyMulti([
        { kind: "put", key: `m${i}`, value: "m".repeat(60), expiresAtMs: at + i },
        { kind: "delete", key: `k${i}` },
        { kind: "put", key: `n${i}`, value: "n".repeat(60) },
      ]);
    }
    for (let i = 0; i < 20; i += 2) await store.put(`n${i}`, "newer"); // half the MULTIs partly dead
    for (let i = 0; i < 100; i++) await store.put(`filler${i % 5}`, "f".repeat(200)); // garbage
    const expected = contents(store);
    await store.compact();
    assert.deepEqual(contents(store), expected);
    await store.close();
    const reopened = await KVStore.open(dir, OPTIONS);
    assert.deepEqual(contents(reopened), expected);
    for (let i = 0; i < 20; i++) assert.deepEqual(reopened.expiresAtMs(`m${i}`), at + i);
    await reopened.close();
  });
});

Deno.test("a replica's store applies MULTI, FLUSH and expiring puts from the master's records", async () => {
  await withTempDir(async (masterDir) => {
    await withTempDir(async (replicaDir) => {
      const master = await KVStore.open(masterDir, OPTIONS);
      const replica = await KVStore.open(replicaDir, { ...OPTIONS, replica: true });
      const records: Uint8Array[] = [];
      master.replicationLog.onDurable((batch) => {
        records.push(batch.slice());
      });
      const at = Date.now() + 600_000;
      await master.put("a", "1", at);
      await master.put("b", "2");
      await master.atomicWrites.flushAll();
      await master.atomicWrites.applyMulti([
        { kind: "put", key: "c", value: "3", expiresAtMs: at },
        {
          kind: "delete",
          key: "b",
        },
      ]);
      await master.put("d", "4");
      for (const batch of records) await replica.replicationLog.appendReplicated(batch);
      assert.deepEqual(contents(replica), contents(master));
      assert.deepEqual(contents(replica), [["c", "3", at], ["d", "4", 0]]);
      // a full sync from the master's snapshot keeps the TTLs too
      const snapshot = await master.replicationLog.snapshot();
      const sync = await replica.replicationLog.beginFullSync(snapshot.lsn, master.epoch);
      for await (const [k, v, expiresAtMs] of snapshot.entries) sync.put(k, v, expiresAtMs);
      snapshot.release();
      await sync.finish();
      assert.deepEqual(contents(replica), contents(master));
      await replica.close();
      const reopened = await KVStore.open(replicaDir, { ...OPTIONS, replica: true });
      assert.deepEqual(contents(reopened), [["c", "3", at], ["d", "4", 0]]);
      assert.ok(reopened.lastLsn === master.lastLsn);
      await reopened.close();
      await master.close();
    });
  });
});

Deno.test("atomically: reads see the call's writes made before and after the first read", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, OPTIONS);
    await store.put("kept", "k", Date.now() + 60_000);
    await store.put("gone", "g");
    const at = Date.now() + 30_000;
    const seen = store.atomically(() => {
      store.writePut("a", "1");
      store.writePut("a", "2", at);
      store.writeDelete("gone");
      // The first read: the capture's view of its keys is made from the writes so far.
      const first = [store.readExpiring("a"), store.readExpiring("gone"), store.has("kept")];
      store.writePut("b", "3");
      store.writeDelete("a");
      return [...first, store.readExpiring("b"), store.read("a"), store.expiresAtMs("kept")];
    });
    assert.deepEqual(seen.slice(0, 3), [
      { value: new TextEncoder().encode("2"), expiresAtMs: at },
      undefined,
      true,
    ]);
    assert.deepEqual(seen[3], { value: new TextEncoder().encode("3"), expiresAtMs: 0 });
    assert.equal(seen[4], undefined);
    assert.equal(typeof seen[5], "number");
    assert.deepEqual(contents(store).map(([k, v]) => [k, v]), [["b", "3"], ["kept", "k"]]);
    assert.equal(store.readExpiring("missing"), undefined);
    assert.equal(store.readExpiring("kept")?.expiresAtMs, store.expiresAtMs("kept"));
    await store.close();
  });
});
