import assert from "node:assert/strict";
import {
  type ParseResult,
  RequestParser,
  scanFirstArguments,
} from "../../src/protocol/request_parser.ts";
import { prng } from "../helpers/random.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A parse result with its byte views turned into strings, for comparisons. */
type Plain =
  | { framing: string; name: string; args: string[] }
  | { framing: string; error: string; fatal: boolean };

function plain(result: ParseResult): Plain {
  if (result.kind === "error") {
    return { framing: result.framing, error: result.message, fatal: result.fatal };
  }
  return {
    framing: result.framing,
    name: decoder.decode(result.name),
    args: result.args.map((arg) => decoder.decode(arg)),
  };
}

/**
 * Feeds `chunks` the way a connection does (append to a buffer, parse every complete request,
 * keep the rest) and returns every result.
 */
function parseChunks(
  chunks: Uint8Array[],
  maxRequestBytes = 1024,
  maxRequestElements?: number,
): Plain[] {
  const parser = new RequestParser({ maxRequestBytes, maxRequestElements });
  const results: Plain[] = [];
  let pending: Uint8Array = new Uint8Array(0);
  for (const chunk of chunks) {
    const data = new Uint8Array(pending.length + chunk.length);
    data.set(pending);
    data.set(chunk, pending.length);
    let start = 0;
    for (;;) {
      const result = parser.next(data, start);
      start = parser.offset;
      if (result === undefined) break;
      results.push(plain(result));
    }
    pending = data.slice(start);
  }
  return results;
}

function parseText(text: string, maxRequestBytes?: number): Plain[] {
  return parseChunks([encoder.encode(text)], maxRequestBytes);
}

function request(framing: string, name: string, ...args: string[]): Plain {
  return { framing, name, args };
}

function textError(error: string): Plain {
  return { framing: "text", error, fatal: false };
}

function resp(...parts: string[]): string {
  return `*${parts.length}\r\n` +
    parts.map((part) => `$${encoder.encode(part).length}\r\n${part}\r\n`).join("");
}

Deno.test("text commands parse with the original's splitting rules", () => {
  assert.deepEqual(parseText("PUT key some value with spaces\n"), [
    request("text", "PUT", "key", "some value with spaces"),
  ]);
  assert.deepEqual(parseText("put k\n"), [request("text", "put", "k", "")]);
  assert.deepEqual(parseText("PUT k \n"), [request("text", "PUT", "k", "")]);
  assert.deepEqual(parseText("READ k\r\n"), [request("text", "READ", "k")]);
  assert.deepEqual(parseText("dElEtE k\n"), [request("text", "dElEtE", "k")]);
  assert.deepEqual(parseText("READRANGE a c\n"), [request("text", "READRANGE", "a", "c")]);
  assert.deepEqual(parseText("BATCHPUT a||b 1||two words\n"), [
    request("text", "BATCHPUT", "a", "1", "b", "two words"),
  ]);
  assert.deepEqual(parseText("PING\nINFO  storage\n"), [
    request("text", "PING"),
    request("text", "INFO", "storage"),
  ]);
});

Deno.test("text values are unescaped exactly once, keys are not", () => {
  assert.deepEqual(parseText("PUT k\\n a\\tb\\\\n\\r\n"), [
    request("text", "PUT", "k\\n", "a\tb\\n\r"),
  ]);
  assert.deepEqual(parseText("BATCHPUT x||y a\\n||b\\\\\n"), [
    request("text", "BATCHPUT", "x", "a\n", "y", "b\\"),
  ]);
});

Deno.test("text syntax errors carry the original messages and keep the connection", () => {
  assert.deepEqual(parseText("PUT\nREAD\nREAD a b\nDELETE\nREADRANGE a\nBATCHPUT a\nPING\n"), [
    textError("PUT requires key"),
    textError("READ requires key"),
    textError("READ requires key"),
    textError("DELETE requires key"),
    textError("READRANGE requires start_key and end_key"),
    textError("BATCHPUT requires keys and values"),
    request("text", "PING"),
  ]);
  assert.deepEqual(parseText("BATCHPUT a||b 1\n"), [textError("Keys and values count mismatch")]);
});

