import assert from "node:assert/strict";
import {
  CorruptionError,
  KeyTooLargeError,
  KVStore,
  RangeTooLargeError,
  StoreClosedError,
  StoreLockedError,
  ValueTooLargeError,
} from "../../src/storage/mod.ts";
import { Flag, recordFlags, recordLsn } from "../../src/storage/record.ts";
import { segmentFiles, storageLogLines, text, withTempDir } from "../helpers/storage.ts";

Deno.test("put, read, has, delete and overwrite", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    try {
      assert.equal(await store.put("a", "1"), 1);
      assert.equal(text(store.read("a")), "1");
      assert.equal(store.has("a"), true);
      await store.put("a", "2");
      assert.equal(text(store.read("a")), "2");
      assert.equal(await store.delete("a"), true);
      assert.equal(await store.delete("a"), false);
      assert.equal(store.read("a"), undefined);
      assert.equal(store.has("a"), false);
      assert.equal(store.lastLsn, 3);
    } finally {
      await store.close();
    }
  });
});

Deno.test("empty key and empty value are stored", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir);
    await store.put("", "");
    await store.put("k", "");
    assert.deepEqual(store.read(""), new Uint8Array(0));
    await store.close();
    store = await KVStore.open(dir);
    assert.deepEqual(store.read(""), new Uint8Array(0));
    assert.deepEqual(store.read("k"), new Uint8Array(0));
    await store.close();
  });
});

Deno.test("readRange with maxBytes: exactly the budget passes, a byte more is refused", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { fsync: "no" });
    try {
      await store.batchPut([["ab", "1234"], ["cd", "5678"]]); // 6 bytes each
      assert.equal(store.readRange("a", "z", { maxBytes: 12 }).length, 2);
      assert.throws(
        () => store.readRange("a", "z", { maxBytes: 11 }),
        (error: Error) =>
          error instanceof RangeTooLargeError && /more than 11 bytes/.test(error.message),
      );
      assert.equal(store.readRange("a", "b", { maxBytes: 6 }).length, 1);
    } finally {
      await store.close();
    }
  });
});

Deno.test("binary keys sort by bytes in readRange, with limit", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    try {
      const keys = [[0x00], [0x01, 0xff], [0x7f], [0x80], [0x9f], [0xff], [0xff, 0x00]];
      for (const key of keys.slice().reverse()) await store.put(new Uint8Array(key), "v");
      const all = store.readRange(new Uint8Array([]), new Uint8Array([0xff, 0xff]));
      assert.deepEqual(all.map(([k]) => [...k]), keys);
      const middle = store.readRange(new Uint8Array([0x01]), new Uint8Array([0x9f]));
      assert.deepEqual(middle.map(([k]) => [...k]), [[0x01, 0xff], [0x7f], [0x80], [0x9f]]);
      const limited = store.readRange(new Uint8Array([0x00]), new Uint8Array([0xff]), {
        limit: 2,
      });
      assert.deepEqual(limited.map(([k]) => [...k]), [[0x00], [0x01, 0xff]]);
      assert.deepEqual(store.readRange("z", "a"), []);
    } finally {
      await store.close();
    }
  });
});

Deno.test("batchPut is one record and one LSN; a repeated key takes its last value", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    try {
      const lsn = await store.batchPut([["x", "1"], ["y", "2"], ["x", "3"]]);
      assert.equal(lsn, 1);
      assert.equal(text(store.read("x")), "3");
      assert.equal(text(store.read("y")), "2");
      assert.equal(store.size, 2);
    } finally {
      await store.close();
    }
  });
});

Deno.test("data survives reopen, across many segments, under every fsync policy", async () => {
  for (const fsync of ["always", "everysec", "no"] as const) {
    await withTempDir(async (dir) => {
      let store = await KVStore.open(dir, { segmentSizeBytes: 4096, fsync });
      for (let i = 0; i < 500; i++) store.writePut(`key${i}`, `value-${i}-${"x".repeat(i % 50)}`);
      for (let i = 0; i < 500; i += 3) store.writeDelete(`key${i}`);
      await store.batchPut([["batch1", "b1"], ["batch2", "b2"]]);
      const lastLsn = store.lastLsn;
      await store.close();
      const segments = segmentFiles(dir).length;
      assert.ok(segments > 5, "small segments roll over");
      const hints = [...Deno.readDirSync(dir)].filter((entry) => entry.name.endsWith(".hint"));
      assert.equal(hints.length, segments - 1, `${fsync}: every sealed segment has its hint`);
      store = await KVStore.open(dir, { segmentSizeBytes: 4096, fsync });
      try {
        assert.equal(store.lastLsn, lastLsn);
        for (let i = 0; i < 500; i++) {
          const expected = i % 3 === 0 ? undefined : `value-${i}-${"x".repeat(i % 50)}`;
          assert.equal(text(store.read(`key${i}`)), expected, `${fsync}: key${i}`);
        }
        assert.equal(text(store.read("batch2")), "b2");
        assert.equal(await store.put("after", "reopen"), lastLsn + 1);
      } finally {
        await store.close();
      }
    });
  }
});

