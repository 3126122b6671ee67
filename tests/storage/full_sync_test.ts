import assert from "node:assert/strict";
import { KeyTooLargeError, StorageError, ValueTooLargeError } from "../../src/storage/errors.ts";
import { segmentFileName, segmentPath } from "../../src/storage/file_names.ts";
import {
  FullSync,
  type FullSyncContents,
  type FullSyncTarget,
  settleFullSync,
  StagedLog,
} from "../../src/storage/full_sync.ts";
import { createSegmentFile, type Segment, SegmentFlag } from "../../src/storage/segment.ts";
import { bytes, withTempDir } from "../helpers/storage.ts";

/** A target that records what the full sync asked of it. */
function target(dir: string, replaced: Segment[]) {
  const seen: { installed?: FullSyncContents; ended: number } = { ended: 0 };
  const fullSyncTarget: FullSyncTarget = {
    dir,
    options: { maxKeyBytes: 16, maxValueBytes: 1000, segmentSizeBytes: 4096 },
    replaced: () => replaced,
    install: (contents) => seen.installed = contents,
    end: () => seen.ended++,
  };
  return { fullSyncTarget, seen };
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
}

Deno.test("full sync: finish commits the staged pairs and hands the store its new contents", async () => {
  await withTempDir(async (dir) => {
    const old = [createSegmentFile(dir, 1, 0, 0), createSegmentFile(dir, 2, 0, 0)];
    const { fullSyncTarget, seen } = target(dir, old);
    const sync = new FullSync(new StagedLog(fullSyncTarget, 500, 3, 7));
    for (let i = 0; i < 100; i++) {
      sync.put(bytes(`key${String(i).padStart(3, "0")}`), new Uint8Array(100));
    }
    assert.ok(names(dir).some((name) => name.endsWith(".log.sync")));
    await sync.finish();
    const contents = seen.installed;
    assert.ok(contents !== undefined);
    assert.equal(seen.ended, 0);
    assert.equal(contents.lsn, 500);
    assert.equal(contents.epoch, 7);
    assert.equal(contents.index.size, 100);
    assert.ok(contents.staged.length > 1, "4 KiB segments: the pairs span several");
    assert.equal(contents.active.id, contents.staged[contents.staged.length - 1].id + 1);
    assert.equal(contents.active.header.coveredLastLsn, 500);
    assert.equal(contents.active.header.flags, SegmentFlag.FULL_SYNC);
    const expected = [...contents.staged, contents.active].map((s) => segmentFileName(s.id));
    assert.deepEqual(names(dir), expected, "old segments gone, nothing staged or marked left");
    assert.throws(() => sync.put(bytes("late"), bytes("x")), StorageError);
  });
});

Deno.test("full sync: abort removes the staged files and keeps the old contents", async () => {
  await withTempDir(async (dir) => {
    const old = [createSegmentFile(dir, 1, 0, 0)];
    const { fullSyncTarget, seen } = target(dir, old);
    const sync = new FullSync(new StagedLog(fullSyncTarget, 9, 2, 0));
    sync.put(bytes("k"), bytes("v"));
    assert.throws(() => sync.put(bytes("k".repeat(17)), bytes("v")), KeyTooLargeError);
    assert.throws(() => sync.put(bytes("k"), new Uint8Array(1001)), ValueTooLargeError);
    await sync.abort();
    await sync.abort();
    assert.equal(seen.installed, undefined);
    assert.equal(seen.ended, 1);
    assert.deepEqual(names(dir), [segmentFileName(1)]);
  });
});

Deno.test("full sync: files closed by a closing store refuse more, and are left for recovery", async () => {
  await withTempDir(async (dir) => {
    const { fullSyncTarget, seen } = target(dir, [createSegmentFile(dir, 1, 0, 0)]);
    const staging = new StagedLog(fullSyncTarget, 9, 2, 0);
    const sync = new FullSync(staging);
    sync.put(bytes("k"), bytes("v"));
    staging.closeFiles();
    assert.throws(() => sync.put(bytes("k"), bytes("v")), StorageError);
    assert.throws(() => sync.finish(), StorageError);
    await sync.abort();
    assert.equal(seen.ended, 0);
    assert.ok(names(dir).includes(`${segmentFileName(2)}.sync`));
    settleFullSync(dir); // no marker: the staged file goes, the old segment stays
    assert.deepEqual(names(dir), [segmentFileName(1)]);
  });
});

Deno.test("full sync: a marker found at open finishes the swap", async () => {
  await withTempDir((dir) => {
    createSegmentFile(dir, 1, 0, 0);
    Deno.writeFileSync(`${dir}/${segmentFileName(1).replace(".log", ".hint")}`, new Uint8Array(1));
    const staged = createSegmentFile(dir, 2, 0, 0);
    Deno.renameSync(staged.path, `${segmentPath(dir, 2)}.sync`);
    Deno.writeTextFileSync(`${dir}/FULLSYNC`, "2\n");
    settleFullSync(dir);
    assert.deepEqual(names(dir), [segmentFileName(2)]);
  });
});
