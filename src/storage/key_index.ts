/**
 * The in-memory index: key → where its value lies in the log (segment, file offset, length).
 *
 * Point lookups go through an open-addressing hash table (linear probing, backward-shift
 * deletion) over typed arrays; each key owns a numbered *slot* holding its location. Nothing per
 * key is a JS object except the key string itself, and a lookup by key bytes creates no string.
 * A `Map<string, {location}>` costs about twice the memory per key and hashes a key string it has
 * not seen before out of line, ten times slower than this table's hash in JS (figures:
 * docs/ARCHITECTURE.md, "Measured costs").
 *
 * Per slot `s`, `slots[4s .. 4s+3]` holds (segment handle, value offset, value length, hash); a
 * segment handle is a small number naming a segment object (0 marks a free slot, whose offset
 * field then links the free list). `keys[s]` is the key string. The table holds `s + 1` (0 is
 * empty) and is kept at most 3/4 full, so a probe always ends.
 *
 * Slots become *wide* (32 bytes, `slots[8s .. 8s+7]`) when the first key with an expiry time or
 * the first cached value arrives: the four words, then two Float64s, the key's expiry time (ms
 * since the epoch, 0: none) and where the value cache (`value_cache.ts`) holds a copy of its value
 * (NaN: nowhere). A GET of an expiring key then reads its location, expiry and cache place in
 * one memory line; an index of keys without either keeps 16 bytes a slot.
 *
 * A key whose value is cached is compared with the copy of the key the cache keeps beside the
 * value, not with `keys[s]`: that string is two dependent memory reads away (the array, then the
 * string), ~150–300 ns each on a cold line, while the cached copy is in the line the value's read
 * touches next.
 *
 * A {@link SortedKeys} set orders the slots by key, for ranges and for walks in key order.
 * Snapshots clone it (copy-on-write) and keep the first previous location of every slot changed
 * after them ("pre-images"), so a snapshot sees the index exactly as it was, at a cost only while
 * it is open. A slot freed while a snapshot is open (or during a bulk load) is not reused until
 * the snapshots are released (or the load is done), so a slot names one key for as long as any
 * view of it exists, and a bulk load allocates slots in load order.
 *
 * Two facts about a slot's current value are kept: its cache place (above), and in `counters[s]`,
 * a Float64Array created with the first one (NaN: none), the integer a counter (Redis's `INCR`)
 * wrote as the value, so the next increment neither reads nor parses it. Every change of a slot's
 * location forgets both, so a fact held is always about the value the slot points at, except
 * compaction's {@link KeyIndex.move} of the same bytes, which keeps them (and the expiry time):
 * a counter or a cached value is not read from the file again because compaction moved it.
 *
 * Keys are byte strings (see `keys.ts`): one UTF-16 code unit 0–255 per byte, so the hash of a
 * key string and of its bytes are the same.
 *
 * @module
 */
import { REQUEST_PATH_LIMITS } from "../config.ts";
import { FactColumn } from "./fact_column.ts";
import { equalsBytes, hashBytes, hashString, randomSeed } from "./key_hash.ts";
import { SortedKeys } from "./sorted_keys.ts";

/**
 * Where a value lies: its segment, the file offset of its first byte, and its length; and when
 * its key expires (ms since the Unix epoch, 0: never).
 */
export interface Location<S> {
  readonly segment: S;
  readonly offset: number;
  readonly length: number;
  readonly expiresAtMs: number;
}

/** Who hears of the values an index leaves ({@link KeyIndex.onLeave}). */
export interface LeaveListener<S> {
  /** The index moved a key off the value at file `offset` of `segment`, for good. */
  valueLeft(segment: S, offset: number): void;
}

/**
 * The value cache's side of {@link KeyIndex.cachedKeys}: it keeps a copy of the key beside each
 * value it holds.
 */
export interface CachedKeys {
  /**
   * Whether the key kept with the cached value at `place` (a value of `valueLength` bytes) is
   * `buf[start, end)`.
   */
  keyEquals(
    place: number,
    valueLength: number,
    buf: Uint8Array,
    start: number,
    end: number,
  ): boolean;
}

/**
 * Keys about to be looked up, for {@link KeyIndex.warm}: `count` ranges of `bytes`, the i-th
 * `bytes[starts[i], ends[i])`. `slots` is filled by the warm-up: the slot each key's probe
 * found with the key's hash, else the last it compared (-1: none). `hashes` and `probes` are the
 * warm-up's own room (each key's hash, and where its probe is in the table).
 */