Deno.test("reads see writes still in the group-commit buffer", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    try {
      const lsn = store.writePut("pending", "yes");
      assert.equal(text(store.read("pending")), "yes");
      assert.deepEqual(store.readRange("p", "q").map(([k, v]) => [text(k), text(v)]), [
        ["pending", "yes"],
      ]);
      await store.whenDurable(lsn);
      assert.equal(text(store.read("pending")), "yes");
    } finally {
      await store.close();
    }
  });
});

Deno.test("a second open of the same directory is refused, naming it", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    try {
      await assert.rejects(KVStore.open(dir), (error: Error) => {
        assert.ok(error instanceof StoreLockedError);
        assert.match(error.message, new RegExp(dir));
        return true;
      });
    } finally {
      await store.close();
    }
    const again = await KVStore.open(dir);
    await again.close();
  });
});

Deno.test("key and value limits are typed errors naming size and limit", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { maxKeyBytes: 4, maxValueBytes: 8 });
    try {
      assert.throws(() => store.writePut("12345", "v"), (error: Error) => {
        assert.ok(error instanceof KeyTooLargeError);
        assert.match(error.message, /5 bytes.*MAX_KEY_BYTES 4/);
        return true;
      });
      assert.throws(() => store.writePut("k", "123456789"), ValueTooLargeError);
      assert.throws(() => store.writeBatch([["k", "v"], ["k", "123456789"]]), ValueTooLargeError);
      // The awaitable forms reject (they never throw synchronously).
      await assert.rejects(store.put("12345", "v"), KeyTooLargeError);
      await assert.rejects(store.put("k", "123456789"), ValueTooLargeError);
      assert.equal(store.size, 0, "a rejected batch writes nothing");
      assert.equal(store.lastLsn, 0);
    } finally {
      await store.close();
    }
  });
});

Deno.test("every fsync policy acknowledges and persists writes", async () => {
  for (const fsync of ["always", "everysec", "no"] as const) {
    await withTempDir(async (dir) => {
      let store = await KVStore.open(dir, { fsync });
      const writers = Array.from({ length: 16 }, async (_, w) => {
        for (let i = 0; i < 50; i++) await store.put(`w${w}-${i}`, `${fsync}-${i}`);
      });
      await Promise.all(writers);
      assert.equal(store.stats().durableLsn, 800);
      await store.close();
      store = await KVStore.open(dir, { fsync });
      assert.equal(store.size, 800);
      assert.equal(text(store.read("w15-49")), `${fsync}-49`);
      await store.close();
    });
  }
});

Deno.test("whenDurable of an already durable LSN resolves at once; closed store rejects", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    const lsn = await store.put("a", "1");
    await store.whenDurable(lsn);
    await store.whenDurable(0);
    await store.close();
    assert.throws(() => store.writePut("b", "2"), StoreClosedError);
    assert.throws(() => store.read("a"), StoreClosedError);
  });
});

Deno.test("onDurable delivers the exact encoded records in LSN order", async () => {
  for (const fsync of ["always", "no"] as const) {
    await withTempDir(async (dir) => {
      const store = await KVStore.open(dir, { fsync });
      const seen: number[] = [];
      const unsubscribe = store.replicationLog.onDurable((records, firstLsn, lastLsn) => {
        const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
        let at = 0;
        while (at < records.length) {
          seen.push(recordLsn(view, at));
          at += view.getUint32(at + 4, true);
        }
        assert.equal(seen[seen.length - 1], lastLsn);
        assert.ok(firstLsn <= lastLsn);
      });
      await Promise.all([store.put("a", "1"), store.put("b", "2"), store.batchPut([["c", "3"]])]);
      await store.delete("a");
      unsubscribe();
      await store.put("d", "4");
      assert.deepEqual(seen, [1, 2, 3, 4]);
      await store.close();
    });
  }
});

Deno.test("replica mode: direct writes are LOCAL records that reuse the last LSN", async () => {
  await withTempDir(async (dir) => {
    const master = await KVStore.open(`${dir}/m`);
    await master.put("a", "1");
    await master.close();
    let store = await KVStore.open(`${dir}/m`, { replica: true });
    const flags: number[] = [];
    store.replicationLog.onDurable((records) => flags.push(recordFlags(records, 0)));
    assert.equal(await store.put("local", "x"), 1);
    assert.equal(await store.put("local2", "y"), 1);
    assert.deepEqual(flags, [Flag.LOCAL, Flag.LOCAL]);
    await store.close();
    store = await KVStore.open(`${dir}/m`, { replica: true });
    assert.equal(store.lastLsn, 1);
    assert.equal(text(store.read("local2")), "y");
    await store.close();
  });
});

