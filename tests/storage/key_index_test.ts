import assert from "node:assert/strict";
import {
  type KeyBatch,
  KeyIndex,
  type Location,
  newKeyBatch,
  NO_SLOT,
} from "../../src/storage/key_index.ts";
import { ValueCache } from "../../src/storage/value_cache.ts";
import { lcg } from "../helpers/random.ts";

interface Seg {
  name: string;
}

const bytesOf = (key: string) => Uint8Array.from(key, (c) => c.charCodeAt(0));

/** Lays `keys` out one after another in `batch`'s bytes, as a look-ahead finds them. */
function fillBatch(batch: KeyBatch, keys: string[]): void {
  batch.bytes = bytesOf(keys.join(""));
  let at = 0;
  for (const [k, key] of keys.entries()) {
    batch.starts[k] = at;
    batch.ends[k] = at += key.length;
  }
  batch.count = keys.length;
}

/** Checks every key of the model through both lookups, and the sorted order. */
function assertMatches(index: KeyIndex<Seg>, model: Map<string, Location<Seg>>, probes: string[]) {
  assert.equal(index.size, model.size);
  for (const key of probes) {
    const expected = model.get(key);
    const slot = index.find(key);
    const padded = new Uint8Array(key.length + 2);
    padded.set(bytesOf(key), 1);
    assert.equal(index.findBytes(padded, 1, key.length + 1), slot, `findBytes(${key})`);
    if (expected === undefined) {
      assert.equal(slot, NO_SLOT, `absent key ${JSON.stringify(key)} was found`);
      continue;
    }
    assert.notEqual(slot, NO_SLOT, `key ${JSON.stringify(key)} was lost`);
    assert.equal(index.keyOf(slot), key);
    assert.equal(index.segmentOf(slot), expected.segment);
    assert.equal(index.offsetOf(slot), expected.offset);
    assert.equal(index.lengthOf(slot), expected.length);
  }
  const inOrder = [...index.range("", "\xff\xff\xff\xff")].map((slot) => index.keyOf(slot));
  assert.deepEqual(inOrder, [...model.keys()].sort());
}

/**
 * Random inserts, updates and removes on an index, checked against a Map: expiry times start at
 * operation `expiryFrom` (the slots widen then), and with `cache`, some values are cached, so
 * their keys are compared with the cache's copy.
 */
function runModel(seed: number, expiryFrom: number, cache?: ValueCache) {
  const random = lcg(seed);
  const segments: Seg[] = [{ name: "a" }, { name: "b" }, { name: "c" }];
  const index = new KeyIndex<Seg>();
  const model = new Map<string, Location<Seg>>();
  // Few short keys (bytes 0-255, the empty key included), so collisions, long probe runs,
  // removals inside runs and slot reuse all happen; 3,000 distinct keys force table growth.
  const keyOf = () => {
    const n = Math.floor(random() * 3000);
    return n === 0 ? "" : String.fromCharCode(n & 0xff, n >> 8) + (n % 7 === 0 ? "\x80" : "");
  };
  const probes = new Set<string>();
  for (let i = 0; i < 30_000; i++) {
    const key = keyOf();
    probes.add(key);
    const slot = index.find(key);
    if (random() < 0.35) {
      if (slot !== NO_SLOT) index.remove(slot);
      model.delete(key);
      continue;
    }
    const location = {
      segment: segments[Math.floor(random() * segments.length)],
      offset: Math.floor(random() * 2 ** 32),
      length: Math.floor(random() * 1000),
      expiresAtMs: i >= expiryFrom && i % 3 === 0 ? 1_700_000_000_000 + i : 0,
    };
    const { segment, offset, length, expiresAtMs } = location;
    let written = slot;
    if (slot !== NO_SLOT) index.update(slot, segment, offset, length, expiresAtMs);
    else if (i % 2 === 0) written = index.insert(key, segment, offset, length, expiresAtMs);
    else written = index.insertMissed(key, segment, offset, length, expiresAtMs);
    if (cache !== undefined && random() < 0.5) {
      cache.add(index, written, new Uint8Array(length).fill(i & 0xff));
    }
    model.set(key, location);
    if (i % 5000 === 0) assertMatches(index, model, [...probes]);
  }
  assertMatches(index, model, [...probes]);
  // Emptying it leaves every lookup absent.
  for (const key of model.keys()) index.remove(index.find(key));
  model.clear();
  assertMatches(index, model, [...probes]);
}

Deno.test("key index: matches a Map model through inserts, updates, removes and growth", () => {
  runModel(7, 0);
});

Deno.test("key index: slots widened halfway (the first expiry time) keep every key", () => {
  // Narrow for 15,000 operations (free list, growth), then wide from the first TTL on.
  runModel(8, 15_000);
});

