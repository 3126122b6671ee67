/**
 * The index's ordered set: index slots (see `key_index.ts`) ordered by their keys, as a list of
 * sorted chunks (each at most `2 × CHUNK_TARGET` slots) plus each chunk's last key. Insert and
 * remove are two binary searches and one short `splice`; a range is found in O(log n) and walked
 * in order; a set is built from already sorted slots in O(n) (recovery); and
 * {@link SortedKeys.clone} is O(chunks), with chunks copied on first write afterwards
 * (copy-on-write snapshots).
 *
 * Slots, not key strings, are stored: a walk in key order then knows each entry's location
 * without a hash lookup (sealing a segment writes its hint that way), and a slot costs the same 8
 * bytes as a string pointer. Comparisons read the key through the index's slot → key array.
 * Measured against npm `sorted-btree` at 1,000,000 keys: the same insert and lookup cost (both are
 * bound by string comparisons that miss the cache), but an O(n) build from sorted keys.
 *
 * Keys are "byte strings" (one UTF-16 code unit per byte), so `<` compares them by bytes. The
 * owner must not reuse a slot while a clone that holds it is in use.
 *
 * @module
 */

const CHUNK_TARGET = 512;

/** A sorted set of slots with cheap copy-on-write clones. */
export class SortedKeys {
  #chunks: number[][] = [];
  #lasts: string[] = [];
  /** Chunk `i` may be written in place only when `#owned[i]` is true. */
  #owned: boolean[] = [];
  #size = 0;

  /** @param keys the key of each slot (the index's array; read, never written) */
  constructor(readonly keys: readonly string[]) {}

  /** Builds a set from slots whose keys are sorted ascending and distinct. */
  static fromSorted(keys: readonly string[], slots: readonly number[]): SortedKeys {
    const set = new SortedKeys(keys);
    for (let i = 0; i < slots.length; i += CHUNK_TARGET) {
      const chunk = slots.slice(i, i + CHUNK_TARGET);
      set.#chunks.push(chunk);
      set.#lasts.push(keys[chunk[chunk.length - 1]]);
      set.#owned.push(true);
    }
    set.#size = slots.length;
    return set;
  }

  /** Number of slots. */
  get size(): number {
    return this.#size;
  }

  /** A copy that later changes to either set do not affect. */
  clone(): SortedKeys {
    const copy = new SortedKeys(this.keys);
    copy.#chunks = this.#chunks.slice();
    copy.#lasts = this.#lasts.slice();
    copy.#owned = this.#chunks.map(() => false);
    copy.#size = this.#size;
    this.#owned.fill(false);
    return copy;
  }

  #writable(index: number): number[] {
    if (!this.#owned[index]) {
      this.#chunks[index] = this.#chunks[index].slice();
      this.#owned[index] = true;
    }
    return this.#chunks[index];
  }

  /** Index of the first chunk whose last key is at least `key` (the chunk count if none). */
  #chunkFor(key: string): number {
    const lasts = this.#lasts;
    let lo = 0;
    let hi = lasts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (lasts[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Position of the first slot in `chunk` whose key is at least `key`. */
  #lowerBound(chunk: readonly number[], key: string): number {
    const keys = this.keys;
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[chunk[mid]] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds `slot`, whose key must not be in the set. */
  add(slot: number): void {
    const key = this.keys[slot];
    if (this.#chunks.length === 0) {
      this.#chunks.push([slot]);
      this.#lasts.push(key);
      this.#owned.push(true);
      this.#size = 1;
      return;
    }
    let c = this.#chunkFor(key);
    if (c === this.#lasts.length) c--;
    const i = this.#lowerBound(this.#chunks[c], key);
    const chunk = this.#writable(c);
    chunk.splice(i, 0, slot);
    if (i === chunk.length - 1) this.#lasts[c] = key;
    this.#size++;
    if (chunk.length > 2 * CHUNK_TARGET) {
      const tail = chunk.splice(CHUNK_TARGET);
      this.#chunks.splice(c + 1, 0, tail);
      this.#lasts.splice(c, 0, this.keys[chunk[chunk.length - 1]]);
      this.#owned.splice(c + 1, 0, true);
    }
  }

  /** Removes `slot` (found by its key; no-op when absent). */
  delete(slot: number): void {
    const key = this.keys[slot];
    const c = this.#chunkFor(key);
    if (c === this.#lasts.length) return;
    const existing = this.#chunks[c];
    const i = this.#lowerBound(existing, key);
    if (existing[i] !== slot) return;
    this.#size--;
    if (existing.length === 1) {
      this.#chunks.splice(c, 1);
      this.#lasts.splice(c, 1);
      this.#owned.splice(c, 1);
      return;
    }
    const chunk = this.#writable(c);
    chunk.splice(i, 1);
    if (i === chunk.length) this.#lasts[c] = this.keys[chunk[chunk.length - 1]];
  }

  /**
   * Calls `visit(slot)` for the slots whose keys `k` have `start <= k <= end`, in key order, at
   * most `limit` of them; returns how many. A plain loop: several times cheaper per key than
   * {@link range}'s generator (a million keys in `KEYS *`).
   */
  forEachInRange(start: string, end: string, limit: number, visit: (slot: number) => void): number {
    let c = this.#chunkFor(start);
    if (c === this.#lasts.length || limit <= 0) return 0;
    let i = this.#lowerBound(this.#chunks[c], start);
    let count = 0;
    const keys = this.keys;
    for (; c < this.#chunks.length; c++, i = 0) {
      const chunk = this.#chunks[c];
      for (; i < chunk.length; i++) {
        const slot = chunk[i];
        if (keys[slot] > end) return count;
        visit(slot);
        if (++count >= limit) return count;
      }
    }
    return count;
  }

  /** Slots whose keys `k` have `start <= k <= end`, in key order, at most `limit` of them. */
  *range(start: string, end: string, limit = Infinity): Generator<number> {
    let c = this.#chunkFor(start);
    if (c === this.#lasts.length || limit <= 0) return;
    let i = this.#lowerBound(this.#chunks[c], start);
    let count = 0;
    const keys = this.keys;
    // Bounded by the number of slots: each step advances (c, i).
    while (c < this.#chunks.length) {
      const chunk = this.#chunks[c];
      for (; i < chunk.length; i++) {
        if (keys[chunk[i]] > end) return;
        yield chunk[i];
        if (++count >= limit) return;
      }
      c++;
      i = 0;
    }
  }

  /**
   * The slots in key order, as the set's chunks (not to be changed). Loops over these run several
   * times faster than over {@link slots}, a generator (docs/ARCHITECTURE.md, "Measured costs").
   */
  chunks(): readonly (readonly number[])[] {
    return this.#chunks;
  }

  /** Every slot, in key order. */
  *slots(): Generator<number> {
    for (const chunk of this.#chunks) yield* chunk;
  }
}
