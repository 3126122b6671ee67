import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { crc32Of } from "../../src/storage/crc32.ts";
import { lcg } from "../helpers/random.ts";

Deno.test("crc32Of equals node:zlib's crc32 at every length and alignment around the switch", () => {
  const random = lcg(7);
  const buf = new Uint8Array(4096);
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(random() * 256);
  for (let length = 0; length <= 300; length++) {
    for (const start of [0, 1, 3, 7, 8, 13]) {
      const expected = crc32(buf.subarray(start, start + length));
      assert.equal(crc32Of(buf, start, start + length), expected, `length ${length} at ${start}`);
    }
  }
  assert.equal(crc32Of(new TextEncoder().encode("123456789"), 0, 9), 0xcbf43926);
});
