import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import {
  RELEASE_YOUNG_BYTES,
  releaseRecoveryHeap,
  youngGenerationBytes,
} from "../../src/storage/heap_release.ts";
import { bytes, withTempDir } from "../helpers/storage.ts";

const OPEN_REPORT = new URL("../fixtures/open_report.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

interface OpenReport {
  keys: number;
  youngBytes: number;
  rssBytes: number;
  released: string[];
}

/** Writes `count` keys with a TTL (100-byte values), as a node's log would hold them. */
async function fill(dir: string, count: number): Promise<void> {
  const store = await KVStore.open(dir, { fsync: "no", autoCompact: false });
  try {
    const value = new Uint8Array(100).fill(0x78);
    const expiresAtMs = Date.now() + 3_600_000;
    for (let i = 0; i < count; i++) {
      store.writePut(bytes(`key:${String(i).padStart(10, "0")}`), value, expiresAtMs);
    }
  } finally {
    await store.close();
  }
}

/** Opens `dir` in a fresh process, as a restarted node does, and returns what it saw. */
async function openInChild(dir: string): Promise<OpenReport> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--config",
      CONFIG,
      OPEN_REPORT,
      dir,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

Deno.test("heap release: a restart that recovers 200,000 keys gives back the young generation it grew", async () => {
  await withTempDir(async (dir) => {
    await fill(dir, 200_000);
    const report = await openInChild(dir);
    assert.equal(report.keys, 200_000);
    // Replaying 200,000 records grows it to ~16 MiB here; an idle one is under 1 MiB.
    assert.equal(report.released.length, 1, JSON.stringify(report));
    assert.match(report.released[0], /gave back [\d.]+ MiB of heap the recovery grew/);
    assert.ok(report.youngBytes <= 2 * 1024 * 1024, `young generation ${report.youngBytes} B`);
  });
});

Deno.test("heap release: a small recovery collects nothing (no pause for a store that grew no heap)", async () => {
  await withTempDir(async (dir) => {
    await fill(dir, 1_000);
    const report = await openInChild(dir);
    assert.equal(report.keys, 1_000);
    assert.deepEqual(report.released, []);
  });
});

Deno.test("heap release: past the threshold it collects and says what it gave back; under it, nothing", () => {
  assert.equal(releaseRecoveryHeap("/nowhere", Number.MAX_SAFE_INTEGER), undefined);
  // Grow the young generation a little, so there is something to give back.
  let kept: unknown[] = [];
  for (let i = 0; i < 200_000; i++) kept = i % 1000 === 0 ? [] : [...kept.slice(-4), { i }];
  const before = youngGenerationBytes();
  const release = releaseRecoveryHeap("/nowhere", 0);
  assert.ok(release !== undefined, "a young generation past 0 bytes is collected");
  assert.equal(release.youngBytesBefore, before);
  assert.ok(release.youngBytesAfter <= release.youngBytesBefore);
  assert.ok(release.elapsedMs >= 0);
  assert.ok(RELEASE_YOUNG_BYTES >= 1024 * 1024);
});
