/**
 * How far a full sync to a replica got, and when to say so: the link reports at every 10% of
 * the keys and at least every 5 s, and once more when it is done (MB/s). Pure: time is passed in.
 *
 * @module
 */

/** A full sync's progress: a report at every 10% and at least every 5 s. */
export class SyncProgress {
  readonly totalKeys: number;
  readonly #startedMs: number;
  #pairs = 0;
  #bytes = 0;
  #nextReportPercent = 10;
  #lastReportMs: number;

  constructor(startedMs: number, totalKeys: number) {
    this.#startedMs = startedMs;
    this.#lastReportMs = startedMs;
    this.totalKeys = totalKeys;
  }

  /** A chunk of `pairs` and `bytes` was sent; true when a progress report is due. */
  sent(pairs: number, bytes: number, nowMs: number): boolean {
    this.#pairs += pairs;
    this.#bytes += bytes;
    const percent = this.#percent();
    if (percent < this.#nextReportPercent && nowMs - this.#lastReportMs < 5000) return false;
    this.#nextReportPercent = Math.floor(percent / 10) * 10 + 10;
    this.#lastReportMs = nowMs;
    return true;
  }

  #percent(): number {
    return this.totalKeys > 0 ? Math.min(100, Math.floor((this.#pairs / this.totalKeys) * 100)) : 0;
  }

  /** What a progress report says. */
  figures(): { records: number; totalRecords: number; bytes: number; percent: number } {
    return {
      records: this.#pairs,
      totalRecords: this.totalKeys,
      bytes: this.#bytes,
      percent: this.#percent(),
    };
  }

  /** What the report of a finished sync says. */
  done(nowMs: number): { records: number; bytes: number; seconds: number; mbPerSecond: number } {
    const seconds = Math.max(0.001, (nowMs - this.#startedMs) / 1000);
    return {
      records: this.#pairs,
      bytes: this.#bytes,
      seconds: Number(seconds.toFixed(3)),
      mbPerSecond: Number((this.#bytes / 1e6 / seconds).toFixed(1)),
    };
  }
}
