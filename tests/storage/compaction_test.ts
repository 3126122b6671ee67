import assert from "node:assert/strict";
import { KVStore, type StoreSnapshot } from "../../src/storage/mod.ts";
import { segmentFiles, text, withTempDir, writeWhileRunning } from "../helpers/storage.ts";

const SMALL = { segmentSizeBytes: 4096, autoCompact: false } as const;

function contents(store: KVStore): [string, string][] {
  return store.readRange("", "\xff").map(([k, v]) => [text(k) as string, text(v) as string]);
}

Deno.test("compaction keeps every live value, drops garbage, and survives reopen", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, SMALL);
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 40; i++) store.writePut(`key${i}`, `round${round}-${i}`);
    }
    for (let i = 0; i < 40; i += 4) store.writeDelete(`key${i}`);
    store.writeBatch([["b1", "x"], ["b2", "y"], ["key1", "batch"]]);
    store.writePut("b1", "overwritten");
    await store.whenDurable(store.lastLsn);
    const before = contents(store);
    const lastLsn = store.lastLsn;
    const report = await store.compact();
    assert.ok(report.runs >= 1);
    assert.ok(report.bytesAfter < report.bytesBefore / 3, JSON.stringify(report));
    assert.deepEqual(contents(store), before);
    assert.ok(store.stats().oldestCompleteLsn > 0);
    await store.close();
    store = await KVStore.open(dir, SMALL);
    assert.deepEqual(contents(store), before);
    assert.equal(store.lastLsn, lastLsn);
    assert.equal(text(store.read("b2")), "y");
    await store.put("after", "compaction");
    await store.close();
    store = await KVStore.open(dir, SMALL);
    assert.equal(text(store.read("after")), "compaction");
    await store.close();
  });
});

Deno.test("a tombstone outlives compaction while an older segment still holds the key", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, SMALL);
    store.writePut("victim", "old value");
    for (let i = 0; i < 60; i++) store.writePut(`filler${i}`, "f".repeat(60)); // seals segment 1
    store.writeDelete("victim");
    for (let i = 0; i < 60; i++) store.writePut(`filler${i}`, "g".repeat(60));
    await store.whenDurable(store.lastLsn);
    // A log reader parked inside segment 1 pins it, so compaction cannot include it.
    const reader = store.replicationLog.readLogFrom(0, 100)[Symbol.asyncIterator]();
    await reader.next();
    await store.compact();
    assert.ok(segmentFiles(dir).some((path) => path.endsWith("000000000001.log")));
    await reader.return?.();
    await store.close();
    store = await KVStore.open(dir, SMALL);
    assert.equal(store.read("victim"), undefined, "the deleted key must not come back");
    await store.compact(); // now segment 1 is included: the tombstone may go with it
    await store.close();
    store = await KVStore.open(dir, SMALL);
    assert.equal(store.read("victim"), undefined);
    await store.close();
  });
});

Deno.test("writes made while compaction runs are never lost", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, SMALL);
    for (let i = 0; i < 400; i++) store.writePut(`key${i % 100}`, `first-${i}`);
    await store.whenDurable(store.lastLsn);
    const compaction = store.compact();
    const writes: Promise<number>[] = [];
    for (let i = 0; i < 100; i += 2) writes.push(store.put(`key${i}`, `during-${i}`));
    for (let i = 1; i < 100; i += 10) store.writeDelete(`key${i}`);
    await Promise.all(writes);
    await compaction;
    const expected = (i: number) =>
      i % 2 === 0 ? `during-${i}` : i % 10 === 1 ? undefined : `first-${300 + i}`;
    for (let i = 0; i < 100; i++) assert.equal(text(store.read(`key${i}`)), expected(i));
    await store.close();
    store = await KVStore.open(dir, SMALL);
    for (let i = 0; i < 100; i++) assert.equal(text(store.read(`key${i}`)), expected(i));
    await store.close();
  });
});

