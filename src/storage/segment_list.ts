/**
 * The segments of a store, oldest first; the last is the active one. The log writer appends a
 * segment when it rolls, compaction replaces a run of adjacent sealed segments with one, a full
 * sync replaces them all; every other part only reads the list.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Segment } from "./segment.ts";

/** The ordered segments of a store (ids ascending; never empty). */
export class SegmentList {
  #all: Segment[];
  #active: Segment;

  constructor(segments: Segment[]) {
    this.#all = [];
    this.#active = this.#replace(segments);
  }

  /** Every segment, oldest first; the last is {@link active}. */
  get all(): readonly Segment[] {
    return this.#all;
  }

  /** The segment appended to. */
  get active(): Segment {
    return this.#active;
  }

  /** The oldest segment (its tombstones cover nothing older: compaction may drop them). */
  get oldest(): Segment {
    return this.#all[0];
  }

  /** The sealed segments, oldest first. */
  sealed(): Segment[] {
    return this.#all.slice(0, -1);
  }

  /** Number of segments. */
  get length(): number {
    return this.#all.length;
  }

  /** The first segment, not retired, whose id is at least `id`. */
  firstFrom(id: number): Segment | undefined {
    return this.#all.find((segment) => segment.id >= id && !segment.retired);
  }

  /** Adds the next active segment (the writer rolled). */
  push(next: Segment): void {
    if (next.id <= this.#active.id) {
      assert.fail(`segment ${next.id} added after segment ${this.#active.id}`);
    }
    this.#all.push(next);
    this.#active = next;
  }

  /** Replaces `run` (adjacent sealed segments, in order) with `output` (compaction). */
  replaceRun(run: readonly Segment[], output: Segment): void {
    const at = this.#all.indexOf(run[0]);
    assert.ok(at !== -1 && this.#all[at + run.length - 1] === run[run.length - 1]);
    assert.ok(!run.includes(this.#active), "compaction never replaces the active segment");
    this.#all.splice(at, run.length, output);
  }

  /** Replaces every segment (a full sync). */
  replaceAll(segments: Segment[]): void {
    this.#active = this.#replace(segments);
  }

  /** The log holds every record after this LSN (compaction or a full sync dropped some before). */
  oldestCompleteLsn(): number {
    let lsn = 0;
    for (const segment of this.#all) lsn = Math.max(lsn, segment.header.coveredLastLsn);
    return lsn;
  }

  /** Bytes of every segment file. */
  sizeBytes(): number {
    let bytes = 0;
    for (const segment of this.#all) bytes += segment.sizeBytes;
    return bytes;
  }

  #replace(segments: Segment[]): Segment {
    assert.ok(segments.length > 0, "a store always has an active segment");
    for (let i = 1; i < segments.length; i++) {
      if (segments[i].id <= segments[i - 1].id) assert.fail("segment ids must ascend");
    }
    this.#all = segments;
    return segments[segments.length - 1];
  }
}
