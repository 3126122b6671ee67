import assert from "node:assert/strict";
import { formatDouble, ReplyWriter } from "../../src/protocol/reply_writer.ts";
import {
  INCOMPLETE,
  RespCommandWriter,
  RespErrorReply,
  RespProtocolError,
  RespReplyParser,
  type RespValue,
} from "../../src/protocol/resp.ts";
import { RequestParser } from "../../src/protocol/request_parser.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);

function written(resp: boolean, write: (out: ReplyWriter) => void): string {
  const out = new ReplyWriter(4);
  out.resp = resp;
  write(out);
  return decoder.decode(out.bytes);
}

Deno.test("text replies are the original's lines", () => {
  assert.equal(written(false, (out) => out.ok()), "OK\n");
  assert.equal(written(false, (out) => out.notFound()), "NOT_FOUND\n");
  assert.equal(written(false, (out) => out.value(bytes("a\tb\r\nc\\"))), "a\\tb\\r\\nc\\\\\n");
  assert.equal(written(false, (out) => out.value(new Uint8Array())), "\n");
  assert.equal(
    written(false, (out) => out.error("Unknown command: FOO")),
    "ERROR: Unknown command: FOO\n",
  );
  assert.equal(written(false, (out) => out.integer(42)), "42\n");
  assert.equal(written(false, (out) => out.status("PONG")), "PONG\n");
  assert.equal(
    written(false, (out) => out.pairs([[bytes("a"), bytes("1\n")], [bytes("b"), bytes("2")]])),
    "a||1\\n||b||2\n",
  );
  assert.equal(written(false, (out) => out.pairs([])), "NOT_FOUND\n");
});

