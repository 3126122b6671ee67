/**
 * Sync mode's promise: a write at LSN n is acknowledged to its client only when the required
 * replicas acknowledged an LSN ≥ n. Required: every healthy replica (the spec's rule, `required
 * = 0`), or at least `required` replicas whatever their health (`--sync-replicas N`). A write not
 * backed within the timeout fails with {@link SyncReplicationError}: it is applied on the master
 * and stays in its log, and the replicas get it when they are back (unless the master is
 * deposed first: then waiting writes fail with {@link DeposedError}, see the Replicator).
 *
 * Pure: waiters are added and settled by method calls with the time passed in; the caller keeps
 * one timer for {@link SyncAckTracker.nextDeadlineMs} and calls {@link SyncAckTracker.settle}
 * after each acknowledgement, health change and timer.
 *
 * @module
 */

/** The acknowledged position and health of one replica. */
export interface AckView {
  ackedLsn: number;
  healthy: boolean;
}

/** Why a sync write was not acknowledged. */
export type SyncFailureCause = "timeout" | "stopping";

/** A sync write that was not backed by the required replicas in time (or before a stop). */
export class SyncReplicationError extends Error {
  override name = "SyncReplicationError";
  constructor(
    readonly lsn: number,
    readonly ackedReplicas: number,
    readonly requiredReplicas: number,
    readonly timeoutMs: number,
    readonly failure: SyncFailureCause = "timeout",
  ) {
    super(
      failure === "timeout"
        ? `write applied on the master (LSN ${lsn}) but acknowledged by only ${ackedReplicas} ` +
          `of ${requiredReplicas} required replicas within REPLICATION_TIMEOUT ` +
          `${timeoutMs / 1000} s; it is not acknowledged: it stays in this master's log and is ` +
          `sent to the replicas when they catch up (unless a replica without it is promoted ` +
          `first)`
        : `write applied on the master (LSN ${lsn}) but acknowledged by only ${ackedReplicas} ` +
          `of ${requiredReplicas} required replicas before the master stopped; it is not ` +
          `acknowledged: it stays in the master's log and is sent to the replicas after it ` +
          `restarts (unless a replica without it is promoted first)`,
    );
  }
}

/**
 * A sync write (or a read waiting for one) on a master that learned a newer master exists: the
 * write is applied here but will not be acknowledged, and may be lost (it is in the new master's
 * history only if that master had it when it was promoted).
 */
export class DeposedError extends Error {
  override name = "DeposedError";
  constructor(readonly lsn: number, readonly reason: string) {
    super(
      `write applied on this node (LSN ${lsn}) but not acknowledged: this node was deposed ` +
        `(${reason}); the write may be lost: it survives only if the new master had it when it ` +
        `was promoted. Send writes to the new master`,
    );
  }
}

interface Waiter<T> {
  lsn: number;
  deadlineMs: number;
  token: T;
}

/** Result of {@link SyncAckTracker.settle}. */
export interface Settled<T> {
  /** Backed writes. */
  acknowledged: T[];
  /** Writes whose time ran out, with the error to give their clients. */
  expired: { token: T; error: SyncReplicationError }[];
}

/** Waiting sync writes, ordered by LSN. */
export class SyncAckTracker<T> {
  readonly #required: number;
  readonly #timeoutMs: number;
  #waiters: Waiter<T>[] = [];

  /** `required`: replicas that must acknowledge (0: every healthy replica). */
  constructor(required: number, timeoutMs: number) {
    this.#required = required;
    this.#timeoutMs = timeoutMs;
  }

  /** Writes waiting now. */
  get size(): number {
    return this.#waiters.length;
  }

