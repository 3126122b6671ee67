/**
 * A bounded cache of value bytes read from segment files, so a key read again is served from
 * memory instead of a positional read (`pread`, ~2.4 µs a GET; docs/benchmarks.md). It is filled
 * on read, and by `INCRBYFLOAT`'s and big counters' writes (`KVStore.writePutReadAgain`: the next
 * increment reads what the last one wrote; `INCR` on safe integers keeps its number in the index); other writes never touch it (a write-through cost puts
 * a third of their rate).
 *
 * ## What makes an entry never stale
 *
 * An entry is named by the {@link Segment} object and the file offset it was read at. The bytes of
 * a segment file below its size never change while the store runs (records are appended; a torn
 * tail is cut only by recovery, before a store reads). Compaction and a full sync replace
 * segments with new `Segment` objects, even when they reuse an id, so an entry of a replaced
 * segment is simply never asked for again; an overwrite, a delete, an expiry or a FLUSHALL moves
 * or drops the key in the index, which then names another place or none. Such dead entries age
 * out with the rest.
 *
 * ## Memory
 *
 * Cached bytes are copied into slabs of up to 1 MiB, filled in order; when the bound is reached
 * the oldest slab is dropped with every entry in it (first in, first out, one slab at a time: no
 * per-entry eviction work, no per-entry `ArrayBuffer`, which would cost ~600 bytes of memory a
 * value). The bound counts the slabs allocated plus {@link ENTRY_OVERHEAD_BYTES} for each entry's
 * map slot. A value larger than a slab (an eighth of the bound at most) is not cached.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Segment } from "./segment.ts";

/** Memory one entry's map slot and slab key take, counted against the bound (measured ~40-80). */
export const ENTRY_OVERHEAD_BYTES = 64;
/** Largest slab: also the largest value cached. */
const MAX_SLAB_BYTES = 1024 * 1024;
/** Smallest slab (a bound below 8 of them caches nothing). */
const MIN_SLAB_BYTES = 256;
/** Values up to this long are copied out byte by byte rather than through a `subarray` view. */
const COPY_LOOP_BYTES = 256;

/** One slab: cached bytes back to back, and whose they are. */
interface Slab {
  bytes: Uint8Array;
  /** Bytes of {@link bytes} in use. */
  used: number;
  /** The segment and offset of each value in it, in order. */
  segments: Segment[];
  offsets: number[];
}

/**
 * Value bytes by (segment, offset), bounded in bytes.
 *
 * @example
 * ```ts
 * import { ValueCache } from "./value_cache.ts";
 * import { Segment, newSegmentHeader } from "./segment.ts";
 * const segment = new Segment(1, "/tmp/000000000001.log", newSegmentHeader(1, 0, 0), 40);
 * const cache = new ValueCache(64 * 1024);
 * cache.add(segment, 40, new Uint8Array([1, 2, 3]));
 * const into = new Uint8Array(3);
 * console.log(cache.copyInto(segment, 40, into), into); // true Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export class ValueCache {
  /**
   * Per segment (by identity), offset → place: ring index * slab size + offset in the slab. Keys
   * and places are small integers, so a lookup boxes nothing. A segment leaves when its last entry
   * does.
   */
  #bySegment = new Map<Segment, Map<number, number>>();
  /** The segment of the last lookup and its map (reads mostly hit one segment in a row). */
  #lastSegment: Segment | undefined;
  #lastPlaces: Map<number, number> | undefined;
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
   * Copies the cached value at `offset` of `segment` into `into` (its length is the value's);
   * false when it is not cached.
   */
  copyInto(segment: Segment, offset: number, into: Uint8Array): boolean {
    const places = this.#placesOf(segment);
    if (places === undefined) return false;
    const place = places.get(offset);
    if (place === undefined) return false;
    const index = Math.floor(place / this.slabBytes);
    const bytes = (this.#ring[index] as Slab).bytes;
    const at = place - index * this.slabBytes;
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
   * Keeps a copy of `value`, read (or just written) at `offset` of `segment`; not when too large
   * to cache. A string is a byte string (one byte a character), as the log writes it.
   */
  add(segment: Segment, offset: number, value: Uint8Array | string): void {
    const length = value.length;
    if (length > this.slabBytes || this.#ring.length < 2) return;
    if (this.#placesOf(segment)?.has(offset)) return;
    let slab = this.#last >= this.#first ? this.#ring[this.#last % this.#ring.length] : undefined;
    if (slab === undefined || slab.used + length > this.slabBytes) slab = this.#newSlab();
    // Bounded: each turn drops one slab, and the newest one is never dropped.
    while (this.usedBytes + ENTRY_OVERHEAD_BYTES > this.maxBytes && this.#first < this.#last) {
      this.#dropOldest();
    }
    if (this.usedBytes + ENTRY_OVERHEAD_BYTES > this.maxBytes) return;
    let places = this.#placesOf(segment);
    if (places === undefined) {
      places = new Map();
      this.#bySegment.set(segment, places);
      this.#lastSegment = undefined;
    }
    if (typeof value === "string") {
      for (let i = 0; i < length; i++) slab.bytes[slab.used + i] = value.charCodeAt(i);
    } else {
      slab.bytes.set(value, slab.used);
    }
    places.set(offset, (this.#last % this.#ring.length) * this.slabBytes + slab.used);
    slab.segments.push(segment);
    slab.offsets.push(offset);
    slab.used += length;
    this.#entries++;
  }

  /** Drops every entry and slab. */
  clear(): void {
    this.#bySegment.clear();
    this.#lastSegment = undefined;
    this.#lastPlaces = undefined;
    this.#entries = 0;
    this.#ring.fill(undefined);
    this.#first = 0;
    this.#last = -1;
  }

  #placesOf(segment: Segment): Map<number, number> | undefined {
    if (segment === this.#lastSegment) return this.#lastPlaces;
    const places = this.#bySegment.get(segment);
    this.#lastSegment = segment;
    this.#lastPlaces = places;
    return places;
  }

  #slabCount(): number {
    return this.#last - this.#first + 1;
  }

  /** Starts the next slab, reusing the oldest one's memory when the ring is full. */
  #newSlab(): Slab {
    let bytes: Uint8Array | undefined;
    if (this.#slabCount() === this.#ring.length) bytes = this.#dropOldest();
    else if ((this.#slabCount() + 1) * this.slabBytes > this.maxBytes) bytes = this.#dropOldest();
    const slab: Slab = {
      bytes: bytes ?? new Uint8Array(this.slabBytes),
      used: 0,
      segments: [],
      offsets: [],
    };
    if (this.#last < this.#first) this.#first = this.#last + 1;
    this.#last++;
    this.#ring[this.#last % this.#ring.length] = slab;
    return slab;
  }

  /** Drops the oldest slab and its entries; returns its memory for reuse. */
  #dropOldest(): Uint8Array {
    assert(this.#first <= this.#last, "no slab to drop");
    const index = this.#first % this.#ring.length;
    const slab = this.#ring[index] as Slab;
    for (let i = 0; i < slab.segments.length; i++) {
      const segment = slab.segments[i];
      const places = this.#bySegment.get(segment) as Map<number, number>;
      places.delete(slab.offsets[i]);
      if (places.size === 0) {
        this.#bySegment.delete(segment);
        this.#lastSegment = undefined;
        this.#lastPlaces = undefined;
      }
    }
    this.#entries -= slab.segments.length;
    this.#ring[index] = undefined;
    this.#first++;
    return slab.bytes;
  }
}
