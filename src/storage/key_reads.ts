/**
 * Reads of the whole keyspace: the slots of a range (bounded in keys and bytes, expired keys left
 * out), a walk in key order, a random key, the key count; the last three also as they are with
 * the writes of an atomic call running now (`KVStore.atomically`).
 *
 * @module
 */
import { RangeTooLargeError } from "./errors.ts";
import { type KeyIndex, MAX_KEY_STRING, NO_SLOT } from "./key_index.ts";
import { readNowMs, type WriteCapture } from "./write_capture.ts";

/** Random picks {@link randomLiveKey} makes before it walks to the first live key. */
const RANDOM_KEY_TRIES = 16;

/**
 * `KVStore.forEachKey`: at most `limit` keys of `index` in `[start, end]`, in byte order; inside
 * an atomic call merged with the ones `capture` wrote (its state wins for a key in both).
 */
export function forEachKeyCaptured(
  index: KeyIndex<object>,
  capture: WriteCapture | undefined,
  start: string,
  end: string,
  limit: number,
  visit: (key: string, live: boolean) => void,
): number {
  const nowMs = readNowMs(capture);
  if (capture === undefined) {
    return index.forEachInRange(start, end, limit, (slot) => {
      visit(index.keyOf(slot), !index.isExpired(slot, nowMs));
    });
  }
  const captured = capture.inRange(start, end);
  let next = 0;
  let count = 0;
  /** Visits the captured keys up to `upTo` (all when undefined); one equal to it is skipped. */
  const visitCaptured = (upTo: string | undefined): void => {
    while (next < captured.length && count < limit) {
      const [key, state] = captured[next];
      if (upTo !== undefined && key > upTo) return;
      next++;
      if (key === upTo) continue;
      visit(key, state !== null);
      count++;
    }
  };
  for (const slot of index.range(start, end)) {
    if (count >= limit) break;
    const key = index.keyOf(slot);
    visitCaptured(key);
    if (count >= limit) break;
    const state = next > 0 && captured[next - 1][0] === key ? captured[next - 1][1] : undefined;
    visit(key, state === undefined ? !index.isExpired(slot, nowMs) : state !== null);
    count++;
  }
  visitCaptured(undefined);
  return count;
}

/**
 * A key of `index` picked at random that exists (not past its expiry time, not deleted by
 * `capture`), or one `capture` created; undefined when there is none.
 */
export function randomLiveKey(
  index: KeyIndex<object>,
  capture: WriteCapture | undefined,
): string | undefined {
  const nowMs = readNowMs(capture);
  const exists = (slot: number): boolean => {
    const state = capture?.lookup(index.keyOf(slot));
    return state === undefined ? !index.isExpired(slot, nowMs) : state !== null;
  };
  // Keys the atomic call created take their share of the picks.
  const added = capture === undefined
    ? []
    : [...capture.states()].filter(([key, state]) => state !== null && index.find(key) === NO_SLOT);
  if (added.length > 0) {
    const pick = Math.floor(Math.random() * (index.size + added.length));
    if (pick >= index.size) return added[pick - index.size][0];
  }
  // A few tries past keys whose time is up (Redis's RANDOMKEY tries likewise).
  for (let i = 0; i < RANDOM_KEY_TRIES; i++) {
    const slot = index.randomSlot();
    if (slot === NO_SLOT) break;
    if (exists(slot)) return index.keyOf(slot);
  }
  for (const slot of index.range("", MAX_KEY_STRING)) if (exists(slot)) return index.keyOf(slot);
  return added[0]?.[0];
}

/** The number of keys of `index` with the writes of `capture` applied. */
export function sizeWithCapture(index: KeyIndex<object>, capture: WriteCapture): number {
  let size = index.size;
  for (const [key, state] of capture.states()) {
    const indexed = index.find(key) !== NO_SLOT;
    if (state === null && indexed) size--;
    else if (state !== null && !indexed) size++;
  }
  return size;
}

/**
 * The slots of `KVStore.readRange`: keys `start <= k <= end` (byte strings) in byte order, not
 * past their expiry time, at most `limit`. Their sizes come from the index, so a range of more
 * than `maxBytes` (keys and values) is refused before any value is read.
 *
 * @throws {RangeTooLargeError} the range holds more than `maxBytes`
 */
export function rangeSlots(
  index: KeyIndex<object>,
  start: string,
  end: string,
  options: { limit?: number; maxBytes?: number },
): number[] {
  const nowMs = Date.now();
  const slots: number[] = [];
  const limit = options.limit ?? Infinity;
  for (const slot of index.range(start, end)) {
    if (slots.length >= limit) break;
    if (!index.isExpired(slot, nowMs)) slots.push(slot);
  }
  if (options.maxBytes !== undefined) {
    let bytes = 0;
    for (const slot of slots) {
      bytes += index.keyOf(slot).length + index.lengthOf(slot);
      if (bytes > options.maxBytes) throw new RangeTooLargeError(options.maxBytes);
    }
  }
  return slots;
}
