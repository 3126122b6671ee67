import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { checkRecord, recordLsn } from "../../src/storage/record.ts";
import { SEGMENT_HEADER_BYTES } from "../../src/storage/segment.ts";
import { segmentFiles, text, withTempDir, writeWhileRunning } from "../helpers/storage.ts";

const SMALL = { segmentSizeBytes: 4096, autoCompact: false } as const;
const HOUR_MS = 3_600_000;

function contents(store: KVStore): [string, string][] {
  return store.readRange("", "\xff").map(([k, v]) => [text(k) as string, text(v) as string]);
}

/** The LSNs of the records of a segment file, in file order (every record must be intact). */
function lsnsOf(path: string): number[] {
  const buf = Deno.readFileSync(path);
  const view = new DataView(buf.buffer);
  const lsns: number[] = [];
  for (let at = SEGMENT_HEADER_BYTES; at < buf.length;) {
    const length = checkRecord(buf, view, at, buf.length);
    assert.ok(length > 0, `intact record at ${at} of ${path}`);
    lsns.push(recordLsn(view, at));
    at += length;
  }
  return lsns;
}

/** Every segment file of `dir` holds intact records whose LSNs never decrease. */
function assertLsnsInOrder(dir: string): void {
  for (const path of segmentFiles(dir)) {
    const lsns = lsnsOf(path);
    assert.deepEqual(lsns, [...lsns].sort((a, b) => a - b), `LSNs in order in ${path}`);
  }
}

/** Hot keys overwritten round after round: sealed segments of puts, mostly dead. */
function writeRounds(store: KVStore, rounds: number, expiresAtMs: (i: number) => number): void {
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 30; i++) store.writePut(`hot${i}`, `r${round}-${i}`, expiresAtMs(i));
  }
}

Deno.test("mostly dead segments of puts are compacted through the index; values, TTLs and LSN order survive reopen", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, SMALL);
    const expiry = Date.now() + HOUR_MS;
    writeRounds(store, 40, (i) => (i % 3 === 0 ? expiry + i : 0));
    await store.whenDurable(store.lastLsn);
    const before = contents(store);
    const lastLsn = store.lastLsn;
    const report = await store.compact();
    assert.ok(report.segmentsFromIndex >= 1, JSON.stringify(report));
    assert.ok(report.bytesAfter < report.bytesBefore / 5, JSON.stringify(report));
    assert.deepEqual(contents(store), before);
    for (let i = 0; i < 30; i += 3) assert.equal(store.expiresAtMs(`hot${i}`), expiry + i);
    assert.equal(store.expiresAtMs("hot1"), 0);
    assertLsnsInOrder(dir);
    await store.close();
    store = await KVStore.open(dir, SMALL);
    assert.deepEqual(contents(store), before);
    assert.equal(store.lastLsn, lastLsn);
    for (let i = 0; i < 30; i += 3) assert.equal(store.expiresAtMs(`hot${i}`), expiry + i);
    // A compaction output holds puts only, so it too can be compacted through the index.
    writeRounds(store, 40, () => 0);
    const again = await store.compact();
    assert.ok(again.segmentsFromIndex >= 1, JSON.stringify(again));
    assert.equal(text(store.read("hot29")), "r39-29");
    await store.close();
  });
});

Deno.test("segments holding a delete are scanned, not walked", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, SMALL);
    try {
      // Every segment gets a delete long before it fills.
      for (let round = 0; round < 40; round++) {
        for (let i = 0; i < 30; i++) {
          if (i % 5 === 0) store.writeBatch([["b", `${round}`], ["c", `${round}`]]);
          else if (i % 5 === 1) store.writeDelete(`hot${i + 1}`); // written the round before
          else store.writePut(`hot${i}`, `r${round}-${i}`);
        }
      }
      await store.whenDurable(store.lastLsn);
      const before = contents(store);
      const report = await store.compact();
      assert.ok(report.runs >= 1);
      assert.equal(report.segmentsFromIndex, 0, JSON.stringify(report));
      assert.deepEqual(contents(store), before);
    } finally {
      await store.close();
    }
  });
});

/** Hot keys written in batches and MULTIs (no deletes): sealed segments mostly dead. */
function writeBatchRounds(store: KVStore, rounds: number): void {
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 30; i += 3) {
      if (i % 2 === 0) {
        store.writeBatch([[`hot${i}`, `r${round}-${i}`], [`hot${i + 1}`, `r${round}-${i + 1}`]]);
      } else {
        store.atomically(() => {
          store.writePut(`hot${i}`, `r${round}-${i}`);
          store.writePut(`hot${i + 1}`, `r${round}-${i + 1}`, Date.now() + HOUR_MS);
        });
      }
      store.writePut(`hot${i + 2}`, `r${round}-${i + 2}`);
    }
  }
}