Deno.test("RESP replies follow Redis's encoding", () => {
  assert.equal(written(true, (out) => out.ok()), "+OK\r\n");
  assert.equal(written(true, (out) => out.notFound()), "$-1\r\n");
  assert.equal(written(true, (out) => out.value(bytes("a\r\nb"))), "$4\r\na\r\nb\r\n");
  assert.equal(written(true, (out) => out.error("bad")), "-ERR bad\r\n");
  assert.equal(
    written(true, (out) => out.error("no writes", "READONLY")),
    "-READONLY no writes\r\n",
  );
  assert.equal(written(true, (out) => out.integer(-7)), ":-7\r\n");
  assert.equal(written(true, (out) => out.integer(1234567890123)), ":1234567890123\r\n");
  // Both sides of the 32-bit fast path, and the ends of the safe integers.
  for (
    const value of [
      0,
      9,
      10,
      2 ** 31 - 1,
      2 ** 31,
      -(2 ** 31),
      -(2 ** 31) - 1,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
    ]
  ) {
    assert.equal(written(true, (out) => out.integer(value)), `:${value}\r\n`);
  }
  assert.equal(
    written(true, (out) => out.pairs([[bytes("k"), bytes("v")]])),
    "*2\r\n$1\r\nk\r\n$1\r\nv\r\n",
  );
  assert.equal(
    written(true, (out) => out.values([bytes("v"), undefined])),
    "*2\r\n$1\r\nv\r\n$-1\r\n",
  );
  assert.equal(written(true, (out) => out.strings(["save", ""])), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
});

Deno.test("an error message can never end a reply early", () => {
  assert.equal(written(false, (out) => out.error("two\nlines\r")), "ERROR: two lines \n");
  assert.equal(written(true, (out) => out.error("two\r\nlines")), "-ERR two  lines\r\n");
});

Deno.test("a key with a line break is escaped in a text READRANGE reply", () => {
  assert.equal(
    written(false, (out) => out.pairs([[bytes("a\nb"), bytes("v")], [bytes("c\\d"), bytes("w")]])),
    "a\\nb||v||c\\d||w\n",
  );
});

function parseReplies(data: Uint8Array): RespValue[] {
  const parser = new RespReplyParser();
  const values: RespValue[] = [];
  let pending: Uint8Array = new Uint8Array();
  for (const byte of data) {
    const next = new Uint8Array(pending.length + 1);
    next.set(pending);
    next[pending.length] = byte;
    let start = 0;
    for (;;) {
      const value = parser.next(next, start);
      start = parser.offset;
      if (value === INCOMPLETE) break;
      values.push(value);
    }
    pending = next.slice(start);
  }
  return values;
}

Deno.test("the reply parser reads what the reply writer wrote, one byte at a time", () => {
  const out = new ReplyWriter();
  out.resp = true;
  out.ok();
  out.value(bytes("x\r\ny"));
  out.notFound();
  out.integer(12);
  out.error("nope", "READONLY");
  out.pairs([[bytes("a"), bytes("1")], [bytes("b"), bytes("")]]);
  out.values([]);
  out.status("PONG");
  const values = parseReplies(out.bytes);
  assert.deepEqual(values, [
    "OK",
    bytes("x\r\ny"),
    null,
    12,
    new RespErrorReply("READONLY", "nope"),
    [bytes("a"), bytes("1"), bytes("b"), bytes("")],
    [],
    "PONG",
  ]);
});

Deno.test("nested arrays parse", () => {
  assert.deepEqual(parseReplies(bytes("*2\r\n*1\r\n:1\r\n*0\r\n")), [[[1], []]]);
});

Deno.test("the reply parser rejects bytes that are not RESP", () => {
  for (const bad of ["?x\r\n", "+no cr\n", ":12a\r\n", "$3\r\nabcd\r\n", "$-2\r\n"]) {
    assert.throws(() => new RespReplyParser().next(bytes(bad), 0), RespProtocolError, bad);
  }
});

Deno.test("commands written for the client parse back as the same requests", () => {
  const out = new RespCommandWriter(8);
  out.command(["SET", "key", new Uint8Array([0, 13, 10, 255])]);
  out.command(["READRANGE", "a", "z"]);
  const parser = new RequestParser({ maxRequestBytes: 1024 });
  const first = parser.next(out.bytes, 0);
  assert.ok(first?.kind === "request");
  assert.equal(decoder.decode(first.name), "SET");
  assert.deepEqual(first.args, [bytes("key"), new Uint8Array([0, 13, 10, 255])]);
  const second = parser.next(out.bytes, parser.offset);
  assert.ok(second?.kind === "request");
  assert.equal(second.args.length, 2);
  assert.equal(parser.offset, out.length);
});

Deno.test("array replies nest in RESP and join on one line in text", () => {
  const reply = {
    type: "array" as const,
    items: [{ type: "integer" as const, value: 5 }, {
      type: "value" as const,
      value: bytes("a\n"),
    }],
  };
  assert.equal(written(true, (out) => out.reply(reply)), "*2\r\n:5\r\n$2\r\na\n\r\n");
  assert.equal(written(false, (out) => out.reply(reply)), "5||a\\n\n");
});

function written3(write: (out: ReplyWriter) => void): [string, string] {
  const out2 = new ReplyWriter(4);
  out2.resp = true;
  write(out2);
  const out3 = new ReplyWriter(4);
  out3.resp = true;
  out3.resp3 = true;
  write(out3);
  return [decoder.decode(out2.bytes), decoder.decode(out3.bytes)];
}

Deno.test("one reply shape, written as Redis writes it in RESP2 and in RESP3", () => {
  assert.deepEqual(written3((out) => out.notFound()), ["$-1\r\n", "_\r\n"]);
  assert.deepEqual(written3((out) => out.nullArray()), ["*-1\r\n", "_\r\n"]);
  assert.deepEqual(written3((out) => out.boolean(true)), [":1\r\n", "#t\r\n"]);
  assert.deepEqual(written3((out) => out.double(1.5)), ["$3\r\n1.5\r\n", ",1.5\r\n"]);
  assert.deepEqual(written3((out) => out.double(-Infinity)), ["$4\r\n-inf\r\n", ",-inf\r\n"]);
  assert.deepEqual(
    written3((out) => out.bigNumber("12345678901234567890")),
    ["$20\r\n12345678901234567890\r\n", "(12345678901234567890\r\n"],
  );
  assert.deepEqual(written3((out) => out.verbatim("a\r\n")), [
    "$3\r\na\r\n\r\n",
    "=7\r\ntxt:a\r\n\r\n",
  ]);
  const map = (out: ReplyWriter) =>
    out.reply({
      type: "map",
      entries: [[{ type: "status", text: "k" }, {
        type: "set",
        items: [{ type: "integer", value: 1 }],
      }]],
    });
  assert.deepEqual(written3(map), ["*2\r\n+k\r\n*1\r\n:1\r\n", "%1\r\n+k\r\n~1\r\n:1\r\n"]);
  assert.equal(written(false, map), "k||1\n");
  assert.equal(written(false, (out) => out.nullArray()), "NOT_FOUND\n");
  assert.equal(written(false, (out) => out.boolean(false)), "0\n");
  assert.deepEqual(
    written3((out) =>
      out.reply({ type: "error", message: "ours", respMessage: "Redis's words.", code: "NOAUTH" })
    ),
    ["-NOAUTH Redis's words.\r\n", "-NOAUTH Redis's words.\r\n"],
  );
});

Deno.test("doubles are formatted as Redis 7.0's %.17g", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [-0, "-0"],
    [1, "1"],
    [1.5, "1.5"],
    [0.1, "0.10000000000000001"],
    [1 / 3, "0.33333333333333331"],
    [123456789012345680, "1.2345678901234568e+17"],
    [1e16, "10000000000000000"],
    [1e17, "1e+17"],
    [0.0001, "0.0001"],
    [0.00001, "1.0000000000000001e-05"],
    [-2.5e-300, "-2.5e-300"],
    [NaN, "nan"],
    [Infinity, "inf"],
  ];
  for (const [value, text] of cases) assert.equal(formatDouble(value), text, String(value));
});

Deno.test("status and error lines: CR and LF become spaces; text past ASCII goes out as UTF-8", () => {
  assert.equal(written(true, (out) => out.status("a\r\nb")), "+a  b\r\n");
  assert.equal(written(true, (out) => out.error("bad\nkey")), "-ERR bad key\r\n");
  assert.equal(
    written(true, (out) => out.error("no key 'é\r€'", "WRONG")),
    "-WRONG no key 'é €'\r\n",
  );
  // A line that starts ASCII and turns out not to be, in a writer that already holds a reply.
  const out = new ReplyWriter(4);
  out.resp = true;
  out.status("first");
  out.status("ascii then ü");
  assert.equal(decoder.decode(out.bytes), "+first\r\n+ascii then ü\r\n");
  assert.equal(out.length, encoder.encode("+first\r\n+ascii then ü\r\n").length);
});
