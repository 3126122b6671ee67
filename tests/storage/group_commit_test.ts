import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { waitUntil } from "../helpers/wait.ts";
import { text, withTempDir } from "../helpers/storage.ts";

Deno.test("always: the writes of one event-loop turn share one fsync, done before any resolves", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { fsync: "always" });
    try {
      let fsyncs = 0;
      store.fsyncObserver = () => fsyncs++;
      const durableAt: number[] = [];
      // 50 writers in one turn, as 50 connections whose requests arrived together.
      const puts = Array.from(
        { length: 50 },
        (_, i) => store.put(`k${i}`, `v${i}`).then(() => durableAt.push(fsyncs)),
      );
      assert.equal(fsyncs, 0, "the fsync waits for the end of the turn");
      await Promise.all(puts);
      assert.equal(fsyncs, 1);
      assert.ok(durableAt.every((count) => count === 1), "no put resolved before its fsync");
      assert.equal(store.durableLsn, 50);
    } finally {
      await store.close();
    }
  });
});

Deno.test("always: records reach onDurable listeners after their fsync", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { fsync: "always" });
    try {
      let fsyncs = 0;
      store.fsyncObserver = () => fsyncs++;
      const seen: [number, number][] = [];
      store.replicationLog.onDurable((_records, _firstLsn, lastLsn) =>
        seen.push([lastLsn, fsyncs])
      );
      await Promise.all([store.put("a", "1"), store.put("b", "2")]);
      await store.put("c", "3");
      assert.deepEqual(seen, [[2, 1], [3, 2]]);
    } finally {
      await store.close();
    }
  });
});

Deno.test("everysec: one background fsync per interval under a steady stream of writes", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { fsync: "everysec" });
    try {
      let fsyncs = 0;
      store.fsyncObserver = () => fsyncs++;
      // Writes in every turn for 2.5 s: a sync loop that kept going while writes arrived would
      // fsync hundreds of times.
      const stopAt = Date.now() + 2500;
      const writer = async (w: number) => {
        let i = 0;
        while (Date.now() < stopAt) {
          await store.put(`w${w}-${i % 100}`, `v${i}`);
          i++;
          if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
        }
        return i;
      };
      const counts = await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
      assert.ok(fsyncs >= 1 && fsyncs <= 3, `${fsyncs} fsyncs in 2.5 s (expected 2, one a second)`);
      assert.equal(text(store.read(`w7-${(counts[7] - 1) % 100}`)), `v${counts[7] - 1}`);
    } finally {
      await store.close();
    }
  });
});

Deno.test("whenDurable: the batches of one turn share one promise, resolved by their flush", async () => {
  await withTempDir(async (dir) => {
    for (const fsync of ["always", "no"] as const) {
      const store = await KVStore.open(`${dir}/${fsync}`, { fsync });
      try {
        const first = store.whenDurable(store.writePut("a", "1"));
        const second = store.whenDurable(store.writePut("b", "2"));
        assert.equal(first, second, "one promise for the writes awaiting the same flush");
        await first;
        assert.equal(store.durableLsn, 2);
        // Durable now: nothing to wait for.
        assert.notEqual(store.whenDurable(2), first);
        await store.whenDurable(2);
        const third = store.whenDurable(store.writePut("c", "3"));
        assert.notEqual(third, first, "a later turn gets a new promise");
        await third;
        assert.equal(store.durableLsn, 3);
      } finally {
        await store.close();
      }
    }
  });
});

Deno.test("fsync no/everysec: a background fsync after every incrementalFsyncBytes written", async () => {
  for (
    const [fsync, incrementalFsyncBytes] of [["no", 64 * 1024], ["everysec", 64 * 1024], [
      "no",
      0,
    ]] as const
  ) {
    await withTempDir(async (dir) => {
      const store = await KVStore.open(dir, { fsync, incrementalFsyncBytes });
      let fsyncs = 0;
      store.fsyncObserver = () => fsyncs++;
      try {
        // 8 steps of ~72 KiB (6 turns of ~12 KiB). After each step, the background fsync it
        // started is awaited (polling: a loaded machine makes it slow), so the next step's finds
        // none running; everysec's own timer only adds fsyncs.
        for (let step = 1; step <= 8; step++) {
          for (let turn = 0; turn < 6; turn++) {
            for (let i = 0; i < 10; i++) {
              store.writePut(`key${step}-${turn}-${i}`, "v".repeat(1200));
            }
            await store.whenDurable(store.lastLsn);
            await new Promise((resolve) => setTimeout(resolve, 0));
          }
          if (incrementalFsyncBytes > 0) {
            await waitUntil(`${fsync}: background fsync ${step}`, () => fsyncs >= step, 10_000);
          }
        }
      } finally {
        await store.close();
      }
      if (incrementalFsyncBytes === 0) {
        assert.equal(fsyncs, 0, "no: no fsync before close when incremental fsync is off");
      }
    });
  }
});
