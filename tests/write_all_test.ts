import assert from "node:assert/strict";
import { writeAll, writeAllSync } from "../src/write_all.ts";

/** A writer that takes at most `perCall` bytes a call, like a socket with a full buffer. */
function trickle(perCall: number) {
  const chunks: number[][] = [];
  const take = (bytes: Uint8Array) => {
    const n = Math.min(perCall, bytes.length);
    chunks.push([...bytes.subarray(0, n)]);
    return n;
  };
  return {
    chunks,
    write: (bytes: Uint8Array) => Promise.resolve(take(bytes)),
    writeSync: take,
  };
}

Deno.test("writeAll writes every byte in order when each write takes only a part", async () => {
  const bytes = Uint8Array.from({ length: 10 }, (_, i) => i);
  const writer = trickle(3);
  await writeAll(writer, bytes);
  assert.deepEqual(writer.chunks, [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
});

Deno.test("writeAllSync writes every byte in order when each write takes only a part", () => {
  const bytes = Uint8Array.from({ length: 5 }, (_, i) => i);
  const writer = trickle(2);
  writeAllSync(writer, bytes);
  assert.deepEqual(writer.chunks, [[0, 1], [2, 3], [4]]);
});

Deno.test("writeAll of nothing writes nothing; a failed write rejects", async () => {
  const writer = trickle(1);
  await writeAll(writer, new Uint8Array(0));
  writeAllSync(writer, new Uint8Array(0));
  assert.deepEqual(writer.chunks, []);
  const broken = {
    write: () => Promise.reject(new Error("disk full")),
    writeSync: (): number => {
      throw new Error("disk full");
    },
  };
  await assert.rejects(writeAll(broken, new Uint8Array(1)), /disk full/);
  assert.throws(() => writeAllSync(broken, new Uint8Array(1)), /disk full/);
});
