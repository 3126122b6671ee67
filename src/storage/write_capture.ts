/**
 * The writes of one `KVStore.atomically` call, held until it ends and then written as ONE MULTI
 * record (all or nothing: in the log, after a crash, on replicas). Meanwhile reads through the
 * store see them: the last write of each key wins (a value with its expiry, or a deletion).
 *
 * Each captured write answers the LSN the MULTI record will take (nothing else is appended while
 * the synchronous call runs), so callers note and wait for it as for any write.
 *
 * @module
 */
import { bytesToKey } from "./keys.ts";
import type { Payload } from "./record.ts";
import type { MultiEntry } from "./write_checks.ts";

/** A key's newest captured state: its value and expiry, or `null` once deleted. */
export type CapturedState = { value: Uint8Array; expiresAtMs: number } | null;

/** The byte string of a key payload (the index's form, see `keys.ts`). */
function keyString(key: Payload): string {
  return typeof key === "string" ? key : bytesToKey(key);
}

/**
 * The instant reads judge expiry at: during an atomic call (`EXEC`, captured by `capture`) the
 * instant it began, so no key expires between two of its commands (Redis 7 does the same);
 * otherwise the clock.
 */
export function readNowMs(capture: WriteCapture | undefined): number {
  return capture?.startedAtMs ?? Date.now();
}

/**
 * The writes of one atomic call, in order, and each key's newest state (built from the writes at
 * the first read: a transaction that only writes, the usual `MULTI`, builds no map of its keys).
 */
export class WriteCapture {
  readonly entries: MultiEntry[] = [];
  #states: Map<string, CapturedState> | undefined;
  /** The LSN the record of these writes will take. */
  lsn: number;
  /**
   * When the atomic call began (ms since the Unix epoch): reads during it judge expiry at this
   * instant, so no key expires between two commands of one `EXEC`, as in Redis 7.
   */
  readonly startedAtMs = Date.now();

  constructor(lsn: number) {
    this.lsn = lsn;
  }

  /** Each captured key's newest state, made from the writes so far when first asked for. */
  #statesByKey(): Map<string, CapturedState> {
    let states = this.#states;
    if (states === undefined) {
      states = this.#states = new Map();
      for (const entry of this.entries) {
        states.set(
          keyString(entry.key),
          entry.kind === "put"
            ? { value: entry.value as Uint8Array, expiresAtMs: entry.expiresAtMs ?? 0 }
            : null,
        );
      }
    }
    return states;
  }

  /** Captures a put; returns the record's LSN. */
  put(key: Payload, value: Uint8Array, expiresAtMs: number): number {
    this.entries.push({ kind: "put", key, value, expiresAtMs });
    this.#states?.set(keyString(key), { value, expiresAtMs });
    return this.lsn;
  }

  /** Captures a delete; returns the record's LSN. */
  delete(key: Payload): number {
    this.entries.push({ kind: "delete", key });
    this.#states?.set(keyString(key), null);
    return this.lsn;
  }

  /**
   * The captured state of `key` if a write of this call touched it (a state, `null` for
   * deleted), else undefined (the index knows). A value whose expiry passed at
   * {@link startedAtMs} reads as deleted.
   */
  lookup(key: Payload): CapturedState | undefined {
    const state = this.#statesByKey().get(keyString(key));
    if (state === undefined || state === null) return state;
    return state.expiresAtMs !== 0 && state.expiresAtMs <= this.startedAtMs ? null : state;
  }

  /** The captured keys `k` with `start <= k <= end`, in byte order, with their states. */
  inRange(start: string, end: string): [string, CapturedState][] {
    const nowMs = this.startedAtMs;
    const found: [string, CapturedState][] = [];
    for (const [key, state] of this.#statesByKey()) {
      if (key < start || key > end) continue;
      const expired = state !== null && state.expiresAtMs !== 0 && state.expiresAtMs <= nowMs;
      found.push([key, expired ? null : state]);
    }
    return found.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  /** Every captured key with its state (for the key count). */
  states(): IterableIterator<[string, CapturedState]> {
    return this.#statesByKey().entries();
  }

  /**
   * Hands over the writes captured so far (to be written now, before a FLUSH) and starts again
   * for the record after them, at `lsn`.
   */
  takeAll(lsn: number): MultiEntry[] {
    const entries = this.entries.splice(0);
    this.#states = undefined;
    this.lsn = lsn;
    return entries;
  }
}