Deno.test("a long recovery logs how far it got, segment by segment", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, { segmentSizeBytes: 4096 });
    for (let i = 0; i < 300; i++) store.writePut(`key${i}`, "v".repeat(40));
    await store.close();
    const segments = segmentFiles(dir).length;
    const lines = await storageLogLines(async () => {
      store = await KVStore.open(dir, { segmentSizeBytes: 4096, recoveryProgressIntervalMs: 0 });
      await store.close();
    });
    const progress = lines.filter((line) => line.segmentsDone !== undefined);
    assert.deepEqual(
      progress.map((line) => line.segmentsDone),
      Array.from({ length: segments }, (_, i) => i),
      "one line before each segment, counting up",
    );
    assert.ok(progress.every((line) => line.segments === segments && line.dir === dir));
    assert.ok(Number(progress.at(-1)?.keys) > 0, "keys recovered so far are counted");
  });
});

Deno.test("a torn tail is truncated and every complete record kept", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir);
    await store.put("a", "1");
    await store.put("b", "2");
    await store.close();
    const [segment] = segmentFiles(dir);
    const full = Deno.statSync(segment).size;
    for (const cut of [1, 10, 31, 33]) {
      // Re-append a partial copy of the last record, as a crash mid-write leaves it.
      const data = Deno.readFileSync(segment);
      const record = data.subarray(full - 34);
      const torn = new Uint8Array(full + cut);
      torn.set(data.subarray(0, full));
      torn.set(record.subarray(0, cut), full);
      Deno.writeFileSync(segment, torn);
      store = await KVStore.open(dir);
      assert.equal(text(store.read("b")), "2");
      assert.equal(store.lastLsn, 2);
      await store.close();
      assert.equal(Deno.statSync(segment).size, full, `torn ${cut} bytes truncated`);
    }
  });
});

Deno.test("a flipped bit in the last record is a torn tail; in the middle it is corruption", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir);
    for (let i = 0; i < 10; i++) await store.put(`k${i}`, `v${i}`);
    await store.close();
    const [segment] = segmentFiles(dir);
    const original = Deno.readFileSync(segment);

    const lastDamaged = original.slice();
    lastDamaged[lastDamaged.length - 1] ^= 1;
    Deno.writeFileSync(segment, lastDamaged);
    store = await KVStore.open(dir);
    assert.equal(store.read("k9"), undefined);
    assert.equal(text(store.read("k8")), "v8");
    await store.close();

    const middle = original.slice();
    const offset = 40 + 36 * 3 + 35; // inside the 4th record's value
    middle[offset] ^= 0xff;
    Deno.writeFileSync(segment, middle);
    await assert.rejects(KVStore.open(dir), (error: Error) => {
      assert.ok(error instanceof CorruptionError);
      assert.equal(error.path, segment);
      assert.equal(error.offset, 40 + 36 * 3);
      assert.match(error.message, /CRC mismatch/);
      return true;
    });
    assert.deepEqual(Deno.readFileSync(segment), middle, "refusing to start changes nothing");
  });
});

Deno.test("damage in a sealed segment refuses to start", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { segmentSizeBytes: 4096 });
    for (let i = 0; i < 300; i++) store.writePut(`key${i}`, "v".repeat(20));
    await store.close();
    const [first] = segmentFiles(dir);
    const data = Deno.readFileSync(first);
    Deno.writeFileSync(first, data.subarray(0, data.length - 5));
    await assert.rejects(KVStore.open(dir, { segmentSizeBytes: 4096 }), CorruptionError);
  });
});

Deno.test("a write made while a sync pass ends is synced too (no group-commit stall)", async () => {
  // An onDurable listener runs inside the sync pass, just before the pass checks for more work:
  // a write it makes is flushed one microtask later, after the pass has ended but before it has
  // let go of the sync loop. A network read completing in the same event-loop tick as the fsync
  // hits the same window; this makes it deterministic.
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { fsync: "always" });
    try {
      let second: number | undefined;
      store.replicationLog.onDurable(() => {
        if (second === undefined) second = store.writePut("second", "2");
      });
      await store.put("first", "1");
      assert.ok(second !== undefined);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<"stalled">((resolve) => {
        timer = setTimeout(() => resolve("stalled"), 2000);
      });
      const durable = store.whenDurable(second).then(() => "durable");
      const outcome = await Promise.race([durable, stalled]);
      clearTimeout(timer);
      assert.equal(outcome, "durable");
      assert.equal(store.durableLsn, store.lastLsn);
    } finally {
      await store.close();
    }
  });
});
