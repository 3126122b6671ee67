/**
 * Waits until this node's log reaches an LSN: a read that asked for "at least LSN n" (`WITH
 * MINLSN n`, a client session's read-your-writes) is served once the node applied n, as
 * PostgreSQL's `pg_wal_replay_wait` or MongoDB's `afterClusterTime`. On a replica the log grows
 * as the master's records arrive; on a master, as it writes.
 *
 * The store tells its durable progress to listeners; one listener is subscribed only while some
 * read waits (a listener makes the store copy each flushed chunk for it), and a wait that runs
 * out of time resolves `false` after one last look.
 *
 * @module
 */

/** What the waiters need of the store. */
export interface LsnSource {
  /** LSN of the last record in the log (applied). */
  readonly lastLsn: number;
  /** Subscribes to durable progress; returns the unsubscribe function. */
  onDurable(listener: (records: Uint8Array, firstLsn: number, lastLsn: number) => void): () => void;
}

interface LsnWait {
  lsn: number;
  resolve(reached: boolean): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Reads waiting for the log to reach their LSN. */
export class LsnWaiters {
  readonly #source: LsnSource;
  readonly #waits = new Set<LsnWait>();
  #unsubscribe: (() => void) | undefined;

  constructor(source: LsnSource) {
    this.#source = source;
  }

  /** Waits pending now. */
  get size(): number {
    return this.#waits.size;
  }

  /**
   * Resolves `true` once the log holds `lsn` (at once when it does), or `false` when `timeoutMs`
   * passed first.
   */
  wait(lsn: number, timeoutMs: number): Promise<boolean> {
    if (this.#source.lastLsn >= lsn) return Promise.resolve(true);
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const wait: LsnWait = { lsn, resolve, timer: undefined };
      wait.timer = setTimeout(() => {
        this.#waits.delete(wait);
        this.#unsubscribeIfIdle();
        // A full sync moves the log without a durable notice: one last look.
        resolve(this.#source.lastLsn >= lsn);
      }, timeoutMs);
      this.#waits.add(wait);
      this.#unsubscribe ??= this.#source.onDurable(() => this.#settle());
    });
  }

  #settle(): void {
    const last = this.#source.lastLsn;
    for (const wait of this.#waits) {
      if (wait.lsn > last) continue;
      clearTimeout(wait.timer);
      this.#waits.delete(wait);
      wait.resolve(true);
    }
    this.#unsubscribeIfIdle();
  }

  #unsubscribeIfIdle(): void {
    if (this.#waits.size > 0 || this.#unsubscribe === undefined) return;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    // Not during the store's notification loop: it iterates its listener array.
    queueMicrotask(unsubscribe);
  }

  /** Ends every wait now as not reached (the node stops). */
  releaseAll(): void {
    for (const wait of this.#waits) {
      clearTimeout(wait.timer);
      wait.resolve(this.#source.lastLsn >= wait.lsn);
    }
    this.#waits.clear();
    this.#unsubscribeIfIdle();
  }
}
