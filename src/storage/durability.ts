/**
 * How far the log is durable, and who waits for it. Records are counted in sequence as they are
 * appended (`appendedSeq`), written to the OS (`writtenSeq`), fsynced (`syncedSeq`) and reach the
 * fsync policy's durability point (`durableSeq`, with its LSN and its position in the log);
 * waiters resolve once the count they wait for is durable. The log writer moves the counters;
 * the store, the log reader and snapshots read them.
 *
 * Invariants (asserted): durable ≤ written ≤ appended, synced ≤ written; the durable position
 * never passes the end of what was written.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StoreClosedError, type StoreFailedError } from "./errors.ts";
import type { Segment } from "./segment.ts";

const RESOLVED: Promise<void> = Promise.resolve();
const ignore = (): void => {};

/**
 * `promise`, marked handled: a caller that awaits it only later (a connection awaits the
 * durability of one batch after the batches before it) still sees its rejection, and its
 * rejection is never reported as unhandled meanwhile.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(ignore);
  return promise;
}

interface Waiter {
  seq: number;
  /** LSN of the last record appended when the waiter was made: what its promise resolves to. */
  lsn: number;
  promise: Promise<number>;
  resolve: (lsn: number) => void;
  reject: (error: Error) => void;
}

interface SharedWaiter {
  seq: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The durability counters of one store's log and the promises waiting on them. */
export class Durability {
  #appendedSeq = 0;
  #writtenSeq = 0;
  #syncedSeq = 0;
  #durableSeq = 0;
  #writtenLsn = 0;
  #durableLsn = 0;
  #durableSegment: Segment;
  #durableOffset: number;
  #waiters: Waiter[] = [];
  /** What {@link whenDurable} callers wait on: resolved once every record up to `seq` is. */
  #next: SharedWaiter | undefined;
  #failure: StoreFailedError | undefined;
  #closed = false;

  /** Starts with everything up to `lsn`, the end of `segment`, durable (after recovery). */
  constructor(readonly dir: string, lsn: number, segment: Segment) {
    this.#writtenLsn = this.#durableLsn = lsn;
    this.#durableSegment = segment;
    this.#durableOffset = segment.sizeBytes;
  }

  /** LSN of the last record at the durability point. */
  get durableLsn(): number {
    return this.#durableLsn;
  }

  /** LSN of the last record written to the OS. */
  get writtenLsn(): number {
    return this.#writtenLsn;
  }

  /** The segment the durable position is in. */
  get durableSegment(): Segment {
    return this.#durableSegment;
  }

  /** File offset of the durable position in {@link durableSegment}. */
  get durableOffset(): number {
    return this.#durableOffset;
  }

  /** Records written to the OS since open (a count, not an LSN). */
  get writtenSeq(): number {
    return this.#writtenSeq;
  }

  /** Whether some written record waits for an fsync. */
  get unsynced(): boolean {
    return this.#syncedSeq < this.#writtenSeq;
  }

  /** Why the log refuses writes, once it does. */
  get failure(): StoreFailedError | undefined {
    return this.#failure;
  }

  /** A record was appended to the pending buffer. */
  appended(): void {
    this.#appendedSeq++;
  }

  /** Every record appended so far, up to `lsn`, was written to the OS. */
  written(lsn: number): void {
    this.#writtenSeq = this.#appendedSeq;
    this.#writtenLsn = lsn;
  }

  /** An fsync covered the first `seq` records. */
  synced(seq: number): void {
    if (seq > this.#writtenSeq) {
      assert.fail(`synced ${seq} records, only ${this.#writtenSeq} written`);
    }
    if (seq > this.#syncedSeq) this.#syncedSeq = seq;
  }

  /** An fsync covered every record written. */
  syncedAll(): void {
    this.#syncedSeq = this.#writtenSeq;
  }

  /**
   * The first `seq` records, up to `lsn`, are durable, ending at `offset` of `segment`: resolves
   * their waiters. A count not above the durable one changes nothing.
   */
  markDurable(seq: number, lsn: number, segment: Segment, offset: number): void {
    if (seq <= this.#durableSeq) return;
    if (seq > this.#writtenSeq) {
      assert.fail(`durable ${seq} records, only ${this.#writtenSeq} written`);
    }
    if (offset > segment.sizeBytes) {
      assert.fail(`durable offset ${offset} past ${segment.sizeBytes}`);
    }
    this.#durableSeq = seq;
    this.#durableLsn = lsn;
    this.#durableSegment = segment;
    this.#durableOffset = offset;
    const waiters = this.#waiters;
    let done = 0;
    while (done < waiters.length && waiters[done].seq <= seq) {
      waiters[done].resolve(waiters[done].lsn);
      done++;
    }
    if (done > 0) waiters.splice(0, done);
    const next = this.#next;
    if (next !== undefined && next.seq <= seq) {
      this.#next = undefined;
      next.resolve();
    }
  }

  /**
   * Everything appended so far is durable and the log restarts at `lsn`, the end of `segment` (a
   * full sync replaced the log: its LSN may be below the old one).
   */
  restart(lsn: number, segment: Segment): void {
    this.written(lsn);
    this.syncedAll();
    this.markDurable(this.#appendedSeq, lsn, segment, segment.sizeBytes);
    this.#durableLsn = lsn;
    this.#durableSegment = segment;
    this.#durableOffset = segment.sizeBytes;
  }

  /**
   * Resolves when every record appended so far with an LSN up to `lsn` reached the durability
   * point; rejects with the log's failure, or once closed.
   */
  whenDurable(lsn: number): Promise<void> {
    if (this.#failure) return handled(Promise.reject(this.#failure));
    if (this.#durableSeq === this.#appendedSeq || lsn < this.#durableLsn) return RESOLVED;
    if (this.#closed) return handled(Promise.reject(new StoreClosedError(this.dir)));
    // Whatever is not durable yet is in the pending buffer, and the next flush makes all of it
    // durable at once: every caller until then shares one promise (a server asks once per
    // network read; promises per read are measurable: docs/ARCHITECTURE.md, "Measured costs").
    let next = this.#next;
    if (next === undefined) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      next = this.#next = { seq: 0, promise: handled(promise), resolve, reject };
    }
    next.seq = this.#appendedSeq;
    return next.promise;
  }

  /**
   * Resolves with `lastLsn`, the LSN of the last record appended so far, once it reached the
   * durability point: right after a write, that write's LSN (so `put` needs no promise of its
   * own).
   */
  untilDurable(lastLsn: number): Promise<number> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#durableSeq === this.#appendedSeq) return Promise.resolve(lastLsn);
    if (this.#closed) return Promise.reject(new StoreClosedError(this.dir));
    const target = this.#appendedSeq;
    const last = this.#waiters[this.#waiters.length - 1];
    if (last !== undefined && last.seq === target) return last.promise;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#waiters.push({ seq: target, lsn: lastLsn, promise, resolve, reject });
    return promise;
  }

  /** The log failed: every waiter is rejected with `failure`, and so is every later wait. */
  fail(failure: StoreFailedError): void {
    this.#failure ??= failure;
    this.#rejectAll(this.#failure);
  }

  /** The store closed: every waiter left is rejected (with the failure, if the log failed). */
  close(): void {
    this.#closed = true;
    this.#rejectAll(this.#failure ?? new StoreClosedError(this.dir));
  }

  #rejectAll(error: Error): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    this.#next?.reject(error);
    this.#next = undefined;
  }
}
