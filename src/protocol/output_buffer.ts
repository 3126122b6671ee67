/**
 * A growable byte buffer that encoders append to: the server's replies and the client's requests
 * are built in one of these and leave in one write. Numbers are written as decimal digits without
 * making a string.
 *
 * @module
 */

const CR = 0x0d;
const LF = 0x0a;

/** Largest value `x | 0` keeps. */
const MAX_INT32 = 0x7fff_ffff;

/**
 * `Math.floor(n / 10)` of a whole number from 0 to 2^53: by 32-bit division when `n` fits, ~2.5×
 * faster for a reply's usual digits (docs/ARCHITECTURE.md, "Measured costs").
 */
function tenth(n: number): number {
  return n <= MAX_INT32 ? (n / 10) | 0 : Math.floor(n / 10);
}

/**
 * Bytes appended at the end of a buffer that doubles as needed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OutputBuffer } from "./output_buffer.ts";
 * const out = new OutputBuffer(4);
 * out.byte(0x3a);
 * out.digits(-1234567);
 * out.crlf();
 * assert.equal(new TextDecoder().decode(out.bytes), ":-1234567\r\n");
 * ```
 */
export class OutputBuffer {
  protected buffer: Uint8Array;
  readonly #initialBytes: number;
  /** Bytes written so far. */
  length = 0;

  constructor(initialBytes = 16 * 1024) {
    this.#initialBytes = initialBytes;
    this.buffer = new Uint8Array(initialBytes);
  }

  /** What was written (a view, valid until the next write or {@link reset}). */
  get bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  /** Current capacity in bytes. */
  get capacity(): number {
    return this.buffer.length;
  }

  /**
   * Empties the buffer. When it grew past `maxKeptBytes` it goes back to its initial size, so one
   * large reply does not pin its memory for the life of a connection.
   */
  reset(maxKeptBytes = Infinity): void {
    this.length = 0;
    if (this.buffer.length > maxKeptBytes) this.buffer = new Uint8Array(this.#initialBytes);
  }

  /** Makes room for `extra` more bytes. */
  reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buffer.length) return;
    let capacity = Math.max(this.buffer.length * 2, 64);
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }

  /** Appends bytes as they are. */
  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Appends one byte. */
  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  /** Appends `\r\n`. */
  crlf(): void {
    this.reserve(2);
    this.buffer[this.length++] = CR;
    this.buffer[this.length++] = LF;
  }

  /** Appends a safe integer as decimal digits. */
  digits(value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`${value} is not a safe integer`);
    this.reserve(17);
    if (value < 0) {
      this.buffer[this.length++] = 0x2d;
      value = -value;
    }
    let width = 1;
    for (let rest = value; rest >= 10; rest = tenth(rest)) width++;
    let at = this.length + width;
    this.length = at;
    let rest = value;
    do {
      const next = tenth(rest);
      this.buffer[--at] = 0x30 + (rest - next * 10);
      rest = next;
    } while (rest > 0);
  }
}
