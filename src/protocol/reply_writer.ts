/**
 * Reply encoding for every framing into one growable output buffer, so all the replies to the
 * requests of one network read leave in one write. The writer is told the framing of each request
 * (`resp = true|false`, and `resp3` when the connection asked for RESP3 with `HELLO 3`) and each
 * method writes that framing's form of the reply. A command declares its reply's shape once (a
 * map, a set, a double...) and it comes out as Redis writes it in RESP2 and in RESP3:
 *
 * | reply              | text (one line, `\n`-terminated)  | RESP2                      | RESP3         |
 * |--------------------|-----------------------------------|----------------------------|---------------|
 * | `ok()`             | `OK`                              | `+OK`                      | the same      |
 * | `value(v)`         | `v` escaped                       | `$len` bulk string         | the same      |
 * | `notFound()`       | `NOT_FOUND`                       | `$-1` null bulk string     | `_` null      |
 * | `nullArray()`      | `NOT_FOUND`                       | `*-1` null array           | `_` null      |
 * | `error(m)`         | `ERROR: m`                        | `-ERR m` (or another code) | the same      |
 * | `integer(n)`       | `n`                               | `:n`                       | the same      |
 * | `status(s)`        | `s`                               | `+s`                       | the same      |
 * | `double(x)`        | `x`                               | bulk string `x`            | `,x`          |
 * | `boolean(b)`       | `1` / `0`                         | `:1` / `:0`                | `#t` / `#f`   |
 * | `bigNumber(d)`     | `d`                               | bulk string `d`            | `(d`          |
 * | `verbatim(t)`      | `t` escaped                       | bulk string `t`            | `=len txt:t`  |
 * | `mapHeader(n)`     | (see {@link Reply})               | `*2n` array                | `%n` map      |
 * | `setHeader(n)`     | (see {@link Reply})               | `*n` array                 | `~n` set      |
 * | `pairs(list)`      | `k1\|\|v1\|\|k2\|\|v2` or `NOT_FOUND` | array `k1 v1 k2 v2`     | the same      |
 * | `values(list)`     | escaped values joined by `\|\|`     | array of bulks / nulls     | bulks / `_`   |
 *
 * Structured replies held as data ({@link Reply}: `array`, `map`, `set`) are written in text as
 * their items' text forms joined by `||` on one line (a map as `k1||v1||k2||v2`).
 *
 * Doubles are formatted as Redis 7.0 does (`%.17g`; `inf`, `-inf`, `nan`). Constant replies are
 * cached as bytes; numbers are written as digits without strings.
 *
 * @module
 */
import { escapedLength, escapeInto } from "./escape.ts";
import { OutputBuffer } from "./output_buffer.ts";

const encoder = new TextEncoder();

const TEXT_OK = encoder.encode("OK\n");
const TEXT_NOT_FOUND = encoder.encode("NOT_FOUND\n");
const TEXT_ERROR = encoder.encode("ERROR: ");
const RESP_OK = encoder.encode("+OK\r\n");
const RESP_NULL = encoder.encode("$-1\r\n");
const RESP_NULL_ARRAY = encoder.encode("*-1\r\n");
const RESP3_NULL = encoder.encode("_\r\n");
const RESP3_TRUE = encoder.encode("#t\r\n");
const RESP3_FALSE = encoder.encode("#f\r\n");
const PIPES = encoder.encode("||");
const VERBATIM_TXT = encoder.encode("txt:");
const LF = 0x0a;
const CR = 0x0d;

/** A reply held as data (for replies computed later, e.g. after replicas acknowledged). */
export type Reply =
  | { type: "ok" }
  | { type: "notFound" }
  | { type: "value"; value: Uint8Array }
  /** `respMessage`: other words for RESP framing (Redis's own, where kvstore's text differs). */
  | { type: "error"; message: string; code?: string; respMessage?: string }
  | { type: "integer"; value: number }
  | { type: "status"; text: string }
  | { type: "array"; items: Reply[] }
  /** RESP3 map (RESP2: a flat array of keys and values). */
  | { type: "map"; entries: [Reply, Reply][] }
  /** RESP3 set (RESP2: an array). */
  | { type: "set"; items: Reply[] }
  /** RESP2 `*-1` (EXEC aborted by WATCH); RESP3 null. */
  | { type: "nullArray" }
  | { type: "double"; value: number }
  | { type: "boolean"; value: boolean }
  /** Digits of an integer beyond 64 bits (RESP3 big number; RESP2 bulk string). */
  | { type: "bigNumber"; digits: string }
  /** Text for people (INFO, CLIENT LIST): RESP3 verbatim string `txt`; RESP2 bulk string. */
  | { type: "verbatim"; text: string }
  /** Bytes already encoded in the request's framing (a reply a handler wrote elsewhere first). */
  | { type: "raw"; bytes: Uint8Array }
  /** What {@link ReplyWriter.pairs} writes (a READRANGE answered later). */
  | { type: "pairs"; pairs: readonly (readonly [Uint8Array, Uint8Array])[] }
  /** What {@link ReplyWriter.values} writes (an MGET answered later). */
  | { type: "values"; values: readonly (Uint8Array | undefined)[] };