Deno.test("key index: keys of cached values are compared with the cache's copy", () => {
  // Values are cached at random, so lookups go through ValueCache.keyEquals for about half the
  // keys; slot reuse after a removal must never match the old key's copy.
  runModel(9, 30_000, new ValueCache(64 * 1024 * 1024));
  runModel(10, 10_000, new ValueCache(64 * 1024));
});

Deno.test("key index: a removed key's slot is reused, and the old key stays absent", () => {
  const seg = { name: "s" };
  const index = new KeyIndex<Seg>();
  const first = index.insert("one", seg, 10, 1);
  const second = index.insert("two", seg, 20, 2);
  index.remove(first);
  assert.equal(index.find("one"), NO_SLOT);
  const third = index.insert("three", seg, 30, 3);
  assert.equal(third, first, "the freed slot is taken first");
  assert.equal(index.keyOf(third), "three");
  assert.equal(index.offsetOf(third), 30);
  assert.equal(index.find("two"), second);
  assert.equal(index.find("one"), NO_SLOT);
  assert.equal(index.size, 2);
});

Deno.test("key index: a segment's handle is released with its last entry and reused", () => {
  const old = { name: "old" };
  const active = { name: "active" };
  const next = { name: "next" };
  const index = new KeyIndex<Seg>();
  const a = index.insert("a", old, 1, 1);
  const b = index.insert("b", old, 2, 1);
  index.update(a, active, 3, 1);
  index.remove(b);
  // No entry points at `old` any more; a new segment takes its handle without confusion.
  const c = index.insert("c", next, 4, 1);
  assert.equal(index.segmentOf(a), active);
  assert.equal(index.segmentOf(c), next);
  index.update(a, next, 5, 1);
  assert.equal(index.segmentOf(a), next);
  assert.equal(index.segmentOf(c), next);
});

Deno.test("key index: locations outside 32 bits are refused", () => {
  const index = new KeyIndex<Seg>();
  const seg = { name: "s" };
  assert.throws(() => index.insert("k", seg, 2 ** 32, 1), RangeError);
  assert.throws(() => index.insert("k", seg, 0, -1), RangeError);
});

Deno.test("key index: bulk load with deferred sorting, then rebuild", () => {
  const seg = { name: "s" };
  const index = new KeyIndex<Seg>();
  index.deferSorting();
  index.reserve(10_000);
  const keys: string[] = [];
  for (let i = 0; i < 5_000; i++) keys.push(`k${(i * 7919) % 5_000}`);
  for (const key of keys) index.insert(key, seg, keys.indexOf(key), 1);
  for (let i = 0; i < 5_000; i += 2) index.remove(index.find(`k${i}`));
  assert.throws(() => index.range("", "z"), /being rebuilt/);
  index.rebuildSorted();
  const live = keys.filter((k) => Number(k.slice(1)) % 2 === 1).sort();
  assert.deepEqual([...index.range("", "z")].map((slot) => index.keyOf(slot)), live);
  for (const key of live) assert.equal(index.offsetOf(index.find(key)), keys.indexOf(key));
  index.insert("k0", seg, 1, 1);
  assert.equal(index.size, live.length + 1);
});

Deno.test("key index: a snapshot keeps the locations it saw, and its slots", () => {
  const before = { name: "before" };
  const after = { name: "after" };
  const index = new KeyIndex<Seg>();
  index.insert("kept", before, 1, 1);
  index.insert("moved", before, 2, 2);
  const gone = index.insert("gone", before, 3, 3);
  const snapshot = index.snapshot();
  index.update(index.find("moved"), after, 20, 20);
  index.remove(index.find("gone"));
  // While the snapshot is open a freed slot is not reused: it still names "gone" in the view.
  const added = index.insert("new", after, 4, 4);
  assert.notEqual(added, gone);
  const seen = [...snapshot.sorted.slots()].map((slot) => {
    const { segment, offset, length } = snapshot.locationOf(slot);
    return [snapshot.keyOf(slot), segment.name, offset, length];
  });
  assert.deepEqual(seen, [
    ["gone", "before", 3, 3],
    ["kept", "before", 1, 1],
    ["moved", "before", 2, 2],
  ]);
  snapshot.release();
  assert.equal(index.openSnapshots, 0);
  assert.deepEqual(index.location(index.find("moved")), {
    segment: after,
    offset: 20,
    length: 20,
    expiresAtMs: 0,
  });
  // Released: the held slot is free again.
  assert.equal(index.insert("later", after, 5, 5), gone);
});

