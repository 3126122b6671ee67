/**
 * When did each LSN become durable on the master? Replication lag in milliseconds is "now minus
 * the time the oldest record a replica has not acknowledged became durable"; records carry no
 * timestamp, so the master remembers one sample per durable batch here.
 *
 * Bounded: at most one sample per millisecond (batches made durable in the same millisecond share
 * one), and at most `capacity` samples. When full, every second sample is dropped, so old history
 * loses resolution instead of being forgotten; a lag read from a thinned region is rounded down
 * by at most the gap between two kept samples.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Samples of (last LSN of a durable batch, time it became durable). */
export class LagClock {
  #lsns: number[] = [];
  #timesMs: number[] = [];
  readonly #capacity: number;

  /** `capacity`: most samples kept (at least 2). */
  constructor(capacity: number) {
    assert.ok(Number.isInteger(capacity) && capacity >= 2, `lag clock capacity ${capacity}`);
    this.#capacity = capacity;
  }

  /** Number of samples kept now. */
  get size(): number {
    return this.#lsns.length;
  }

  /** Records that every LSN up to `lastLsn` is durable since `nowMs`. */
  record(lastLsn: number, nowMs: number): void {
    const n = this.#lsns.length;
    if (n > 0) {
      // Checked with `if` first: assert.ok has a cost per call, on every durable batch
      // (docs/ARCHITECTURE.md, "Measured costs").
      if (lastLsn < this.#lsns[n - 1]) assert.fail(`durable LSN went back to ${lastLsn}`);
      if (Math.floor(this.#timesMs[n - 1]) === Math.floor(nowMs)) {
        this.#lsns[n - 1] = lastLsn;
        return;
      }
    }
    if (n >= this.#capacity) this.#thin();
    this.#lsns.push(lastLsn);
    this.#timesMs.push(nowMs);
  }

  /**
   * Milliseconds since the first record after `ackedLsn` became durable, or 0 when nothing after
   * `ackedLsn` is known to be durable.
   */
  lagMs(ackedLsn: number, nowMs: number): number {
    const lsns = this.#lsns;
    let lo = 0;
    let hi = lsns.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (lsns[mid] > ackedLsn) hi = mid;
      else lo = mid + 1;
    }
    if (lo === lsns.length) return 0;
    return Math.max(0, nowMs - this.#timesMs[lo]);
  }

  /** Forgets every sample (the log was replaced: its LSNs start over). */
  reset(): void {
    this.#lsns = [];
    this.#timesMs = [];
  }

  /** Forgets samples whose LSNs every replica has acknowledged. */
  forgetThrough(lsn: number): void {
    let drop = 0;
    while (drop < this.#lsns.length && this.#lsns[drop] <= lsn) drop++;
    if (drop > 0) {
      this.#lsns.splice(0, drop);
      this.#timesMs.splice(0, drop);
    }
  }

  #thin(): void {
    // Keep the newest sample and every second one before it: the time kept for a range of LSNs
    // is the later one, so lag is never overstated.
    const lsns: number[] = [];
    const times: number[] = [];
    for (let i = this.#lsns.length - 1; i >= 0; i -= 2) {
      lsns.push(this.#lsns[i]);
      times.push(this.#timesMs[i]);
    }
    this.#lsns = lsns.reverse();
    this.#timesMs = times.reverse();
  }
}
