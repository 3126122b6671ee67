import assert from "node:assert/strict";
import { ValueBlocks } from "../../src/storage/value_blocks.ts";
import { KVStore } from "../../src/storage/mod.ts";
import { withTempDir } from "../helpers/storage.ts";

Deno.test("value blocks: arrays never overlap, start zeroed, and large ones stand alone", () => {
  const blocks = new ValueBlocks(256, 64);
  const taken: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) {
    const array = blocks.take(i % 70);
    assert.equal(array.length, i % 70);
    assert.ok(array.every((byte) => byte === 0), "a new array is zeroed");
    array.fill(i & 0xff);
    taken.push(array);
  }
  taken.forEach((array, i) => assert.ok(array.every((byte) => byte === (i & 0xff)), `array ${i}`));
  const large = blocks.take(65);
  assert.equal(large.byteOffset, 0);
  assert.equal(large.buffer.byteLength, 65, "larger than the carving limit: its own buffer");
});

Deno.test("values and range keys read keep their bytes through later reads and writes", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir, { fsync: "no" });
    const value = (i: number) => new Uint8Array(i % 300).fill(i & 0xff);
    for (let i = 0; i < 500; i++) store.writePut(`k${i}`, value(i));
    await store.whenDurable(store.lastLsn);
    const reads = Array.from({ length: 500 }, (_, i) => store.read(`k${i}`) as Uint8Array);
    for (let i = 0; i < 500; i++) store.writePut(`k${i}`, new Uint8Array(10).fill(0xee));
    for (let i = 0; i < 500; i++) store.read(`k${i}`);
    const range = store.readRange("k1", "k19");
    for (let i = 0; i < 500; i++) store.read(`k${i}`);
    reads.forEach((bytes, i) => assert.deepEqual(bytes, value(i), `value ${i}`));
    const names = range.map(([key]) => new TextDecoder().decode(key));
    const expected = Array.from({ length: 500 }, (_, i) => `k${i}`)
      .filter((key) => key >= "k1" && key <= "k19").sort();
    assert.ok(names.length > 50);
    assert.deepEqual(names, expected);
    await store.close();
  });
});
