/**
 * Incremental request parser for both framings on one port.
 *
 * A request that starts with `*` is a RESP2 array of bulk strings (Redis's framing); anything else
 * is one text line ending in `\n` (the original system's framing). The parser works over the
 * connection's own buffer: it is handed the bytes received so far and a start offset, returns the
 * next complete request, and remembers how far it got through a request that is still arriving,
 * so a request that spans many reads is scanned once, not once per read.
 *
 * Text requests are normalized to the RESP shape here, at the edge: `PUT k v` gives args
 * `[k, unescaped v]`, `BATCHPUT k1||k2 v1||v2` gives `[k1, v1, k2, v2]`, `REPLICATE PUT k v` gives
 * `[PUT, k, v]`, and a word without special syntax is split on spaces. Text values are unescaped
 * here exactly once; the rest of kvstore only sees raw bytes.
 *
 * The returned `name` and `args` are views into the caller's buffer: valid until the caller
 * reuses that part of the buffer (copy them to keep them longer).
 *
 * Limits: a request (text line or whole RESP array) may be at most `maxRequestBytes` long. Past
 * it the parser returns a non-fatal error once, then skips the rest of that request without
 * buffering it (text: up to the next newline; RESP: the declared lengths), so the connection stays
 * usable. A request of more than `maxRequestElements` words is refused the same way (a RESP array
 * as soon as its header says so, before any element is kept), so a request's memory (a view per
 * word) is bounded by its count, not only by its bytes. A RESP frame that breaks the framing gives
 * a fatal error: the connection must close (the parser ignores everything after it).
 *
 * Memory of a RESP array still arriving: the parser keeps where each element received so far
 * starts and how long it is, {@link ELEMENT_SLOT_BYTES} per element in typed arrays (no object per
 * element: a request of tiny elements, `$0\r\n\r\n` is 6 bytes, must not cost the heap many times
 * its size). They grow by doubling, never past the count the header declared, and
 * `elementsGrowing` hears of each growth before it is allocated, as the read buffer's growth is
 * (the server may close the connection first); {@link RequestParser.extraBytes} is what they hold
 * beyond their initial size.
 *
 * @module
 */
import { CommandTable } from "./command_table.ts";
import { unescapeValue } from "./escape.ts";

/** The two wire framings. */
export type Framing = "text" | "resp";

/** One complete request. */
export interface Request {
  kind: "request";
  framing: Framing;
  /** The command word as sent (any case). */
  name: Uint8Array;
  /** Arguments after the command word, text values already unescaped. */
  args: Uint8Array[];
}

/** A request that could not be parsed. */
export interface RequestError {
  kind: "error";
  framing: Framing;
  /** What was wrong, for the `ERROR:` reply. */
  message: string;
  /** True when the framing is lost: reply, then close the connection. */
  fatal: boolean;
  /** The setting whose bound the request broke, when that is what was wrong. */
  limit?: RequestLimit;
}

/** The settings whose bounds the parser enforces. */
export type RequestLimit =
  | "MAX_REQUEST_BYTES"
  | "MAX_UNAUTHENTICATED_REQUEST_BYTES"
  | "MAX_REQUEST_ELEMENTS";

/** What {@link RequestParser.next} returns for a complete request or a bad one. */
export type ParseResult = Request | RequestError;

/** Options of a {@link RequestParser}. */
export interface RequestParserOptions {
  /** Largest request in bytes (MAX_REQUEST_BYTES). */
  maxRequestBytes: number;
  /** The setting `maxRequestBytes` comes from, named in the error (default MAX_REQUEST_BYTES). */
  requestLimit?: RequestLimit;
  /**
   * Most words in one request (MAX_REQUEST_ELEMENTS): RESP elements, or the words and `||`
   * parts of a text line. Default: no bound beyond the size.
   */
  maxRequestElements?: number;
  /**
   * Parse lines that do not start with `*` as Redis inline commands (RESP framing) rather than
   * the text protocol (the RESP-only listener). Default false.
   */
  inline?: boolean;
  /** Inline mode: the longest inline line (MAX_INLINE_REQUEST_BYTES). Default 64 KiB. */
  maxInlineBytes?: number;
  /**
   * Called before the element bookkeeping of a RESP array grows, with the bytes it is about to
   * allocate; false means the connection closed meanwhile: it does not grow, and {@link
   * RequestParser.next} returns `undefined`. Default: always grows.
   */
  elementsGrowing?: (aboutToAllocateBytes: number) => boolean;
}

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const STAR = 0x2a;
const DOLLAR = 0x24;
const PIPE = 0x7c;