Deno.test("automatic compaction runs when sealed segments pass the garbage threshold", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, {
      segmentSizeBytes: 4096,
      compactionThreshold: 0.3,
      compactionMinBytes: 0,
    });
    try {
      for (let i = 0; i < 3000; i++) store.writePut(`key${i % 20}`, `value-${i}`);
      await store.whenDurable(store.lastLsn);
      const deadline = Date.now() + 5000;
      while (store.stats().compactions === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const stats = store.stats();
      assert.ok(stats.compactions > 0, "automatic compaction ran");
      assert.equal(text(store.read("key19")), "value-2999");
      assert.equal(store.size, 20);
    } finally {
      await store.close();
    }
  });
});

Deno.test("automatic compaction under a hot set's overwrites keeps garbage within two segments", async () => {
  await withTempDir(async (dir) => {
    const segmentSizeBytes = 4096;
    const store = await KVStore.open(dir, {
      segmentSizeBytes,
      compactionThreshold: 0.3,
      compactionMinBytes: 0,
    });
    try {
      // 20 counters rewritten 4,000 times: ~40 segments sealed, each holding the whole set live.
      for (let i = 0; i < 4000; i++) {
        store.writePut(`counter${i % 20}`, String(i));
        if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 0));
      }
      await store.whenDurable(store.lastLsn);
      // Bounded: compaction starts, then settles within a few runs once the writes stop (the
      // same figures over 10 polls, 200 ms).
      const deadline = Date.now() + 5000;
      let stats = store.stats();
      let steadyPolls = 0;
      while (Date.now() < deadline && (stats.compactions === 0 || steadyPolls < 10)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const next = store.stats();
        const steady = next.compactions === stats.compactions && next.segments === stats.segments;
        steadyPolls = steady ? steadyPolls + 1 : 0;
        stats = next;
      }
      assert.ok(stats.compactions > 0, "automatic compaction ran");
      // The active segment's garbage, the newest sealed segment left to age, and a rewrite's
      // leftovers: never the ~40 segments written.
      assert.ok(
        stats.garbageBytes <= 2 * segmentSizeBytes + 1024,
        `${stats.garbageBytes} bytes of garbage in ${stats.segments} segments`,
      );
      assert.ok(stats.segments <= 5, `${stats.segments} segments`);
      for (let k = 0; k < 20; k++) assert.equal(text(store.read(`counter${k}`)), String(3980 + k));
    } finally {
      await store.close();
    }
  });
});

Deno.test("readLogFrom before the compacted range is a LogGapError", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, SMALL);
    try {
      for (let i = 0; i < 200; i++) store.writePut(`key${i % 10}`, `v${i}`);
      await store.whenDurable(store.lastLsn);
      await store.compact();
      const complete = store.stats().oldestCompleteLsn;
      assert.ok(complete > 0);
      assert.throws(
        () => store.replicationLog.readLogFrom(complete - 1),
        /LogGapError|no longer holds/,
      );
      for await (const _ of store.replicationLog.readLogFrom(complete)) {
        // complete after it: no error
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("hint files make a restart load sealed segments without scanning them", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, SMALL);
    for (let i = 0; i < 500; i++) store.writePut(`key${i}`, `value${i}`);
    for (let i = 0; i < 500; i += 5) store.writeDelete(`key${i}`);
    await store.close();
    const hints = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".hint"));
    assert.ok(hints.length >= segmentFiles(dir).length - 1, "every sealed segment has a hint");
    // Damage a value in a sealed segment: with a valid hint recovery does not read it.
    const [first] = segmentFiles(dir);
    const bytes = Deno.readFileSync(first);
    bytes[bytes.length - 2] ^= 0xff;
    Deno.writeFileSync(first, bytes);
    store = await KVStore.open(dir, SMALL);
    assert.equal(store.size, 400);
    assert.equal(text(store.read("key499")), "value499");
    assert.equal(store.read("key495"), undefined);
    await store.close();
    // Without the hint the damage is found.
    Deno.removeSync(first.replace(/\.log$/, ".hint"));
    await assert.rejects(KVStore.open(dir, SMALL), /corrupt record/);
  });
});

