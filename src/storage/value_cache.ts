/**
 * A bounded cache of value bytes, so a key read again is served from memory instead of a
 * positional read (`pread`, ~2.4 µs a GET; docs/benchmarks.md). It is filled on read, and by
 * `INCRBYFLOAT`'s and big counters' writes (`KVStore.writePutReadAgain`: the next increment reads
 * what the last one wrote; `INCR` on safe integers keeps its number in the index).
 *
 * ## Where an entry is found, and why it is never stale
 *
 * An entry belongs to a slot of the key index: the slot's cache place in the index says where the
 * cached copy of the slot's value is (`KeyIndex.setCachedAt`), so a read finds it from the slot
 * it already has, with no lookup of its own (a `Map` keyed by file position, as before, cost a
 * GET two more dependent memory reads, ~250 ns each on this machine). The entry keeps the slot's
 * key after the value (its length in 4 bytes, then its bytes), and the index's lookup compares a
 * key with that copy ({@link ValueCache.keyEquals}) rather than with its key string, which is
 * further away in memory: a GET of a cached value then touches the table, the slot and the
 * entry. A live slot's key never changes (a slot is reused only after its key is removed, which
 * forgets its entry), so the copy is the slot's key for as long as the index names the entry.
 * Every change of the slot's value (an overwrite, a delete, an expiry, a replicated record)
 * forgets the entry in the index (compaction's move of the same bytes keeps it); a FLUSH or a
 * full sync replaces the index, and the cache then drops everything it held for the old one.
 * What the index names is therefore always the current value.
 *
 * ## Memory
 *
 * Cached bytes are copied into slabs of up to 1 MiB, filled in order; when the bound is reached
 * the oldest slab is dropped with every entry in it (first in, first out, one slab at a time: no
 * per-entry eviction work, no per-entry `ArrayBuffer`, which would cost ~600 bytes of memory a
 * value). An entry's place is its slab's sequence number times the slab size plus its offset, a
 * number never given twice, so a slab dropped forgets exactly its own entries in the index (a
 * slot that moved on since holds another place, which is kept). The bound counts the slabs
 * allocated plus {@link ENTRY_OVERHEAD_BYTES} for each entry; the cache place is 8 bytes of
 * the index's wide slot (`key_index.ts`), counted with the index. A value that does not fit a
 * slab with its key (a slab is an eighth of the bound at most) is not cached.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { CachedKeys } from "./key_index.ts";

/** Memory one entry's slot and offset take in its slab's lists, counted against the bound. */
export const ENTRY_OVERHEAD_BYTES = 16;
/** Largest slab: also the largest entry (value, key length and key) cached. */
const MAX_SLAB_BYTES = 1024 * 1024;
/** Smallest slab (a bound below 8 of them caches nothing). */
const MIN_SLAB_BYTES = 256;
/** Values up to this long are copied out byte by byte rather than through a `subarray` view. */
const COPY_LOOP_BYTES = 256;

/** What the cache needs of the key index whose slots it holds values of. */
export interface CachedSlots {
  cachedAt(slot: number): number;
  lengthOf(slot: number): number;
  setCachedAt(slot: number, place: number): void;
  forgetCachedAt(slot: number, place: number): void;
  keyOf(slot: number): string;
  /** Set to the cache when it starts holding values of the index. */
  cachedKeys: CachedKeys | undefined;
}

/** Bytes of the key length an entry keeps after its value (then the key's bytes). */
const KEY_LENGTH_BYTES = 4;

/** One slab: cached bytes back to back, and whose they are. */
interface Slab {
  /** Sequence number: the slab's place in the ring is this modulo the ring's length. */
  sequence: number;
  bytes: Uint8Array;
  /** Bytes of {@link bytes} in use. */
  used: number;
  /** The slot of each value in it, and where in the slab it starts, in order. */
  slots: number[];
  offsets: number[];
}