Deno.test("REPLICATE text commands normalize to the RESP shape", () => {
  assert.deepEqual(parseText("REPLICATE PUT k v a\\nb\n"), [
    request("text", "REPLICATE", "PUT", "k", "v a\nb"),
  ]);
  assert.deepEqual(parseText("replicate batchput a||b 1||2\n"), [
    request("text", "replicate", "batchput", "a", "1", "b", "2"),
  ]);
  assert.deepEqual(parseText("REPLICATE DELETE k\n"), [
    request("text", "REPLICATE", "DELETE", "k"),
  ]);
  assert.deepEqual(parseText("REPLICATE\nREPLICATE PUT k\nREPLICATE DELETE\n"), [
    textError("REPLICATE requires subcommand"),
    textError("REPLICATE PUT requires key and value"),
    textError("REPLICATE DELETE requires key"),
  ]);
});

Deno.test("RESP arrays parse, binary-safe, and mix with text lines on one connection", () => {
  const value = "line1\r\nline2 \\n";
  assert.deepEqual(parseText(resp("SET", "k", value) + "READ k\n" + resp("GET", "k")), [
    request("resp", "SET", "k", value),
    request("text", "READ", "k"),
    request("resp", "GET", "k"),
  ]);
});

Deno.test("every split point of a pipelined stream gives the same requests", () => {
  const stream = encoder.encode(
    "PUT a 1\n" + resp("SET", "b", "x\r\ny") + "BATCHPUT c||d 3||4\r\n" + resp("PING") +
      resp("MSET", "k1", "", "k2", "v"),
  );
  const whole = parseChunks([stream]);
  assert.equal(whole.length, 5);
  for (let cut = 1; cut < stream.length; cut++) {
    assert.deepEqual(
      parseChunks([stream.subarray(0, cut), stream.subarray(cut)]),
      whole,
      `cut at ${cut}`,
    );
  }
  const bytes = Array.from(stream, (byte) => new Uint8Array([byte]));
  assert.deepEqual(parseChunks(bytes), whole);
});

Deno.test("an oversized text line gets one error and the next line still works", () => {
  const long = "PUT k " + "x".repeat(3000) + "\n";
  assert.deepEqual(parseText(long + "READ k\n", 1024), [
    textError("request is larger than MAX_REQUEST_BYTES (1024 bytes)"),
    request("text", "READ", "k"),
  ]);
  // The same line arriving in small pieces is skipped without being buffered.
  const chunks = [];
  for (let i = 0; i < long.length; i += 100) chunks.push(encoder.encode(long.slice(i, i + 100)));
  chunks.push(encoder.encode("PING\n"));
  assert.deepEqual(parseChunks(chunks, 1024), [
    textError("request is larger than MAX_REQUEST_BYTES (1024 bytes)"),
    request("text", "PING"),
  ]);
});

Deno.test("an oversized RESP bulk gets one error, is skipped by its length, and resyncs", () => {
  const big = resp("SET", "k", "v".repeat(5000), "tail");
  const results = parseChunks(
    Array.from(
      { length: Math.ceil(big.length / 700) },
      (_, i) => encoder.encode(big.slice(i * 700, i * 700 + 700)),
    ).concat([encoder.encode(resp("PING"))]),
    1024,
  );
  assert.deepEqual(results, [
    {
      framing: "resp",
      error: "request is larger than MAX_REQUEST_BYTES (1024 bytes)",
      fatal: false,
    },
    request("resp", "PING"),
  ]);
});

Deno.test("broken RESP framing is a fatal error", () => {
  for (
    const bad of [
      "*2\r\nxx\r\n",
      "*1\r\n$3\r\nabcde",
      "*x\r\n",
      "*1\r\n$-5\r\n",
      "*99999999999999\r\n",
      "*1\r\n$1\nab",
    ]
  ) {
    const results = parseText(bad);
    assert.equal(results.length, 1, bad);
    assert.equal(results[0].framing, "resp");
    assert.ok("fatal" in results[0] && results[0].fatal, JSON.stringify(bad));
    assert.match((results[0] as { error: string }).error, /^Protocol error: /);
  }
});

Deno.test("empty and null RESP arrays are ignored, however many arrive", () => {
  assert.deepEqual(parseText("*0\r\n".repeat(100_000) + "*-1\r\n" + resp("PING")), [
    request("resp", "PING"),
  ]);
});

Deno.test("random bytes never throw and always make progress", () => {
  const random = prng(7);
  for (let round = 0; round < 300; round++) {
    const chunks: Uint8Array[] = [];
    for (let c = 0; c < 8; c++) {
      const chunk = new Uint8Array(Math.floor(random() * 300));
      for (let i = 0; i < chunk.length; i++) {
        chunk[i] = random() < 0.2 ? [10, 13, 36, 42, 48, 49][Math.floor(random() * 6)] : Math.floor(
          random() * 256,
        );
      }
      chunks.push(chunk);
    }
    const results = parseChunks(chunks, 1024);
    for (const result of results) assert.ok("name" in result || "error" in result);
  }
});

