import assert from "node:assert/strict";
import {
  decodePairs,
  encodeRequest,
  logRequest,
  PairChunkWriter,
  parseHelloReply,
  ReplyFormatError,
  ReplyParser,
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

Deno.test("reply parser: every RESP type, split anywhere across reads", () => {
  const stream = bytes(
    "+OK\r\n:42\r\n-ERR not a replica\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n:7\r\n:1\r\n",
  );
  for (let cut = 0; cut <= stream.length; cut++) {
    const parser = new ReplyParser(1024);
    parser.feed(stream.subarray(0, cut));
    const replies = [];
    for (let r = parser.next(); r !== undefined; r = parser.next()) replies.push(r);
    parser.feed(stream.subarray(cut));
    for (let r = parser.next(); r !== undefined; r = parser.next()) replies.push(r);
    assert.deepEqual(replies, [
      { kind: "status", text: "OK" },
      { kind: "integer", value: 42 },
      { kind: "error", text: "ERR not a replica" },
      { kind: "bulk", bytes: bytes("a\r\n") },
      { kind: "bulk", bytes: null },
      { kind: "array", items: [{ kind: "integer", value: 7 }, { kind: "integer", value: 1 }] },
    ], `cut at ${cut}`);
    assert.deepEqual(parseHelloReply(replies[5]), { lastLsn: 7, lastEpoch: 1 });
  }
});

Deno.test("reply parser: refuses what is not RESP and bulk replies past the limit", () => {
  const parser = new ReplyParser(4);
  parser.feed(bytes("$5\r\nhello\r\n"));
  assert.throws(() => parser.next(), /bulk reply of 5 bytes \(limit 4\)/);
  const other = new ReplyParser(4);
  other.feed(bytes("OK\r\n"));
  assert.throws(() => other.next(), ReplyFormatError);
  assert.throws(() => parseHelloReply({ kind: "status", text: "OK" }), /instead of \[lastLsn/);
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