/** Longest command word the parser keeps a copy of (Redis's longest are ~20 bytes). */
const MAX_KEPT_NAME_BYTES = 32;

/** Most digits in a RESP header number (`*123\r\n`, `$45\r\n`); more breaks the framing. */
const MAX_HEADER_DIGITS = 12;

/** Bytes the parser keeps per element of a RESP array: its start and its length, 4 bytes each. */
const ELEMENT_SLOT_BYTES = 8;
/** Elements a parser has room for from the start (a larger array grows the room). */
const INITIAL_ELEMENT_SLOTS = 16;
/** Room for more elements than this is given back after its request (not kept). */
const KEPT_ELEMENT_SLOTS = 1024;

/** Returned by the RESP step when it consumed an empty array and parsing goes on. */
const SKIPPED = Symbol("skipped");

type TextSyntax = (
  line: Uint8Array,
  word: Uint8Array,
  rest: number,
  maxElements: number,
) => ParseResult;

const enum Mode {
  Idle,
  Text,
  Inline,
  TextDiscard,
  Resp,
  RespDiscard,
  /** After a fatal error: everything is consumed and ignored. */
  Broken,
}

/**
 * Splits the request bytes of one connection into requests.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RequestParser } from "./request_parser.ts";
 * const parser = new RequestParser({ maxRequestBytes: 1024 });
 * const data = new TextEncoder().encode("PUT k a\\tb\n*2\r\n$4\r\nREAD\r\n$1\r\nk\r\n");
 * const first = parser.next(data, 0);
 * assert.equal(first?.kind, "request");
 * const second = parser.next(data, parser.offset);
 * assert.equal(second?.kind === "request" && second.framing, "resp");
 * assert.equal(parser.next(data, parser.offset), undefined); // needs more bytes
 * ```
 */
export class RequestParser {
  #maxRequestBytes: number;
  #requestLimit: RequestLimit;
  readonly #maxElements: number;
  readonly #inline: boolean;
  readonly #maxInlineBytes: number;
  readonly #elementsGrowing: ((aboutToAllocateBytes: number) => boolean) | undefined;
  #mode = Mode.Idle;
  /** Text: bytes of the current line already searched for a newline. */
  #scanned = 0;
  /** RESP: elements declared by the array header. */
  #expected = 0;
  /** RESP: parse position relative to the start of the current request. */
  #position = 0;
  /** RESP: elements received so far. */
  #received = 0;
  /**
   * RESP: start and length of each element received so far, relative to the request start (a
   * request is at most MAX_REQUEST_BYTES, under 4 GiB). Both have the same length.
   */
  #elementStarts = new Uint32Array(INITIAL_ELEMENT_SLOTS);
  #elementLengths = new Uint32Array(INITIAL_ELEMENT_SLOTS);
  /** Scratch space of {@link readHeader}. */
  readonly #header: HeaderResult = { value: 0, next: 0, error: "" };
  /** A copy of the last command word (see {@link #commandName}): never a view of the input. */
  #lastName = new Uint8Array(0);
  /** RESP discard: elements whose header is still to be skipped. */
  #discardElements = 0;
  /** Discard: payload bytes still to be skipped. */
  #discardBytes = 0;
  /** Where the next request starts, after a call to {@link next}. */
  offset = 0;

  constructor(options: RequestParserOptions) {
    this.#maxRequestBytes = options.maxRequestBytes;
    this.#requestLimit = options.requestLimit ?? "MAX_REQUEST_BYTES";
    this.#maxElements = options.maxRequestElements ?? Infinity;
    this.#inline = options.inline ?? false;
    this.#maxInlineBytes = options.maxInlineBytes ?? 64 * 1024;
    this.#elementsGrowing = options.elementsGrowing;
  }

