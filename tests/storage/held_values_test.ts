/**
 * `KVStore.holdValues`: the values of many keys fixed at one instant and read later (an MGET in
 * steps). Later writes, expiry, compaction of the segments the values lie in, and a pending
 * (not yet flushed) value do not change what is read; inside an atomic call, its own writes are
 * what is held.
 */
import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { bytes, segmentFiles, text, withStore } from "../helpers/storage.ts";

const SMALL = { segmentSizeBytes: 4096, autoCompact: false } as const;

/** The inode of `path`, or -1 once it is gone. */
function inode(path: string): number {
  try {
    return Deno.statSync(path).ino ?? -1;
  } catch {
    return -1;
  }
}

Deno.test("held values: later writes change nothing, and compaction leaves their segments until release", async () => {
  await withStore(SMALL, async (store, dir) => {
    const keys = Array.from({ length: 40 }, (_, i) => bytes(`key${i}`));
    for (let i = 0; i < 40; i++) store.writePut(keys[i], `old-${i}`);
    store.writePut("gone", "soon");
    await store.whenDurable(store.lastLsn);
    // Compaction writes its output under the first input's name: a file replaced has a new inode.
    const segmentsBefore = segmentFiles(dir).map((path) => ({ path, ino: inode(path) }));
    const held = store.holdValues([...keys, bytes("gone"), bytes("never")]);
    try {
      // Overwrite everything many times over, so the old segments are all garbage, and compact.
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < 40; i++) store.writePut(keys[i], `new-${round}-${i}`);
      }
      store.writeDelete("gone");
      await store.whenDurable(store.lastLsn);
      await store.compact();
      for (const { path, ino } of segmentsBefore) {
        assert.equal(inode(path), ino, `${path} was compacted while its values were held`);
      }
      for (let i = 0; i < 40; i++) assert.equal(text(held.value(i)), `old-${i}`);
      assert.equal(text(held.value(40)), "soon");
      assert.equal(held.value(41), undefined);
    } finally {
      held.release();
    }
    // Released: compaction may now replace them.
    const report = await store.compact();
    assert.ok(report.runs >= 1, JSON.stringify(report));
    assert.ok(
      segmentsBefore.some(({ path, ino }) => inode(path) !== ino),
      "released, the held segments were compacted",
    );
    assert.equal(text(store.read(keys[0])), "new-9-0");
  });
});

Deno.test("held values: their release lets automatic compaction take the segments, with no write after", async () => {
  const auto = { segmentSizeBytes: 4096, autoCompact: true, compactionMinBytes: 1 } as const;
  await withStore(auto, async (store, dir) => {
    const keys = Array.from({ length: 40 }, (_, i) => bytes(`key${i}`));
    for (let i = 0; i < 40; i++) store.writePut(keys[i], `old-${i}`);
    await store.whenDurable(store.lastLsn);
    const held = store.holdValues(keys);
    const segmentsHeld = segmentFiles(dir).map((path) => ({ path, ino: inode(path) }));
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 40; i++) store.writePut(keys[i], `new-${round}-${i}`);
    }
    await store.whenDurable(store.lastLsn);
    await store.compact(); // everything not held is compacted now: nothing else is left to do
    const compacted = () => segmentsHeld.some(({ path, ino }) => inode(path) !== ino);
    assert.ok(!compacted(), "a held segment was compacted");
    held.release();
    // No write from here on: only the release can start the compaction.
    for (let waited = 0; waited < 5_000 && !compacted(); waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(compacted(), "the released segments were not compacted within 5 s");
    assert.equal(text(store.read(keys[0])), "new-9-0");
  });
});

Deno.test("held values: a value still in the pending buffer, and a key past its expiry time", async () => {
  await withStore(SMALL, async (store) => {
    store.writePut("pending", "not flushed yet");
    store.writePut("expired", "x", Date.now() - 1);
    store.writePut("expiring", "y", Date.now() + 60_000);
    const held = store.holdValues([bytes("pending"), bytes("expired"), bytes("expiring")]);
    try {
      await store.whenDurable(store.lastLsn); // the pending value reaches the file meanwhile
      assert.equal(text(held.value(0)), "not flushed yet");
      assert.equal(held.value(1), undefined);
      assert.equal(text(held.value(2)), "y");
    } finally {
      held.release();
    }
  });
});

Deno.test("held values: inside an atomic call, its own writes are held", async () => {
  await withStore(SMALL, async (store) => {
    await store.put("a", "before");
    await store.put("b", "before");
    const held = store.atomically(() => {
      store.writePut("a", "inside");
      store.writeDelete("b");
      return store.holdValues([bytes("a"), bytes("b")]);
    });
    try {
      assert.equal(text(held.value(0)), "inside");
      assert.equal(held.value(1), undefined);
    } finally {
      held.release();
    }
  });
});

Deno.test("held values: released, a read fails; after the store closed, a read fails", async () => {
  await withStore(SMALL, async (store) => {
    await store.put("a", "1");
    const held = store.holdValues([bytes("a")]);
    held.release();
    held.release(); // a second release does nothing
    assert.throws(() => held.value(0), /read after their release/);
  });
  let closedStore: KVStore | undefined;
  let held: ReturnType<KVStore["holdValues"]> | undefined;
  await withStore(SMALL, async (store) => {
    await store.put("a", "1");
    closedStore = store;
    held = store.holdValues([bytes("a")]);
  });
  assert.ok(closedStore?.closed);
  assert.throws(() => held?.value(0), /closed/);
  held?.release();
});
