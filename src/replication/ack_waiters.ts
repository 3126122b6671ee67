/**
 * Waits until enough replicas acknowledged an LSN: what Redis's `WAIT numreplicas timeout` and a
 * write's own write concern (`WITH CONCERN k|majority timeoutMs`) both need, built once.
 *
 * Unlike sync mode's `SyncAckTracker` (the node's standing rule, with its own error), a
 * wait here never fails: it resolves with the number of replicas that have the LSN, either as
 * soon as `needed` do or when its time is up, and the caller decides what a short count means
 * (WAIT returns it; a write concern turns it into a `-WRITECONCERN` error).
 *
 * The count is asked of the replicator on every acknowledgement (and health change) while waits
 * are pending; with none pending a settle costs one size check.
 *
 * @module
 */

interface AckWait {
  lsn: number;
  needed: number;
  resolve(count: number): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  owner: object | undefined;
}

/** Pending waits for replica acknowledgements. */
export class AckWaiters {
  readonly #count: (lsn: number) => number;
  readonly #waits = new Set<AckWait>();
  /** Waits by owner (a client connection), so they end when it closes. */
  readonly #byOwner = new Map<object, Set<AckWait>>();

  /** `count(lsn)`: how many replicas have `lsn` now. */
  constructor(count: (lsn: number) => number) {
    this.#count = count;
  }

  /** Waits pending now. */
  get size(): number {
    return this.#waits.size;
  }

  /**
   * Resolves with the number of replicas that have `lsn`: at once when `needed` (or more) do,
   * else as soon as they do, or after `timeoutMs` (0: no time limit) with the count then, or when
   * `owner` is released ({@link release}: its connection closed, nobody waits for the answer).
   */
  wait(lsn: number, needed: number, timeoutMs: number, owner?: object): Promise<number> {
    const now = this.#count(lsn);
    if (now >= needed) return Promise.resolve(now);
    return new Promise<number>((resolve) => {
      const wait: AckWait = { lsn, needed, resolve, timer: undefined, owner };
      if (timeoutMs > 0) wait.timer = setTimeout(() => this.#end(wait), timeoutMs);
      this.#waits.add(wait);
      if (owner !== undefined) {
        let owned = this.#byOwner.get(owner);
        if (owned === undefined) this.#byOwner.set(owner, owned = new Set());
        owned.add(wait);
      }
    });
  }

  /** Ends `wait` now with the count as it is. */
  #end(wait: AckWait): void {
    clearTimeout(wait.timer);
    this.#waits.delete(wait);
    if (wait.owner !== undefined) {
      const owned = this.#byOwner.get(wait.owner);
      owned?.delete(wait);
      if (owned?.size === 0) this.#byOwner.delete(wait.owner);
    }
    wait.resolve(this.#count(wait.lsn));
  }

  /** Ends the waits of `owner` now (its connection closed: a `WAIT 5 0` must not outlive it). */
  release(owner: object): void {
    const owned = this.#byOwner.get(owner);
    if (owned === undefined) return;
    for (const wait of [...owned]) this.#end(wait);
  }

  /** Resolves the waits whose count is reached (after an acknowledgement or a health change). */
  settle(): void {
    if (this.#waits.size === 0) return;
    for (const wait of this.#waits) {
      if (this.#count(wait.lsn) >= wait.needed) this.#end(wait);
    }
  }

  /** Ends every wait now with the count as it is (the master stops). */
  releaseAll(): void {
    for (const wait of [...this.#waits]) this.#end(wait);
  }
}
