/**
 * The in-memory index: key → where its value lies in the log. A hash map answers point lookups
 * (one hash, no ordered search); a {@link SortedKeys} set gives byte order for ranges. Snapshots
 * clone the sorted set (copy-on-write) and keep the first previous location of every key changed
 * after them ("pre-images"), so a snapshot sees the index exactly as it was, at a cost only while
 * it is open.
 *
 * Keys are byte strings (see `keys.ts`). Hash maps are sharded because a V8 `Map` holds at most
 * 2^24 entries.
 *
 * @module
 */
import { SortedKeys } from "./sorted_keys.ts";

/** A segment as the index sees it: something a location points into. */
export interface SegmentRef {
  readonly id: number;
}

/** Where a value lies: its segment, the file offset of its first byte, and its length. */
export interface Location<S extends SegmentRef = SegmentRef> {
  readonly segment: S;
  readonly offset: number;
  readonly length: number;
}

const SHARDS = 16;

function shardOf(key: string): number {
  const n = key.length;
  if (n === 0) return 0;
  return (n * 7 + key.charCodeAt(n - 1) * 31 + key.charCodeAt(n >>> 1) * 17 + key.charCodeAt(0)) &
    (SHARDS - 1);
}

/** A consistent, read-only view of the index at the moment it was taken. */
export class IndexSnapshot<S extends SegmentRef> {
  /** Location before the first change after the snapshot; null when the key did not exist. */
  readonly preImages: Map<string, Location<S> | null> = new Map();
  #released = false;

  constructor(
    readonly keys: SortedKeys,
    private readonly index: KeyIndex<S>,
  ) {}

  /** The location `key` had when the snapshot was taken. */
  get(key: string): Location<S> | undefined {
    const before = this.preImages.get(key);
    if (before !== undefined) return before ?? undefined;
    return this.index.get(key);
  }

  /** Stops tracking changes; the snapshot must not be used afterwards. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.index.dropSnapshot(this);
  }
}

/** The index of a store. */
export class KeyIndex<S extends SegmentRef = SegmentRef> {
  #shards: Map<string, Location<S>>[] = Array.from({ length: SHARDS }, () => new Map());
  #sorted = new SortedKeys();
  #snapshots: IndexSnapshot<S>[] = [];
  #size = 0;

  /** Number of live keys. */
  get size(): number {
    return this.#size;
  }

  /** The location of `key`'s value, or undefined. */
  get(key: string): Location<S> | undefined {
    return this.#shards[shardOf(key)].get(key);
  }

  #remember(key: string, previous: Location<S> | undefined): void {
    for (const snapshot of this.#snapshots) {
      if (!snapshot.preImages.has(key)) snapshot.preImages.set(key, previous ?? null);
    }
  }

  /** Points `key` at `location`; returns the location it replaced. */
  set(key: string, location: Location<S>): Location<S> | undefined {
    const shard = this.#shards[shardOf(key)];
    const previous = shard.get(key);
    if (this.#snapshots.length > 0) this.#remember(key, previous);
    shard.set(key, location);
    if (previous === undefined) {
      this.#sorted.add(key);
      this.#size++;
    }
    return previous;
  }

  /** Removes `key`; returns the location it had. */
  delete(key: string): Location<S> | undefined {
    const shard = this.#shards[shardOf(key)];
    const previous = shard.get(key);
    if (previous === undefined) return undefined;
    if (this.#snapshots.length > 0) this.#remember(key, previous);
    shard.delete(key);
    this.#sorted.delete(key);
    this.#size--;
    return previous;
  }

  /** Keys in `[start, end]`, ascending, at most `limit`. */
  range(start: string, end: string, limit = Infinity): Generator<string> {
    return this.#sorted.range(start, end, limit);
  }

  /** Every (key, location), in hash order (fast; not sorted). */
  *entries(): Generator<[string, Location<S>]> {
    for (const shard of this.#shards) yield* shard;
  }

  /**
   * Replaces the sorted set by one built from the hash maps: one sort, then an O(n) build. Used
   * after recovery filled the maps with {@link setUnsorted}.
   */
  rebuildSorted(): void {
    const keys: string[] = [];
    for (const shard of this.#shards) for (const key of shard.keys()) keys.push(key);
    keys.sort();
    this.#sorted = SortedKeys.fromSorted(keys);
  }

  /** Like {@link set} but leaves the sorted set stale (recovery; call {@link rebuildSorted}). */
  setUnsorted(key: string, location: Location<S>): Location<S> | undefined {
    const shard = this.#shards[shardOf(key)];
    const previous = shard.get(key);
    shard.set(key, location);
    if (previous === undefined) this.#size++;
    return previous;
  }

  /** Like {@link delete} but leaves the sorted set stale (recovery). */
  deleteUnsorted(key: string): Location<S> | undefined {
    const shard = this.#shards[shardOf(key)];
    const previous = shard.get(key);
    if (previous !== undefined) {
      shard.delete(key);
      this.#size--;
    }
    return previous;
  }

  /** A consistent view of the index now; call its `release()` when done. */
  snapshot(): IndexSnapshot<S> {
    const snapshot = new IndexSnapshot<S>(this.#sorted.clone(), this);
    this.#snapshots.push(snapshot);
    return snapshot;
  }

  /** Number of open snapshots. */
  get openSnapshots(): number {
    return this.#snapshots.length;
  }

  /** @internal Called by {@link IndexSnapshot.release}. */
  dropSnapshot(snapshot: IndexSnapshot<S>): void {
    const i = this.#snapshots.indexOf(snapshot);
    if (i !== -1) this.#snapshots.splice(i, 1);
  }

  /** Removes every key (open snapshots keep their view). */
  clear(): void {
    if (this.#snapshots.length > 0) {
      for (const [key, location] of this.entries()) this.#remember(key, location);
    }
    this.#shards = Array.from({ length: SHARDS }, () => new Map());
    this.#sorted = new SortedKeys();
    this.#size = 0;
  }
}
