/**
 * Snapshots: a consistent view of every pair at one LSN, read while writes go on (a replica's full
 * sync, a backup). The index's copy-on-write view fixes which value each key had; the segments
 * those values lie in are pinned, so compaction leaves their files alone until `release()`.
 *
 * @module
 */
import { StorageError } from "./errors.ts";
import type { KeyIndex, Location } from "./key_index.ts";
import type { Segment } from "./segment.ts";

/**
 * One pair of a snapshot: key, value, and when the key expires (ms since the Unix epoch, 0:
 * never; a key may be past its time, not yet deleted: its reader treats it as absent).
 */
export type SnapshotEntry = [key: Uint8Array, value: Uint8Array, expiresAtMs: number];

/** A consistent view of a store's pairs at one LSN (see `ReplicationLog.snapshot`). */
export interface StoreSnapshot {
  /** Every record up to this LSN is in the view, none after it. */
  lsn: number;
  /** Number of pairs. */
  keys: number;
  /** The pairs in key byte order, each with its expiry time. */
  entries: AsyncIterable<SnapshotEntry>;
  /** Unpins the segments; call once done (iteration afterwards throws). */
  release(): void;
}

/** What a snapshot reads of the store. */
export interface SnapshotSource {
  readonly index: KeyIndex<Segment>;
  /** The LSN of the last record appended: the snapshot's. */
  readonly lsn: number;
  /** Every segment an index entry may point into now. */
  readonly segments: readonly Segment[];
  /** Resolves once `lsn` is durable. */
  whenDurable(lsn: number): Promise<void>;
  /** The bytes of a key string (the caller's to keep). */
  keyBytes(key: string): Uint8Array;
  /** The bytes of a value (the caller's to keep). */
  readValue(location: Location<Segment>): Uint8Array;
  isClosed(): boolean;
}

/**
 * Takes a snapshot of `source` at its LSN (durable before this resolves); writes made meanwhile
 * are not in it.
 */
export async function takeSnapshot(source: SnapshotSource): Promise<StoreSnapshot> {
  const view = source.index.snapshot();
  const lsn = source.lsn;
  const pinned = [...source.segments];
  for (const segment of pinned) segment.pin();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    view.release();
    for (const segment of pinned) segment.unpin();
  };
  try {
    await source.whenDurable(lsn);
  } catch (error) {
    release();
    throw error;
  }
  return {
    lsn,
    keys: view.size,
    release,
    entries: (async function* () {
      for (const slot of view.sorted.slots()) {
        if (released || source.isClosed()) {
          throw new StorageError("snapshot used after release or close");
        }
        const key = source.keyBytes(view.keyOf(slot));
        const location = view.locationOf(slot);
        yield [key, source.readValue(location), location.expiresAtMs] as SnapshotEntry;
      }
    })(),
  };
}