Deno.test("segments of batches and MULTIs without deletes are walked by their headers; reopen keeps every value", async () => {
  await withTempDir(async (dir) => {
    const options = { ...SMALL, compactionChunkBytes: 512 };
    let store = await KVStore.open(dir, options);
    // Live in segment 1: a MULTI's two values, and one of a batch's two (re-encoded alone).
    const expiry = Date.now() + HOUR_MS;
    store.atomically(() => {
      store.writePut("m1", "live-in-multi");
      store.writePut("m2", "live-too", expiry);
    });
    store.writeBatch([["b1", "live-in-batch"], ["hot0", "overwritten"]]);
    writeBatchRounds(store, 40);
    await store.whenDurable(store.lastLsn);
    const before = contents(store);
    const report = await store.compact();
    assert.ok(report.segmentsFromIndex >= 1, JSON.stringify(report));
    assert.ok(report.bytesAfter < report.bytesBefore / 4, JSON.stringify(report));
    assert.equal(store.expiresAtMs("m2"), expiry);
    assert.deepEqual(contents(store), before);
    assertLsnsInOrder(dir);
    await store.close();
    store = await KVStore.open(dir, options);
    assert.deepEqual(contents(store), before);
    assert.equal(store.expiresAtMs("m2"), expiry);
    await store.close();
  });
});

/** The file offset of the first occurrence of `text` in `bytes`. */
function find(bytes: Uint8Array, text: string): number {
  const needle = new TextEncoder().encode(text);
  const at = bytes.findIndex((_, i) => needle.every((byte, j) => bytes[i + j] === byte));
  assert.ok(at > 0, `${text} is in the file`);
  return at;
}

Deno.test("a walk by headers: a damaged dead payload is stepped over, a damaged length stops compaction", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, SMALL);
    try {
      store.writeBatch([["keep", "the-live-value"], ["other", "x"]]); // live in segment 1
      writeBatchRounds(store, 40);
      await store.whenDurable(store.lastLsn);
      const [first] = segmentFiles(dir);
      const before = contents(store);
      const original = Deno.readFileSync(first);
      // The length field of a dead record: the first round's batch of hot0 and hot1.
      const damaged = original.slice();
      const record = find(damaged, "hot0") - 8 - 32; // its pair header, then the record header
      assert.equal(damaged[record + 20], 3, "a BATCH record");
      damaged[record + 4] ^= 0x08;
      Deno.writeFileSync(first, damaged);
      await assert.rejects(store.compact(), /found by compaction through the index/);
      assert.ok(segmentFiles(dir).includes(first), "the damaged segment was not replaced");
      assert.deepEqual(contents(store), before);
      // The same record's value damaged instead: never read, so compaction goes through.
      const payload = original.slice();
      payload[find(payload, "r0-0")] ^= 0xff;
      Deno.writeFileSync(first, payload);
      const report = await store.compact();
      assert.ok(report.segmentsFromIndex >= 1, JSON.stringify(report));
      assert.deepEqual(contents(store), before);
      assert.equal(text(store.read("keep")), "the-live-value");
    } finally {
      await store.close();
    }
  });
});

Deno.test("writes, deletes and reads interleave with a compaction through the index, in small steps", async () => {
  await withTempDir(async (dir) => {
    const options = { ...SMALL, segmentSizeBytes: 16 * 1024, compactionChunkBytes: 512 };
    let store = await KVStore.open(dir, options);
    const model = new Map<string, string>();
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 60; i++) {
        const value = `r${round}-${i}-${"x".repeat(i % 40)}`;
        store.writePut(`key${i}`, value);
        model.set(`key${i}`, value);
      }
    }
    await store.whenDurable(store.lastLsn);
    const compaction = store.compact();
    const steps = await writeWhileRunning(store, model, 60, compaction);
    const report = await compaction;
    assert.ok(steps > 5, `requests ran during compaction (${steps} steps)`);
    assert.ok(report.segmentsFromIndex >= 1, JSON.stringify(report));
    const sorted = () => [...model].sort(([a], [b]) => (a < b ? -1 : 1));
    assert.deepEqual(contents(store), sorted());
    await store.close();
    store = await KVStore.open(dir, options);
    assert.deepEqual(contents(store), sorted());
    await store.close();
  });
});

Deno.test("a damaged live record found through the index stops compaction; the store stays readable", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, SMALL);
    try {
      store.writePut("keep", "the-live-value"); // never overwritten: live in segment 1
      writeRounds(store, 40, () => 0);
      await store.whenDurable(store.lastLsn);
      const [first] = segmentFiles(dir);
      const bytes = Deno.readFileSync(first);
      bytes[find(bytes, "the-live-value") + 4] ^= 0xff;
      Deno.writeFileSync(first, bytes);
      const before = contents(store);
      await assert.rejects(
        store.compact(),
        /CRC mismatch in a sealed segment, found by compaction through the index/,
      );
      assert.ok(segmentFiles(dir).includes(first), "the damaged segment was not replaced");
      assert.deepEqual(contents(store), before);
      await store.put("after", "damage");
      assert.equal(text(store.read("after")), "damage");
    } finally {
      await store.close();
    }
  });
});

Deno.test("damage to a dead record is not read by a compaction through the index", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, SMALL);
    writeRounds(store, 40, () => 0);
    await store.whenDurable(store.lastLsn);
    const [first] = segmentFiles(dir);
    const bytes = Deno.readFileSync(first);
    // The first round's value of hot1, long overwritten.
    bytes[find(bytes, "r0-1")] ^= 0xff;
    Deno.writeFileSync(first, bytes);
    const report = await store.compact();
    assert.ok(report.segmentsFromIndex >= 1, JSON.stringify(report));
    assert.ok(!segmentFiles(dir).includes(first) || lsnsOf(first).length > 0);
    assert.equal(text(store.read("hot1")), "r39-1");
    await store.close();
    store = await KVStore.open(dir, SMALL);
    assert.equal(text(store.read("hot1")), "r39-1");
    assert.equal(store.size, 30);
    await store.close();
  });
});
