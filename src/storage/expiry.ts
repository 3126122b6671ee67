/**
 * Active expiry: on a master, keys whose expiry time has passed are found and deleted in the
 * background (a DELETE record each, so replicas, restarts and full syncs see the key go as the
 * master decided), in bounded turns. Reads never wait for it: a key past its time reads as absent
 * everywhere (a replica included) from that millisecond on; this only reclaims the space and logs
 * the decision.
 *
 * A turn looks at most `keysPerTurn × SCAN_FACTOR` index slots and deletes at most `keysPerTurn`
 * keys, then yields; while turns find work the next comes at once (a timer of 0 ms, so requests
 * run between), otherwise after `intervalMs`. A million keys expiring at once are reclaimed in
 * turns of `keysPerTurn` deletes each, never in one long pause (figures: docs/benchmarks.md).
 *
 * @module
 */
import type { KeyIndex } from "./key_index.ts";
import type { Segment } from "./segment.ts";

/** Slots looked at per key a turn may delete (a sweep finds keys without scanning forever). */
const SCAN_FACTOR = 64;

/** What active expiry needs of the store. */
export interface ExpiryHost {
  /** The index now (a FLUSH or a full sync replaces it). */
  index(): KeyIndex<Segment>;
  /** Whether this store decides expiry now (a writable master's store). */
  decides(): boolean;
  /** Deletes the key of a live slot (a DELETE record). */
  deleteSlot(slot: number): void;
}

/** Figures of active expiry since open. */
export interface ExpiryStats {
  /** Keys deleted because their time had passed. */
  expiredKeys: number;
  /** Turns that deleted at least one key, and the longest one's duration. */
  turns: number;
  longestTurnMs: number;
}

/** Runs active expiry for one store. */
export class ActiveExpiry {
  readonly stats: ExpiryStats = { expiredKeys: 0, turns: 0, longestTurnMs: 0 };
  #cursor = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  readonly #found: number[] = [];

  constructor(
    readonly host: ExpiryHost,
    readonly intervalMs: number,
    readonly keysPerTurn: number,
  ) {}

  /** Starts the turns (a timer that does not keep the process alive). */
  start(): void {
    if (this.intervalMs > 0) this.#schedule(this.intervalMs);
  }

  /** Stops the turns. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      let deleted = 0;
      try {
        deleted = this.turn(Date.now());
      } finally {
        this.#schedule(deleted >= this.keysPerTurn ? 0 : this.intervalMs);
      }
    }, delayMs);
    this.#timer = timer;
    Deno.unrefTimer(timer);
  }

  /**
   * One turn at time `nowMs`: deletes at most `keysPerTurn` keys whose time has passed, looking
   * at a bounded number of slots from where the last turn stopped; returns how many it deleted.
   */
  turn(nowMs: number): number {
    const host = this.host;
    const index = host.index();
    if (index.expiringKeys === 0 || !host.decides()) return 0;
    const started = performance.now();
    const found = this.#found;
    found.length = 0;
    const maxScan = this.keysPerTurn * SCAN_FACTOR;
    let scanned = 0;
    // Bounded by maxScan: each pass looks at up to 1024 slots, or the sweep wrapped around.
    while (found.length < this.keysPerTurn && scanned < maxScan) {
      const from = this.#cursor;
      this.#cursor = index.scanExpired(from, 1024, nowMs, found, this.keysPerTurn);
      if (this.#cursor === 0) break;
      scanned += this.#cursor - from;
    }
    const deleting = found.length;
    for (let i = 0; i < deleting; i++) host.deleteSlot(found[i]);
    if (deleting > 0) {
      this.stats.expiredKeys += deleting;
      this.stats.turns++;
      this.stats.longestTurnMs = Math.max(this.stats.longestTurnMs, performance.now() - started);
    }
    return deleting;
  }
}
