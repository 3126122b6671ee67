import assert from "node:assert/strict";
import { SortedKeys } from "../../src/storage/sorted_keys.ts";
import { lcg } from "../helpers/random.ts";

function randomKey(random: () => number): string {
  const length = Math.floor(random() * 6);
  let key = "";
  for (let i = 0; i < length; i++) key += String.fromCharCode(Math.floor(random() * 256));
  return key;
}

/** Slots for keys, as the index hands them out: one slot per distinct key, never reused here. */
class Slots {
  readonly keys: string[] = [];
  readonly #slotOf = new Map<string, number>();

  slot(key: string): number {
    let slot = this.#slotOf.get(key);
    if (slot === undefined) {
      slot = this.keys.length;
      this.keys.push(key);
      this.#slotOf.set(key, slot);
    }
    return slot;
  }
}

Deno.test("sorted keys: matches a sorted array model through inserts, deletes and splits", () => {
  const random = lcg(42);
  const slots = new Slots();
  const set = new SortedKeys(slots.keys);
  const model = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const key = randomKey(random);
    const slot = slots.slot(key);
    if (random() < 0.3) {
      set.delete(slot);
      model.delete(key);
    } else if (!model.has(key)) {
      set.add(slot);
      model.add(key);
    }
  }
  const sorted = [...model].sort();
  const keysOf = (found: Iterable<number>) => [...found].map((slot) => slots.keys[slot]);
  assert.equal(set.size, model.size);
  assert.deepEqual(keysOf(set.slots()), sorted);
  const start = "\x40";
  const end = "\xa0";
  assert.deepEqual(keysOf(set.range(start, end)), sorted.filter((k) => k >= start && k <= end));
  assert.deepEqual(keysOf(set.range(start, end, 5)), sorted.filter((k) => k >= start).slice(0, 5));
});

Deno.test("sorted keys: a clone keeps its view while the original changes", () => {
  const slots = new Slots();
  const keys = Array.from({ length: 3000 }, (_, i) => `k${String(i).padStart(5, "0")}`);
  const set = SortedKeys.fromSorted(slots.keys, keys.map((key) => slots.slot(key)));
  const clone = set.clone();
  for (let i = 0; i < 3000; i += 2) set.delete(slots.slot(keys[i]));
  set.add(slots.slot("k99999"));
  assert.equal(clone.size, 3000);
  assert.deepEqual([...clone.slots()].map((slot) => slots.keys[slot]), keys);
  assert.equal(set.size, 1501);
  clone.add(slots.slot("a"));
  assert.equal([...set.slots()].includes(slots.slot("a")), false);
});
