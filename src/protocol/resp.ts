/**
 * The client side of RESP2: encoding commands as arrays of bulk strings, and an incremental
 * parser of replies. Used by `KVClient` and by the replication sender; pure, no I/O.
 *
 * @module
 */
import { OutputBuffer } from "./output_buffer.ts";

/**
 * A RESP error reply (`-CODE message`), as {@link RespReplyParser} returns it.
 *
 * @example
 * ```ts
 * import { RespErrorReply } from "./resp.ts";
 * const reply = new RespErrorReply("READONLY", "Replica nodes are read-only.");
 * console.log(reply.code); // READONLY
 * ```
 */
export class RespErrorReply {
  /** An error reply with its code word and message. */
  constructor(
    /** The first word of the error, e.g. `ERR` or `READONLY`. */
    readonly code: string,
    /** The rest of the error line. */
    readonly message: string,
  ) {}
}

/**
 * A parsed RESP2 reply: a simple string is a `string`, a bulk string a `Uint8Array`, an integer a
 * `number`, a null `null`, an error a {@link RespErrorReply}, an array an array.
 *
 * @example
 * ```ts
 * import type { RespValue } from "./resp.ts";
 * const replies: RespValue[] = ["OK", 1, null, new Uint8Array([0x61]), [2, "PONG"]];
 * ```
 */
export type RespValue = string | number | Uint8Array | null | RespErrorReply | RespValue[];

/** Thrown by {@link RespReplyParser} on bytes that are not RESP2: close the connection. */
export class RespProtocolError extends Error {
  override name = "RespProtocolError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * An argument of a command: bytes, or text sent as UTF-8.
 *
 * @example
 * ```ts
 * import type { CommandArgument } from "./resp.ts";
 * const command: CommandArgument[] = ["PUT", "key", new Uint8Array([1, 2])];
 * ```
 */
export type CommandArgument = Uint8Array | string;

/**
 * Appends commands as RESP arrays of bulk strings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RespCommandWriter } from "./resp.ts";
 * const out = new RespCommandWriter();
 * out.command(["SET", "k", new Uint8Array([0x76])]);
 * assert.equal(new TextDecoder().decode(out.bytes), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
 * ```
 */
export class RespCommandWriter extends OutputBuffer {
  /** Appends one command. */
  command(parts: readonly CommandArgument[]): void {
    this.byte(0x2a);
    this.digits(parts.length);
    this.crlf();
    for (const part of parts) {
      const bytes = typeof part === "string" ? encoder.encode(part) : part;
      this.byte(0x24);
      this.digits(bytes.length);
      this.crlf();
      this.raw(bytes);
      this.crlf();
    }
  }
}

/** Returned by {@link RespReplyParser.next} when the reply is not complete yet. */
export const INCOMPLETE: unique symbol = Symbol("incomplete");

interface OpenArray {
  items: RespValue[];
  remaining: number;
}

/** Options of a {@link RespReplyParser}. */
export interface RespReplyParserOptions {
  /** Most elements one array reply may declare (a bound on what a reply can make us allocate). */
  maxArrayElements?: number;
  /** Largest bulk string a reply may declare. */
  maxBulkBytes?: number;
  /**
   * Most bytes one whole reply may take, nested arrays included (default: no bound). A reply
   * that declares more, or keeps going past it, throws {@link RespProtocolError}.
   */
  maxReplyBytes?: number;
}

/**
 * Splits received bytes into replies. Complete elements are consumed as soon as they arrive
 * (bulk strings copied out), so the caller may reuse or compact its buffer after each call and a
 * large array reply is never rescanned.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INCOMPLETE, RespReplyParser } from "./resp.ts";
 * const parser = new RespReplyParser();
 * const data = new TextEncoder().encode("+OK\r\n*2\r\n$1\r\na\r\n$-1\r\n:7");
 * assert.equal(parser.next(data, 0), "OK");
 * const array = parser.next(data, parser.offset);
 * assert.ok(Array.isArray(array) && array[1] === null);
 * assert.equal(parser.next(data, parser.offset), INCOMPLETE);
 * ```
 */
export class RespReplyParser {
  readonly #maxArrayElements: number;
  readonly #maxBulkBytes: number;
  readonly #maxReplyBytes: number;
  readonly #stack: OpenArray[] = [];
  /** Bytes of the reply being parsed consumed by earlier calls. */
  #replyBytes = 0;
  /** Where this call started: bytes since then count towards the reply too. */
  #callStart = 0;
  /** Where the unconsumed bytes start after a call to {@link next}. */
  offset = 0;

