/**
 * Memory for the values that reads return. Allocating a `Uint8Array` of its own (a new
 * `ArrayBuffer` each time) costs more than the read itself; a view carved from a shared block
 * costs a small fraction of that (figures: docs/ARCHITECTURE.md, "Measured costs"). Small values
 * are therefore carved from blocks (as `node:buffer`'s `Buffer.allocUnsafe` does from its pool);
 * larger ones get their own buffer.
 *
 * Every array handed out is its own bytes: nothing else is ever written to them. What is shared
 * is the `ArrayBuffer` behind them (`value.buffer` holds other values too), and a value that is
 * kept keeps its whole block in memory.
 *
 * @module
 */

/** Hands out byte arrays for values, carving the small ones from shared blocks. */
export class ValueBlocks {
  #block: Uint8Array;
  #used = 0;

  /**
   * @param blockBytes size of one shared block
   * @param maxCarvedBytes largest array carved from a block; larger ones are allocated alone
   */
  constructor(readonly blockBytes: number, readonly maxCarvedBytes: number) {
    this.#block = new Uint8Array(blockBytes);
  }

  /** A new array of `length` bytes, zeroed, that no other call returns any part of. */
  take(length: number): Uint8Array {
    if (length > this.maxCarvedBytes) return new Uint8Array(length);
    if (this.#used + length > this.#block.length) {
      this.#block = new Uint8Array(this.blockBytes);
      this.#used = 0;
    }
    const at = this.#used;
    this.#used = at + length;
    return this.#block.subarray(at, at + length);
  }
}
