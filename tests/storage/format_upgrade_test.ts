/**
 * Record format 2 (PUT_EXPIRING, MULTI, FLUSH) against data written before it: a data directory
 * made by the previous release (tests/fixtures/format1_data_dir, a sealed segment with its hint
 * and an active segment) opens, serves every key as it was, takes the new records, and reopens.
 */
import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { bytes, text, withTempDir } from "../helpers/storage.ts";

const FIXTURE = new URL("../fixtures/format1_data_dir/", import.meta.url).pathname;

/** What the fixture holds (see its README). */
function expectedFixture(): Map<string, Uint8Array> {
  const expected = new Map<string, Uint8Array>();
  for (let i = 0; i < 120; i++) {
    if (i % 7 !== 0) expected.set(`key${i}`, bytes(`value-${i}-${"x".repeat(i % 17)}`));
  }
  expected.set("batch-a", bytes("A"));
  expected.set("batch-b", new Uint8Array([0, 255, 10]));
  expected.set("key1", bytes("rewritten"));
  return expected;
}

const BINARY_KEY = new Uint8Array([0xc3, 0xa9, 0x80]);

async function copyFixture(dir: string): Promise<void> {
  for (const entry of Deno.readDirSync(FIXTURE)) {
    if (entry.name.endsWith(".log") || entry.name.endsWith(".hint")) {
      await Deno.copyFile(`${FIXTURE}${entry.name}`, `${dir}/${entry.name}`);
      await Deno.chmod(`${dir}/${entry.name}`, 0o600);
    }
  }
}

function checkFixture(store: KVStore, skip: Set<string> = new Set()): void {
  for (const [key, value] of expectedFixture()) {
    if (skip.has(key)) continue;
    assert.deepEqual(store.read(key), value, key);
    assert.deepEqual(store.expiresAtMs(key), 0, `${key} has no TTL`);
  }
  for (let i = 0; i < 120; i += 7) assert.deepEqual(store.read(`key${i}`), undefined);
  assert.deepEqual(text(store.read(BINARY_KEY)), "binary key");
}

Deno.test("a data dir of the previous format opens, serves, takes format-2 records, reopens", async () => {
  await withTempDir(async (dir) => {
    await copyFixture(dir);
    let store = await KVStore.open(dir, { segmentSizeBytes: 4096, autoCompact: false });
    assert.deepEqual(store.size, expectedFixture().size + 1);
    checkFixture(store);
    const later = Date.now() + 3_600_000;
    await store.put("key2", "expiring", later);
    await store.atomicWrites.applyMulti([
      { kind: "delete", key: "key3" },
      { kind: "put", key: "new", value: "n", expiresAtMs: later + 1 },
    ]);
    await store.close();
    for (const compact of [false, true]) {
      store = await KVStore.open(dir, { segmentSizeBytes: 4096, autoCompact: false });
      if (compact) await store.compact();
      checkFixture(store, new Set(["key2", "key3"]));
      assert.deepEqual(text(store.read("key2")), "expiring");
      assert.deepEqual(store.expiresAtMs("key2"), later);
      assert.deepEqual(store.read("key3"), undefined);
      assert.deepEqual(store.expiresAtMs("new"), later + 1);
      await store.close();
    }
  });
});

Deno.test("a key past its expiry time reads as absent, before and after a restart", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir, { segmentSizeBytes: 4096, expiryIntervalMs: 0 });
    // A second of margin: three fsynced puts on a loaded machine took more than 150 ms once.
    const soon = Date.now() + 1_000;
    await store.put("short", "s", soon);
    await store.put("long", "l", Date.now() + 3_600_000);
    await store.put("plain", "p");
    assert.deepEqual(text(store.read("short")), "s");
    assert.ok(store.has("short"));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, soon - Date.now()) + 50));
    assert.deepEqual(store.read("short"), undefined);
    assert.deepEqual(store.has("short"), false);
    assert.deepEqual(store.expiresAtMs("short"), undefined);
    assert.deepEqual(store.readRange("a", "z").map(([k]) => text(k)), ["long", "plain"]);
    assert.deepEqual(store.size, 3, "not reclaimed yet: active expiry is off");
    await store.close();
    store = await KVStore.open(dir, { segmentSizeBytes: 4096, expiryIntervalMs: 0 });
    assert.deepEqual(store.read("short"), undefined);
    assert.deepEqual(text(store.read("long")), "l");
    assert.deepEqual(store.expireNow(), 1, "the master deletes it (a DELETE record)");
    assert.deepEqual(store.size, 2);
    await store.close();
    store = await KVStore.open(dir, { segmentSizeBytes: 4096, expiryIntervalMs: 0 });
    assert.deepEqual(store.size, 2, "the delete is in the log");
    await store.close();
  });
});

Deno.test("a replica's store never deletes by itself, and hides expired keys", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { replica: true, expiryIntervalMs: 0 });
    await store.put("k", "v", Date.now() - 1);
    assert.deepEqual(store.read("k"), undefined);
    assert.deepEqual(store.expireNow(), 0);
    assert.deepEqual(store.size, 1);
    await store.close();
  });
});

Deno.test("EXPIRE-like rewrites keep or replace the TTL; every put replaces it", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { segmentSizeBytes: 4096 });
    const at = Date.now() + 100_000;
    await store.put("k", "v", at);
    assert.deepEqual(store.stats().expiringKeys, 1);
    await store.put("k", "v2");
    assert.deepEqual(store.expiresAtMs("k"), 0, "a plain put clears the TTL");
    assert.deepEqual(store.stats().expiringKeys, 0);
    await store.put("k", "v3", at);
    await store.delete("k");
    assert.deepEqual(store.stats().expiringKeys, 0);
    await store.close();
  });
});
