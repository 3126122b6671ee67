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
  owner: object | undefined;
}

/** Reads waiting for the log to reach their LSN. */
export class LsnWaiters {
  readonly #source: LsnSource;
  readonly #waits = new Set<LsnWait>();
  /** Waits by owner (a client connection), so they end when it closes. */
  readonly #byOwner = new Map<object, Set<LsnWait>>();
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
   * passed first or `owner` was released ({@link release}: its connection closed).
   */
  wait(lsn: number, timeoutMs: number, owner?: object): Promise<boolean> {
    if (this.#source.lastLsn >= lsn) return Promise.resolve(true);
    if (timeoutMs <= 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const wait: LsnWait = { lsn, resolve, timer: undefined, owner };
      // A full sync moves the log without a durable notice: the end takes one last look.
      wait.timer = setTimeout(() => this.#end(wait), timeoutMs);
      this.#waits.add(wait);
      if (owner !== undefined) {
        let owned = this.#byOwner.get(owner);
        if (owned === undefined) this.#byOwner.set(owner, owned = new Set());
        owned.add(wait);
      }
      this.#unsubscribe ??= this.#source.onDurable(() => this.#settle());
    });
  }

  /** Ends `wait` now: reached or not, as the log stands. */
  #end(wait: LsnWait): void {
    clearTimeout(wait.timer);
    this.#waits.delete(wait);
    if (wait.owner !== undefined) {
      const owned = this.#byOwner.get(wait.owner);
      owned?.delete(wait);
      if (owned?.size === 0) this.#byOwner.delete(wait.owner);
    }
    this.#unsubscribeIfIdle();
    wait.resolve(this.#source.lastLsn >= wait.lsn);
  }

  /** Ends the waits of `owner` now (its connection closed: nobody reads the answers). */
  release(owner: object): void {
    const owned = this.#byOwner.get(owner);
    if (owned === undefined) return;
    for (const wait of [...owned]) this.#end(wait);
  }

  #settle(): void {
    const last = this.#source.lastLsn;
    for (const wait of this.#waits) {
      if (wait.lsn <= last) this.#end(wait);
    }
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
    for (const wait of [...this.#waits]) this.#end(wait);
  }
}
