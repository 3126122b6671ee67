/**
 * Changes to the key index that keep each segment's live-byte account: a value indexed moves
 * its key's bytes to the segment that holds it, a key removed takes them away. Used by writes,
 * replicated appends, recovery and full syncs alike.
 *
 * @module
 */
import assert from "node:assert/strict";
import { HintKind } from "./hint.ts";
import { type KeyIndex, NO_SLOT } from "./key_index.ts";
import { bytesToKey } from "./keys.ts";
import {
  deleteRecordBytes,
  forEachKey,
  MULTI_ENTRY_HEADER_BYTES,
  MultiKind,
  type MultiRecordEntry,
  PAIR_HEADER_BYTES,
  type Payload,
  RECORD_HEADER_BYTES,
} from "./record.ts";
import type { Segment } from "./segment.ts";

/** Bytes a live entry is accounted for (its share of a record). */
export function entryBytes(keyLength: number, valueLength: number): number {
  return keyLength + valueLength + RECORD_HEADER_BYTES;
}

/** The index slot of a key payload, or {@link NO_SLOT}; creates no string for it. */
export function slotOfPayload(index: KeyIndex<Segment>, key: Payload): number {
  return typeof key === "string" ? index.find(key) : index.findBytes(key, 0, key.length);
}

/** Takes `bytes` off a segment's live-byte account, which never goes below zero. */
export function takeLiveBytes(segment: Segment, bytes: number): void {
  segment.liveBytes -= bytes;
  if (segment.liveBytes < 0) {
    assert.fail(`segment ${segment.id} live bytes went negative (${segment.liveBytes})`);
  }
}

/**
 * Points the key `source[start, end)` (a byte string or bytes) at a value in `segment`, expiring
 * at `expiresAtMs` (0: never), and moves its live-byte account from the segment of the value it
 * replaces; returns the key's slot.
 */
export function indexValue(
  index: KeyIndex<Segment>,
  source: Payload,
  start: number,
  end: number,
  segment: Segment,
  offset: number,
  length: number,
  expiresAtMs = 0,
): number {
  const slot = typeof source === "string"
    ? index.find(source)
    : index.findBytes(source, start, end);
  if (slot !== NO_SLOT) {
    reindexSlot(index, slot, end - start, segment, offset, length, expiresAtMs);
    return slot;
  }
  const key = typeof source === "string" ? source : bytesToKey(source, start, end);
  return indexMissed(index, key, segment, offset, length, expiresAtMs);
}

/**
 * {@link indexValue} for `key` (a byte string), which the index's last lookup did not find, with
 * no change to it since: it reuses that lookup's probe (`KeyIndex.insertMissed`); returns the slot.
 */
export function indexMissed(
  index: KeyIndex<Segment>,
  key: string,
  segment: Segment,
  offset: number,
  length: number,
  expiresAtMs: number,
): number {
  const slot = index.insertMissed(key, segment, offset, length, expiresAtMs);
  segment.liveBytes += entryBytes(key.length, length);
  return slot;
}

/**
 * {@link indexValue} for a key already found at live `slot` (its key `keyLength` bytes long): no
 * second lookup.
 */
export function reindexSlot(
  index: KeyIndex<Segment>,
  slot: number,
  keyLength: number,
  segment: Segment,
  offset: number,
  length: number,
  expiresAtMs: number,
): void {
  takeLiveBytes(index.segmentOf(slot), entryBytes(keyLength, index.lengthOf(slot)));
  index.update(slot, segment, offset, length, expiresAtMs);
  segment.liveBytes += entryBytes(keyLength, length);
}

/** Removes the key of a live slot and its live-byte account. */
export function unindexSlot(index: KeyIndex<Segment>, slot: number): void {
  takeLiveBytes(index.segmentOf(slot), entryBytes(index.keyOf(slot).length, index.lengthOf(slot)));
  index.remove(slot);
}

/**
 * Applies one entry of `segment` to the index: a value (its key `buf[keyStart, +keyLength)` now
 * at `valueOffset`, expiring at `expiresAtMs`, 0: never), or a tombstone (the key goes, and the
 * segment counts the tombstone's bytes). A flush entry is the caller's ({@link flushSegments}).
 */
