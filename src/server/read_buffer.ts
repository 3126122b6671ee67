/**
 * A connection's input. Its read buffer: the bytes read and not yet parsed (`start` to `end`),
 * reused from read to read, grown for a large request up to a bound, and shrunk back once emptied.
 * Its request parser, whose bound is MAX_REQUEST_BYTES once the connection authenticated and the
 * smaller MAX_UNAUTHENTICATED_REQUEST_BYTES before.
 *
 * Growth is reported before it happens (the server may close connections past
 * MAX_CLIENT_MEMORY_BYTES first): the read buffer's, and the parser's bookkeeping of the elements
 * of a RESP array still arriving (8 bytes an element, which a request of tiny elements makes
 * larger than its bytes). A buffer grown past {@link SHRINK_FACTOR} times its initial
 * size is a resizable `ArrayBuffer`: it grows in place and gives its pages back at once when
 * released, so the process's memory follows what MAX_CLIENT_MEMORY_BYTES counts.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { RequestParser } from "../protocol/mod.ts";

/**
 * A buffer that grew past this many times its initial size shrinks back once emptied; beyond it,
 * the read buffer is a resizable one.
 */
export const SHRINK_FACTOR = 8;
/**
 * A resizable read buffer reserves (address space, not memory) this many times its size, so it
 * grows in place for the next doublings; past that it moves once to a larger reservation.
 */
const GROWABLE_RESERVE_FACTOR = 4;

/** The bytes one connection read and has not parsed yet. */
export class ReadBuffer {
  /** The buffer; `start` to `end` is what was read and not yet parsed. */
  bytes: Uint8Array;
  start = 0;
  end = 0;
  readonly #initialBytes: number;
  /** Never grows past this (a request larger than MAX_REQUEST_BYTES is skipped, not kept). */
  readonly #maxBytes: number;
  /** The buffer's memory while it is grown past SHRINK_FACTOR times its initial size. */
  #growable: ArrayBuffer | undefined;
  /**
   * Called after the buffer shrank (with 0) and before it grows (with the bytes it is about to
   * allocate); false means the connection closed meanwhile: it does not grow.
   */
  readonly #sizeChanging: (aboutToAllocate: number) => boolean;

  constructor(
    initialBytes: number,
    maxBytes: number,
    sizeChanging: (aboutToAllocate: number) => boolean,
  ) {
    this.#initialBytes = initialBytes;
    this.#maxBytes = maxBytes;
    this.#sizeChanging = sizeChanging;
    this.bytes = new Uint8Array(initialBytes);
  }

  /** Memory held beyond the initial size. */
  get extraBytes(): number {
    return this.bytes.length - this.#initialBytes;
  }

  /** Bytes read and not parsed yet. */
  get pendingBytes(): number {
    return this.end - this.start;
  }

  /**
   * Makes room to read into: reuses the buffer, compacts it, or grows it for a large request (at
   * most to the bound and a read: a larger request is skipped by the parser, not kept).
   */
  makeRoom(): void {
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.bytes.length > this.#initialBytes * SHRINK_FACTOR) {
        this.release();
        this.bytes = new Uint8Array(this.#initialBytes);
        this.#sizeChanging(0);
      }
      return;
    }
    const minimumRead = this.#initialBytes / 2;
    if (this.bytes.length - this.end >= minimumRead) return;
    const pending = this.end - this.start;
    if (pending + minimumRead <= this.bytes.length) {
      this.bytes.copyWithin(0, this.start, this.end);
      this.start = 0;
      this.end = pending;
      return;
    }
    const doubled = Math.min(this.bytes.length * 2, this.#maxBytes);
    const size = Math.max(doubled, pending + minimumRead);
    // Reported first: past MAX_CLIENT_MEMORY_BYTES the server closes the connection holding the
    // most (maybe this one) before the new buffer exists.
    if (!this.#sizeChanging(size - this.bytes.length)) return;
    this.bytes.copyWithin(0, this.start, this.end);
    this.start = 0;
    this.end = pending;
    if (size <= this.#initialBytes * SHRINK_FACTOR) {
      const grown = new Uint8Array(size);
      grown.set(this.bytes.subarray(0, pending));
      this.bytes = grown;
      return;
    }
    this.#growResizable(size, pending);
  }

  /** Grows into a resizable buffer: in place when its reservation allows, else moved once. */
  #growResizable(size: number, pending: number): void {
    const growable = this.#growable;
    if (growable !== undefined && size <= growable.maxByteLength) {
      growable.resize(size); // this.bytes tracks its length
      return;
    }
    const reserved = Math.max(size, Math.min(size * GROWABLE_RESERVE_FACTOR, this.#maxBytes));
    const next = new ArrayBuffer(size, { maxByteLength: reserved });
    const grown = new Uint8Array(next);
    grown.set(this.bytes.subarray(0, pending));
    this.release();
    this.#growable = next;
    this.bytes = grown;
  }

  /**
   * Gives the memory of the resizable buffer back now. Only when no read is pending into it (its
   * pages are unmapped): from {@link makeRoom} and once the connection closed.
   */
  release(): void {
    this.#growable?.resize(0);
    this.#growable = undefined;
  }
}

/** The request size bound of a connection, and the setting that sets it (named when it is hit). */
export function requestBound(
  config: Config,
  authenticated: boolean,
): { bytes: number; setting: "MAX_REQUEST_BYTES" | "MAX_UNAUTHENTICATED_REQUEST_BYTES" } {
  return authenticated ? { bytes: config.MAX_REQUEST_BYTES, setting: "MAX_REQUEST_BYTES" } : {
    bytes: Math.min(config.MAX_UNAUTHENTICATED_REQUEST_BYTES, config.MAX_REQUEST_BYTES),
    setting: "MAX_UNAUTHENTICATED_REQUEST_BYTES",
  };
}

/**
 * The request parser of a new connection: bounded by {@link requestBound} and
 * MAX_REQUEST_ELEMENTS; `respOnly` (the RESP-only port) reads a line that is not a RESP array as
 * a Redis inline command. `elementsGrowing` hears of its growth before it happens (see
 * `RequestParserOptions.elementsGrowing`).
 */
export function newRequestParser(
  config: Config,
  authenticated: boolean,
  respOnly: boolean,
  elementsGrowing?: (aboutToAllocateBytes: number) => boolean,
): RequestParser {
  const bound = requestBound(config, authenticated);
  return new RequestParser({
    maxRequestBytes: bound.bytes,
    requestLimit: bound.setting,
    maxRequestElements: config.MAX_REQUEST_ELEMENTS,
    inline: respOnly,
    maxInlineBytes: config.MAX_INLINE_REQUEST_BYTES,
    elementsGrowing,
  });
}
