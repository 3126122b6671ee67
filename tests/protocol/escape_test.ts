import assert from "node:assert/strict";
import { escapedLength, escapeValue, unescapeValue } from "../../src/protocol/escape.ts";
import { prng } from "../helpers/random.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("escaping matches the original's rules byte for byte", () => {
  const cases: [string, string][] = [
    ["plain", "plain"],
    ["a\nb", "a\\nb"],
    ["a\r\nb", "a\\r\\nb"],
    ["tab\there", "tab\\there"],
    ["back\\slash", "back\\\\slash"],
    ["literal \\n", "literal \\\\n"],
    ["", ""],
  ];
  for (const [raw, wire] of cases) {
    assert.equal(decoder.decode(escapeValue(encoder.encode(raw))), wire, JSON.stringify(raw));
    assert.equal(decoder.decode(unescapeValue(encoder.encode(wire))), raw, JSON.stringify(wire));
  }
});

Deno.test("unescaping keeps unknown sequences and a trailing backslash as they are", () => {
  assert.equal(decoder.decode(unescapeValue(encoder.encode("\\x\\0\\"))), "\\x\\0\\");
  assert.equal(decoder.decode(unescapeValue(encoder.encode("\\\\\\n"))), "\\\n");
});

Deno.test("unescaping without a backslash returns the same bytes without copying", () => {
  const bytes = encoder.encode("no escapes here");
  assert.equal(unescapeValue(bytes), bytes);
});

Deno.test("any byte sequence round-trips and its escaped form has no line break", () => {
  const random = prng(20260101);
  for (let round = 0; round < 2000; round++) {
    const length = Math.floor(random() * 64);
    const value = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      // Bias towards the bytes that matter: NUL, \t, \n, \r, backslash, 'n', 'r', 't'.
      value[i] = random() < 0.5
        ? [0, 9, 10, 13, 92, 110, 114, 116][Math.floor(random() * 8)]
        : Math.floor(random() * 256);
    }
    const escaped = escapeValue(value);
    assert.equal(escaped.length, escapedLength(value));
    assert.equal(escaped.indexOf(10), -1);
    assert.equal(escaped.indexOf(13), -1);
    assert.deepEqual(unescapeValue(escaped), value, `round ${round}`);
  }
});