  /** Replicas needed for an acknowledgement given their health now. */
  requiredCount(replicas: readonly AckView[]): number {
    if (this.#required > 0) return this.#required;
    let healthy = 0;
    for (const r of replicas) if (r.healthy) healthy++;
    return healthy;
  }

  /** True when the write at `lsn` is backed by `replicas` now. */
  isBacked(lsn: number, replicas: readonly AckView[]): boolean {
    if (this.#required > 0) return countAcked(lsn, replicas) >= this.#required;
    for (const r of replicas) if (r.healthy && r.ackedLsn < lsn) return false;
    return true;
  }

  /** Registers a write at `lsn` made durable at `nowMs`; `token` comes back when it settles. */
  add(lsn: number, nowMs: number, token: T): void {
    const waiter = { lsn, deadlineMs: nowMs + this.#timeoutMs, token };
    const waiters = this.#waiters;
    let i = waiters.length;
    while (i > 0 && waiters[i - 1].lsn > lsn) i--;
    waiters.splice(i, 0, waiter);
  }

  /** Earliest deadline of a waiting write, or undefined. */
  nextDeadlineMs(): number | undefined {
    let min: number | undefined;
    for (const w of this.#waiters) if (min === undefined || w.deadlineMs < min) min = w.deadlineMs;
    return min;
  }

  /** Settles what can be settled: backed writes (in LSN order), then expired ones. */
  settle(replicas: readonly AckView[], nowMs: number): Settled<T> {
    const acknowledged: T[] = [];
    const waiters = this.#waiters;
    // Backing is monotone in LSN: if the write at n is backed, so is every write below n.
    let lo = 0;
    let hi = waiters.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.isBacked(waiters[mid].lsn, replicas)) lo = mid + 1;
      else hi = mid;
    }
    const backed = lo;
    for (let i = 0; i < backed; i++) acknowledged.push(waiters[i].token);
    const expired: Settled<T>["expired"] = [];
    const rest: Waiter<T>[] = [];
    const required = this.requiredCount(replicas);
    for (let i = backed; i < waiters.length; i++) {
      const w = waiters[i];
      if (w.deadlineMs <= nowMs) {
        expired.push(this.#failed(w, replicas, required, "timeout"));
      } else {
        rest.push(w);
      }
    }
    this.#waiters = rest;
    return { acknowledged, expired };
  }

  /** Fails every waiting write now: the master is stopping. */
  failAll(replicas: readonly AckView[]): Settled<T>["expired"] {
    const required = this.requiredCount(replicas);
    const out = this.#waiters.map((w) => this.#failed(w, replicas, required, "stopping"));
    this.#waiters = [];
    return out;
  }

  /** A waiter and the error it fails with. */
  #failed(
    w: Waiter<T>,
    replicas: readonly AckView[],
    required: number,
    failure: SyncFailureCause,
  ): { token: T; error: SyncReplicationError } {
    const acked = countAcked(w.lsn, replicas);
    return {
      token: w.token,
      error: new SyncReplicationError(w.lsn, acked, required, this.#timeoutMs, failure),
    };
  }

  /**
   * Fails the waiters at or below `lsn` now, with the timeout's error: a write at `lsn` already
   * ran out of time, so a read waiting for it (whose own deadline is later) must not wait on.
   */
  expireThrough(lsn: number, replicas: readonly AckView[]): Settled<T>["expired"] {
    const required = this.requiredCount(replicas);
    const expired: Settled<T>["expired"] = [];
    let i = 0;
    for (; i < this.#waiters.length && this.#waiters[i].lsn <= lsn; i++) {
      expired.push(this.#failed(this.#waiters[i], replicas, required, "timeout"));
    }
    this.#waiters.splice(0, i);
    return expired;
  }

  /** Takes every waiting write out (the caller fails them), in LSN order. */
  takeAll(): { lsn: number; token: T }[] {
    const out = this.#waiters.map((w) => ({ lsn: w.lsn, token: w.token }));
    this.#waiters = [];
    return out;
  }

  /**
   * The highest LSN `replicas` back now (every write at or below it is backed), at most
   * `durableLsn`: with `required` > 0 the `required`-th highest acknowledged LSN (0 when fewer
   * replicas are listed), else the lowest of the healthy replicas (`durableLsn` when none is).
   * Agrees with {@link isBacked}: `isBacked(n)` is `n <= backedLsn(...)` for `n <= durableLsn`.
   */
  backedLsn(replicas: readonly AckView[], durableLsn: number): number {
    let backed = durableLsn;
    if (this.#required > 0) {
      // The required-th highest acknowledged LSN, without sorting (a handful of replicas).
      let kth = 0;
      for (const r of replicas) {
        if (r.ackedLsn > kth && countAcked(r.ackedLsn, replicas) >= this.#required) {
          kth = r.ackedLsn;
        }
      }
      backed = Math.min(backed, kth);
    } else {
      for (const r of replicas) if (r.healthy) backed = Math.min(backed, r.ackedLsn);
    }
    return backed;
  }
}

function countAcked(lsn: number, replicas: readonly AckView[]): number {
  let n = 0;
  for (const r of replicas) if (r.ackedLsn >= lsn) n++;
  return n;
}
