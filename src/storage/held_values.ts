/**
 * The values of many keys as they all were at one instant, read later: Redis's `MGET` over
 * thousands of keys is atomic, and a server that reads their values in steps (so other
 * connections are served meanwhile) must still answer with one state, never half of another
 * client's `MSET` (an outside probe found 20 of 20 MGETs of 200,000 keys torn that way).
 *
 * Every key is looked up at once (index lookups only: ~0.2 µs a key, ~50 ms for the most keys a
 * request may hold), and where its value lies is kept. Values in the log never change where they
 * lie, so reading them later gives the bytes of that instant, as long as their segments stay:
 * each segment a held value lies in is pinned until {@link HeldValues.release} (as a snapshot's
 * are), so compaction leaves it alone meanwhile (and compacts the others), and kept open, so a full
 * sync that retires it does not close its file under the reads. Values written by the atomic call running now
 * (inside `EXEC`) are held as the bytes themselves.
 *
 * @module
 */
import type { Segment } from "./segment.ts";

/** How a held value is read: the store's value reader, past its cache. */
export type ReadValue = (segment: Segment, offset: number, length: number) => Uint8Array;

/**
 * The values of keys `0 .. count - 1` fixed at one instant (see the module comment); build with
 * {@link holdAt} or {@link holdCaptured} for each key found, then read with {@link value}.
 */
export class HeldValues {
  readonly #segments: (Segment | undefined)[];
  readonly #offsets: Uint32Array;
  readonly #lengths: Uint32Array;
  /** Values of keys the running atomic call wrote (null: it deleted them), by key number. */
  #captured: Map<number, Uint8Array | null> | undefined;
  /** The segments held values lie in, each pinned once (and opened) until release. */
  readonly #pinned = new Set<Segment>();
  /** The segment of the last value held (consecutive keys often share one). */
  #lastSegment: Segment | undefined;
  readonly #read: ReadValue;
  readonly #checkOpen: () => void;
  readonly #unpinned: () => void;
  #released = false;

  /**
   * @param count keys held
   * @param read reads a value's bytes
   * @param checkOpen throws when the store closed (a read then fails)
   * @param unpinned called once a release unpinned segments (compaction may take them now)
   */
  constructor(count: number, read: ReadValue, checkOpen: () => void, unpinned: () => void) {
    this.#segments = new Array(count);
    this.#offsets = new Uint32Array(count);
    this.#lengths = new Uint32Array(count);
    this.#read = read;
    this.#checkOpen = checkOpen;
    this.#unpinned = unpinned;
  }

  /** Key `i`'s value lies at `offset` of `segment`, `length` bytes. */
  holdAt(i: number, segment: Segment, offset: number, length: number): void {
    if (segment !== this.#lastSegment && !this.#pinned.has(segment)) {
      segment.pin();
      // Open now, while the file surely exists: a full sync may delete a retired segment's file
      // while it is pinned, and an open handle still reads it.
      segment.reader();
      this.#pinned.add(segment);
    }
    this.#lastSegment = segment;
    this.#segments[i] = segment;
    this.#offsets[i] = offset;
    this.#lengths[i] = length;
  }

  /** Key `i`'s value is `value` (null: absent), written by the running atomic call. */
  holdCaptured(i: number, value: Uint8Array | null): void {
    (this.#captured ??= new Map()).set(i, value);
  }

  /**
   * The value key `i` had at the instant (undefined: absent, or past its expiry time then).
   *
   * @throws {StoreClosedError} the store closed meanwhile
   * @throws {CorruptionError} the file ends before the value does
   */
  value(i: number): Uint8Array | undefined {
    const captured = this.#captured?.get(i);
    if (captured !== undefined) return captured ?? undefined;
    const segment = this.#segments[i];
    if (segment === undefined) return undefined;
    if (this.#released) throw new Error("held values read after their release");
    this.#checkOpen();
    return this.#read(segment, this.#offsets[i], this.#lengths[i]);
  }

  /** Unpins the segments; call once done, also when giving up (a second call does nothing). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#pinned.size === 0) return;
    for (const segment of this.#pinned) segment.unpin();
    this.#pinned.clear();
    this.#unpinned();
  }
}
