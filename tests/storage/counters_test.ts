import assert from "node:assert/strict";
import { KeyTooLargeError, KVStore } from "../../src/storage/mod.ts";
import { bytes, text, withStore as withStoreOf, withTempDir } from "../helpers/storage.ts";

/** Redis's integer rule, up to 15 digits (what the INCR handler passes). */
function parse(value: Uint8Array): number | undefined {
  const digits = text(value) ?? "";
  return /^(0|-?[1-9][0-9]{0,14})$/.test(digits) ? Number(digits) : undefined;
}

/** A store that flushes to the OS without fsync. */
function withStore(run: (store: KVStore) => void | Promise<void>): Promise<void> {
  return withStoreOf({ fsync: "no" }, run);
}

const key = (name: string) => bytes(name);

Deno.test("store counters: increments add to absent, parsed and remembered values alike", async () => {
  await withStore((store) => {
    assert.equal(store.incrementSmall(key("n"), 5, parse)?.value, 5, "absent counts from 0");
    assert.equal(store.incrementSmall(key("n"), -7, parse)?.value, -2, "remembered number");
    assert.equal(text(store.read("n")), "-2", "the value written is its digits");
    store.writePut("p", "41");
    assert.equal(store.incrementSmall(key("p"), 1, parse)?.value, 42, "a value it parses");
    const before = store.lastLsn;
    const done = store.incrementSmall(key("p"), 1, parse);
    assert.equal(done?.lsn, before + 1, "one write, its LSN returned");
    assert.equal(done?.value, 43);
  });
});

Deno.test("store counters: an overwrite, a delete or a batch in between is never stale", async () => {
  await withStore((store) => {
    for (let i = 0; i < 30; i++) store.incrementSmall(key(`c${i}`), 100, parse);
    for (let i = 0; i < 30; i++) {
      if (i % 3 === 0) store.writePut(`c${i}`, "7");
      else if (i % 3 === 1) store.writeDelete(`c${i}`);
      else store.writeBatch([[`c${i}`, "9"]]);
    }
    for (let i = 0; i < 30; i++) {
      const want = i % 3 === 0 ? 8 : i % 3 === 1 ? 1 : 10;
      assert.equal(store.incrementSmall(key(`c${i}`), 1, parse)?.value, want, `c${i}`);
    }
  });
});

Deno.test("store counters: a value it cannot take, a sum past 2^53 or a MULTI write nothing", async () => {
  await withStore((store) => {
    store.writePut("word", "abc");
    store.writePut("zero-led", "012");
    store.writePut("big", String(Number.MAX_SAFE_INTEGER - 1));
    const lsn = store.lastLsn;
    assert.equal(store.incrementSmall(key("word"), 1, parse), undefined);
    assert.equal(store.incrementSmall(key("zero-led"), 1, parse), undefined);
    assert.equal(
      store.incrementSmall(key("big"), 1, () => Number.MAX_SAFE_INTEGER - 1)?.value,
      2 ** 53 - 1,
    );
    assert.equal(store.incrementSmall(key("big"), 1, parse), undefined, "remembered, sum unsafe");
    store.atomically(() => {
      assert.equal(store.incrementSmall(key("n"), 1, parse), undefined, "captured: caller's path");
    });
    assert.equal(store.lastLsn, lsn + 1, "only the one increment that succeeded was written");
    assert.equal(text(store.read("word")), "abc");
    assert.equal(text(store.read("big")), String(2 ** 53 - 1));
  });
});

Deno.test("store counters: an expiry is kept; a key past it counts from 0 and has none", async () => {
  await withStore(async (store) => {
    const later = Date.now() + 3_600_000;
    store.writePut("ttl", "10", later);
    assert.equal(store.incrementSmall(key("ttl"), 1, parse)?.value, 11);
    assert.equal(store.expiresAtMs("ttl"), later, "kept, as Redis keeps it");
    store.writePut("gone", "10", Date.now() + 30);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(store.incrementSmall(key("gone"), 1, parse)?.value, 1, "past its time: absent");
    assert.equal(store.expiresAtMs("gone"), 0, "and no expiry any more");
  });
});

