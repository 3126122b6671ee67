import { compactsThroughIndex } from "../../src/storage/compaction_from_index.ts";
import assert from "node:assert/strict";
import { deadMapBytes, DeadValueMaps, isDeadValue } from "../../src/storage/dead_values.ts";
import { KeyIndex } from "../../src/storage/key_index.ts";
import { newSegmentHeader, Segment } from "../../src/storage/segment.ts";
import { KVStore } from "../../src/storage/mod.ts";
import { lcg } from "../helpers/random.ts";
import { storageLogLines, text, withTempDir } from "../helpers/storage.ts";

function segment(id: number): Segment {
  return new Segment(id, `/nonexistent/${id}.log`, newSegmentHeader(id, 0, 0), 40);
}

Deno.test("key index: every value it leaves is told, with its segment and offset; inserts are not", () => {
  const index = new KeyIndex<{ name: string }>();
  const left: string[] = [];
  index.onLeave = { valueLeft: (segment, offset) => left.push(`${segment.name}@${offset}`) };
  const a = { name: "a" };
  const b = { name: "b" };
  const slot = index.insert("k", a, 100, 5);
  index.insert("other", a, 200, 5);
  assert.deepEqual(left, []);
  index.update(slot, b, 300, 5);
  index.update(slot, b, 400, 5);
  index.remove(slot);
  assert.deepEqual(left, ["a@100", "b@300", "b@400"]);
});

Deno.test("dead value maps: a bit per 8 bytes names each value exactly, and only what was noted", () => {
  const active = segment(1);
  const maps = new DeadValueMaps(1024 * 1024, deadMapBytes(64 * 1024), () => active);
  // Values as close as a BATCH packs them: empty keys and values, 8 bytes apart.
  for (let offset = 40; offset < 4000; offset += 16) maps.valueLeft(active, offset);
  const map = active.deadValues as Uint8Array;
  for (let offset = 40; offset < 4000; offset += 8) {
    assert.equal(isDeadValue(map, offset), (offset - 40) % 16 === 0, `offset ${offset}`);
  }
  maps.valueLeft(active, 64 * 1024 + 4096); // past the map (a record larger than a segment)
  assert.equal(isDeadValue(map, 64 * 1024 + 4096), false);
});

Deno.test("dead value maps: only the active segment gets one; the bound drops the oldest", () => {
  const segments = Array.from({ length: 10 }, (_, i) => segment(i + 1));
  let active = segments[0];
  const mapBytes = deadMapBytes(64 * 1024);
  const maps = new DeadValueMaps(3 * mapBytes, mapBytes, () => active);
  maps.valueLeft(segments[5], 40);
  assert.equal(segments[5].deadValues, undefined, "a sealed segment without a map gets none");
  for (const next of segments) {
    active = next;
    maps.valueLeft(next, 40);
    assert.ok(maps.usedBytes <= 3 * mapBytes, `${maps.usedBytes} bytes`);
  }
  assert.deepEqual(segments.map((s) => s.deadValues !== undefined), [
    ...Array(7).fill(false),
    true,
    true,
    true,
  ]);
  // A sealed segment keeps its map and its notes.
  active = segment(11);
  maps.valueLeft(segments[8], 48);
  assert.ok(isDeadValue(segments[8].deadValues as Uint8Array, 48));
  // Retired segments give their bytes back before any other map is dropped.
  segments[9].retire();
  maps.valueLeft(active, 40);
  assert.equal(segments[9].deadValues, undefined);
  assert.notEqual(segments[7].deadValues, undefined, "not dropped: the retired one made room");
  assert.equal(maps.usedBytes, 3 * mapBytes);
  const none = new DeadValueMaps(0, mapBytes, () => active);
  none.valueLeft(segment(12), 40);
  assert.equal(none.usedBytes, 0);
});