export function applyEntry(
  index: KeyIndex<Segment>,
  segment: Segment,
  kind: number,
  buf: Uint8Array,
  keyStart: number,
  keyLength: number,
  valueOffset: number,
  valueLength: number,
  expiresAtMs = 0,
): void {
  const keyEnd = keyStart + keyLength;
  if (kind === HintKind.TOMBSTONE) {
    const slot = index.findBytes(buf, keyStart, keyEnd);
    if (slot !== NO_SLOT) unindexSlot(index, slot);
    segment.tombstoneBytes += deleteRecordBytes(keyLength);
  } else {
    indexValue(index, buf, keyStart, keyEnd, segment, valueOffset, valueLength, expiresAtMs);
  }
}

/**
 * A FLUSH: every key so far is gone, so no segment holds a live byte any more (the caller starts
 * a new, empty index). The flush goes into `active`'s hint, in log order.
 */
export function flushSegments(segments: Iterable<Segment>, active: Segment): void {
  for (const segment of segments) segment.liveBytes = 0;
  active.liveBytes = 0;
  active.hint?.addFlush();
  active.tombstoneBytes += RECORD_HEADER_BYTES;
}

/**
 * Applies the checked record `buf[at, ...)` (not a FLUSH: {@link flushSegments}), appended to the
 * active `segment` at file offset `recordOffset`, to the index; a tombstone also goes into the
 * segment's hint.
 */
export function applyRecord(
  index: KeyIndex<Segment>,
  segment: Segment,
  buf: Uint8Array,
  view: DataView,
  at: number,
  recordOffset: number,
): void {
  const base = recordOffset - at; // file offset of buf[0]
  forEachKey(buf, view, at, (keyStart, keyLength, valueStart, valueLength, expiresAtMs) => {
    if (valueStart < 0) {
      segment.hint?.add(HintKind.TOMBSTONE, buf, keyStart, keyLength, 0, 0);
      applyEntry(index, segment, HintKind.TOMBSTONE, buf, keyStart, keyLength, 0, 0);
    } else {
      const valueOffset = base + valueStart;
      applyEntry(
        index,
        segment,
        HintKind.VALUE,
        buf,
        keyStart,
        keyLength,
        valueOffset,
        valueLength,
        expiresAtMs,
      );
    }
  });
}

/** Notes a tombstone for `key` written to the active `segment` (its hint and its tombstone bytes). */
export function noteTombstone(segment: Segment, key: Payload): void {
  if (typeof key === "string") segment.hint?.addKey(HintKind.TOMBSTONE, key, 0, 0);
  else segment.hint?.add(HintKind.TOMBSTONE, key, 0, key.length, 0, 0);
  segment.tombstoneBytes += deleteRecordBytes(key.length);
}

/**
 * Applies a BATCH record of `pairs` just appended to the active `segment` at file offset
 * `recordOffset`: each key points at its value in the record; `changed` hears of each key.
 */
export function indexBatch(
  index: KeyIndex<Segment>,
  segment: Segment,
  recordOffset: number,
  pairs: readonly (readonly [Uint8Array, Uint8Array])[],
  changed: ((key: string) => void) | undefined,
): void {
  let offset = recordOffset + RECORD_HEADER_BYTES;
  for (const [key, value] of pairs) {
    offset += PAIR_HEADER_BYTES + key.length;
    indexValue(index, key, 0, key.length, segment, offset, value.length);
    offset += value.length;
    changed?.(bytesToKey(key));
  }
}

/**
 * Applies a MULTI record of `entries` just appended to the active `segment` at file offset
 * `recordOffset`, in order: a put points its key at its value in the record, a delete removes
 * the key (and notes the tombstone); `changed` hears of each key.
 */
export function indexMulti(
  index: KeyIndex<Segment>,
  segment: Segment,
  recordOffset: number,
  entries: readonly MultiRecordEntry[],
  changed: ((key: string) => void) | undefined,
): void {
  let offset = recordOffset + RECORD_HEADER_BYTES;
  for (const entry of entries) {
    offset += MULTI_ENTRY_HEADER_BYTES + entry.key.length;
    if (entry.kind === MultiKind.PUT) {
      const { key, value } = entry;
      indexValue(index, key, 0, key.length, segment, offset, value.length, entry.expiresAtMs);
      offset += value.length;
    } else {
      const slot = slotOfPayload(index, entry.key);
      if (slot !== NO_SLOT) unindexSlot(index, slot);
      noteTombstone(segment, entry.key);
    }
    const key = entry.key;
    changed?.(typeof key === "string" ? key : bytesToKey(key));
  }
}
