import assert from "node:assert/strict";
import {
  hintPathOf,
  isTemporaryFileName,
  parseSegmentFileName,
  parseSegmentOrHintFileName,
  parseStagedSegmentFileName,
  segmentFileName,
  segmentPath,
  stagedPathOf,
  temporaryPathOf,
  unstagedPathOf,
} from "../../src/storage/file_names.ts";

Deno.test("file names: a segment id round-trips through its 12-digit file name", () => {
  assert.equal(segmentFileName(7), "000000000007.log");
  assert.equal(segmentPath("/data", 12), "/data/000000000012.log");
  for (const id of [0, 1, 42, 999_999_999_999]) {
    assert.equal(parseSegmentFileName(segmentFileName(id)), id);
  }
  for (const name of ["7.log", "000000000007.log.sync", "000000000007.hint", "LOCK", "x.log"]) {
    assert.equal(parseSegmentFileName(name), undefined, name);
  }
});

Deno.test("file names: hints, staged segments and temporary files name their segment", () => {
  const path = segmentPath("/data", 3);
  assert.equal(hintPathOf(path), "/data/000000000003.hint");
  assert.equal(stagedPathOf(path), "/data/000000000003.log.sync");
  assert.equal(unstagedPathOf(stagedPathOf(path)), path);
  assert.equal(parseStagedSegmentFileName("000000000003.log.sync"), 3);
  assert.equal(parseStagedSegmentFileName("000000000003.log"), undefined);
  assert.equal(parseSegmentOrHintFileName("000000000003.log"), 3);
  assert.equal(parseSegmentOrHintFileName("000000000003.hint"), 3);
  assert.equal(parseSegmentOrHintFileName("000000000003.hint.tmp"), undefined);
  assert.equal(temporaryPathOf(hintPathOf(path)), "/data/000000000003.hint.tmp");
  assert.equal(temporaryPathOf(path, "compact"), "/data/000000000003.log.compact.tmp");
  assert.ok(isTemporaryFileName("000000000003.log.compact.tmp"));
  assert.ok(isTemporaryFileName("FULLSYNC.tmp"));
  assert.ok(!isTemporaryFileName("000000000003.log"));
});