  /** Memory of the element bookkeeping beyond its initial size (see `elementsGrowing`). */
  get extraBytes(): number {
    return (this.#elementStarts.length - INITIAL_ELEMENT_SLOTS) * ELEMENT_SLOT_BYTES;
  }

  /**
   * Changes the request size bound from the next request on (e.g. once a connection
   * authenticated it may send up to MAX_REQUEST_BYTES instead of the unauthenticated bound).
   */
  setMaxRequestBytes(maxRequestBytes: number, requestLimit: RequestLimit): void {
    this.#maxRequestBytes = maxRequestBytes;
    this.#requestLimit = requestLimit;
  }

  /** True when part of a request has been received but not all of it. */
  get midRequest(): boolean {
    return this.#mode !== Mode.Idle;
  }

  /**
   * Parses the next request in `data` from `start` (`data` ends at the last byte received).
   * Returns it, or `undefined` when more bytes are needed; either way {@link offset} is where the
   * unconsumed bytes start (bytes of an oversized request are consumed while skipped).
   */
  next(data: Uint8Array, start: number): ParseResult | undefined {
    this.offset = start;
    for (;;) {
      switch (this.#mode) {
        case Mode.Idle:
          if (this.offset >= data.length) return undefined;
          this.#mode = data[this.offset] === STAR
            ? Mode.Resp
            : this.#inline
            ? Mode.Inline
            : Mode.Text;
          this.#scanned = 0;
          this.#position = 0;
          this.#expected = -1;
          this.#received = 0;
          continue;
        case Mode.Text:
          return this.#nextText(data);
        case Mode.Inline: {
          const result = this.#nextInline(data);
          if (result === SKIPPED) continue;
          return result;
        }
        case Mode.TextDiscard: {
          const newline = data.indexOf(LF, this.offset);
          if (newline === -1) {
            this.offset = data.length;
            return undefined;
          }
          this.offset = newline + 1;
          this.#mode = Mode.Idle;
          continue;
        }
        case Mode.Resp: {
          const result = this.#nextResp(data);
          if (result === SKIPPED) continue;
          return result;
        }
        case Mode.RespDiscard:
          if (this.#skipResp(data)) continue;
          return undefined;
        case Mode.Broken:
          this.offset = data.length;
          return undefined;
      }
    }
  }

  #tooLarge(framing: Framing): RequestError {
    return {
      kind: "error",
      framing,
      message: `request is larger than ${this.#requestLimit} (${this.#maxRequestBytes} bytes)`,
      fatal: false,
      limit: this.#requestLimit,
    };
  }

  #nextText(data: Uint8Array): ParseResult | undefined {
    const start = this.offset;
    const newline = data.indexOf(LF, start + this.#scanned);
    if (newline === -1) {
      const received = data.length - start;
      if (received > this.#maxRequestBytes) {
        this.offset = data.length;
        this.#mode = Mode.TextDiscard;
        return this.#tooLarge("text");
      }
      this.#scanned = received;
      return undefined;
    }
    this.offset = newline + 1;
    this.#mode = Mode.Idle;
    if (newline + 1 - start > this.#maxRequestBytes) return this.#tooLarge("text");
    const end = newline > start && data[newline - 1] === CR ? newline - 1 : newline;
    return parseTextLine(data.subarray(start, end), this.#maxElements);
  }

  #nextInline(data: Uint8Array): ParseResult | undefined | typeof SKIPPED {
    const start = this.offset;
    const newline = data.indexOf(LF, start + this.#scanned);
    const length = (newline === -1 ? data.length : newline + 1) - start;
    if (length > this.#maxInlineBytes || length > this.#maxRequestBytes) {
      return this.#fatal("too big inline request");
    }
    if (newline === -1) {
      this.#scanned = length;
      return undefined;
    }
    this.offset = newline + 1;
    this.#mode = Mode.Idle;
    const end = newline > start && data[newline - 1] === CR ? newline - 1 : newline;
    const words = splitInlineArgs(data.subarray(start, end));
    if (words === undefined) return this.#fatal("unbalanced quotes in request");
    if (words.length === 0) return SKIPPED;
    if (words.length > this.#maxElements) {
      return tooManyElements("resp", words.length, this.#maxElements);
    }
    return { kind: "request", framing: "resp", name: words[0], args: words.slice(1) };
  }

  #nextResp(data: Uint8Array): ParseResult | undefined | typeof SKIPPED {
    const start = this.offset;
    const header = this.#header;
    if (this.#expected === -1) {
      const status = readHeader(data, start, STAR, header);
      if (status === Header.Incomplete) return undefined;
      // Redis's words for a header it cannot read.
      if (status === Header.Malformed) return this.#fatal("invalid multibulk length");
      const count = header.value;
      const after = header.next;
      this.#position = after - start;
      if (count <= 0) {
        // Redis ignores an empty or null array; so do we (no reply).
        this.offset = after;
        this.#mode = Mode.Idle;
        return SKIPPED;
      }
      if (count > Math.floor(this.#maxRequestBytes / 6)) {
        return this.#fatal("invalid multibulk length");
      }
      if (count > this.#maxElements) {
        // Skipped by its declared lengths, element by element, never kept.
        this.#discardElements = count;
        this.#discardBytes = 0;
        this.offset = after;
        this.#mode = Mode.RespDiscard;
        return tooManyElements("resp", count, this.#maxElements);
      }
      this.#expected = count;
    }
    while (this.#received < this.#expected) {
      const at = start + this.#position;
      const status = readHeader(data, at, DOLLAR, header);
      if (status === Header.Incomplete) return undefined;
      if (status === Header.Malformed) {
        return this.#fatal(data[at] === DOLLAR ? "invalid bulk length" : header.error);
      }
      const length = header.value;
      const payloadStart = header.next;
      if (length < 0) return this.#fatal("invalid bulk length");
      const payloadEnd = payloadStart + length;
      if (payloadEnd + 2 - start > this.#maxRequestBytes) {
        this.#releaseSlots();
        this.#discardElements = this.#expected - this.#received - 1;
        this.#discardBytes = length + 2;
        this.offset = payloadStart;
        this.#mode = Mode.RespDiscard;
        return this.#tooLarge("resp");
      }
      if (payloadEnd + 2 > data.length) return undefined;
      if (data[payloadEnd] !== CR || data[payloadEnd + 1] !== LF) {
        return this.#fatal("expected CRLF after a bulk string");
      }
      if (this.#received === this.#elementStarts.length && !this.#growSlots()) return undefined;
      this.#elementStarts[this.#received] = payloadStart - start;
      this.#elementLengths[this.#received] = length;
      this.#received++;
      this.#position = payloadEnd + 2 - start;
    }
    return this.#takeRequest(data, start);
  }

  /**
   * The RESP request whose elements were all received, as views into `data` (the array starts at
   * `start`); the parser moves past it.
   */
  #takeRequest(data: Uint8Array, start: number): ParseResult {
    const starts = this.#elementStarts;
    const lengths = this.#elementLengths;
    const count = this.#received;
    const name = this.#commandName(data, start + starts[0], lengths[0]);
    const args = new Array<Uint8Array>(count - 1);
    for (let i = 1; i < count; i++) {
      args[i - 1] = data.subarray(start + starts[i], start + starts[i] + lengths[i]);
    }
    this.offset = start + this.#position;
    this.#mode = Mode.Idle;
    if (starts.length > KEPT_ELEMENT_SLOTS) this.#releaseSlots();
    return { kind: "request", framing: "resp", name, args };
  }

  /**
   * The command word at `data[at, at + length)`: the copy kept of the last one when the bytes are
   * the same (a pipeline repeats its few command words), else a view, whose copy is kept when
   * short. A view is a new typed array (tens of ns and garbage); comparing a few bytes is not.
   */
  #commandName(data: Uint8Array, at: number, length: number): Uint8Array {
    const last = this.#lastName;
    if (last.length === length) {
      let i = 0;
      while (i < length && last[i] === data[at + i]) i++;
      if (i === length) return last;
    }
    const name = data.subarray(at, at + length);
    if (length <= MAX_KEPT_NAME_BYTES) this.#lastName = name.slice();
    return name;
  }

  /**
   * Doubles the element bookkeeping (never past the declared count), once `elementsGrowing`
   * allowed it; false when it did not.
   */
  #growSlots(): boolean {
    const slots = this.#elementStarts.length;
    const grown = Math.min(slots * 2, this.#expected);
    if (this.#elementsGrowing?.((grown - slots) * ELEMENT_SLOT_BYTES) === false) return false;
    const starts = new Uint32Array(grown);
    const lengths = new Uint32Array(grown);
    starts.set(this.#elementStarts);
    lengths.set(this.#elementLengths);
    this.#elementStarts = starts;
    this.#elementLengths = lengths;
    return true;
  }

  /** Gives back the bookkeeping a large array grew (its request is done or skipped). */
  #releaseSlots(): void {
    if (this.#elementStarts.length === INITIAL_ELEMENT_SLOTS) return;
    this.#elementStarts = new Uint32Array(INITIAL_ELEMENT_SLOTS);
    this.#elementLengths = new Uint32Array(INITIAL_ELEMENT_SLOTS);
  }

  /** Skips the rest of an oversized RESP array; true once all of it is skipped. */
  #skipResp(data: Uint8Array): boolean {
    for (;;) {
      if (this.#discardBytes > 0) {
        const skip = Math.min(this.#discardBytes, data.length - this.offset);
        this.offset += skip;
        this.#discardBytes -= skip;
        if (this.#discardBytes > 0) return false;
      }
      if (this.#discardElements === 0) {
        this.#mode = Mode.Idle;
        return true;
      }
      const header = this.#header;
      const status = readHeader(data, this.offset, DOLLAR, header);
      if (status === Header.Incomplete) return false;
      if (status === Header.Malformed || header.value < 0) {
        // The framing is lost inside a request we already answered: resynchronise at the next
        // line instead, as the text framing does.
        this.#mode = Mode.TextDiscard;
        return true;
      }
      this.#discardElements--;
      this.#discardBytes = header.value + 2;
      this.offset = header.next;
    }
  }

  #fatal(message: string): RequestError {
    this.#mode = Mode.Broken;
    return { kind: "error", framing: "resp", message: `Protocol error: ${message}`, fatal: true };
  }
}

/** What {@link readHeader} found. */
const enum Header {
  Incomplete,
  Complete,
  Malformed,
}

/** Where {@link readHeader} puts a header's number, the offset after it, or what was wrong. */
interface HeaderResult {
  value: number;
  next: number;
  error: string;
}

/**
 * Reads `<marker><integer>\r\n` at `at` into `result` (reused, so parsing a header allocates
 * nothing).
 */
function readHeader(data: Uint8Array, at: number, marker: number, result: HeaderResult): Header {
  if (at >= data.length) return Header.Incomplete;
  if (data[at] !== marker) {
    result.error = `expected '${String.fromCharCode(marker)}', got '${printable(data[at])}'`;
    return Header.Malformed;
  }
  let i = at + 1;
  let negative = false;
  if (i < data.length && data[i] === 0x2d) {
    negative = true;
    i++;
  }
  let value = 0;
  let digits = 0;
  for (; i < data.length; i++) {
    const byte = data[i];
    if (byte >= 0x30 && byte <= 0x39) {
      value = value * 10 + (byte - 0x30);
      if (++digits > MAX_HEADER_DIGITS) {
        result.error = "header number too long";
        return Header.Malformed;
      }
      continue;
    }
    if (byte !== CR) {
      result.error = `unexpected byte '${printable(byte)}' in a header`;
      return Header.Malformed;
    }
    if (digits === 0) {
      result.error = "header without a number";
      return Header.Malformed;
    }
    if (i + 1 >= data.length) return Header.Incomplete;
    if (data[i + 1] !== LF) {
      result.error = "expected CRLF after a header";
      return Header.Malformed;
    }
    result.value = negative ? -value : value;
    result.next = i + 2;
    return Header.Complete;
  }
  return Header.Incomplete;
}

const scanHeader: HeaderResult = { value: 0, next: 0, error: "" };

/**
 * Where the first argument (for most commands, the key) of each of the next complete RESP
 * requests in `data` from `at` lies, for at most `starts.length` requests: a look ahead for
 * `KVStore.warmLookups`, not a parse. It consumes nothing, and stops at the first request that is
 * not a complete RESP array of 2 to `maxElements` elements (an inline or text request, a partial
 * or a malformed one) or whose first argument is longer than `maxArgumentBytes`. Returns how many
 * it found: the i-th is `data[starts[i], ends[i])`.
 */
export function scanFirstArguments(
  data: Uint8Array,
  at: number,
  bounds: { maxElements: number; maxArgumentBytes: number },
  starts: Int32Array,
  ends: Int32Array,
): number {
  const header = scanHeader;
  let found = 0;
  while (found < starts.length) {
    if (readHeader(data, at, STAR, header) !== Header.Complete) break;
    const count = header.value;
    if (count < 2 || count > bounds.maxElements) break;
    at = header.next;
    for (let element = 0; element < count; element++) {
      if (readHeader(data, at, DOLLAR, header) !== Header.Complete || header.value < 0) {
        return found;
      }
      const payloadStart = header.next;
      at = payloadStart + header.value + 2;
      if (at > data.length) return found;
      if (element === 1) {
        if (header.value > bounds.maxArgumentBytes) return found;
        starts[found] = payloadStart;
        ends[found] = payloadStart + header.value;
      }
    }
    found++;
  }
  return found;
}

function printable(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16)}`;
}

// ---------------------------------------------------------------------------------------------
// Redis inline commands

const QUOTE = 0x22;
const APOSTROPHE = 0x27;
const BACKSLASH = 0x5c;

/** C's `isspace`: what separates inline words. */
function isSpace(byte: number): boolean {
  return byte === SPACE || (byte >= 0x09 && byte <= 0x0d);
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  return -1;
}

/** The byte `\<byte>` stands for inside double quotes. */
function escaped(byte: number): number {
  switch (byte) {
    case 0x6e: // n
      return LF;
    case 0x72: // r
      return CR;
    case 0x74: // t
      return 0x09;
    case 0x62: // b
      return 0x08;
    case 0x61: // a
      return 0x07;
    default:
      return byte;
  }
}

/**
 * Splits an inline command line into words by Redis's `sdssplitargs` rules; `undefined` for
 * unbalanced quotes (or a closing quote not followed by a space). A NUL byte ends the line, as
 * it ends Redis's C string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitInlineArgs } from "./request_parser.ts";
 * const words = splitInlineArgs(new TextEncoder().encode(`SET k "a b\\x41" 'it\\'s'`));
 * assert.deepEqual(words?.map((w) => new TextDecoder().decode(w)), ["SET", "k", "a bA", "it's"]);
 * assert.equal(splitInlineArgs(new TextEncoder().encode(`ECHO "open`)), undefined);
 * ```
 */
export function splitInlineArgs(line: Uint8Array): Uint8Array[] | undefined {
  const nul = line.indexOf(0);
  const end = nul === -1 ? line.length : nul;
  const words: Uint8Array[] = [];
  let i = 0;
  for (;;) {
    while (i < end && isSpace(line[i])) i++;
    if (i >= end) return words;
    const word: number[] = [];
    let quote = 0;
    for (;;) {
      if (quote === QUOTE) {
        if (i >= end) return undefined;
        const byte = line[i];
        if (
          byte === BACKSLASH && i + 3 < end && line[i + 1] === 0x78 &&
          hexValue(line[i + 2]) >= 0 && hexValue(line[i + 3]) >= 0
        ) {
          word.push(hexValue(line[i + 2]) * 16 + hexValue(line[i + 3]));
          i += 4;
        } else if (byte === BACKSLASH && i + 1 < end) {
          word.push(escaped(line[i + 1]));
          i += 2;
        } else if (byte === QUOTE) {
          if (i + 1 < end && !isSpace(line[i + 1])) return undefined;
          i++;
          break;
        } else {
          word.push(byte);
          i++;
        }
      } else if (quote === APOSTROPHE) {
        if (i >= end) return undefined;
        const byte = line[i];
        if (byte === BACKSLASH && i + 1 < end && line[i + 1] === APOSTROPHE) {
          word.push(APOSTROPHE);
          i += 2;
        } else if (byte === APOSTROPHE) {
          if (i + 1 < end && !isSpace(line[i + 1])) return undefined;
          i++;
          break;
        } else {
          word.push(byte);
          i++;
        }
      } else {
        if (i >= end) break;
        const byte = line[i];
        if (byte === SPACE || byte === LF || byte === CR || byte === 0x09) break;
        if (byte === QUOTE || byte === APOSTROPHE) quote = byte;
        else word.push(byte);
        i++;
      }
    }
    words.push(Uint8Array.from(word));
  }
}

// ---------------------------------------------------------------------------------------------
// Text lines

/** Splits off the first space-separated word at or after `from`; returns [word, next offset]. */
function word(line: Uint8Array, from: number): [Uint8Array, number] | undefined {
  if (from > line.length) return undefined;
  const space = line.indexOf(SPACE, from);
  const end = space === -1 ? line.length : space;
  return [line.subarray(from, end), space === -1 ? line.length + 1 : space + 1];
}

function textError(message: string): RequestError {
  return { kind: "error", framing: "text", message, fatal: false };
}

function tooManyElements(framing: Framing, count: number | undefined, max: number): RequestError {
  return {
    kind: "error",
    framing,
    message: `request has ${count === undefined ? "more" : count} words, more than ` +
      `MAX_REQUEST_ELEMENTS (${max})`,
    fatal: false,
    limit: "MAX_REQUEST_ELEMENTS",
  };
}

function textRequest(name: Uint8Array, args: Uint8Array[]): Request {
  return { kind: "request", framing: "text", name, args };
}

/** Splits `bytes` on `||`; undefined past `max` parts. */
function splitPipes(bytes: Uint8Array, max: number): Uint8Array[] | undefined {
  const parts: Uint8Array[] = [];
  let from = 0;
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === PIPE && bytes[i + 1] === PIPE) {
      if (parts.length >= max) return undefined;
      parts.push(bytes.subarray(from, i));
      from = i + 2;
      i++;
    }
  }
  if (parts.length >= max) return undefined;
  parts.push(bytes.subarray(from));
  return parts;
}

/** `BATCHPUT k1||k2 v1||v2` → `[k1, v1, k2, v2]`, values unescaped. */
function interleavePairs(
  keys: Uint8Array,
  values: Uint8Array,
  maxElements: number,
): Uint8Array[] | RequestError {
  const maxPairs = Math.floor(maxElements / 2);
  const keyList = splitPipes(keys, maxPairs);
  const valueList = keyList === undefined ? undefined : splitPipes(values, maxPairs);
  if (keyList === undefined || valueList === undefined) {
    return tooManyElements("text", undefined, maxElements);
  }
  if (keyList.length !== valueList.length) return textError("Keys and values count mismatch");
  const args = new Array<Uint8Array>(keyList.length * 2);
  for (let i = 0; i < keyList.length; i++) {
    args[2 * i] = keyList[i];
    args[2 * i + 1] = unescapeValue(valueList[i]);
  }
  return args;
}

/** `PUT <key> [value...]`: the value is the rest of the line (may be empty or hold spaces). */
const putSyntax: TextSyntax = (line, name, rest) => {
  const key = word(line, rest);
  if (key === undefined) return textError(`${upperAscii(name)} requires key`);
  const value = key[1] > line.length ? line.subarray(line.length) : line.subarray(key[1]);
  return textRequest(name, [key[0], unescapeValue(value)]);
};

/**
 * `PUTEX <key> <expireInMs> <value>`: a PUT whose key expires after `expireInMs` ms; the value
 * is the rest of the line, as for PUT.
 */
const putExpiringSyntax: TextSyntax = (line, name, rest) => {
  const key = word(line, rest);
  const ttl = key === undefined || key[1] > line.length ? undefined : word(line, key[1]);
  if (key === undefined || ttl === undefined) {
    return textError("PUTEX requires key, expireInMs and value");
  }
  const value = ttl[1] > line.length ? line.subarray(line.length) : line.subarray(ttl[1]);
  return textRequest(name, [key[0], ttl[0], unescapeValue(value)]);
};

/** `READ <key>` / `DELETE <key>`: exactly one word after the command. */
const oneKeySyntax: TextSyntax = (line, name, rest) => {
  const key = word(line, rest);
  if (key === undefined || key[1] <= line.length) {
    return textError(`${upperAscii(name)} requires key`);
  }
  return textRequest(name, [key[0]]);
};

/** `READRANGE <start> <end>`: the end key is the rest of the line, as in the original. */
const rangeSyntax: TextSyntax = (line, name, rest) => {
  const start = word(line, rest);
  if (start === undefined || start[1] > line.length) {
    return textError("READRANGE requires start_key and end_key");
  }
  return textRequest(name, [start[0], line.subarray(start[1])]);
};

const batchSyntax: TextSyntax = (line, name, rest, maxElements) => {
  const keys = word(line, rest);
  if (keys === undefined || keys[1] > line.length) {
    return textError("BATCHPUT requires keys and values");
  }
  const args = interleavePairs(keys[0], line.subarray(keys[1]), maxElements);
  return Array.isArray(args) ? textRequest(name, args) : args;
};

/** `REPLICATE PUT|BATCHPUT|DELETE ...` (the master-to-replica commands of the original). */
const replicateSyntax: TextSyntax = (line, name, rest, maxElements) => {
  const sub = word(line, rest);
  if (sub === undefined) return textError("REPLICATE requires subcommand");
  const [subName, after] = sub;
  const subWord = upperAscii(subName);
  if (subWord === "PUT") {
    const key = word(line, after);
    if (key === undefined || key[1] > line.length) {
      return textError("REPLICATE PUT requires key and value");
    }
    return textRequest(name, [subName, key[0], unescapeValue(line.subarray(key[1]))]);
  }
  if (subWord === "BATCHPUT") {
    const keys = word(line, after);
    if (keys === undefined || keys[1] > line.length) {
      return textError("REPLICATE BATCHPUT requires keys and values");
    }
    const args = interleavePairs(keys[0], line.subarray(keys[1]), maxElements);
    return Array.isArray(args) ? textRequest(name, [subName, ...args]) : args;
  }
  if (subWord === "DELETE") {
    const key = word(line, after);
    if (key === undefined || key[1] <= line.length) {
      return textError("REPLICATE DELETE requires key");
    }
    return textRequest(name, [subName, key[0]]);
  }
  const words = splitWords(line, after, maxElements);
  if (words === undefined) return tooManyElements("text", undefined, maxElements);
  return textRequest(name, [subName, ...words]);
};

const TEXT_SYNTAX = new CommandTable<TextSyntax>([
  ["PUT", putSyntax],
  ["PUTEX", putExpiringSyntax],
  ["SET", putSyntax],
  ["READ", oneKeySyntax],
  ["DELETE", oneKeySyntax],
  ["READRANGE", rangeSyntax],
  ["BATCHPUT", batchSyntax],
  ["REPLICATE", replicateSyntax],
]);

/**
 * Words separated by runs of spaces (the generic rule for commands without special syntax);
 * undefined past `max` words.
 */
function splitWords(line: Uint8Array, from: number, max: number): Uint8Array[] | undefined {
  const words: Uint8Array[] = [];
  let i = from;
  while (i < line.length) {
    if (line[i] === SPACE) {
      i++;
      continue;
    }
    if (words.length >= max) return undefined;
    const space = line.indexOf(SPACE, i);
    const end = space === -1 ? line.length : space;
    words.push(line.subarray(i, end));
    i = end;
  }
  return words;
}

function upperAscii(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length && i < 64; i++) {
    const byte = bytes[i] >= 0x61 && bytes[i] <= 0x7a ? bytes[i] - 0x20 : bytes[i];
    text += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : "?";
  }
  return text;
}

/**
 * Parses one text line (without its `\n` and trailing `\r`) the way the original system did:
 * the command word is case-insensitive and separated by single spaces. A line of more than
 * `maxElements` words (or `||` parts) is an error.
 */
export function parseTextLine(line: Uint8Array, maxElements = Infinity): ParseResult {
  const space = line.indexOf(SPACE);
  const name = space === -1 ? line : line.subarray(0, space);
  const rest = space === -1 ? line.length + 1 : space + 1;
  const syntax = TEXT_SYNTAX.get(name);
  if (syntax !== undefined) return syntax(line, name, rest, maxElements);
  const words = splitWords(line, rest, maxElements);
  if (words === undefined) return tooManyElements("text", undefined, maxElements);
  return textRequest(name, words);
}