Deno.test("store counters: after compaction, a restart and a flush the count goes on right", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, { fsync: "no", segmentSizeBytes: 4096 });
    try {
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 20; i++) store.incrementSmall(key(`c${i}`), i, parse);
      }
      for (let i = 0; store.stats().segments < 4 && i < 10_000; i++) store.writePut(`pad${i}`, "x");
      await store.whenDurable(store.lastLsn);
      await store.compact();
      for (let i = 0; i < 20; i++) {
        assert.equal(store.incrementSmall(key(`c${i}`), 1, parse)?.value, i * 20 + 1, `c${i}`);
      }
      await store.close();
      store = await KVStore.open(dir, { fsync: "no", segmentSizeBytes: 4096 });
      for (let i = 0; i < 20; i++) {
        assert.equal(store.incrementSmall(key(`c${i}`), 1, parse)?.value, i * 20 + 2, "reopened");
      }
      await store.atomicWrites.flushAll();
      assert.equal(store.incrementSmall(key("c5"), 1, parse)?.value, 1, "flushed: from 0");
    } finally {
      await store.close();
    }
  });
});

Deno.test("store counters: a full sync replaces remembered numbers with what it installed", async () => {
  await withStore(async (store) => {
    for (let i = 0; i < 10; i++) store.incrementSmall(key(`c${i}`), 5, parse);
    const sync = await store.replicationLog.beginFullSync(1000);
    for (let i = 0; i < 10; i++) sync.put(bytes(`c${i}`), bytes(String(i * 100)));
    await sync.finish();
    for (let i = 0; i < 10; i++) {
      assert.equal(store.incrementSmall(key(`c${i}`), 1, parse)?.value, i * 100 + 1);
    }
  });
});

Deno.test("store counters: a key past the size limit is refused and nothing is written", async () => {
  await withStoreOf({ fsync: "no", maxKeyBytes: 16 }, (store) => {
    const lsn = store.lastLsn;
    assert.throws(() => store.incrementSmall(key("k".repeat(17)), 1, parse), KeyTooLargeError);
    assert.equal(store.lastLsn, lsn);
    assert.equal(store.incrementSmall(key("k".repeat(16)), 1, parse)?.value, 1, "at the limit");
  });
});

Deno.test("store counters: counters compaction moves, even mid-increment, count on from their values", async () => {
  await withStoreOf(
    { fsync: "no", segmentSizeBytes: 4096, autoCompact: false },
    async (store, dir) => {
      const counters = 40;
      const want = new Array<number>(counters).fill(0);
      const bump = (i: number, by: number) => {
        want[i] += by;
        assert.equal(store.incrementSmall(key(`n${i}`), by, parse)?.value, want[i], `n${i}`);
      };
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < counters; i++) {
          bump(i, round + 1);
        }
      }
      await store.whenDurable(store.lastLsn);
      const compaction = store.compact();
      // Increments while compaction copies and re-points: some land before, some after a move.
      for (let round = 0; round < 10; round++) {
        for (let i = round % 3; i < counters; i += 3) bump(i, 1000);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      const report = await compaction;
      assert.ok(report.runs >= 1, JSON.stringify(report));
      for (let i = 0; i < counters; i++) bump(i, 1);
      for (let i = 0; i < counters; i++) assert.equal(text(store.read(`n${i}`)), String(want[i]));
      await store.close();
      const reopened = await KVStore.open(dir, { fsync: "no" });
      try {
        for (let i = 0; i < counters; i++) {
          assert.equal(text(reopened.read(`n${i}`)), String(want[i]), `n${i} after reopen`);
        }
      } finally {
        await reopened.close();
      }
    },
  );
});