/**
 * A growable buffer of encoded replies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReplyWriter } from "./reply_writer.ts";
 * const out = new ReplyWriter();
 * out.resp = false;
 * out.value(new TextEncoder().encode("a\nb"));
 * out.resp = true;
 * out.ok();
 * assert.equal(new TextDecoder().decode(out.bytes), "a\\nb\n+OK\r\n");
 * ```
 */
export class ReplyWriter extends OutputBuffer {
  /** Framing of the request being answered: RESP when true, text when false. */
  resp = false;
  /** With {@link resp}: the connection asked for RESP3 (`HELLO 3`). */
  resp3 = false;

  #end(): void {
    if (this.resp) this.crlf();
    else this.byte(LF);
  }

  #bulkHeader(length: number): void {
    this.byte(0x24);
    this.digits(length);
    this.crlf();
  }

  /** Writes `bytes` escaped (text framing). */
  #escaped(bytes: Uint8Array): void {
    this.reserve(escapedLength(bytes));
    this.length = escapeInto(bytes, this.buffer, this.length);
  }

  /** Writes printable text: CR and LF would end the reply early, so they become spaces. */
  #line(text: string): void {
    const length = text.length;
    this.reserve(length);
    const buffer = this.buffer;
    const start = this.length;
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        // Not ASCII (an error naming a key, say): encoded, which allocates.
        this.length = start;
        this.#encodedLine(text);
        return;
      }
      buffer[start + i] = code === CR || code === LF ? 0x20 : code;
    }
    this.length = start + length;
  }

  #encodedLine(text: string): void {
    const bytes = encoder.encode(text);
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === CR || bytes[i] === LF) bytes[i] = 0x20;
    this.raw(bytes);
  }

  /** `OK`. */
  ok(): void {
    this.raw(this.resp ? RESP_OK : TEXT_OK);
  }

  /** The key is missing: `NOT_FOUND`, or a RESP null (RESP2's null bulk string). */
  notFound(): void {
    this.raw(this.resp ? (this.resp3 ? RESP3_NULL : RESP_NULL) : TEXT_NOT_FOUND);
  }

  /** Redis's null array (RESP2 `*-1`, RESP3 `_`): EXEC aborted by WATCH. */
  nullArray(): void {
    this.raw(this.resp ? (this.resp3 ? RESP3_NULL : RESP_NULL_ARRAY) : TEXT_NOT_FOUND);
  }

  /** A double, formatted as Redis 7.0 does: RESP3 `,x`; RESP2 a bulk string. */
  double(value: number): void {
    const text = formatDouble(value);
    if (this.resp3) {
      this.byte(0x2c);
      this.raw(encoder.encode(text));
      this.crlf();
    } else {
      this.textValue(text);
    }
  }

  /** A boolean: RESP3 `#t`/`#f`; RESP2 (and text) the integer 1 or 0. */
  boolean(value: boolean): void {
    if (this.resp3) this.raw(value ? RESP3_TRUE : RESP3_FALSE);
    else this.integer(value ? 1 : 0);
  }

  /** An integer beyond 64 bits, as decimal digits: RESP3 `(digits`; RESP2 a bulk string. */
  bigNumber(digits: string): void {
    if (this.resp3) {
      this.byte(0x28);
      this.#line(digits);
      this.crlf();
    } else {
      this.textValue(digits);
    }
  }

  /** Text for people (INFO, CLIENT LIST): RESP3 verbatim string (`txt`); else as a value. */
  verbatim(text: string): void {
    if (!this.resp3) {
      this.textValue(text);
      return;
    }
    const bytes = encoder.encode(text);
    this.byte(0x3d);
    this.digits(bytes.length + 4);
    this.crlf();
    this.raw(VERBATIM_TXT);
    this.raw(bytes);
    this.crlf();
  }

  /** The header of a map of `count` entries (RESP framing only): `%count`, or `*2count`. */
  mapHeader(count: number): void {
    if (this.resp3) {
      this.byte(0x25);
      this.digits(count);
      this.crlf();
    } else {
      this.arrayHeader(count * 2);
    }
  }

  /** The header of a set of `count` items (RESP framing only): `~count`, or `*count`. */
  setHeader(count: number): void {
    if (this.resp3) {
      this.byte(0x7e);
      this.digits(count);
      this.crlf();
    } else {
      this.arrayHeader(count);
    }
  }

  /** A value: escaped on one text line, or a RESP bulk string. */
  value(bytes: Uint8Array): void {
    if (this.resp) {
      this.#bulkHeader(bytes.length);
      this.raw(bytes);
      this.crlf();
    } else {
      this.#escaped(bytes);
      this.byte(LF);
    }
  }

  /**
   * A RESP bulk string of a byte string's bytes (one code unit 0–255 per byte, the index's form
   * of a key), written straight into the buffer: `KEYS` and `SCAN` write a million keys without
   * a `Uint8Array` each. RESP framing only.
   */
  byteString(key: string): void {
    this.#bulkHeader(key.length);
    this.reserve(key.length + 2);
    const buffer = this.buffer;
    let at = this.length;
    for (let i = 0; i < key.length; i++) buffer[at++] = key.charCodeAt(i);
    this.length = at;
    this.crlf();
  }

  /** A value given as text (e.g. `INFO`): UTF-8 encoded, then as {@link value}. */
  textValue(text: string): void {
    this.value(encoder.encode(text));
  }

  /** An error: `ERROR: message` in text; `-CODE message` in RESP (`ERR` unless given). */
  error(message: string, code = "ERR"): void {
    if (this.resp) {
      this.byte(0x2d);
      this.#line(`${code} ${message}`);
    } else {
      this.raw(TEXT_ERROR);
      this.#line(message);
    }
    this.#end();
  }

  /** An integer. */
  integer(value: number): void {
    if (this.resp) this.byte(0x3a);
    this.digits(value);
    this.#end();
  }

  /** A status word such as `PONG`. */
  status(text: string): void {
    if (this.resp) this.byte(0x2b);
    this.#line(text);
    this.#end();
  }

  /** Key/value pairs (READRANGE): `k1||v1||...` or `NOT_FOUND` in text; a flat RESP array. */
  pairs(pairs: readonly (readonly [Uint8Array, Uint8Array])[]): void {
    if (this.resp) {
      this.arrayHeader(pairs.length * 2);
      for (const [key, value] of pairs) {
        this.value(key);
        this.value(value);
      }
      return;
    }
    if (pairs.length === 0) {
      this.notFound();
      return;
    }
    for (let i = 0; i < pairs.length; i++) {
      if (i > 0) this.raw(PIPES);
      this.#textKey(pairs[i][0]);
      this.raw(PIPES);
      this.#escaped(pairs[i][1]);
    }
    this.byte(LF);
  }

  /** Values or missing ones (MGET): a RESP array of bulks and nulls; text joins with `||`. */
  values(values: readonly (Uint8Array | undefined)[]): void {
    this.valuesStart(values.length);
    for (let i = 0; i < values.length; i++) this.valuesItem(i, values[i]);
    this.valuesEnd();
  }

  /**
   * Starts a {@link values} reply of `count` items written one by one: {@link valuesItem} for
   * each, then {@link valuesEnd} (an MGET answered in steps).
   */
  valuesStart(count: number): void {
    if (this.resp) this.arrayHeader(count);
  }

  /** Item `index` (from 0) of a reply begun with {@link valuesStart}. */
  valuesItem(index: number, value: Uint8Array | undefined): void {
    if (this.resp) {
      if (value === undefined) this.notFound();
      else this.value(value);
      return;
    }
    if (index > 0) this.raw(PIPES);
    if (value !== undefined) this.#escaped(value);
  }

  /** Ends a reply begun with {@link valuesStart}. */
  valuesEnd(): void {
    if (!this.resp) this.byte(LF);
  }

  /** A RESP array of strings (for `CONFIG GET`, `COMMAND`); text joins them with spaces. */
  strings(items: readonly string[]): void {
    if (this.resp) {
      this.arrayHeader(items.length);
      for (const item of items) this.textValue(item);
      return;
    }
    this.#line(items.join(" "));
    this.byte(LF);
  }

  /** The header of a RESP array of `count` replies (RESP framing only). */
  arrayHeader(count: number): void {
    this.byte(0x2a);
    this.digits(count);
    this.crlf();
  }

  /**
   * A key in a text reply. Keys travel raw, as in the original; a key holding a line break (only
   * possible through RESP) is escaped so it cannot break the line.
   */
  #textKey(key: Uint8Array): void {
    if (key.indexOf(LF) === -1 && key.indexOf(CR) === -1) this.raw(key);
    else this.#escaped(key);
  }

  /** Writes a {@link Reply} held as data. */
  reply(reply: Reply): void {
    switch (reply.type) {
      case "ok":
        return this.ok();
      case "notFound":
        return this.notFound();
      case "value":
        return this.value(reply.value);
      case "error":
        return this.error(
          this.resp && reply.respMessage !== undefined ? reply.respMessage : reply.message,
          reply.code,
        );
      case "integer":
        return this.integer(reply.value);
      case "status":
        return this.status(reply.text);
      case "array":
        return this.#array(reply.items);
      case "map":
        return this.#map(reply.entries);
      case "set":
        if (this.resp) this.setHeader(reply.items.length);
        return this.#items(reply.items);
      case "nullArray":
        return this.nullArray();
      case "double":
        return this.double(reply.value);
      case "boolean":
        return this.boolean(reply.value);
      case "bigNumber":
        return this.bigNumber(reply.digits);
      case "verbatim":
        return this.verbatim(reply.text);
      case "raw":
        return this.raw(reply.bytes);
      case "pairs":
        return this.pairs(reply.pairs);
      case "values":
        return this.values(reply.values);
    }
  }

  /** A RESP array of replies; in text, the items' text forms joined by `||` on one line. */
  #array(items: readonly Reply[]): void {
    if (this.resp) this.arrayHeader(items.length);
    this.#items(items);
  }

  /** A RESP3 map (a flat RESP2 array); in text, keys and values joined by `||`. */
  #map(entries: readonly [Reply, Reply][]): void {
    if (this.resp) {
      this.mapHeader(entries.length);
      for (const [key, value] of entries) {
        this.reply(key);
        this.reply(value);
      }
      return;
    }
    this.#items(entries.flat());
  }

  /** The items of an array or set (after its RESP header); in text, one line joined by `||`. */
  #items(items: readonly Reply[]): void {
    if (this.resp) {
      for (const item of items) this.reply(item);
      return;
    }
    for (let i = 0; i < items.length; i++) {
      if (i > 0) this.raw(PIPES);
      const start = this.length;
      this.reply(items[i]);
      this.length--; // drop the item's own line end
      if (this.length < start) this.length = start;
    }
    this.byte(LF);
  }
}