  constructor(options: RespReplyParserOptions = {}) {
    this.#maxArrayElements = options.maxArrayElements ?? 100_000_000;
    this.#maxBulkBytes = options.maxBulkBytes ?? 2 ** 31;
    this.#maxReplyBytes = options.maxReplyBytes ?? Infinity;
  }

  /** Parses the next complete reply in `data` from `start`, or returns {@link INCOMPLETE}. */
  next(data: Uint8Array, start: number): RespValue | typeof INCOMPLETE {
    this.offset = start;
    this.#callStart = start;
    for (;;) {
      const value = this.#element(data);
      if (value === INCOMPLETE) {
        this.#replyBytes += this.offset - start;
        return INCOMPLETE;
      }
      let done: RespValue = value;
      for (;;) {
        const top = this.#stack.at(-1);
        if (top === undefined) {
          this.#replyBytes = 0;
          return done;
        }
        top.items.push(done);
        top.remaining--;
        if (top.remaining > 0) break;
        this.#stack.pop();
        done = top.items;
      }
    }
  }

  /** Throws when the reply would reach past `maxReplyBytes` once it ends at `end` in `data`. */
  #checkSize(end: number, data: Uint8Array): void {
    if (this.#maxReplyBytes === Infinity) return;
    const size = this.#replyBytes + (end - this.#callStart);
    if (size > this.#maxReplyBytes) {
      throw new RespProtocolError(
        `reply larger than ${this.#maxReplyBytes} bytes (at least ${size}${
          end > data.length ? " declared" : ""
        })`,
      );
    }
  }

  /** The next scalar element; array headers met on the way are pushed on the stack. */
  #element(data: Uint8Array): RespValue | typeof INCOMPLETE {
    for (;;) {
      const at = this.offset;
      if (at >= data.length) return INCOMPLETE;
      const lineEnd = data.indexOf(0x0a, at);
      if (lineEnd === -1) {
        if (data.length - at > 64 * 1024) throw new RespProtocolError("reply line too long");
        return INCOMPLETE;
      }
      if (lineEnd === at || data[lineEnd - 1] !== 0x0d) {
        throw new RespProtocolError("reply line does not end in CRLF");
      }
      this.#checkSize(lineEnd + 1, data);
      const type = data[at];
      const line = data.subarray(at + 1, lineEnd - 1);
      switch (type) {
        case 0x2b: // +
          this.offset = lineEnd + 1;
          return decoder.decode(line);
        case 0x2d: {
          // -
          this.offset = lineEnd + 1;
          const text = decoder.decode(line);
          const space = text.indexOf(" ");
          return space === -1
            ? new RespErrorReply(text, "")
            : new RespErrorReply(text.slice(0, space), text.slice(space + 1));
        }
        case 0x3a: // :
          this.offset = lineEnd + 1;
          return parseInteger(line);
        case 0x24: {
          // $
          const length = parseInteger(line);
          if (length === -1) {
            this.offset = lineEnd + 1;
            return null;
          }
          if (length < 0 || length > this.#maxBulkBytes) {
            throw new RespProtocolError(`bulk length ${length} is out of bounds`);
          }
          const payloadStart = lineEnd + 1;
          this.#checkSize(payloadStart + length + 2, data);
          if (payloadStart + length + 2 > data.length) return INCOMPLETE;
          if (data[payloadStart + length] !== 0x0d || data[payloadStart + length + 1] !== 0x0a) {
            throw new RespProtocolError("bulk string does not end in CRLF");
          }
          this.offset = payloadStart + length + 2;
          return data.slice(payloadStart, payloadStart + length);
        }
        case 0x2a: {
          // *
          const count = parseInteger(line);
          this.offset = lineEnd + 1;
          if (count === -1) return null;
          if (count < 0 || count > this.#maxArrayElements) {
            throw new RespProtocolError(`array length ${count} is out of bounds`);
          }
          if (count === 0) return [];
          this.#stack.push({ items: [], remaining: count });
          continue;
        }
        default:
          throw new RespProtocolError(`unknown reply type byte 0x${type.toString(16)}`);
      }
    }
  }
}

function parseInteger(line: Uint8Array): number {
  let at = 0;
  let negative = false;
  if (line[0] === 0x2d) {
    negative = true;
    at = 1;
  }
  if (at === line.length || line.length - at > 16) {
    throw new RespProtocolError("malformed integer in a reply");
  }
  let value = 0;
  for (; at < line.length; at++) {
    const digit = line[at] - 0x30;
    if (digit < 0 || digit > 9) throw new RespProtocolError("malformed integer in a reply");
    value = value * 10 + digit;
  }
  return negative ? -value : value;
}
