import assert from "node:assert/strict";
import {
  Check,
  checkRecord,
  encodeBatch,
  encodeDelete,
  encodePut,
  Flag,
  forEachKey,
  Op,
  readU64,
  recordEpoch,
  recordFlags,
  recordLsn,
  recordOp,
  writeU64,
} from "../../src/storage/record.ts";
import { bytes } from "../helpers/storage.ts";

function buffer(size: number): [Uint8Array, DataView] {
  const buf = new Uint8Array(size);
  return [buf, new DataView(buf.buffer)];
}

Deno.test("codec: a PUT round-trips with its LSN, epoch and flags", () => {
  const [buf, view] = buffer(100);
  const length = encodePut(buf, view, 3, 2 ** 40 + 7, 9, Flag.LOCAL, bytes("key"), bytes("value"));
  assert.equal(length, 32 + 3 + 5);
  assert.equal(checkRecord(buf, view, 3, 3 + length), length);
  assert.equal(recordLsn(view, 3), 2 ** 40 + 7);
  assert.equal(recordEpoch(view, 3), 9);
  assert.equal(recordOp(buf, 3), Op.PUT);
  assert.equal(recordFlags(buf, 3), Flag.LOCAL);
  const seen: string[] = [];
  forEachKey(buf, view, 3, (ks, kl, vs, vl) => {
    seen.push(new TextDecoder().decode(buf.subarray(ks, ks + kl)));
    seen.push(new TextDecoder().decode(buf.subarray(vs, vs + vl)));
  });
  assert.deepEqual(seen, ["key", "value"]);
});

Deno.test("codec: u64 fields round-trip on both sides of 2^32 and up to 2^53 - 1", () => {
  const [, view] = buffer(16);
  for (const value of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 7, 2 ** 53 - 1]) {
    writeU64(view, 3, value);
    assert.equal(readU64(view, 3), value);
  }
});

Deno.test("codec: short and long keys and values are copied whole", () => {
  // Up to 32 bytes a payload is copied byte by byte, past it with `set`.
  for (const length of [0, 1, 31, 32, 33, 100]) {
    const key = new Uint8Array(length).map((_, i) => 0x41 + (i % 26));
    const value = new Uint8Array(length + 1).map((_, i) => 0x61 + (i % 26));
    const [buf, view] = buffer(300);
    const recordLength = encodePut(buf, view, 5, 1, 0, 0, key, value);
    assert.equal(checkRecord(buf, view, 5, 5 + recordLength), recordLength);
    const seen: Uint8Array[] = [];
    forEachKey(buf, view, 5, (ks, kl, vs, vl) => {
      seen.push(buf.slice(ks, ks + kl), buf.slice(vs, vs + vl));
    });
    assert.deepEqual(seen, [key, value]);
  }
});

Deno.test("codec: DELETE and BATCH round-trip; batch pairs visited in order", () => {
  const [buf, view] = buffer(200);
  const deleteLength = encodeDelete(buf, view, 0, 5, 0, 0, bytes("gone"));
  assert.equal(checkRecord(buf, view, 0, deleteLength), deleteLength);
  const batchLength = encodeBatch(buf, view, deleteLength, 6, 0, 0, [
    [bytes("a"), bytes("1")],
    [bytes(""), bytes("")],
    [bytes("ccc"), bytes("333")],
  ]);
  assert.equal(checkRecord(buf, view, deleteLength, deleteLength + batchLength), batchLength);
  const pairs: [number, number][] = [];
  forEachKey(buf, view, deleteLength, (_ks, kl, _vs, vl) => pairs.push([kl, vl]));
  assert.deepEqual(pairs, [[1, 1], [0, 0], [3, 3]]);
  const deleted: number[] = [];
  forEachKey(buf, view, 0, (_ks, kl, vs) => deleted.push(kl, vs));
  assert.deepEqual(deleted, [4, -1]);
});

Deno.test("codec: every single-bit flip and every truncation is detected", () => {
  const [buf, view] = buffer(64);
  const length = encodePut(buf, view, 0, 1, 0, 0, bytes("k"), bytes("v"));
  for (let cut = 0; cut < length; cut++) {
    assert.equal(checkRecord(buf, view, 0, cut), Check.SHORT, `cut at ${cut}`);
  }
  for (let bit = 0; bit < length * 8; bit++) {
    const copy = buf.slice();
    copy[bit >> 3] ^= 1 << (bit & 7);
    const result = checkRecord(copy, new DataView(copy.buffer), 0, length);
    assert.ok(result < 0, `bit ${bit} flipped went unnoticed`);
  }
});