Deno.test("compaction yields between bounded steps; writes, deletes, reads and snapshots interleave", async () => {
  await withTempDir(async (dir) => {
    // Small steps: a run of several segments takes many steps, each followed by a yield.
    const options = { ...SMALL, segmentSizeBytes: 16 * 1024, compactionChunkBytes: 512 };
    let store = await KVStore.open(dir, options);
    const model = new Map<string, string>();
    const put = (key: string, value: string) => {
      store.writePut(key, value);
      model.set(key, value);
    };
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 300; i++) put(`key${i}`, `r${round}-${i}-${"x".repeat(i % 40)}`);
    }
    await store.whenDurable(store.lastLsn);
    const snapshots: { view: StoreSnapshot; expected: string[][] }[] = [];
    const compaction = store.compact();
    const steps = await writeWhileRunning(store, model, 300, compaction, async (step) => {
      // Snapshots pin every segment, so start once the run is picked (its scan takes ~20 steps).
      if (step >= 10 && step % 2 === 0) {
        const expected = [...model].sort(([a], [b]) => (a < b ? -1 : 1));
        snapshots.push({ view: await store.replicationLog.snapshot(), expected });
      }
    });
    const report = await compaction;
    assert.ok(steps > 5, `requests ran during compaction (${steps} steps)`);
    assert.ok(report.runs >= 1);
    const sorted = () => [...model].sort(([a], [b]) => (a < b ? -1 : 1));
    assert.deepEqual(contents(store), sorted());
    // Snapshots taken at any step, read after compaction finished, see their moment exactly.
    for (const { view, expected } of snapshots) {
      const seen: string[][] = [];
      for await (const [k, v] of view.entries) seen.push([text(k) as string, text(v) as string]);
      view.release();
      assert.deepEqual(seen, expected);
    }
    await store.close();
    store = await KVStore.open(dir, options);
    assert.deepEqual(contents(store), sorted());
    await store.close();
  });
});

Deno.test("compaction of a damaged sealed segment stops and leaves the store readable", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, SMALL);
    try {
      // A delete in segment 1 makes compaction scan it (a segment of puts only is compacted
      // through the index, which reads live records only: compaction_from_index_test.ts).
      store.writePut("gone", "soon");
      store.writeDelete("gone");
      for (let i = 0; i < 200; i++) store.writePut(`key${i % 50}`, `value-${i}`);
      await store.whenDurable(store.lastLsn);
      const [first] = segmentFiles(dir);
      // Damage the last record of segment 1 on disk (it was already recovered from memory).
      const bytes = Deno.readFileSync(first);
      bytes[bytes.length - 3] ^= 0xff;
      Deno.writeFileSync(first, bytes);
      await assert.rejects(store.compact(), /found by compaction/);
      assert.equal(store.size, 50);
      await store.put("after", "damage");
      assert.equal(text(store.read("after")), "damage");
      assert.equal(text(store.read("key49")), "value-199");
      assert.ok(segmentFiles(dir).includes(first), "the damaged segment was not replaced");
    } finally {
      await store.close();
    }
  });
});

Deno.test("on-demand compaction right after writes leaves no garbage in any sealed segment", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, SMALL);
    try {
      // Each overwrite round seals segments whose hints are written in the background; compact()
      // is called right after, while some of them may still be being written.
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 200; i++) store.writePut(`key${i % 50}`, `value-${round}-${i}`);
        const before = store.stats();
        assert.ok(before.segments > 2, `writes sealed segments (${before.segments})`);
        await store.compact();
        const after = store.stats();
        assert.equal(after.garbageBytes, 0, `round ${round}: every sealed segment was compacted`);
        assert.equal(store.size, 50);
        assert.equal(text(store.read("key49")), `value-${round}-199`);
      }
    } finally {
      await store.close();
    }
  });
});
