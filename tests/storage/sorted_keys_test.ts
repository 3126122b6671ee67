import assert from "node:assert/strict";
import { SortedKeys } from "../../src/storage/sorted_keys.ts";

function randomKey(random: () => number): string {
  const length = Math.floor(random() * 6);
  let key = "";
  for (let i = 0; i < length; i++) key += String.fromCharCode(Math.floor(random() * 256));
  return key;
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

Deno.test("sorted keys: matches a sorted array model through inserts, deletes and splits", () => {
  const random = seeded(42);
  const set = new SortedKeys();
  const model = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const key = randomKey(random);
    if (random() < 0.3) {
      set.delete(key);
      model.delete(key);
    } else {
      set.add(key);
      model.add(key);
    }
  }
  const sorted = [...model].sort();
  assert.equal(set.size, model.size);
  assert.deepEqual([...set.keys()], sorted);
  const start = "\x40";
  const end = "\xa0";
  assert.deepEqual([...set.range(start, end)], sorted.filter((k) => k >= start && k <= end));
  assert.deepEqual([...set.range(start, end, 5)], sorted.filter((k) => k >= start).slice(0, 5));
  assert.equal(set.has(sorted[10]), true);
});

Deno.test("sorted keys: a clone keeps its view while the original changes", () => {
  const keys = Array.from({ length: 3000 }, (_, i) => `k${String(i).padStart(5, "0")}`);
  const set = SortedKeys.fromSorted(keys);
  const clone = set.clone();
  for (let i = 0; i < 3000; i += 2) set.delete(keys[i]);
  set.add("k99999");
  assert.equal(clone.size, 3000);
  assert.deepEqual([...clone.keys()], keys);
  assert.equal(set.size, 1501);
  clone.add("a");
  assert.equal(set.has("a"), false);
});
