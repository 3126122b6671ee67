import assert from "node:assert/strict";
import { HintBuilder, HintKind, loadHint } from "../../src/storage/hint.ts";
import { withTempDir } from "../helpers/storage.ts";

interface Entry {
  kind: number;
  key: number[];
  offset: number;
  length: number;
}

const SEGMENT = { id: 7, nonce: 12345, sizeBytes: 1 << 30 };

function load(path: string, segment = SEGMENT): { entries: Entry[]; expected: number } | undefined {
  const entries: Entry[] = [];
  let expected = -1;
  const summary = loadHint(path, segment, (kind, buf, keyStart, keyLength, offset, length) => {
    entries.push({ kind, key: [...buf.subarray(keyStart, keyStart + keyLength)], offset, length });
  }, (count) => expected = count);
  if (summary === undefined) {
    assert.equal(entries.length, 0, "a rejected hint visits nothing");
    return undefined;
  }
  assert.equal(summary.firstLsn, 10);
  assert.equal(summary.lastLsn, 99);
  return { entries, expected };
}

Deno.test("hint: entries larger than the read window and across its edges load exactly", async () => {
  await withTempDir(async (dir) => {
    const builder = new HintBuilder();
    const written: Entry[] = [];
    // ~3 MiB of entries with key lengths 0..2999, so entries straddle the 1 MiB window's edges,
    // and one 1.5 MiB key, larger than the window itself.
    for (let i = 0; i < 2_000; i++) {
      const length = i === 1_000 ? 1_500_000 : (i * 7919) % 3_000;
      const key = Array.from({ length }, (_, j) => (i + j) & 0xff);
      const kind = i % 5 === 0 ? HintKind.TOMBSTONE : HintKind.VALUE;
      const entry = { kind, key, offset: i * 1000, length: i };
      builder.add(kind, Uint8Array.from(key), 0, key.length, entry.offset, entry.length);
      written.push(entry);
    }
    const path = `${dir}/000000000007.hint`;
    const bytes = builder.finish(SEGMENT, 10, 99, 3);
    await Deno.writeFile(path, bytes);
    const loaded = load(path);
    assert.ok(loaded);
    assert.equal(loaded.expected, written.length);
    assert.equal(loaded.entries.length, written.length);
    loaded.entries.forEach((entry, i) => assert.deepEqual(entry, written[i], `entry ${i}`));

    // Another segment version, a flipped byte anywhere, or a cut file: rejected, nothing visited.
    assert.equal(load(path, { ...SEGMENT, nonce: 1 }), undefined);
    for (const at of [3, 60, 1_048_600, bytes.length - 2]) {
      const damaged = bytes.slice();
      damaged[at] ^= 0x10;
      Deno.writeFileSync(path, damaged);
      assert.equal(load(path), undefined, `byte ${at} flipped`);
    }
    Deno.writeFileSync(path, bytes.subarray(0, bytes.length - 100));
    assert.equal(load(path), undefined);
    Deno.removeSync(path);
    assert.equal(load(path), undefined, "no hint file");
  });
});
