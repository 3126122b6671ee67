/**
 * Which values of a segment are dead, noted as the index leaves them, so compaction skips them
 * without looking their keys up. Under a steady overwrite load nearly every record of a sealed
 * segment is dead, and finding that out by key (a hash probe, ~1 µs of dependent memory reads on
 * this machine) was most of compaction's cost, which ran at a third of a write load's CPU.
 *
 * A map is one bit per 8 bytes of the segment's file: distinct values of a segment start at least
 * 8 bytes apart (a BATCH pair's header is 8 bytes, a MULTI entry's 17, a record's 32), so the bit
 * of `offset >>> 3` names one value exactly. It is 1/64 of the segment size (1 MiB for the default
 * 64 MiB). A bit is set only when the key index moves a key off that very value (an overwrite, a
 * delete, an expiry: `KeyIndex.onLeave`), and the index never points at a value it left, so a set
 * bit is always right; a value with no bit set is looked up as before, so a map that is missing or
 * was dropped costs speed, never data.
 *
 * Maps go only to segments that are active in this process (where overwrites land as they
 * happen), when a value of theirs first dies; a sealed segment keeps its map until compaction
 * retires it. All maps together stay within `DEAD_VALUE_MAP_BYTES`: past it, the oldest map is
 * dropped for the new one.
 *
 * No bit is set while compaction would walk the segment through the index (it is mostly dead:
 * `compactsThroughIndex`), as that walk never reads the map. Under a hot set's overwrites (`INCR`
 * of 100,000 counters) that is most of a segment's life, and each bit is a write to a random byte
 * of the map, a cache miss. Should the segment come back to needing a scan, the values that died
 * meanwhile are looked up, as with no map.
 *
 * @module
 */
import { getLog } from "../log.ts";
import type { LeaveListener } from "./key_index.ts";
import type { Segment } from "./segment.ts";

const log = getLog("storage");

/** Bytes of file a map's bit stands for: values start at least this far apart. */
const BYTES_PER_BIT = 8;
/** At most one log line a minute says the bound dropped a map. */
const BOUND_LOG_INTERVAL_MS = 60_000;

/** Whether `map` says the value at file `offset` is dead. */
export function isDeadValue(map: Uint8Array, offset: number): boolean {
  const bit = offset >>> 3;
  const byte = bit >>> 3;
  return byte < map.length && (map[byte] & (1 << (bit & 7))) !== 0;
}

/** The dead-value maps of one store's segments, bounded in bytes. */
export class DeadValueMaps implements LeaveListener<Segment> {
  /** Segments holding a map, oldest map first. */
  #holders: Segment[] = [];
  #usedBytes = 0;
  #boundLoggedAtMs = -Infinity;

  /**
   * @param maxBytes bound on all maps together (0: none are kept)
   * @param mapBytes bytes of a new map: the largest segment the log writes, over 64
   * @param active the segment the log appends to now
   * @param unread whether a map of `segment` would go unread now (its compaction would not scan)
   */
  constructor(
    readonly maxBytes: number,
    readonly mapBytes: number,
    readonly active: () => Segment,
    readonly unread: (segment: Segment) => boolean = () => false,
  ) {}

  /** Bytes of maps held now. */
  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** The index left the value at file `offset` of `segment`: it is dead for good. */
  valueLeft(segment: Segment, offset: number): void {
    let map = segment.deadValues;
    // The cheap refusal first: no map, and none is made for a segment no longer written.
    if (map === undefined && (segment !== this.active() || segment.retired)) return;
    if (this.unread(segment)) return;
    if (map === undefined) {
      map = this.#newMap(segment);
      if (map === undefined) return;
    }
    const bit = offset >>> 3;
    const byte = bit >>> 3;
    if (byte < map.length) map[byte] |= 1 << (bit & 7);
  }

  #newMap(segment: Segment): Uint8Array | undefined {
    const bytes = this.mapBytes;
    if (bytes > this.maxBytes) return undefined;
    this.#dropRetired();
    // Bounded: each turn drops one map.
    while (this.#usedBytes + bytes > this.maxBytes && this.#holders.length > 0) {
      const oldest = this.#holders.shift() as Segment;
      this.#drop(oldest);
      this.#logBound(oldest);
    }
    const map = new Uint8Array(bytes);
    segment.deadValues = map;
    this.#holders.push(segment);
    this.#usedBytes += bytes;
    return map;
  }

  /** Says (once a minute at most) that the bound dropped `segment`'s map. */
  #logBound(segment: Segment): void {
    const nowMs = Date.now();
    if (nowMs - this.#boundLoggedAtMs < BOUND_LOG_INTERVAL_MS) return;
    this.#boundLoggedAtMs = nowMs;
    log.info(
      "dead-value maps reached DEAD_VALUE_MAP_BYTES ({maxBytes}): dropped segment {id}'s map; " +
        "compacting it looks its keys up (slower, never wrong)",
      { maxBytes: this.maxBytes, id: segment.id },
    );
  }

  /** Forgets the maps of segments compaction or a full sync retired. */
  #dropRetired(): void {
    if (!this.#holders.some((segment) => segment.retired)) return;
    const kept: Segment[] = [];
    for (const segment of this.#holders) {
      if (segment.retired) this.#drop(segment);
      else kept.push(segment);
    }
    this.#holders = kept;
  }

  #drop(segment: Segment): void {
    this.#usedBytes -= segment.deadValues?.length ?? 0;
    segment.deadValues = undefined;
  }
}

/** Map bytes for segments of up to `segmentSizeBytes` (a bit per {@link BYTES_PER_BIT} bytes). */
export function deadMapBytes(segmentSizeBytes: number): number {
  return Math.ceil(segmentSizeBytes / BYTES_PER_BIT / 8);
}
