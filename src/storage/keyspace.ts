/**
 * The store's live contents as its parts share them: the key index (replaced whole by a FLUSH or
 * a full sync) and who hears of the keys writes change. The store's writes and the replication
 * log's appends both change it; reads, compaction, hints and expiry read it.
 *
 * @module
 */
import { flushSegments } from "./index_entries.ts";
import { KeyIndex, type LeaveListener, NO_SLOT } from "./key_index.ts";
import { composeKeyListeners, type KeyChangeListener } from "./key_changes.ts";
import type { Segment } from "./segment.ts";

/** The index now and the listeners of its keys (`KVStore.onKeyChange`). */
export class Keyspace {
  /** The live index; a FLUSH or a full sync replaces it (snapshots keep the old one). */
  index: KeyIndex<Segment>;
  /** Every listener composed into one call; undefined: nobody listens (a write pays one check). */
  changed: KeyChangeListener | undefined;
  #listeners = new Set<KeyChangeListener>();

  /**
   * @param onLeave told of every value the index leaves (see `KeyIndex.onLeave`), by this index
   *   and every index that replaces it
   */
  constructor(index: KeyIndex<Segment>, readonly onLeave?: LeaveListener<Segment>) {
    this.index = index;
    index.onLeave = onLeave;
  }

  /** Adds `listener`; returns a function that removes it. */
  listen(listener: KeyChangeListener): () => void {
    this.#listeners.add(listener);
    this.changed = composeKeyListeners(this.#listeners);
    return () => {
      this.#listeners.delete(listener);
      this.changed = composeKeyListeners(this.#listeners);
    };
  }

  /** A FLUSH just appended to `active`: a new, empty index; no segment holds a live byte. */
  flush(segments: Iterable<Segment>, active: Segment): void {
    flushSegments(segments, active);
    this.replace(new KeyIndex<Segment>());
  }

  /**
   * Replaces the whole contents (a FLUSH, a full sync): the keys that changed are those live
   * before or after, which listeners ask about.
   */
  replace(index: KeyIndex<Segment>): void {
    const before = this.index;
    this.index = index;
    index.onLeave = this.onLeave;
    const nowMs = Date.now();
    this.changed?.(undefined, (key) => isLive(before, key, nowMs) || isLive(index, key, nowMs));
  }
}

/** Whether `index` holds `key` and its time to live has not run out at `nowMs`. */
function isLive(index: KeyIndex<Segment>, key: string, nowMs: number): boolean {
  const slot = index.find(key);
  return slot !== NO_SLOT && !index.isExpired(slot, nowMs);
}