export interface KeyBatch {
  bytes: Uint8Array;
  count: number;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  readonly slots: Int32Array;
  readonly hashes: Uint32Array;
  readonly probes: Int32Array;
}

/** A {@link KeyBatch} with room for `capacity` keys. */
export function newKeyBatch(capacity: number): KeyBatch {
  return {
    bytes: new Uint8Array(0),
    count: 0,
    starts: new Int32Array(capacity),
    ends: new Int32Array(capacity),
    slots: new Int32Array(capacity),
    hashes: new Uint32Array(capacity),
    probes: new Int32Array(capacity),
  };
}

/** Random slots {@link KeyIndex.randomSlot} looks at before it takes the first key instead. */
const RANDOM_TRIES = 32;

/** A string above every key (keys are byte strings, each code unit at most 0xff). */
export const MAX_KEY_STRING = "\u0100";

/** Slot number returned when a key is absent. */
export const NO_SLOT = -1;

/** Words a slot takes: narrow (its location and hash), or wide (and its expiry and cache place). */
const NARROW = 4;
const WIDE = 8;
const SEGMENT = 0;
const OFFSET = 1;
const LENGTH = 2;
const HASH = 3;
/** Float64s a wide slot takes (its buffer seen as a Float64Array). */
const WIDE_FLOATS = WIDE / 2;
/** In a wide slot, the Float64s holding its expiry time and its cache place. */
const EXPIRY = 2;
const CACHED_AT = 3;
const NO_FREE = 0xffff_ffff;
const MIN_TABLE = 16;
/** Most keys an index holds: the table must stay below 2^30 entries at 3/4 load. */
export const MAX_INDEX_KEYS = 0.75 * 2 ** 30;
const U32_LIMIT = 2 ** 32;

/** The table size that holds `keys` keys at most 3/4 full. */
function tableCapacity(keys: number): number {
  let capacity = MIN_TABLE;
  while (keys * 4 > capacity * 3) capacity *= 2;
  return capacity;
}

/** A consistent, read-only view of the index at the moment it was taken. */
export class IndexSnapshot<S extends object> {
  /** Location of a slot before its first change after the snapshot. */
  readonly preImages: Map<number, Location<S>> = new Map();
  #released = false;

  constructor(
    /** The slots in key order, as they were. */
    readonly sorted: SortedKeys,
    private readonly index: KeyIndex<S>,
  ) {}

  /** Number of keys in the view. */
  get size(): number {
    return this.sorted.size;
  }

  /** The key of a slot of the view. */
  keyOf(slot: number): string {
    return this.index.keyOf(slot);
  }

  /** The location a slot of the view had when the snapshot was taken. */
  locationOf(slot: number): Location<S> {
    return this.preImages.get(slot) ?? this.index.location(slot);
  }

  /** Stops tracking changes; the snapshot must not be used afterwards. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.index.dropSnapshot(this);
  }
}

/**
 * The index of a store: find a key's slot ({@link find}, {@link findBytes}), read the slot's
 * location ({@link segmentOf}, {@link offsetOf}, {@link lengthOf}), change it
 * ({@link insert}, {@link update}, {@link remove}).
 */
export class KeyIndex<S extends object> {
  readonly #seed = randomSeed();
  #table = new Int32Array(MIN_TABLE);
  #mask = MIN_TABLE - 1;
  /** Words a slot: {@link NARROW} until the first expiry time or cache place, then {@link WIDE}. */
  #stride = NARROW;
  /** Slots allocated (live, free or held). */
  #capacity = MIN_TABLE;
  #slots = new Uint32Array(MIN_TABLE * NARROW);
  /** The wide slots' buffer seen as Float64s ({@link WIDE_FLOATS} a slot); undefined if narrow. */
  #wide: Float64Array | undefined;
  readonly #keys: string[] = [];
  #freeHead = NO_FREE;
  /** Slots freed while a snapshot is open or during a bulk load, reused only after. */
  #heldSlots: number[] = [];
  #size = 0;
  /** Segment objects by handle (0 is "none"), handles by object, live slots per handle. */
  #segments: (S | undefined)[] = [undefined];
  #handles = new Map<S, number>();
  #handleSlots: number[] = [0];
  #freeHandles: number[] = [];
  #lastSegment: S | undefined;
  #lastHandle = 0;
  #sorted = new SortedKeys(this.#keys);
  /** Bumped by every change to the table, so a remembered miss can tell it is still valid. */
  #changes = 0;
  readonly #miss = { hash: 0, at: 0, length: -1, changes: -1 };
  #sortedStale = false;
  #snapshots: IndexSnapshot<S>[] = [];
  /** Live keys with an expiry time. */
  #expiring = 0;
  /**
   * Hears of every value the index leaves (an update or a removal moves a key off it): the
   * segment and file offset of a value it will never point at again.
   */
  onLeave: LeaveListener<S> | undefined;
  /** The integer value per slot when a counter wrote it. */
  readonly #counters = new FactColumn();
  /**
   * The value cache that notes places in this index ({@link setCachedAt}): a key whose value it
   * holds is compared with the copy of the key it keeps beside the value.
   */
  cachedKeys: CachedKeys | undefined;