Deno.test("key index: a compaction's move keeps the value's facts; the old copy is left", () => {
  const old = { name: "old" };
  const output = { name: "output" };
  const index = new KeyIndex<Seg>();
  const left: string[] = [];
  index.onLeave = { valueLeft: (segment, offset) => left.push(`${segment.name}@${offset}`) };
  const counter = index.insert("counter", old, 10, 2, 1_900_000_000_000);
  const cached = index.insert("cached", old, 20, 3);
  index.setCounter(counter, 42);
  const cache = new ValueCache(64 * 1024);
  cache.add(index, cached, new Uint8Array([7, 8, 9]));
  const snapshot = index.snapshot();
  index.move(counter, output, 100);
  index.move(cached, output, 200);
  assert.deepEqual(index.location(counter), {
    segment: output,
    offset: 100,
    length: 2,
    expiresAtMs: 1_900_000_000_000,
  });
  assert.equal(index.counterOf(counter), 42, "the moved value is the same number");
  const into = new Uint8Array(3);
  assert.ok(cache.copyInto(index, cached, into), "the moved value is still cached");
  assert.deepEqual([...into], [7, 8, 9]);
  assert.deepEqual(left, ["old@10", "old@20"]);
  assert.equal(snapshot.locationOf(counter).offset, 10, "a snapshot still sees the old copy");
  snapshot.release();
  // Only a move keeps them: an update of the same slot forgets both.
  index.update(counter, output, 300, 2, 1_900_000_000_000);
  assert.ok(Number.isNaN(index.counterOf(counter)));
  index.update(cached, output, 400, 3);
  assert.equal(cache.copyInto(index, cached, into), false);
  // `old` has no entry left: its handle is reused without confusion.
  const other = { name: "other" };
  const fresh = index.insert("fresh", other, 1, 1);
  assert.equal(index.segmentOf(fresh), other);
  assert.equal(index.segmentOf(counter), output);
});

Deno.test("key index: a bulk load allocates slots in load order, reusing none", () => {
  const seg = { name: "s" };
  const index = new KeyIndex<Seg>();
  index.deferSorting();
  const a = index.insert("a", seg, 1, 1);
  index.remove(a);
  const b = index.insert("b", seg, 2, 2);
  assert.equal(b, a + 1, "no reuse while the sorted set is deferred");
  index.rebuildSorted();
  assert.equal(index.insert("c", seg, 3, 3), a, "reused once the load is done");
  assert.deepEqual([...index.range("", "z")].map((slot) => index.keyOf(slot)), ["b", "c"]);
});

Deno.test("key index: insertMissed after another change still files the key correctly", () => {
  const seg = { name: "s" };
  const index = new KeyIndex<Seg>();
  for (let i = 0; i < 11; i++) index.insert(`k${i}`, seg, i, 1);
  assert.equal(index.find("late"), NO_SLOT);
  // Changes in between, growing the table: the remembered probe position means nothing now.
  for (let i = 0; i < 40; i++) index.insert(`other${i}`, seg, 100 + i, 1);
  const slot = index.insertMissed("late", seg, 200, 1);
  assert.equal(index.find("late"), slot);
  for (let i = 0; i < 40; i++) assert.equal(index.offsetOf(index.find(`other${i}`)), 100 + i);
  for (let i = 0; i < 11; i++) assert.equal(index.offsetOf(index.find(`k${i}`)), i);
});

Deno.test("key index: expiry times live beside the slots and follow inserts, updates, removes", () => {
  const seg = { name: "s" };
  const index = new KeyIndex<Seg>();
  for (let i = 0; i < 100; i++) index.insert(`k${i}`, seg, i, 1, i % 2 === 0 ? 1000 + i : 0);
  assert.equal(index.expiringKeys, 50);
  assert.equal(index.expiryOf(index.find("k4")), 1004);
  assert.equal(index.expiryOf(index.find("k5")), 0);
  index.update(index.find("k4"), seg, 9, 1, 0);
  index.update(index.find("k5"), seg, 9, 1, 5);
  assert.equal(index.expiringKeys, 50);
  index.remove(index.find("k6"));
  assert.equal(index.expiringKeys, 49);
  // a freed slot reused by a key without a TTL does not inherit one
  const slot = index.insert("fresh", seg, 1, 1);
  assert.equal(index.expiryOf(slot), 0);
  const found: number[] = [];
  let cursor = 0;
  do cursor = index.scanExpired(cursor, 7, 1050, found, 1000); while (cursor !== 0);
  const keys = found.map((s) => index.keyOf(s)).sort();
  assert.deepEqual(keys, [
    "k0",
    "k10",
    "k12",
    "k14",
    "k16",
    "k18",
    "k2",
    "k20",
    "k22",
    "k24",
    "k26",
    "k28",
    "k30",
    "k32",
    "k34",
    "k36",
    "k38",
    "k40",
    "k42",
    "k44",
    "k46",
    "k48",
    "k5",
    "k50",
    "k8",
  ]);
  const few: number[] = [];
  assert.notEqual(index.scanExpired(0, 1000, 1050, few, 3), 0);
  assert.equal(few.length, 3, "stops at maxFound");
});

