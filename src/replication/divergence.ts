/**
 * Where a replica's log left its master's history: the last LSN both logs share, found by
 * binary search over the epochs of the master's log. Epochs never decrease along a log, and a
 * replica's last record carries the epoch of the master that wrote it, so every master record at
 * or below the common point is from an epoch no newer than the replica's last one, and every
 * record after it is newer.
 *
 * Pure: the search reads the master's log only through `epochAt(lsn)` (the caller's I/O), so it
 * is tested with an array.
 *
 * @module
 */

/** What the search knows of both logs. */
export interface CommonLsnQuery {
  /** The replica's last LSN (from its HELLO reply). */
  replicaLsn: number;
  /** Epoch of the replica's record at `replicaLsn`. */
  replicaEpoch: number;
  /** The master's log holds every record after this LSN (0: from the start). */
  oldestCompleteLsn: number;
  /** The master's last durable LSN. */
  durableLsn: number;
}

/**
 * Epoch of the master's record at `lsn` (0 for LSN 0), or undefined when its log no longer holds
 * it (compacted meanwhile).
 */
export type EpochAt = (lsn: number) => Promise<number | undefined> | number | undefined;

/**
 * The last LSN (at most `replicaLsn`) whose record in the master's log is from an epoch no newer
 * than the replica's last one, or undefined when the master's log no longer holds that part.
 * Bounded: at most `log2(replicaLsn - oldestCompleteLsn) + 2` calls of `epochAt`.
 *
 * @example
 * ```ts
 * import { findCommonLsn } from "./divergence.ts";
 * // The master's log: LSN 1..3 in epoch 0, 4..6 in epoch 1; the old master's went to LSN 5 in 0.
 * const epochs = [0, 0, 0, 0, 1, 1, 1];
 * const query = { replicaLsn: 5, replicaEpoch: 0, oldestCompleteLsn: 0, durableLsn: 6 };
 * console.log(await findCommonLsn(query, (lsn) => epochs[lsn])); // 3
 * ```
 */
export async function findCommonLsn(
  query: CommonLsnQuery,
  epochAt: EpochAt,
): Promise<number | undefined> {
  const { replicaLsn, replicaEpoch, oldestCompleteLsn, durableLsn } = query;
  let lo = oldestCompleteLsn === 0 ? 0 : oldestCompleteLsn + 1;
  let hi = Math.min(replicaLsn, durableLsn);
  if (hi < lo) return undefined;
  const atLo = await epochAt(lo);
  if (atLo === undefined || atLo > replicaEpoch) return undefined;
  // Invariant: the epoch at lo is at most replicaEpoch; bounded by log2(hi - lo) probes.
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const epoch = await epochAt(mid);
    if (epoch === undefined) return undefined;
    if (epoch <= replicaEpoch) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