/**
 * A double as Redis 7.0 writes it in replies: C's `%.17g` (17 significant digits, trailing zeros
 * dropped, an exponent below 1e-4 or from 1e17), `inf`, `-inf` and `nan`.
 *
 * @example
 * ```ts
 * import { formatDouble } from "./reply_writer.ts";
 * console.log(formatDouble(1.5), formatDouble(0.1), formatDouble(1e20)); // 1.5 0.10000000000000001 1e+20
 * ```
 */
export function formatDouble(value: number): string {
  if (Number.isNaN(value)) return "nan";
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const exponential = value.toExponential(16);
  const e = exponential.indexOf("e");
  const exponent = Number(exponential.slice(e + 1));
  if (exponent >= -4 && exponent < 17) return stripZeros(value.toFixed(16 - exponent));
  const mantissa = stripZeros(exponential.slice(0, e));
  const digits = String(Math.abs(exponent)).padStart(2, "0");
  return `${mantissa}e${exponent < 0 ? "-" : "+"}${digits}`;
}

/** Drops trailing zeros after a decimal point, and the point itself when nothing follows it. */
function stripZeros(text: string): string {
  if (!text.includes(".")) return text;
  let end = text.length;
  while (text[end - 1] === "0") end--;
  if (text[end - 1] === ".") end--;
  return text.slice(0, end);
}