Deno.test("key index: a counter's number is forgotten by any change of its slot's location", () => {
  const index = new KeyIndex<Seg>();
  const seg = { name: "a" };
  const slots = Array.from({ length: 100 }, (_, i) => index.insert(`k${i}`, seg, i * 10, 3));
  assert.ok(Number.isNaN(index.counterOf(slots[0])), "none known before the first");
  for (let i = 0; i < 100; i++) index.setCounter(slots[i], i * 1000);
  // Growth (slots and table) keeps what is known, and new slots know nothing.
  for (let i = 100; i < 5000; i++) index.insert(`k${i}`, seg, i * 10, 3);
  for (let i = 0; i < 100; i++) assert.equal(index.counterOf(slots[i]), i * 1000);
  assert.ok(Number.isNaN(index.counterOf(index.find("k4999"))));
  // An update (an overwrite, a compaction's move, a replicated record) forgets it.
  index.update(slots[1], seg, 99_999, 3);
  assert.ok(Number.isNaN(index.counterOf(slots[1])));
  // A removed key's slot, reused by another key, knows nothing of the old number.
  index.remove(slots[2]);
  const reused = index.insert("other", seg, 5, 3);
  assert.equal(reused, slots[2]);
  assert.ok(Number.isNaN(index.counterOf(reused)));
  assert.equal(index.counterOf(slots[3]), 3000, "the others are kept");
});

Deno.test("key index: warming a batch of lookups changes nothing and names each key's slot", () => {
  const segment: Seg = { name: "a" };
  const index = new KeyIndex<Seg>();
  const cache = new ValueCache(1024 * 1024);
  const keys = Array.from({ length: 200 }, (_, i) => `key:${i}`);
  for (const [i, key] of keys.entries()) {
    const slot = index.insert(key, segment, i * 10, 3, i % 2 === 0 ? 1_700_000_000_000 : 0);
    if (i % 3 === 0) cache.add(index, slot, bytesOf(`v${i % 10}!`));
    if (i % 5 === 0) index.setCounter(slot, i);
  }
  const model = new Map<string, Location<Seg>>(
    keys.map((key) => [key, index.location(index.find(key))]),
  );
  // A failed lookup right before the warm-up: insertMissed must still file its key correctly.
  const missed = "missed";
  assert.equal(index.findBytes(bytesOf(missed), 0, missed.length), NO_SLOT);
  const batch = newKeyBatch(32);
  const probes = [...keys.slice(0, 24), "absent:1", "absent:2", missed];
  fillBatch(batch, probes);
  assert.equal(typeof index.warm(batch), "number");
  assert.ok(cache.warm(index, batch.slots, batch.count) > 0, "the cached values were read");
  // At a quarter full or less, nearly every key's probe ends in its first entry or soon after.
  const home = keys.slice(0, 24).filter((key, k) => batch.slots[k] === index.find(key));
  assert.ok(home.length >= 18, `${home.length} of 24 keys named in their own slot`);
  for (let k = 0; k < probes.length; k++) {
    assert.ok(batch.slots[k] >= -1 && batch.slots[k] < index.capacity);
  }
  index.insertMissed(missed, segment, 7, 1);
  model.set(missed, { segment, offset: 7, length: 1, expiresAtMs: 0 });
  assertMatches(index, model, [...probes, ...keys]);
  for (const [i, key] of keys.entries()) {
    const slot = index.find(key);
    assert.equal(index.counterOf(slot), i % 5 === 0 ? i : Number.NaN);
    assert.equal(Number.isNaN(index.cachedAt(slot)), i % 3 !== 0);
  }
});

Deno.test("key index: warming follows a probe past entries of other hashes at 3/4 load", () => {
  const index = new KeyIndex<Seg>();
  const segment: Seg = { name: "s" };
  // 3,000 keys in a table of 4,096 entries: near its highest load, where over a third of
  // lookups probe past their first entry.
  const keys = Array.from({ length: 3_000 }, (_, i) => `counter:${i}`);
  for (const [i, key] of keys.entries()) index.insert(key, segment, i, 1);
  const batch = newKeyBatch(32);
  let named = 0;
  for (let from = 0; from < keys.length; from += 30) {
    const probes = [...keys.slice(from, from + 30), "absent:1", "absent:2"];
    fillBatch(batch, probes);
    index.warm(batch);
    for (const [k, key] of probes.entries()) {
      assert.ok(batch.slots[k] >= -1 && batch.slots[k] < index.capacity);
      if (k < 30 && batch.slots[k] === index.find(key)) named++;
    }
  }
  // The first entry alone names ~62% of the keys' own slots, four entries ~89%.
  assert.ok(named >= 0.8 * keys.length, `${named} of ${keys.length} keys named in their own slot`);
  for (const [i, key] of keys.entries()) assert.equal(index.offsetOf(index.find(key)), i);
});