Deno.test("a request of more than maxRequestElements words is refused and skipped, both framings", () => {
  const words = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`);
  const tooMany = "request has 6 words, more than MAX_REQUEST_ELEMENTS (5)";
  // RESP: refused from its header (before any element is kept), then skipped by its lengths,
  // also when it arrives in pieces.
  const big = encoder.encode(resp("MGET", ...words(5)) + resp("PING"));
  const pieces = [big.subarray(0, 7), big.subarray(7, 30), big.subarray(30)];
  assert.deepEqual(parseChunks(pieces, 1024, 5), [
    { framing: "resp", error: tooMany, fatal: false },
    request("resp", "PING"),
  ]);
  assert.deepEqual(parseChunks([encoder.encode(resp("MGET", ...words(4)))], 1024, 5), [
    request("resp", "MGET", ...words(4)),
  ]);
  // Text: words, and the || parts of BATCHPUT and REPLICATE BATCHPUT.
  const text = (line: string) => parseChunks([encoder.encode(`${line}\nPING\n`)], 1024, 5);
  const textTooMany = {
    framing: "text",
    error: "request has more words, more than MAX_REQUEST_ELEMENTS (5)",
    fatal: false,
  };
  assert.deepEqual(text(`EXISTS ${words(6).join(" ")}`), [textTooMany, request("text", "PING")]);
  assert.deepEqual(text(`BATCHPUT a||b||c x||y||z`), [textTooMany, request("text", "PING")]);
  assert.deepEqual(text(`REPLICATE BATCHPUT a||b||c x||y||z`), [
    textTooMany,
    request("text", "PING"),
  ]);
  assert.deepEqual(text(`EXISTS ${words(5).join(" ")}`)[0], request("text", "EXISTS", ...words(5)));
});

Deno.test("inline mode: Redis's inline commands become RESP requests, split by sdssplitargs' rules", () => {
  const parser = new RequestParser({ maxRequestBytes: 1024, inline: true, maxInlineBytes: 64 });
  const data = new TextEncoder().encode(
    "  set  k  \"a\\tb\\x41\\\"\" \r\n\r\nECHO 'it\\'s' x\n*1\r\n$4\r\nPING\r\n",
  );
  const words: string[][] = [];
  let offset = 0;
  for (;;) {
    const request = parser.next(data, offset);
    offset = parser.offset;
    if (request === undefined) break;
    assert.equal(request.kind, "request");
    if (request.kind !== "request") break;
    assert.equal(request.framing, "resp");
    words.push([request.name, ...request.args].map((word) => new TextDecoder().decode(word)));
  }
  assert.deepEqual(words, [["set", "k", 'a\tbA"'], ["ECHO", "it's", "x"], ["PING"]]);
});

Deno.test("inline mode: unbalanced quotes and a line past maxInlineBytes are fatal, as in Redis", () => {
  const fatal = (text: string) => {
    const parser = new RequestParser({ maxRequestBytes: 1024, inline: true, maxInlineBytes: 16 });
    const result = parser.next(new TextEncoder().encode(text), 0);
    return result?.kind === "error" && result.fatal ? result.message : undefined;
  };
  assert.equal(fatal('ECHO "a"b\r\n'), "Protocol error: unbalanced quotes in request");
  assert.equal(fatal("ECHO 'open\r\n"), "Protocol error: unbalanced quotes in request");
  assert.equal(fatal("x".repeat(17)), "Protocol error: too big inline request");
  assert.equal(fatal(`ECHO ${"y".repeat(20)}\r\n`), "Protocol error: too big inline request");
  assert.equal(fatal("*x\r\n"), "Protocol error: invalid multibulk length");
  assert.equal(fatal("*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
  assert.equal(fatal("*1\r\n%4\r\n"), "Protocol error: expected '$', got '%'");
});

Deno.test("a RESP array's element bookkeeping is announced before it grows and given back after", () => {
  const announced: number[] = [];
  let allow = true;
  const parser = new RequestParser({
    maxRequestBytes: 1024 * 1024,
    elementsGrowing: (aboutToAllocateBytes) => {
      announced.push(aboutToAllocateBytes);
      return allow;
    },
  });
  // 2,000 empty elements declared, 1,000 sent: 8 bytes each, doubled from 16, held meanwhile.
  const head = encoder.encode("*2000\r\n" + "$0\r\n\r\n".repeat(1000));
  assert.equal(parser.next(head, 0), undefined);
  assert.deepEqual(announced, [128, 256, 512, 1024, 2048, 4096]);
  assert.equal(parser.extraBytes, (1024 - 16) * 8);
  // The rest arrives: growth stops at the declared count; the request done, the room is given back.
  const whole = encoder.encode("*2000\r\n" + "$0\r\n\r\n".repeat(2000));
  const request = parser.next(whole, 0);
  assert.equal(request?.kind === "request" && request.args.length, 1999);
  assert.equal(announced.at(-1), (2000 - 1024) * 8);
  assert.equal(parser.extraBytes, 0);
  // Refused (the connection was closed meanwhile): nothing grows, nothing is returned.
  allow = false;
  assert.equal(parser.next(whole, 0), undefined);
  assert.equal(parser.extraBytes, 0);
});

/** The first arguments `scanFirstArguments` finds in `data` from `at`, as strings. */
function scanned(data: Uint8Array, at = 0, maxElements = 8, room = 32): string[] {
  const starts = new Int32Array(room);
  const ends = new Int32Array(room);
  const found = scanFirstArguments(
    data,
    at,
    { maxElements, maxArgumentBytes: 64 },
    starts,
    ends,
  );
  return Array.from({ length: found }, (_, i) => decoder.decode(data.subarray(starts[i], ends[i])));
}

Deno.test("the look-ahead finds each complete request's first argument where the parser does", () => {
  const stream = resp("GET", "k1") + resp("SET", "k\r\n2", "v") + resp("INCR", "") +
    resp("MGET", "k4", "k5") + resp("SET", "k6", "v", "EX", "3600");
  const data = encoder.encode(stream);
  const parsed = parseText(stream).map((r) => ("args" in r ? r.args[0] : undefined));
  assert.deepEqual(scanned(data), parsed);
  // Cut anywhere: only the requests complete before the cut, as the parser would give them.
  for (let cut = 0; cut <= data.length; cut++) {
    const complete = parseText(stream.slice(0, cut)).length;
    assert.deepEqual(scanned(data.subarray(0, cut)), parsed.slice(0, complete), `cut at ${cut}`);
  }
  // From a later request on, and no more than there is room for.
  const second = encoder.encode(resp("GET", "k1")).length;
  assert.deepEqual(scanned(data, second), parsed.slice(1));
  assert.deepEqual(scanned(data, 0, 8, 2), parsed.slice(0, 2));
});

Deno.test("the look-ahead stops at what it does not take, and consumes nothing", () => {
  const after = resp("GET", "later");
  // A request of one element, of more than maxElements, inline or text, malformed or negative.
  for (
    const stop of [
      resp("PING"),
      resp("MSET", "a", "1", "b", "2", "c", "3", "d", "4"),
      resp("GET", "k".repeat(65)),
      "GET inline\r\n",
      "*2\r\n$3\r\nGET\r\n$-1\r\n",
      "*2\r\n$3\r\nGET\r\n$x\r\n",
      "*-1\r\n",
      "*0\r\n",
    ]
  ) {
    const data = encoder.encode(resp("GET", "first") + stop + after);
    assert.deepEqual(scanned(data), ["first"], JSON.stringify(stop));
  }
  // Random bytes: it never throws, and every range it gives lies inside the data.
  const random = prng(11);
  const starts = new Int32Array(32);
  const ends = new Int32Array(32);
  for (let round = 0; round < 2000; round++) {
    const data = encoder.encode(resp("GET", "k") + resp("SET", "a", "b"));
    const noisy = new Uint8Array(data.length + 8);
    noisy.set(data);
    for (let i = 0; i < 4; i++) {
      noisy[Math.floor(random() * noisy.length)] = [10, 13, 36, 42, 45, 48, 57, 200][
        Math.floor(random() * 8)
      ];
    }
    const found = scanFirstArguments(
      noisy,
      0,
      { maxElements: 8, maxArgumentBytes: 64 },
      starts,
      ends,
    );
    assert.ok(found >= 0 && found <= 2);
    for (let i = 0; i < found; i++) {
      assert.ok(0 <= starts[i] && starts[i] <= ends[i] && ends[i] <= noisy.length);
    }
  }
});

Deno.test("command words repeated in a pipeline come back as sent, whatever came before", () => {
  // The parser hands back its copy of the last command word when the bytes are the same: a word
  // that differs in case, length or one byte must still be its own.
  const words = ["GET", "GET", "get", "GEt", "GETEX", "GET", "SET", "", "SET", "x".repeat(40)];
  const stream = words.map((word) => resp(word, "k")).join("");
  assert.deepEqual(
    parseText(stream).map((r) => ("name" in r ? r.name : r.error)),
    words,
  );
});
