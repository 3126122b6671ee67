import assert from "node:assert/strict";
import { RespErrorReply } from "../../src/protocol/resp.ts";
import {
  decodePairs,
  encodeRequest,
  expectInteger,
  helloReplyText,
  LogFrameWriter,
  logRequest,
  PairChunkWriter,
  parseHelloReply,
  ReplyFormatError,
  StreamFormatError,
} from "../../src/replication/stream_protocol.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("requests are RESP arrays of bulk strings; runs concatenate into one word", () => {
  assert.equal(
    text(encodeRequest(["REPLICATE", "HELLO", "1", "42"])),
    "*4\r\n$9\r\nREPLICATE\r\n$5\r\nHELLO\r\n$1\r\n1\r\n$2\r\n42\r\n",
  );
  assert.equal(
    text(logRequest([bytes("ab\r\n"), bytes("PUT x y\n")])),
    "*3\r\n$9\r\nREPLICATE\r\n$3\r\nLOG\r\n$12\r\nab\r\nPUT x y\n\r\n",
    "a value holding CRLF or a command stays inside its length-prefixed word",
  );
});

Deno.test("one LogFrameWriter builds frames of any size, each exactly as encodeRequest would", () => {
  const writer = new LogFrameWriter();
  // Lengths across digit-count boundaries, growing past the initial buffer and shrinking back.
  for (const length of [0, 1, 9, 10, 99, 100, 5000, 70_000, 3, 4096]) {
    const run = new Uint8Array(length).map((_, i) => (i * 7 + length) & 0xff);
    const split = [run.subarray(0, length >> 1), run.subarray(length >> 1)];
    const frame = writer.frame(split);
    assert.deepEqual(frame, encodeRequest(["REPLICATE", "LOG", run]), `length ${length}`);
  }
});

Deno.test("HELLO replies and integer acknowledgements are checked", () => {
  const hello = { lastLsn: 7, lastEpoch: 1, lastCrc: 4_000_000_000, localWrites: 0 };
  assert.equal(helloReplyText(hello), "7 1 4000000000");
  assert.deepEqual(parseHelloReply(helloReplyText(hello)), hello);
  const withLocal = { ...hello, localWrites: 3 };
  assert.equal(helloReplyText(withLocal), "7 1 4000000000 3");
  assert.deepEqual(parseHelloReply(helloReplyText(withLocal)), withLocal);
  assert.throws(
    () => parseHelloReply("OK"),
    /status "OK" instead of "<lastLsn> <lastEpoch> <lastCrc> \[<localWrites>\]"/,
  );
  assert.throws(() => parseHelloReply("7 1"), ReplyFormatError);
  assert.throws(
    () => parseHelloReply(new RespErrorReply("ERR", "not a replica")),
    ReplyFormatError,
  );
  assert.equal(expectInteger(42, "LOG"), 42);
  assert.throws(() => expectInteger("OK", "LOG"), /LOG: status "OK" instead of an integer/);
});

Deno.test("snapshot chunks: bounded pairs that decode back, torn ones refused", () => {
  const writer = new PairChunkWriter(40);
  const pairs: [string, string][] = [["a", "1"], ["key", "value"], ["", ""], ["k", "x".repeat(50)]];
  const chunks: Uint8Array[] = [];
  for (const [k, v] of pairs) {
    if (writer.wouldOverflow(bytes(k), bytes(v))) chunks.push(writer.take());
    writer.add(bytes(k), bytes(v));
  }
  chunks.push(writer.take());
  assert.equal(chunks.length, 2, "the oversized pair gets its own chunk");
  assert.ok(chunks[0].length <= 40);
  const decoded = chunks.flatMap(decodePairs).map(([k, v]) => [text(k), text(v)]);
  assert.deepEqual(decoded, pairs);
  assert.throws(() => decodePairs(chunks[0].subarray(0, chunks[0].length - 1)), StreamFormatError);
});

Deno.test("snapshot chunks carry expiry times (format 2), and refuse a bad one", () => {
  const writer = new PairChunkWriter(1024);
  const at = 1_900_000_000_123;
  writer.add(bytes("plain"), bytes("1"));
  assert.ok(!writer.wouldOverflow(bytes("ttl"), bytes("2"), at));
  writer.add(bytes("ttl"), bytes("2"), at);
  writer.add(bytes("far"), bytes("3"), Number.MAX_SAFE_INTEGER);
  const chunk = writer.take();
  assert.equal(chunk.length, 8 + 6 + 16 + 4 + 16 + 4);
  assert.deepEqual(
    decodePairs(chunk).map(([k, v, expiresAtMs]) => [text(k), text(v), expiresAtMs]),
    [["plain", "1", 0], ["ttl", "2", at], ["far", "3", Number.MAX_SAFE_INTEGER]],
  );
  const zero = chunk.slice(14);
  new DataView(zero.buffer).setUint32(8, 0, true); // an expiring pair whose time is 0
  new DataView(zero.buffer).setUint32(12, 0, true);
  assert.throws(() => decodePairs(zero.subarray(0, 16 + 4)), /bad expiry time/);
  assert.throws(() => decodePairs(chunk.subarray(0, 8 + 6 + 12)), StreamFormatError);
});
