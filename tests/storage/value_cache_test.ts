import assert from "node:assert/strict";
import { ENTRY_OVERHEAD_BYTES, ValueCache } from "../../src/storage/value_cache.ts";
import { KeyIndex, NO_SLOT } from "../../src/storage/key_index.ts";
import { keyToBytes } from "../../src/storage/keys.ts";
import { KVStore } from "../../src/storage/mod.ts";
import { bytes, text, withStore as withStoreOf, withTempDir } from "../helpers/storage.ts";

const SEGMENT = { name: "segment" };

/** An index of `count` keys `k0..`, each pointing at a value of `length` bytes. */
function indexOf(count: number, length = 10): KeyIndex<object> {
  const index = new KeyIndex<object>();
  for (let i = 0; i < count; i++) index.insert(`k${i}`, SEGMENT, i * 1000, length);
  return index;
}

/** What the cache holds for `slot` of `index`, as a copy, or undefined. */
function cached(cache: ValueCache, index: KeyIndex<object>, slot: number, length: number) {
  const into = new Uint8Array(length);
  return cache.copyInto(index, slot, into) ? into : undefined;
}

Deno.test("value cache: filled past its bound it stays within it and serves only what it was given", () => {
  const maxBytes = 256 * 1024;
  const cache = new ValueCache(maxBytes);
  const index = indexOf(20_000);
  const valueOf = (i: number) => new Uint8Array(1 + (i * 7919) % 900).fill(i & 0xff);
  // 20,000 values of ~450 bytes on average: ~35 times the bound.
  for (let i = 0; i < 20_000; i++) {
    cache.add(index, i, valueOf(i));
    assert.ok(cache.usedBytes <= maxBytes, `after ${i}: ${cache.usedBytes} bytes`);
  }
  assert.ok(cache.entries > 100, `it still holds values (${cache.entries})`);
  let hits = 0;
  for (let i = 0; i < 20_000; i++) {
    const value = valueOf(i);
    const got = cached(cache, index, i, value.length);
    if (got === undefined) continue;
    hits++;
    assert.deepEqual(got, value, `value ${i}`);
  }
  assert.equal(hits, cache.entries, "every entry held is found, with its own bytes");
  assert.ok(hits < 20_000 && cached(cache, index, 0, 1) === undefined, "oldest dropped");
});

Deno.test("value cache: a slot that moved, or was freed and reused by another key, is not served", () => {
  const cache = new ValueCache(64 * 1024);
  const index = indexOf(3, 3);
  for (let slot = 0; slot < 3; slot++) cache.add(index, slot, bytes(`v${slot}!`));
  index.update(0, SEGMENT, 99_000, 3); // an overwrite, a compaction's move, a replicated record
  assert.equal(cached(cache, index, 0, 3), undefined);
  index.remove(1);
  const reused = index.insert("another key", SEGMENT, 5, 3);
  assert.equal(reused, 1, "the freed slot is reused");
  assert.equal(cached(cache, index, reused, 3), undefined);
  assert.equal(text(cached(cache, index, 2, 3)), "v2!", "the others are kept");
  cache.add(index, 0, bytes("new"));
  assert.equal(text(cached(cache, index, 0, 3)), "new", "cached again at its new place");
});

Deno.test("value cache: a slab dropped forgets its own entries only, not a slot cached again later", () => {
  const cache = new ValueCache(64 * 1024);
  const index = indexOf(10_000, 100);
  const perSlab = Math.floor(cache.slabBytes / 100);
  cache.add(index, 0, new Uint8Array(100).fill(1)); // the first slab
  for (let i = 1; i <= perSlab; i++) cache.add(index, i, new Uint8Array(100).fill(3));
  index.update(0, SEGMENT, 123_456, 100);
  cache.add(index, 0, new Uint8Array(100).fill(2)); // the same slot, in the second slab
  // Until the first slab is gone (bounded: fewer adds than slots).
  for (let i = perSlab + 1; i < 10_000 && cached(cache, index, 1, 100) !== undefined; i++) {
    cache.add(index, i, new Uint8Array(100).fill(3));
  }
  assert.equal(cached(cache, index, 1, 100), undefined, "the oldest slab went");
  assert.deepEqual(cached(cache, index, 0, 100), new Uint8Array(100).fill(2), "slot 0 kept");
  assert.ok(cache.usedBytes <= 64 * 1024);
});