Deno.test("dead value maps: the bound dropping a map is logged with its number, once a minute", async () => {
  const lines = await storageLogLines(() => {
    let active = segment(1);
    const mapBytes = deadMapBytes(64 * 1024);
    const maps = new DeadValueMaps(mapBytes, mapBytes, () => active);
    for (let id = 1; id <= 5; id++) {
      active = segment(id);
      maps.valueLeft(active, 40);
    }
  });
  const bound = lines.filter((line) => line.maxBytes !== undefined);
  assert.equal(bound.length, 1, "four maps dropped, one line");
  assert.deepEqual(bound[0], { maxBytes: deadMapBytes(64 * 1024), id: 1 });
});

/** A random workload of puts, expiring puts, deletes, batches and MULTIs, then compaction. */
async function compactedContents(deadValueMapBytes: number, seed: number) {
  return await withTempDir(async (dir) => {
    const options = {
      fsync: "no" as const,
      segmentSizeBytes: 8 * 1024,
      autoCompact: false,
      deadValueMapBytes,
    };
    let store = await KVStore.open(dir, options);
    const model = new Map<string, string>();
    const random = lcg(seed);
    const key = () => `k${Math.floor(random() * 300)}`;
    try {
      for (let i = 0; i < 6000; i++) {
        const roll = random();
        const k = key();
        const value = `v${i}`.padEnd(Math.floor(random() * 40), "x");
        if (roll < 0.5) {
          store.writePut(k, value);
          model.set(k, value);
        } else if (roll < 0.6) {
          store.writePut(k, value, Date.now() + 3_600_000);
          model.set(k, value);
        } else if (roll < 0.7) {
          store.writeDelete(k);
          model.delete(k);
        } else if (roll < 0.85) {
          const other = key();
          store.writeBatch([[k, value], [other, `${value}b`]]);
          model.set(k, value);
          model.set(other, `${value}b`);
        } else {
          const other = key();
          store.atomically(() => {
            store.writePut(k, value);
            store.writeDelete(other);
          });
          model.set(k, value);
          model.delete(other); // in order: the same key put, then deleted, is gone
        }
      }
      await store.whenDurable(store.lastLsn);
      const report = await store.compact();
      assert.ok(report.runs > 0, "compaction ran");
      const read = () => [...model.keys()].sort().map((k) => [k, text(store.read(k))]);
      for (const [k, value] of read()) assert.equal(value, model.get(k as string), `${k}`);
      await store.close();
      store = await KVStore.open(dir, options);
      for (const [k, value] of read()) assert.equal(value, model.get(k as string), `reopened ${k}`);
      assert.equal(store.stats().keys, model.size);
      return { contents: read(), diskBytes: store.stats().diskBytes };
    } finally {
      await store.close();
    }
  });
}

Deno.test("store: compaction with dead-value maps keeps exactly what it keeps without them", async () => {
  for (const seed of [1, 2, 3]) {
    const withMaps = await compactedContents(64 * 1024 * 1024, seed);
    const without = await compactedContents(0, seed);
    assert.deepEqual(withMaps.contents, without.contents, `seed ${seed}`);
    assert.equal(withMaps.diskBytes, without.diskBytes, `seed ${seed}: the same bytes copied`);
  }
});

Deno.test("dead value maps: no bit while the segment would be compacted through the index", () => {
  const active = segment(1);
  active.onlyPuts = true;
  active.sizeBytes = 64 * 1024;
  const index = new KeyIndex<Segment>();
  const mapBytes = deadMapBytes(64 * 1024);
  const maps = new DeadValueMaps(
    mapBytes,
    mapBytes,
    () => active,
    (segment) => compactsThroughIndex(index, segment),
  );
  active.liveBytes = 40 * 1024; // mostly live: a compaction would scan, and read the map
  maps.valueLeft(active, 1000);
  active.liveBytes = 8 * 1024; // mostly dead: a compaction would walk the index
  maps.valueLeft(active, 2000);
  active.onlyPuts = false; // a batch: it would be scanned again
  maps.valueLeft(active, 3000);
  const map = active.deadValues as Uint8Array;
  assert.deepEqual([1000, 2000, 3000].map((offset) => isDeadValue(map, offset)), [
    true,
    false,
    true,
  ]);
});