  /** Number of live keys. */
  get size(): number {
    return this.#size;
  }

  /** Slots allocated (live, free or held): every slot number is below it. */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * Calls `each` with every live slot among `[from, to)` whose value lies in `segment`; returns
   * where the next walk starts (compaction finds a mostly dead segment's live values this way).
   */
  forEachSlotIn(segment: S, from: number, to: number, each: (slot: number) => void): number {
    const handle = this.#handles.get(segment);
    if (handle === undefined) return to;
    const slots = this.#slots;
    const stride = this.#stride;
    const end = Math.min(to, this.#capacity);
    for (let slot = from; slot < end; slot++) {
      if (slots[slot * stride + SEGMENT] === handle) each(slot);
    }
    return to;
  }

  /** The slot of `key`, or {@link NO_SLOT}. */
  find(key: string): number {
    const hash = hashString(key, this.#seed);
    const table = this.#table;
    const slots = this.#slots;
    const stride = this.#stride;
    const mask = this.#mask;
    // Bounded: the table is at most 3/4 full, so an empty entry ends the probe.
    for (let i = hash & mask;; i = (i + 1) & mask) {
      const entry = table[i];
      if (entry === 0) return this.#missed(hash, i, key.length);
      const slot = entry - 1;
      if (slots[slot * stride + HASH] === hash && this.#keys[slot] === key) return slot;
    }
  }

  /** The slot of the key whose bytes are `buf[start, end)`, or {@link NO_SLOT}. */
  findBytes(buf: Uint8Array, start: number, end: number): number {
    const hash = hashBytes(buf, start, end, this.#seed);
    const table = this.#table;
    const slots = this.#slots;
    const stride = this.#stride;
    const wide = this.#wide;
    const cachedKeys = this.cachedKeys;
    const mask = this.#mask;
    // Bounded: the table is at most 3/4 full, so an empty entry ends the probe.
    for (let i = hash & mask;; i = (i + 1) & mask) {
      const entry = table[i];
      if (entry === 0) return this.#missed(hash, i, end - start);
      const slot = entry - 1;
      const at = slot * stride;
      if (slots[at + HASH] !== hash) continue;
      // A key whose value is cached is compared with the cache's copy, which the value's read
      // then finds in memory already: the key string is two more dependent memory reads away.
      const place = wide === undefined ? Number.NaN : wide[slot * WIDE_FLOATS + CACHED_AT];
      if (
        Number.isNaN(place) || cachedKeys === undefined
          ? equalsBytes(this.#keys[slot], buf, start, end)
          : cachedKeys.keyEquals(place, slots[at + LENGTH], buf, start, end)
      ) {
        return slot;
      }
    }
  }

  /**
   * Loads into the CPU's caches what looking up each key of `batch` will read: its table entry,
   * the slots its probe compares, and the key string or counter compared or read next. A
   * lookup's reads depend on each other, so one lookup waits for main memory several times in a
   * row; here the same reads of all the batch's keys are issued side by side, a probe step at a
   * time, and their waits overlap. An entry whose slot holds another hash sends a probe on to
   * the next entry: at 3/8 load a fifth of lookups take such a step, at 3/4 load over a third.
   * Changes nothing in the index. Fills `batch.slots` with the slot each key's probe found with
   * its hash (else the last it compared, -1: none), and returns a sum of what it read: the
   * caller keeps it, so the reads are not optimized away.
   */
  warm(batch: KeyBatch): number {
    const { bytes, count, starts, ends, hashes, probes } = batch;
    const candidates = batch.slots;
    const seed = this.#seed;
    const mask = this.#mask;
    for (let k = 0; k < count; k++) {
      const hash = hashBytes(bytes, starts[k], ends[k], seed);
      hashes[k] = hash;
      probes[k] = hash & mask;
    }
    const table = this.#table;
    for (let k = 0; k < count; k++) candidates[k] = table[probes[k]] - 1;
    const slots = this.#slots;
    const stride = this.#stride;
    const steps = REQUEST_PATH_LIMITS.warmedProbeSteps;
    let sum = 0;
    for (let step = 1; step <= steps; step++) {
      let going = 0;
      for (let k = 0; k < count; k++) {
        const slot = candidates[k];
        if (slot < 0 || probes[k] < 0) continue;
        const hash = slots[slot * stride + HASH];
        sum += hash;
        if (hash === hashes[k]) {
          probes[k] = -1; // found: this is the slot the lookup compares its key with
        } else if (step < steps) {
          const next = (probes[k] + 1) & mask;
          probes[k] = next;
          candidates[k] = table[next] - 1; // the next entry: most often in the same line
          going++;
        }
      }
      if (going === 0) break;
    }
    const wide = this.#wide;
    const keys = this.#keys;
    for (let k = 0; k < count; k++) {
      const slot = candidates[k];
      if (slot < 0) continue;
      // A key whose value is cached is compared with the cache's copy (the value cache warms
      // it); any other with its key string, and a counter's value is in the counter column.
      if (wide === undefined || Number.isNaN(wide[slot * WIDE_FLOATS + CACHED_AT])) {
        // A table entry names a live slot, whose key is a string; checked all the same, as a
        // hint must never throw on the request path.
        const key = keys[slot];
        if (key !== undefined) sum += key.length + (this.#counters.get(slot) || 0);
      }
    }
    return sum;
  }

  /** Remembers where a failed lookup ended, for {@link insertMissed}. */
  #missed(hash: number, at: number, length: number): number {
    this.#miss.hash = hash;
    this.#miss.at = at;
    this.#miss.length = length;
    this.#miss.changes = this.#changes;
    return NO_SLOT;
  }

  /** The key string of a live slot. */
  keyOf(slot: number): string {
    return this.#keys[slot];
  }

  /** The segment of a live slot's value. */
  segmentOf(slot: number): S {
    return this.#segments[this.#slots[slot * this.#stride + SEGMENT]] as S;
  }

  /** The file offset of a live slot's value. */
  offsetOf(slot: number): number {
    return this.#slots[slot * this.#stride + OFFSET];
  }

  /** The length of a live slot's value. */
  lengthOf(slot: number): number {
    return this.#slots[slot * this.#stride + LENGTH];
  }

  /** When the key of a live slot expires (ms since the Unix epoch), 0 if never. */
  expiryOf(slot: number): number {
    const wide = this.#wide;
    return wide === undefined ? 0 : wide[slot * WIDE_FLOATS + EXPIRY];
  }

  /**
   * The integer a counter wrote as the live slot's value ({@link setCounter}), or NaN when not
   * known: any other write to the slot since, or none at all.
   */
  counterOf(slot: number): number {
    return this.#counters.get(slot);
  }

  /**
   * Remembers that the live slot's value is the decimal digits of `value`, a safe integer: call
   * right after pointing the slot at those digits; the next change of its location forgets it.
   */
  setCounter(slot: number, value: number): void {
    this.#counters.set(slot, value, this.#capacity);
  }

  /** Where the value cache holds the live slot's value ({@link setCachedAt}), or NaN. */
  cachedAt(slot: number): number {
    const wide = this.#wide;
    return wide === undefined ? Number.NaN : wide[slot * WIDE_FLOATS + CACHED_AT];
  }

  /**
   * Notes that the value cache holds the live slot's current value at `place` (a number it never
   * gives another entry); the next change of the slot's location forgets it.
   */
  setCachedAt(slot: number, place: number): void {
    (this.#wide ?? this.#widen())[slot * WIDE_FLOATS + CACHED_AT] = place;
  }

  /** Forgets {@link setCachedAt}'s `place` for `slot`, unless the slot has moved on since. */
  forgetCachedAt(slot: number, place: number): void {
    const wide = this.#wide;
    if (
      wide !== undefined && slot < this.#capacity && wide[slot * WIDE_FLOATS + CACHED_AT] === place
    ) {
      wide[slot * WIDE_FLOATS + CACHED_AT] = Number.NaN;
    }
  }

  /** Live keys that have an expiry time. */
  get expiringKeys(): number {
    return this.#expiring;
  }

  /** Whether the key of a live slot has an expiry time at or before `nowMs`. */
  isExpired(slot: number, nowMs: number): boolean {
    const wide = this.#wide;
    if (wide === undefined) return false;
    const at = wide[slot * WIDE_FLOATS + EXPIRY];
    return at !== 0 && at <= nowMs;
  }

  #setExpiry(slot: number, expiresAtMs: number): void {
    let wide = this.#wide;
    if (wide === undefined) {
      if (expiresAtMs === 0) return;
      wide = this.#widen();
    }
    const before = wide[slot * WIDE_FLOATS + EXPIRY];
    if (before === expiresAtMs) return;
    if (before === 0) this.#expiring++;
    else if (expiresAtMs === 0) this.#expiring--;
    wide[slot * WIDE_FLOATS + EXPIRY] = expiresAtMs;
  }

  /**
   * Makes every slot wide, with room for its expiry time (0: none) and its cache place (NaN:
   * none): once, when the first of either arrives, so an index of keys without either keeps 16
   * bytes a slot, and one with them reads a key's location, expiry and cache place in one
   * memory line (separate columns cost a GET two more memory reads).
   */
  #widen(): Float64Array {
    const narrow = this.#slots;
    const capacity = this.#capacity;
    const slots = new Uint32Array(capacity * WIDE);
    const wide = new Float64Array(slots.buffer);
    for (let slot = 0; slot < capacity; slot++) {
      const from = slot * NARROW;
      const to = slot * WIDE;
      slots[to + SEGMENT] = narrow[from + SEGMENT];
      slots[to + OFFSET] = narrow[from + OFFSET];
      slots[to + LENGTH] = narrow[from + LENGTH];
      slots[to + HASH] = narrow[from + HASH];
      wide[slot * WIDE_FLOATS + CACHED_AT] = Number.NaN;
    }
    this.#slots = slots;
    this.#stride = WIDE;
    this.#wide = wide;
    return wide;
  }

  /**
   * Puts the live slots from `from` on whose expiry time is at or before `nowMs` into `out`,
   * looking at no more than `maxSlots` slots and stopping once `out` holds `maxFound`; returns
   * where the next call starts (0 after the last slot: a sweep starts over).
   */
  scanExpired(
    from: number,
    maxSlots: number,
    nowMs: number,
    out: number[],
    maxFound: number,
  ): number {
    const wide = this.#wide;
    if (wide === undefined || this.#expiring === 0) return 0;
    const end = Math.min(this.#keys.length, from + maxSlots);
    for (let slot = from; slot < end; slot++) {
      const at = wide[slot * WIDE_FLOATS + EXPIRY];
      if (at !== 0 && at <= nowMs && this.#slots[slot * WIDE + SEGMENT] !== 0) {
        out.push(slot);
        if (out.length >= maxFound) return slot + 1 >= this.#keys.length ? 0 : slot + 1;
      }
    }
    return end >= this.#keys.length ? 0 : end;
  }

  /** The location of a live slot's value (allocates; the hot paths use slots). */
  location(slot: number): Location<S> {
    return {
      segment: this.segmentOf(slot),
      offset: this.offsetOf(slot),
      length: this.lengthOf(slot),
      expiresAtMs: this.expiryOf(slot),
    };
  }

  #handle(segment: S): number {
    if (segment === this.#lastSegment) return this.#lastHandle;
    let handle = this.#handles.get(segment);
    if (handle === undefined) {
      handle = this.#freeHandles.pop() ?? this.#segments.length;
      this.#segments[handle] = segment;
      this.#handleSlots[handle] = 0;
      this.#handles.set(segment, handle);
    }
    this.#lastSegment = segment;
    this.#lastHandle = handle;
    return handle;
  }

  #releaseSlotOf(handle: number): void {
    if (--this.#handleSlots[handle] > 0) return;
    const segment = this.#segments[handle] as S;
    this.#handles.delete(segment);
    this.#segments[handle] = undefined;
    this.#freeHandles.push(handle);
    if (this.#lastSegment === segment) {
      this.#lastSegment = undefined;
      this.#lastHandle = 0;
    }
  }

  #checkLocation(offset: number, length: number): void {
    if (!(offset >= 0 && offset < U32_LIMIT && length >= 0 && length < U32_LIMIT)) {
      throw new RangeError(
        `index location out of range: offset ${offset}, length ${length} (limit 2^32 - 1)`,
      );
    }
  }

  /** A new key's slot gets its location; nothing is known of its value yet. */
  #write(slot: number, segment: S, offset: number, length: number): void {
    this.#point(slot, segment, offset);
    this.#slots[slot * this.#stride + LENGTH] = length;
    this.#forgetFacts(slot);
  }

  /** Sets the slot's segment (counted against its handle) and offset. */
  #point(slot: number, segment: S, offset: number): void {
    const handle = this.#handle(segment);
    this.#handleSlots[handle]++;
    const at = slot * this.#stride;
    this.#slots[at + SEGMENT] = handle;
    this.#slots[at + OFFSET] = offset;
  }

  /**
   * Points a live slot at `offset` of `segment`: open snapshots keep where it was, the leave
   * listener hears of the value it leaves, and the old segment's handle is released.
   */
  #relocate(slot: number, segment: S, offset: number): void {
    if (this.#snapshots.length > 0) this.#remember(slot);
    const at = slot * this.#stride;
    const previous = this.#slots[at + SEGMENT];
    this.onLeave?.valueLeft(this.#segments[previous] as S, this.#slots[at + OFFSET]);
    this.#point(slot, segment, offset);
    this.#releaseSlotOf(previous);
  }

  /** The slot's value changed or went: what the counter and cache columns knew of it is gone. */
  #forgetFacts(slot: number): void {
    this.#counters.forget(slot);
    const wide = this.#wide;
    if (wide !== undefined) wide[slot * WIDE_FLOATS + CACHED_AT] = Number.NaN;
  }

  /**
   * Adds `key`, which must be absent ({@link find} first), pointing at the given location and
   * expiring at `expiresAtMs` (0: never); returns its slot.
   */
  insert(key: string, segment: S, offset: number, length: number, expiresAtMs = 0): number {
    return this.#insert(key, segment, offset, length, false, expiresAtMs);
  }

  /**
   * Like {@link insert} for the key that the last {@link find} or {@link findBytes} looked up and
   * did not find, with no change to the index in between: it reuses that lookup's hash and probe
   * (recovery and new keys save a second hash and probe).
   */
  insertMissed(
    key: string,
    segment: S,
    offset: number,
    length: number,
    expiresAtMs = 0,
  ): number {
    return this.#insert(key, segment, offset, length, true, expiresAtMs);
  }

  #insert(
    key: string,
    segment: S,
    offset: number,
    length: number,
    missed: boolean,
    expiresAtMs: number,
  ): number {
    this.#checkLocation(offset, length);
    if (this.#size >= MAX_INDEX_KEYS) {
      throw new RangeError(`the index holds ${this.#size} keys, its limit`);
    }
    if ((this.#size + 1) * 4 > this.#table.length * 3) this.#resizeTable(this.#table.length * 2);
    const slot = this.#allocateSlot();
    const miss = this.#miss;
    const reuse = missed && miss.changes === this.#changes && miss.length === key.length;
    const hash = reuse ? miss.hash : hashString(key, this.#seed);
    this.#keys[slot] = key;
    this.#slots[slot * this.#stride + HASH] = hash;
    this.#write(slot, segment, offset, length);
    if (expiresAtMs !== 0 || this.#wide !== undefined) this.#setExpiry(slot, expiresAtMs);
    if (reuse) {
      this.#table[miss.at] = slot + 1;
      this.#changes++;
    } else {
      this.#place(slot, hash);
    }
    this.#size++;
    if (!this.#sortedStale) this.#sorted.add(slot);
    return slot;
  }

  /**
   * Points a live slot at a new value, its key expiring at `expiresAtMs` (0: never); what was
   * known of the old value is forgotten (a copy of the same value: {@link move}).
   */
  update(slot: number, segment: S, offset: number, length: number, expiresAtMs = 0): void {
    this.#checkLocation(offset, length);
    this.#relocate(slot, segment, offset);
    this.#slots[slot * this.#stride + LENGTH] = length;
    this.#forgetFacts(slot);
    if (expiresAtMs !== 0 || this.#wide !== undefined) this.#setExpiry(slot, expiresAtMs);
  }

  /**
   * Points a live slot at a copy of the same value in `segment` at `offset` (compaction's move):
   * its expiry time, counter and cache place stay, since the value they are about is unchanged.
   */
  move(slot: number, segment: S, offset: number): void {
    this.#checkLocation(offset, this.lengthOf(slot));
    this.#relocate(slot, segment, offset);
  }

  /** Removes the key of a live slot; the slot is free afterwards. */
  remove(slot: number): void {
    if (this.#snapshots.length > 0) this.#remember(slot);
    this.onLeave?.valueLeft(this.segmentOf(slot), this.#slots[slot * this.#stride + OFFSET]);
    if (!this.#sortedStale) this.#sorted.delete(slot);
    this.#unplace(slot);
    this.#releaseSlotOf(this.#slots[slot * this.#stride + SEGMENT]);
    this.#slots[slot * this.#stride + SEGMENT] = 0;
    if (this.#wide !== undefined) this.#setExpiry(slot, 0);
    this.#forgetFacts(slot);
    this.#size--;
    if (this.#snapshots.length > 0 || this.#sortedStale) this.#heldSlots.push(slot);
    else this.#free(slot);
  }

  #free(slot: number): void {
    this.#slots[slot * this.#stride + OFFSET] = this.#freeHead;
    this.#freeHead = slot;
    this.#keys[slot] = "";
  }

  #freeHeldSlots(): void {
    for (const slot of this.#heldSlots) this.#free(slot);
    this.#heldSlots = [];
  }

  #allocateSlot(): number {
    if (this.#freeHead !== NO_FREE) {
      const slot = this.#freeHead;
      this.#freeHead = this.#slots[slot * this.#stride + OFFSET];
      return slot;
    }
    const slot = this.#keys.length;
    if (slot + 1 > this.#capacity) this.#growSlots(slot + 1);
    this.#keys.push("");
    return slot;
  }

  #growSlots(count: number): void {
    this.#resizeSlots(Math.max(count, Math.ceil(this.#capacity * 1.5)));
  }

  /**
   * Makes room for exactly `capacity` slots (more or fewer: none beyond it is in use), and keeps
   * the counter column as long.
   */
  #resizeSlots(capacity: number): void {
    const stride = this.#stride;
    const resized = new Uint32Array(capacity * stride);
    const kept = Math.min(capacity, this.#capacity);
    resized.set(this.#slots.subarray(0, kept * stride));
    this.#slots = resized;
    if (this.#wide !== undefined) {
      const wide = this.#wide = new Float64Array(resized.buffer);
      for (let slot = kept; slot < capacity; slot++) {
        wide[slot * WIDE_FLOATS + CACHED_AT] = Number.NaN;
      }
    }
    this.#capacity = capacity;
    this.#counters.resize(capacity);
  }

  /** Puts `slot` into the table at its probe position. */
  #place(slot: number, hash: number): void {
    const table = this.#table;
    const mask = this.#mask;
    let i = hash & mask;
    // Bounded: the table is at most 3/4 full.
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = slot + 1;
    this.#changes++;
  }

  /** Takes `slot` out of the table, shifting later entries of its probe run back. */
  #unplace(slot: number): void {
    const table = this.#table;
    const slots = this.#slots;
    const mask = this.#mask;
    const stride = this.#stride;
    let hole = slots[slot * stride + HASH] & mask;
    // Bounded: the slot is in the table, within the run that starts at its home position.
    while (table[hole] !== slot + 1) hole = (hole + 1) & mask;
    // Bounded: the run ends at an empty entry (the table is at most 3/4 full).
    for (let i = (hole + 1) & mask; table[i] !== 0; i = (i + 1) & mask) {
      const home = slots[(table[i] - 1) * stride + HASH] & mask;
      // Move entry i into the hole unless its home lies cyclically in (hole, i].
      const stays = hole <= i ? hole < home && home <= i : hole < home || home <= i;
      if (!stays) {
        table[hole] = table[i];
        hole = i;
      }
    }
    table[hole] = 0;
    this.#changes++;
  }

  #resizeTable(capacity: number): void {
    this.#changes++;
    this.#table = new Int32Array(capacity);
    this.#mask = capacity - 1;
    const slots = this.#slots;
    const stride = this.#stride;
    for (let slot = 0; slot < this.#keys.length; slot++) {
      if (slots[slot * stride + SEGMENT] !== 0) this.#place(slot, slots[slot * stride + HASH]);
    }
  }

  /** Makes room for `keys` keys in total without further resizing (recovery knows the count). */
  reserve(keys: number): void {
    const capacity = tableCapacity(keys);
    if (capacity > this.#table.length) this.#resizeTable(capacity);
    if (keys > this.#capacity) this.#growSlots(keys);
  }

  /** Gives back what {@link reserve} set aside beyond the keys that are there. */
  #trim(): void {
    const capacity = tableCapacity(this.#size);
    if (capacity < this.#table.length) this.#resizeTable(capacity);
    const used = this.#keys.length;
    if (this.#capacity > used + used / 8) this.#resizeSlots(used);
  }

  /** Slots of the keys in `[start, end]`, in key order, at most `limit`. */
  range(start: string, end: string, limit = Infinity): Generator<number> {
    this.#checkSorted();
    return this.#sorted.range(start, end, limit);
  }

  /** {@link range} as a loop: `visit(slot)` for each; returns how many (see SortedKeys). */
  forEachInRange(start: string, end: string, limit: number, visit: (slot: number) => void): number {
    this.#checkSorted();
    return this.#sorted.forEachInRange(start, end, limit, visit);
  }

  /**
   * Every live slot in key order, as the chunks of a copy-on-write clone taken now: a walk over
   * them may be spread over event-loop turns while the index changes. A slot in them may have
   * changed since (check its location); it may even hold another key by then, always a newer one.
   */
  sortedChunks(): readonly (readonly number[])[] {
    this.#checkSorted();
    return this.#sorted.clone().chunks();
  }

  #checkSorted(): void {
    if (this.#sortedStale) throw new Error("the index's sorted set is being rebuilt");
  }

  /**
   * Stops maintaining the sorted set until {@link rebuildSorted} (recovery and full sync add keys
   * in bulk, then sort once).
   */
  deferSorting(): void {
    this.#sortedStale = true;
  }

  /**
   * Replaces the sorted set by one built from the live keys and gives back memory reserved for
   * the bulk load. Slots were allocated in load order, so a load of sorted hints leaves runs of
   * sorted slots, which the sort (TimSort) merges instead of sorting from scratch.
   */
  rebuildSorted(): void {
    const keys = this.#keys;
    const live: number[] = [];
    for (let slot = 0; slot < keys.length; slot++) {
      if (this.#slots[slot * this.#stride + SEGMENT] !== 0) live.push(slot);
    }
    live.sort((a, b) => (keys[a] < keys[b] ? -1 : 1));
    this.#sorted = SortedKeys.fromSorted(keys, live);
    this.#sortedStale = false;
    if (this.#snapshots.length === 0) this.#freeHeldSlots();
    this.#trim();
  }

  #remember(slot: number): void {
    for (const snapshot of this.#snapshots) {
      if (!snapshot.preImages.has(slot)) snapshot.preImages.set(slot, this.location(slot));
    }
  }

  /** A consistent view of the index now; call its `release()` when done. */
  snapshot(): IndexSnapshot<S> {
    this.#checkSorted();
    const snapshot = new IndexSnapshot<S>(this.#sorted.clone(), this);
    this.#snapshots.push(snapshot);
    return snapshot;
  }

  /** Number of open snapshots. */
  get openSnapshots(): number {
    return this.#snapshots.length;
  }

  /**
   * A live slot picked at random ({@link NO_SLOT} when the index is empty): a few random tries
   * among the allocated slots, else the first key in order (a sparse table after many deletes).
   */
  randomSlot(): number {
    if (this.#size === 0) return NO_SLOT;
    const allocated = this.#keys.length;
    for (let i = 0; i < RANDOM_TRIES; i++) {
      const slot = Math.floor(Math.random() * allocated);
      if (this.#slots[slot * this.#stride + SEGMENT] !== 0) return slot;
    }
    for (const slot of this.range("", MAX_KEY_STRING, 1)) return slot;
    return NO_SLOT;
  }

  /** @internal Called by {@link IndexSnapshot.release}. */
  dropSnapshot(snapshot: IndexSnapshot<S>): void {
    const i = this.#snapshots.indexOf(snapshot);
    if (i !== -1) this.#snapshots.splice(i, 1);
    if (this.#snapshots.length === 0 && !this.#sortedStale) this.#freeHeldSlots();
  }
}