Deno.test("value cache: a value larger than a slab with its key, or a bound too small, caches nothing", () => {
  const cache = new ValueCache(64 * 1024);
  assert.ok(cache.slabBytes <= 64 * 1024 / 8);
  const index = indexOf(100, 1);
  cache.add(index, 0, new Uint8Array(cache.slabBytes + 1));
  assert.equal(cache.entries, 0);
  cache.add(index, 0, new Uint8Array(cache.slabBytes).fill(3));
  assert.equal(cache.entries, 0, "a slab's worth of value leaves no room for its key");
  // The largest value cached fills a slab with its key and the key's 4-byte length.
  const largest = cache.slabBytes - 4 - index.keyOf(0).length;
  cache.add(index, 0, new Uint8Array(largest).fill(3));
  assert.deepEqual(cached(cache, index, 0, largest), new Uint8Array(largest).fill(3));
  const whole = new ValueCache(64 * 1024 * 1024);
  whole.add(index, 1, new Uint8Array(1024 * 1024 + 1));
  assert.equal(whole.entries, 0, "over 1 MiB: not cached whatever the bound");
  for (const maxBytes of [0, 100, ENTRY_OVERHEAD_BYTES, 511]) {
    const tiny = new ValueCache(maxBytes);
    for (let i = 0; i < 100; i++) tiny.add(index, i, new Uint8Array(1));
    assert.ok(tiny.usedBytes <= maxBytes, `bound ${maxBytes}: ${tiny.usedBytes} bytes held`);
  }
});

Deno.test("value cache: a new index (FLUSH, full sync) drops what was held for the old one", () => {
  const cache = new ValueCache(1024 * 1024);
  const before = indexOf(2, 3);
  cache.add(before, 0, bytes("old"));
  const after = indexOf(2, 3); // the same slot numbers, other values
  assert.equal(cached(cache, after, 0, 3), undefined);
  cache.add(after, 1, bytes("new"));
  assert.equal(cached(cache, before, 0, 3), undefined, "the old index's entries are gone");
  assert.ok(Number.isNaN(before.cachedAt(0)), "and forgotten in the old index");
  assert.equal(text(cached(cache, after, 1, 3)), "new");
  cache.clear();
  assert.equal(cached(cache, after, 1, 3), undefined);
  assert.equal(cache.usedBytes, 0);
});

/** A store with small segments that compacts only when told, its values in the cache. */
function withStore(test: (store: KVStore, dir: string) => Promise<void>): Promise<void> {
  const options = { fsync: "no", segmentSizeBytes: 4096, autoCompact: false } as const;
  return withStoreOf({ ...options, valueCacheBytes: 1024 * 1024 }, test);
}

/** Writes and flushes, so the next read is of the file (and fills the cache). */
async function settle(store: KVStore): Promise<void> {
  await store.whenDurable(store.lastLsn);
}

Deno.test("store: a cached value overwritten, deleted or flushed is never read again", async () => {
  await withStore(async (store) => {
    for (let i = 0; i < 50; i++) store.writePut(`k${i}`, `one-${i}`);
    await settle(store);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 50; i++) assert.equal(text(store.read(`k${i}`)), `one-${i}`);
    }
    for (let i = 0; i < 50; i++) store.writePut(`k${i}`, `two-${i}`); // same lengths
    await settle(store);
    for (let i = 0; i < 50; i++) assert.equal(text(store.read(`k${i}`)), `two-${i}`);
    for (let i = 0; i < 50; i += 2) store.writeDelete(`k${i}`);
    await settle(store);
    for (let i = 0; i < 50; i++) {
      assert.equal(text(store.read(`k${i}`)), i % 2 === 0 ? undefined : `two-${i}`);
    }
    await store.atomicWrites.flushAll();
    for (let i = 0; i < 50; i++) assert.equal(store.read(`k${i}`), undefined, `k${i} flushed`);
    for (let i = 0; i < 50; i++) store.writePut(`k${i}`, `new-${i}`);
    await settle(store);
    for (let i = 0; i < 50; i++) assert.equal(text(store.read(`k${i}`)), `new-${i}`);
  });
});

Deno.test("store: a cached value past its expiry time is not read", async () => {
  await withStore(async (store) => {
    store.writePut("soon", "gone", Date.now() + 30);
    store.writePut("later", "kept", Date.now() + 3_600_000);
    await settle(store);
    assert.equal(text(store.read("soon")), "gone");
    assert.equal(text(store.read("later")), "kept");
    // Bounded: the expiry time is 30 ms away.
    while (store.read("soon") !== undefined) await new Promise((r) => setTimeout(r, 10));
    assert.equal(text(store.read("later")), "kept");
  });
});

Deno.test("store: after compaction reuses a segment's id, its old cached bytes are not served", async () => {
  await withStore(async (store) => {
    // Same-length values: once `a0..` are deleted and compacted, `b0..` move to their offsets in
    // a segment of the same id.
    for (let i = 0; i < 40; i++) store.writePut(`a${i}`, `A-value-${String(i).padStart(3, "0")}`);
    for (let i = 0; i < 40; i++) store.writePut(`b${i}`, `B-value-${String(i).padStart(3, "0")}`);
    await settle(store);
    for (let i = 0; i < 40; i++) store.read(`a${i}`); // cached at their offsets
    for (let i = 0; i < 40; i++) store.writeDelete(`a${i}`);
    // Fill segments until the first ones are sealed, so compaction can take them.
    for (let i = 0; store.stats().segments < 4 && i < 10_000; i++) store.writePut(`pad${i}`, "x");
    await settle(store);
    await store.compact();
    for (let i = 0; i < 40; i++) {
      assert.equal(store.read(`a${i}`), undefined);
      assert.equal(text(store.read(`b${i}`)), `B-value-${String(i).padStart(3, "0")}`);
    }
  });
});

