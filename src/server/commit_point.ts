/**
 * The commit point of a master's reads: a read answers only with values whose write is committed
 * under the node's durability setting (durable here for `--fsync always`, written for
 * `everysec`/`no`; in sync mode also on the required replicas), so no client ever sees a value
 * that a crash or a failover can take back. A read of a key whose newest write is not committed
 * yet takes the value now and answers once that write is committed (or with an error when it
 * cannot be, e.g. its sync wait timed out): a linearizable register per key.
 *
 * Why a read can see an uncommitted write at all: a write is applied to the index at once, and
 * made durable at the end of the event-loop turn (group commit) or acknowledged by replicas
 * later. A read from another connection in the same turn, or any read in sync mode before the
 * replicas acknowledged, finds the new value in the index.
 *
 * What it costs: without replicas to wait for (async mode, no replicas), only writes of the
 * current turn are uncommitted, and the group commit at the end of the turn commits all of them:
 * a read that finds any joins its batch's durability wait (as a write does), which ends in the same
 * turn. Nothing is tracked, no promise is made; a read costs two field reads and a comparison.
 * In sync mode writes stay uncommitted for a replication round trip, so a read waits only for its
 * own key's: each client write stores its LSN in a fixed table of {@link COMMIT_SLOTS} slots by a
 * hash of its key (no allocation, nothing to clear: a slot whose LSN is at or below the commit
 * point is simply stale); a read while writes are uncommitted hashes its key and waits only when
 * its slot holds an uncommitted LSN. Two keys sharing a slot make a read wait for the other key's
 * write too: still correct, only later.
 *
 * On a replica nothing is noted (clients cannot write there): a replica's reads show what it
 * applied. A floor covers what the table cannot know: at start in sync mode (the log may hold
 * writes whose sync wait failed) and after PROMOTE (the old epoch's records may not be on the new
 * replicas yet), reads wait until the floor LSN is committed.
 *
 * @module
 */
import type { KVStore } from "../storage/mod.ts";

/** Slots of the table of uncommitted writes (8 bytes each: 32 KiB). */
export const COMMIT_SLOTS = 4096;
const MASK = COMMIT_SLOTS - 1;

/** FNV-1a over the key's bytes, folded: only to spread keys over the slots. */
function slotOf(key: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193);
  return (h ^ (h >>> 15)) & MASK;
}

/**
 * What replication adds to the commit point while a replica must acknowledge writes (a sync-mode
 * master); absent (async mode, a replica), writes commit once durable here.
 */
export interface ReplicationCommit {
  /** Highest LSN the required replicas acknowledged (never decreases). */
  committedLsn(): number;
  /**
   * Waits until `lsn` is on the required replicas: `undefined` when it is (or nothing is
   * required), else a promise of `undefined` or of the reason it cannot be.
   */
  awaitReplication(lsn: number): Promise<string | undefined> | undefined;
}

/** Where a master's reads stop: see the module comment. */
export class CommitPoint {
  readonly #store: KVStore;
  readonly #slots = new Float64Array(COMMIT_SLOTS);
  #floorLsn = 0;
  #replication: ReplicationCommit | undefined;

  constructor(store: KVStore) {
    this.#store = store;
  }

  /**
   * Plugs replication in (a sync-mode master's replicator) or out: while it is out, the common
   * case of a read costs two field reads and a comparison.
   */
  setReplication(replication: ReplicationCommit | undefined): void {
    this.#replication = replication;
  }

  /** Highest LSN committed now. */
  get committedLsn(): number {
    const durable = this.#store.durableLsn;
    const replication = this.#replication;
    if (replication === undefined) return durable;
    const replicated = replication.committedLsn();
    return durable < replicated ? durable : replicated;
  }

  /**
   * A client write of `key` appended at `lsn` (before the write's handler returns). Kept only
   * while replication is plugged in: without it, a read waits for the turn's group commit instead
   * (see {@link pendingLsn}).
   */
  noteWrite(key: Uint8Array, lsn: number): void {
    if (this.#replication !== undefined) this.#slots[slotOf(key)] = lsn;
  }

  /**
   * Forgets every noted write and the floor (the role changed: LSNs noted in another role may
   * never be committed in this one, e.g. after a full sync replaced the log).
   */
  clear(): void {
    this.#slots.fill(0);
    this.#floorLsn = 0;
  }

  /** Reads wait until `lsn` is committed (at start in sync mode, after PROMOTE). */
  raiseFloor(lsn: number): void {
    if (lsn > this.#floorLsn) this.#floorLsn = lsn;
  }

  /**
   * The LSN a read of `key` must wait for, or 0 when its value can be answered now. Without
   * replication, what is not committed is only what this turn wrote (the group commit at its end
   * makes all of it durable at once), so a read then waits for the last LSN, at no cost but the
   * end of the turn, and nothing is hashed; the common case costs two field reads.
   */
  pendingLsn(key: Uint8Array): number {
    const store = this.#store;
    const last = store.lastLsn;
    if (this.#replication === undefined) return last <= store.durableLsn ? 0 : last;
    const committed = this.committedLsn;
    if (last <= committed) return 0;
    const slot = this.#slots[slotOf(key)];
    const needed = slot > this.#floorLsn ? slot : this.#floorLsn;
    return needed > committed ? needed : 0;
  }

  /** The LSN a read of every one of `keys` must wait for ({@link pendingLsn}), or 0. */
  pendingLsnOf(keys: readonly Uint8Array[]): number {
    let pending = 0;
    for (const key of keys) pending = Math.max(pending, this.pendingLsn(key));
    return pending;
  }

  /**
   * The LSN a read of many keys or of a range must wait for (every write so far), or 0 when
   * everything is committed.
   */
  pendingAllLsn(): number {
    const last = this.#store.lastLsn;
    return last <= this.committedLsn ? 0 : last;
  }

  /**
   * True when `lsn` is committed as soon as it is durable here (no replica must have it first):
   * then a read can wait for it the way a write does, with the batch's one durability wait.
   */
  durableSuffices(lsn: number): boolean {
    const replication = this.#replication;
    return replication === undefined || replication.committedLsn() >= lsn;
  }

  /**
   * Resolves once `lsn` is committed: to `undefined`, or to why it cannot be (the log failed, the
   * write's sync wait timed out, the node was deposed).
   */
  async whenCommitted(lsn: number): Promise<string | undefined> {
    try {
      await this.#store.whenDurable(lsn);
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
    return await this.#replication?.awaitReplication(lsn);
  }
}
