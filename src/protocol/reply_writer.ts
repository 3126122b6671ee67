/**
 * Reply encoding for both framings into one growable output buffer, so all the replies to the
 * requests of one network read leave in one write. The writer is told the framing of each request
 * (`resp = true|false`) and each method writes that framing's form of the reply:
 *
 * | reply         | text (one line, `\n`-terminated)  | RESP2                      |
 * |---------------|-----------------------------------|----------------------------|
 * | `ok()`        | `OK`                              | `+OK`                      |
 * | `value(v)`    | `v` escaped                       | `$len` bulk string         |
 * | `notFound()`  | `NOT_FOUND`                       | `$-1` null bulk string     |
 * | `error(m)`    | `ERROR: m`                        | `-ERR m` (or another code) |
 * | `integer(n)`  | `n`                               | `:n`                       |
 * | `status(s)`   | `s`                               | `+s`                       |
 * | `pairs(list)` | `k1\|\|v1\|\|k2\|\|v2` or `NOT_FOUND` | array `k1 v1 k2 v2`     |
 * | `values(list)`| escaped values joined by `\|\|`     | array of bulks / nulls     |
 *
 * Constant replies are cached as bytes; numbers are written as digits without strings.
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
const PIPES = encoder.encode("||");
const LF = 0x0a;
const CR = 0x0d;

/** A reply held as data (for replies computed later, e.g. after replicas acknowledged). */
export type Reply =
  | { type: "ok" }
  | { type: "notFound" }
  | { type: "value"; value: Uint8Array }
  | { type: "error"; message: string; code?: string }
  | { type: "integer"; value: number }
  | { type: "status"; text: string }
  | { type: "array"; items: Reply[] }
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
    const bytes = encoder.encode(text);
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === CR || bytes[i] === LF) bytes[i] = 0x20;
    this.raw(bytes);
  }

  /** `OK`. */
  ok(): void {
    this.raw(this.resp ? RESP_OK : TEXT_OK);
  }

  /** The key is missing: `NOT_FOUND`, or a RESP null. */
  notFound(): void {
    this.raw(this.resp ? RESP_NULL : TEXT_NOT_FOUND);
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
        return this.error(reply.message, reply.code);
      case "integer":
        return this.integer(reply.value);
      case "status":
        return this.status(reply.text);
      case "array":
        return this.#array(reply.items);
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
    if (this.resp) {
      this.arrayHeader(items.length);
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