Deno.test("store: after a full sync, values cached from the replaced segments are not served", async () => {
  await withStore(async (store) => {
    for (let i = 0; i < 40; i++) store.writePut(`k${i}`, `before-${i}`);
    await settle(store);
    for (let i = 0; i < 40; i++) assert.equal(text(store.read(`k${i}`)), `before-${i}`);
    const sync = await store.replicationLog.beginFullSync(1000);
    for (let i = 0; i < 40; i++) sync.put(bytes(`k${i}`), bytes(`after--${i}`)); // same lengths
    await sync.finish();
    for (let i = 0; i < 40; i++) assert.equal(text(store.read(`k${i}`)), `after--${i}`);
  });
});

Deno.test("store: a caller may change the bytes it read; the next read is the stored value", async () => {
  await withStore(async (store) => {
    store.writePut("k", "value");
    store.writePut("big", new Uint8Array(4000).fill(7));
    await settle(store);
    for (let round = 0; round < 3; round++) {
      const small = store.read("k") as Uint8Array;
      assert.equal(text(small), "value");
      small.fill(0);
      const big = store.read("big") as Uint8Array;
      assert.deepEqual(big, new Uint8Array(4000).fill(7));
      big.fill(0);
    }
  });
});

Deno.test("store: more values read than the cache holds all read back right", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { fsync: "no", valueCacheBytes: 64 * 1024 });
    try {
      const valueOf = (i: number) =>
        `${i}:`.padEnd(10 + (i % 200), String.fromCharCode(97 + i % 26));
      for (let i = 0; i < 3000; i++) store.writePut(`key${i}`, valueOf(i));
      await settle(store);
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 3000; i++) assert.equal(text(store.read(`key${i}`)), valueOf(i));
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("store: values cached as written (a counter's) read back right after overwrite, delete, EXEC", async () => {
  await withStore(async (store) => {
    for (let i = 0; i < 50; i++) store.writePutReadAgain(`c${i}`, String(i));
    for (let i = 0; i < 50; i++) assert.equal(text(store.read(`c${i}`)), String(i), "same turn");
    await settle(store);
    for (let i = 0; i < 50; i++) assert.equal(text(store.read(`c${i}`)), String(i), "flushed");
    for (let i = 0; i < 50; i++) {
      if (i % 3 === 0) store.writePutReadAgain(`c${i}`, String(i + 1000));
      else if (i % 3 === 1) store.writePut(`c${i}`, String(i + 2000));
      else store.writeDelete(`c${i}`);
    }
    await settle(store);
    for (let i = 0; i < 50; i++) {
      const want = i % 3 === 0 ? String(i + 1000) : i % 3 === 1 ? String(i + 2000) : undefined;
      assert.equal(text(store.read(`c${i}`)), want, `c${i}`);
    }
    // Inside a transaction the write is captured, not made: nothing is cached until it applies.
    store.atomically(() => store.writePutReadAgain("c0", "in-exec"));
    await settle(store);
    assert.equal(text(store.read("c0")), "in-exec");
    await store.atomicWrites.flushAll();
    assert.equal(store.read("c0"), undefined, "flushed");
  });
});

Deno.test("value cache: the key kept beside a value equals exactly that key, by length too", () => {
  const cache = new ValueCache(1024 * 1024);
  const index = new KeyIndex<object>();
  const slots = ["k1", "", "k\xff\x00"].map((key, i) => index.insert(key, SEGMENT, i * 100, 3));
  for (const slot of slots) cache.add(index, slot, new Uint8Array([1, 2, 3]));
  const at = (slot: number) => index.cachedAt(slot);
  // "k1X" read to 2 bytes is "k1"; to 1 byte it is "k", a prefix the length must tell apart.
  assert.equal(cache.keyEquals(at(slots[0]), 3, keyToBytes("k1X"), 0, 2), true);
  assert.equal(cache.keyEquals(at(slots[0]), 3, keyToBytes("k1X"), 0, 1), false, "a prefix");
  assert.equal(cache.keyEquals(at(slots[0]), 3, keyToBytes("k1X"), 0, 3), false, "longer");
  assert.equal(cache.keyEquals(at(slots[0]), 3, keyToBytes("xk2"), 1, 3), false, "same length");
  assert.equal(cache.keyEquals(at(slots[1]), 3, keyToBytes("k1"), 0, 0), true, "the empty key");
  assert.equal(cache.keyEquals(at(slots[1]), 3, keyToBytes("k1"), 0, 1), false);
  assert.equal(cache.keyEquals(at(slots[2]), 3, keyToBytes("_k\xff\x00"), 1, 4), true, "any byte");
  // And the index finds each through the cached copy.
  for (const [i, key] of ["k1", "", "k\xff\x00"].entries()) {
    assert.equal(index.findBytes(keyToBytes(key), 0, key.length), slots[i]);
  }
  assert.equal(index.findBytes(keyToBytes("k1X"), 0, 1), NO_SLOT);
});
