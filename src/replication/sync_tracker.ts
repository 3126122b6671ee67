/**
 * Sync mode's promise: a write at LSN n is acknowledged to its client only when the required
 * replicas acknowledged an LSN ≥ n. Required: every healthy replica (the spec's rule, `required
 * = 0`), or at least `required` replicas whatever their health (`--sync-replicas N`). A write not
 * backed within the timeout fails with {@link SyncReplicationError}: it is applied on the master
 * and stays in its log, and the replicas get it when they are back.
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

/** A sync write that was not backed by the required replicas in time. */
export class SyncReplicationError extends Error {
  override name = "SyncReplicationError";
  constructor(
    readonly lsn: number,
    readonly ackedReplicas: number,
    readonly requiredReplicas: number,
    readonly timeoutMs: number,
  ) {
    super(
      `write applied on the master (LSN ${lsn}) but acknowledged by only ${ackedReplicas} of ` +
        `${requiredReplicas} required replicas within REPLICATION_TIMEOUT ` +
        `${timeoutMs / 1000} s; it stays in the master's log and reaches the replicas when ` +
        `they catch up`,
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
        const error = new SyncReplicationError(
          w.lsn,
          countAcked(w.lsn, replicas),
          required,
          this.#timeoutMs,
        );
        expired.push({ token: w.token, error });
      } else {
        rest.push(w);
      }
    }
    this.#waiters = rest;
    return { acknowledged, expired };
  }

  /** Fails every waiting write now (shutdown), with the same error as a timeout. */
  failAll(replicas: readonly AckView[]): Settled<T>["expired"] {
    const required = this.requiredCount(replicas);
    const out = this.#waiters.map((w) => ({
      token: w.token,
      error: new SyncReplicationError(
        w.lsn,
        countAcked(w.lsn, replicas),
        required,
        this.#timeoutMs,
      ),
    }));
    this.#waiters = [];
    return out;
  }
}

function countAcked(lsn: number, replicas: readonly AckView[]): number {
  let n = 0;
  for (const r of replicas) if (r.ackedLsn >= lsn) n++;
  return n;
}
