/**
 * The parts a master's link is made of, without a connection: the frames it builds
 * (`link_frames.ts`), what it logs about failures (`link_failures.ts`), and the master's record at
 * an LSN as the replica holds it (`source_records.ts`). Time is passed in.
 */
import assert from "node:assert/strict";
import { BatchPacker, unpackBatch } from "../../src/replication/compression.ts";
import { KeyFilter } from "../../src/replication/key_filter.ts";
import { type FailureLog, FailureReport } from "../../src/replication/link_failures.ts";
import { LinkFrames } from "../../src/replication/link_frames.ts";
import { recordCrcAt, recordEpochAt } from "../../src/replication/log_records.ts";
import { ReplicaNode, type ReplicaPolicy } from "../../src/replication/replica_node.ts";
import { recordAt } from "../../src/replication/source_records.ts";
import { logRequest, snapshotChunkRequest } from "../../src/replication/stream_protocol.ts";
import { MemoryLog } from "../helpers/memory_replica.ts";

const POLICY: ReplicaPolicy = {
  maxFailures: 2,
  maxRetries: 3,
  retryBackoffMs: 100,
  healthCheckIntervalMs: 1000,
  timeoutMs: 500,
  queueSizeRecords: 10,
  batchBytes: 1000,
};

const decoder = new TextDecoder();

function replica(): ReplicaNode {
  return new ReplicaNode("127.0.0.1", 5556, POLICY);
}

Deno.test("link frames: plain LOG frames are the stream's, and count their bytes twice alike", () => {
  const node = replica();
  const frames = new LinkFrames(node);
  const runs = [new MemoryLog(3).records(1, 2), new MemoryLog(3).records(3, 3)];
  assert.deepEqual(frames.logFrame(runs), logRequest(runs));
  const rawBytes = runs[0].length + runs[1].length;
  assert.equal(node.sentRawBytes, rawBytes);
  assert.equal(node.sentWireBytes, rawBytes);
});

Deno.test("link frames: a replica's key filter drops the records of other keys from the frame", () => {
  const node = replica();
  node.keyFilter = KeyFilter.of(["k1"]);
  const frames = new LinkFrames(node);
  const frame = decoder.decode(frames.logFrame([new MemoryLog(2).records(1, 2)]));
  assert.match(frame, /k1/);
  assert.doesNotMatch(frame, /k2/);
});

Deno.test("link frames: packed when the session has a codec and the frame is big enough", () => {
  const node = replica();
  const frames = new LinkFrames(node);
  const records = new MemoryLog(200).records(1, 200);
  frames.packer = new BatchPacker("zstd", 64);
  const frame = frames.logFrame([records]);
  const text = decoder.decode(frame.subarray(0, 60));
  assert.match(text, /LOGZ\r\n\$4\r\nzstd\r\n/);
  assert.ok(node.sentWireBytes < node.sentRawBytes, "packing paid");
  assert.equal(node.sentRawBytes, records.length);
  // The packed bytes are the last bulk string: unpacked, they are the records.
  const header = `$${node.sentWireBytes}\r\n`;
  const at = decoder.decode(frame).lastIndexOf(header) + header.length;
  const packed = frame.subarray(at, at + node.sentWireBytes);
  assert.deepEqual(unpackBatch("zstd", packed, records.length, 1 << 20), records);
  // Under the codec's smallest size a frame stays plain.
  frames.packer = new BatchPacker("zstd", 1 << 20);
  assert.deepEqual(frames.logFrame([records]), logRequest([records]));
});

Deno.test("link frames: a snapshot chunk is CHUNK unless the session packs it", () => {
  const node = replica();
  const frames = new LinkFrames(node);
  const chunk = new Uint8Array(4096).fill(7);
  assert.deepEqual(frames.chunkFrame(chunk), snapshotChunkRequest(chunk));
  frames.packer = new BatchPacker("deflate", 64);
  assert.match(decoder.decode(frames.chunkFrame(chunk).subarray(0, 60)), /CHUNKZ/);
  assert.equal(node.sentRawBytes, 2 * chunk.length);
});

/** A logger that keeps what it was told. */
function recordingLog(): { lines: { level: string; message: string }[]; log: FailureLog } {
  const lines: { level: string; message: string }[] = [];
  const keep = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, log: { warn: keep("warn"), error: keep("error") } };
}

Deno.test("failure report: each failure while healthy, one error when unhealthy, then one per interval", () => {
  const { lines, log } = recordingLog();
  let nowMs = 0;
  const report = new FailureReport(log, () => nowMs);
  const node = replica();
  const fail = () => {
    const outcome = node.markFailure(nowMs, "refused");
    report.failed(node, "refused", outcome.retryDelayMs, outcome.becameUnhealthy);
  };
  fail();
  assert.deepEqual(lines.map((l) => l.level), ["warn"]);
  assert.match(lines[0].message, /failed: \{reason\}; next attempt/);
  fail(); // the second of maxFailures 2: marked unhealthy
  assert.equal(node.healthy, false);
  assert.equal(lines[1].level, "error");
  assert.match(lines[1].message, /marked unhealthy/);
  for (nowMs = 100; nowMs < 1000; nowMs += 100) fail();
  assert.equal(lines.length, 2, "quiet within the health-check interval");
  nowMs = 1000;
  fail();
  assert.equal(lines.length, 3);
  assert.match(lines[2].message, /still down/);
  nowMs = 1500;
  fail();
  assert.equal(lines.length, 3);
});

Deno.test("source records: the epoch and CRC at an LSN, none past a gap, the filtered form's CRC", async () => {
  const log = new MemoryLog(5, (lsn) => (lsn <= 3 ? 1 : 2));
  const unfiltered = { keyFilter: undefined };
  assert.deepEqual(await recordAt(log, 0, unfiltered), { epoch: 0, crc: 0 });
  const record = log.records(4, 4);
  assert.deepEqual(await recordAt(log, 4, unfiltered), {
    epoch: 2,
    crc: recordCrcAt(record, 0),
  });
  assert.equal(recordEpochAt(record, 0), 2);
  assert.equal(await recordAt(log, 6, unfiltered), undefined, "past the log's end");
  const filtered = await recordAt(log, 4, { keyFilter: KeyFilter.of(["other"]) });
  assert.equal(filtered?.epoch, 2);
  assert.notEqual(filtered?.crc, recordCrcAt(record, 0), "the filtered record's own CRC");
  log.oldestCompleteLsn = 3;
  assert.equal(await recordAt(log, 0, unfiltered), undefined, "LSN 0 once the log was compacted");
  assert.equal(await recordAt(log, 3, unfiltered), undefined, "before the oldest complete LSN");
  assert.equal((await recordAt(log, 4, unfiltered))?.epoch, 2);
});