/**
 * Value bytes by slot of one key index at a time, bounded in bytes.
 *
 * @example
 * ```ts
 * import { ValueCache } from "./value_cache.ts";
 * import { KeyIndex } from "./key_index.ts";
 * const index = new KeyIndex<object>();
 * const slot = index.insert("k", {}, 40, 3);
 * const cache = new ValueCache(64 * 1024);
 * cache.add(index, slot, new Uint8Array([1, 2, 3]));
 * const into = new Uint8Array(3);
 * console.log(cache.copyInto(index, slot, into), into); // true Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export class ValueCache implements CachedKeys {
  /** The index whose slots the entries belong to (another one: everything held is dropped). */
  #index: CachedSlots | undefined;
  #entries = 0;
  /** Live slabs by sequence number modulo the ring's length. */
  #ring: (Slab | undefined)[];
  /** Sequence numbers of the oldest and newest live slab (`#first > #last`: none). */
  #first = 0;
  #last = -1;
  readonly slabBytes: number;

  /** @param maxBytes bound on the memory it holds (slabs and entries); 0 caches nothing */
  constructor(readonly maxBytes: number) {
    let slabBytes = MAX_SLAB_BYTES;
    while (slabBytes > MIN_SLAB_BYTES && slabBytes * 8 > maxBytes) slabBytes /= 2;
    this.slabBytes = slabBytes;
    this.#ring = new Array(Math.max(1, Math.floor(maxBytes / slabBytes)));
  }

  /** Entries held. */
  get entries(): number {
    return this.#entries;
  }

  /** Memory counted against {@link maxBytes}: slabs allocated plus entries' overhead. */
  get usedBytes(): number {
    return this.#slabCount() * this.slabBytes + this.#entries * ENTRY_OVERHEAD_BYTES;
  }

  /**
   * Copies the cached value of `slot` of `index` into `into` (its length is the value's); false
   * when it is not cached.
   */
  copyInto(index: CachedSlots, slot: number, into: Uint8Array): boolean {
    const place = index.cachedAt(slot);
    if (Number.isNaN(place) || index !== this.#index) return false;
    const bytes = this.#slabBytesAt(place);
    const at = place % this.slabBytes;
    const length = into.length;
    if (length > COPY_LOOP_BYTES) {
      into.set(bytes.subarray(at, at + length));
    } else {
      // No view allocated for a small value: a byte loop is cheaper than `subarray`.
      for (let i = 0; i < length; i++) into[i] = bytes[at + i];
    }
    return true;
  }

  /**
   * Whether the key kept with the value at `place` (of `valueLength` bytes) is `buf[start, end)`
   * (the index compares a cached key here: see `KeyIndex.cachedKeys`).
   */
  keyEquals(
    place: number,
    valueLength: number,
    buf: Uint8Array,
    start: number,
    end: number,
  ): boolean {
    const bytes = this.#slabBytesAt(place);
    const at = place % this.slabBytes + valueLength;
    const keyLength = bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | bytes[at + 3] << 24;
    if (keyLength !== end - start) return false;
    const key = at + KEY_LENGTH_BYTES;
    for (let i = 0; i < keyLength; i++) if (bytes[key + i] !== buf[start + i]) return false;
    return true;
  }

  /**
   * Loads into the CPU's caches the entries of `slots` (the first `count`; -1 is none) of `index`
   * that this cache holds: the line of the copy of the key, then the value's first line (see
   * `KeyIndex.warm`). Returns a sum of what it read, for the caller to keep.
   */
  warm(index: CachedSlots, slots: Int32Array, count: number): number {
    if (index !== this.#index) return 0;
    let sum = 0;
    for (let k = 0; k < count; k++) {
      const slot = slots[k];
      if (slot < 0) continue;
      const place = index.cachedAt(slot);
      if (Number.isNaN(place)) continue;
      const bytes = this.#liveSlabBytes(place);
      if (bytes === undefined) continue;
      const at = place % this.slabBytes;
      sum += bytes[at + index.lengthOf(slot)] + bytes[at];
    }
    return sum;
  }

  /** The bytes of the live slab that holds `place`. */
  #slabBytesAt(place: number): Uint8Array {
    const bytes = this.#liveSlabBytes(place);
    if (bytes === undefined) {
      const sequence = Math.floor(place / this.slabBytes);
      assert.fail(`value cache: place ${place} names slab ${sequence}, which is gone`);
    }
    return bytes;
  }

  /** The bytes of the slab that holds `place`, or undefined when that slab is gone. */
  #liveSlabBytes(place: number): Uint8Array | undefined {
    const sequence = Math.floor(place / this.slabBytes);
    const slab = this.#ring[sequence % this.#ring.length];
    return slab === undefined || slab.sequence !== sequence ? undefined : slab.bytes;
  }

  /**
   * Keeps a copy of `value`, the current value of `slot` of `index` (read, or just written), and
   * after it the slot's key; not when the two are too large to cache. A string is a byte string
   * (one byte a character), as the log writes it.
   */
  add(index: CachedSlots, slot: number, value: Uint8Array | string): void {
    const length = value.length;
    const key = index.keyOf(slot);
    const entryBytes = length + KEY_LENGTH_BYTES + key.length;
    if (entryBytes > this.slabBytes || this.#ring.length < 2) return;
    if (index !== this.#index) this.#adopt(index);
    else if (!Number.isNaN(index.cachedAt(slot))) return; // already cached
    let slab = this.#last >= this.#first ? this.#ring[this.#last % this.#ring.length] : undefined;
    if (slab === undefined || slab.used + entryBytes > this.slabBytes) slab = this.#newSlab();
    // Bounded: each turn drops one slab, and the newest one is never dropped.
    while (this.usedBytes + ENTRY_OVERHEAD_BYTES > this.maxBytes && this.#first < this.#last) {
      this.#dropOldest();
    }
    if (this.usedBytes + ENTRY_OVERHEAD_BYTES > this.maxBytes) return;
    const bytes = slab.bytes;
    const at = slab.used;
    if (typeof value === "string") {
      for (let i = 0; i < length; i++) bytes[at + i] = value.charCodeAt(i);
    } else {
      bytes.set(value, at);
    }
    let keyAt = at + length;
    for (let shift = 0; shift < 32; shift += 8) bytes[keyAt++] = (key.length >>> shift) & 0xff;
    for (let i = 0; i < key.length; i++) bytes[keyAt + i] = key.charCodeAt(i);
    index.setCachedAt(slot, slab.sequence * this.slabBytes + at);
    slab.slots.push(slot);
    slab.offsets.push(at);
    slab.used = at + entryBytes;
    this.#entries++;
  }

  /**
   * Drops every entry and slab, forgetting them in their index (sequence numbers go on from
   * where they were, so no place is ever given twice).
   */
  clear(): void {
    while (this.#first <= this.#last) this.#dropOldest();
  }

  /** Starts caching for `index` (a FLUSH or a full sync replaced the last one): drops the rest. */
  #adopt(index: CachedSlots): void {
    this.clear();
    this.#index = index;
    index.cachedKeys = this;
  }

  #slabCount(): number {
    return this.#last - this.#first + 1;
  }

  /** Starts the next slab, reusing the oldest one's memory when the ring is full. */
  #newSlab(): Slab {
    let bytes: Uint8Array | undefined;
    if (this.#slabCount() === this.#ring.length) bytes = this.#dropOldest();
    else if ((this.#slabCount() + 1) * this.slabBytes > this.maxBytes) bytes = this.#dropOldest();
    if (this.#last < this.#first) this.#first = this.#last + 1;
    this.#last++;
    const slab: Slab = {
      sequence: this.#last,
      bytes: bytes ?? new Uint8Array(this.slabBytes),
      used: 0,
      slots: [],
      offsets: [],
    };
    this.#ring[this.#last % this.#ring.length] = slab;
    return slab;
  }

  /** Drops the oldest slab and forgets its entries in the index; returns its memory for reuse. */
  #dropOldest(): Uint8Array {
    assert(this.#first <= this.#last, "no slab to drop");
    const position = this.#first % this.#ring.length;
    const slab = this.#ring[position] as Slab;
    const index = this.#index as CachedSlots;
    const base = slab.sequence * this.slabBytes;
    for (let i = 0; i < slab.slots.length; i++) {
      index.forgetCachedAt(slab.slots[i], base + slab.offsets[i]);
    }
    this.#entries -= slab.slots.length;
    this.#ring[position] = undefined;
    this.#first++;
    return slab.bytes;
  }
}
