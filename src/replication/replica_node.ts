/**
 * One replica as the master sees it: a pure state machine (no sockets, no timers, time passed
 * in) that decides what the replica's one sender does next, tracks its health and its
 * acknowledged position, and holds its bounded in-memory buffer of durable records.
 *
 * Life of a link: `down` → (connect, handshake) → `full_sync` when the replica cannot continue
 * from its LSN, then `catching_up` while it reads from the master's log on disk, then `streaming`
 * from the in-memory buffer once it is current. Any failure goes back to `down`; the next
 * attempt waits `retryDelayMs()` (doubling for `maxRetries` attempts, then `maxRetryBackoffMs`,
 * never beyond the health-check interval): a replica that comes back is caught up within about
 * `maxRetryBackoffMs`, not a whole interval later.
 *
 * @module
 */
import type { KeyFilter } from "./key_filter.ts";
import assert from "node:assert/strict";
import { type DurableBatch, RecordQueue } from "./record_queue.ts";

/** Where a replica's stream stands. */
export type ReplicaState = "streaming" | "catching_up" | "full_sync" | "ahead" | "down";

/** The limits a replica link works within (from the spec's settings). */
export interface ReplicaPolicy {
  /** `REPLICATION_MAX_FAILURES`: consecutive failures that mark the replica unhealthy. */
  maxFailures: number;
  /** `REPLICATION_MAX_RETRIES`: reconnect attempts with backoff before the health-check pace. */
  maxRetries: number;
  /** `REPLICATION_RETRY_BACKOFF_MS`: delay before the first retry; doubles per retry. */
  retryBackoffMs: number;
  /**
   * `REPLICATION_RETRY_MAX_BACKOFF_MS`: the longest delay between attempts (the pace after
   * `maxRetries`); the health-check interval bounds it too. Absent: the interval.
   */
  maxRetryBackoffMs?: number;
  /** `REPLICATION_HEALTH_CHECK_INTERVAL` in ms: probe pace of a failed replica, idle ping pace. */
  healthCheckIntervalMs: number;
  /** `REPLICATION_TIMEOUT` in ms: longest wait for a reply before the attempt fails. */
  timeoutMs: number;
  /** `REPLICATION_QUEUE_SIZE`: records buffered in memory, and most records unacknowledged. */
  queueSizeRecords: number;
  /** `REPLICATION_BATCH_BYTES`: most log bytes in one frame. */
  batchBytes: number;
  /**
   * A forwarding replica (cascading): how often it tells its sub-replicas what it knows of the
   * chain (the master's LSN, its own lag, its depth), in ms; 0 or absent on a master.
   */
  chainReportIntervalMs?: number;
  /**
   * The source is a replica forwarding its master's records (cascading): a sub-replica ahead of
   * it is waited for, not taken for diverged.
   */
  forwarding?: boolean;
}

/** What the sender should do next. */
export type NextSend =
  /** Send these buffered batches (one frame). */
  | { kind: "queue"; batches: DurableBatch[] }
  /** Read the master's log for records `afterLsn+1 .. uptoLsn` and send them. */
  | { kind: "log"; afterLsn: number; uptoLsn: number }
  /** Nothing to send now: the replica is current, or too many records are unacknowledged. */
  | { kind: "wait" }
  /**
   * The log reached the LSN a sub-replica that was ahead holds: read this log's record there and
   * pass its epoch and CRC to {@link ReplicaNode.onVerified}.
   */
  | { kind: "verify"; lsn: number };

/** The replica's answer to the handshake, and what the master knows of its own log. */
export interface HandshakeFacts {
  /** Last master LSN the replica holds. */
  replicaLsn: number;
  /** Epoch of the replica's record at `replicaLsn` (0 when it holds none). */
  replicaEpoch: number;
  /** CRC-32 of the replica's record at `replicaLsn` (0: unknown). */
  replicaCrc: number;
  /** CRC-32 of the master's record at `replicaLsn` (0: unknown). */
  masterCrcAtReplicaLsn: number;
  /**
   * Epoch of the master's record at `replicaLsn` (0 for `replicaLsn` 0), or undefined when the
   * master's log no longer holds everything after `replicaLsn` (compacted). An empty replica is
   * caught up from the log when the log is complete: then the log is about the size of the live
   * data (compaction keeps garbage bounded), and no snapshot has to be pinned.
   */
  masterEpochAtReplicaLsn: number | undefined;
  /** Local writes the replica holds (made on it by hand), not in any master's history. */
  replicaLocalWrites?: number;
  /**
   * Why the replica's data does not match the key filter this link gives it (it holds another
   * filter's keys, or all keys, or was filtered and is not any more), or undefined when it does:
   * it gets a full sync of what it should hold.
   */
  filterChanged?: string;
}

/** A full sync the replica needs, and why. */
export interface FullSyncDecision {
  kind: "full_sync";
  reason: string;
  /**
   * The replica's log left this master's history (LSN past the master's, or another epoch at its
   * last LSN): the link finds the common LSN (`findCommonLsn`), reports the records past it
   * (`REPLICATE DIVERGED`) and then sends the full sync.
   */
  diverged: boolean;
}

/**
 * How a connected replica continues: stream from its LSN, a full sync, or (a forwarding replica
 * behind its sub-replica) wait until this log reaches the sub-replica's LSN, then check it.
 */
export type HandshakeDecision =
  | { kind: "stream"; fromLsn: number }
  | FullSyncDecision
  | { kind: "ahead"; replicaLsn: number };

/** Result of {@link ReplicaNode.markFailure}. */
export interface FailureOutcome {
  /** This failure crossed `maxFailures`. */
  becameUnhealthy: boolean;
  /** Wait this long before the next connection attempt. */
  retryDelayMs: number;
}

/** One replica of this master. */
export class ReplicaNode {
  readonly host: string;
  readonly port: number;
  readonly policy: ReplicaPolicy;
  /** In-memory buffer of durable records not yet acknowledged. */
  readonly queue: RecordQueue;

  healthy = true;
  consecutiveFailures = 0;
  /** Wall-clock ms of the last success, or undefined. */
  lastSuccessMs: number | undefined;
  /** Wall-clock ms of the last failure, or undefined. */
  lastFailureMs: number | undefined;
  /** Why the last attempt failed. */
  lastError = "";
  state: ReplicaState = "down";
  /** Highest LSN the replica acknowledged as applied (learned again at each handshake). */
  ackedLsn = 0;
  /** Highest LSN sent on the current connection. */
  sentLsn = 0;
  /** Highest LSN durable on the master. */
  durableLsn = 0;
  /** Records this replica acknowledged since start. */
  successfulRecords = 0;
  /** Failed attempts (connect, send, reply timeout, error reply) since start. */
  failedAttempts = 0;
  /** Full syncs started since start. */
  fullSyncs = 0;
  /** Records of this replica found past the point where its log left the master's. */
  discardedRecords = 0;
  /**
   * Its key filter (selective replication): it receives only the keys the filter selects, never
   * counts for sync acknowledgements, and cannot be promoted. Undefined: every key.
   */
  keyFilter: KeyFilter | undefined;
  /**
   * The key filter was given for this replica (`host:port[...]`, `REPLICAS FILTER`); when not, a
   * forwarding replica that is itself filtered gives it its own filter at each handshake.
   */
  keyFilterGiven = false;
  /** The codec this session packs frames with, or why it does not ("off": not offered). */
  compression = "off";
  /** Log and snapshot bytes sent since start, before and after compression. */
  sentRawBytes = 0;
  sentWireBytes = 0;

  #retries = 0;
  #pendingReplies = 0;
  #waitingSinceMs = 0;
  #lastActivityMs = 0;
  #overflowReported = false;
  /** Snapshot pairs sent on this connection whose chunk is not acknowledged yet. */
  #snapshotPairsInFlight = 0;
  /** A sub-replica ahead of this forwarding replica: its handshake, checked once caught up. */
  #ahead: HandshakeFacts | undefined;
  /** When the chain was last reported on this connection (forwarding replicas). */
  #lastChainReportMs = -Infinity;

  constructor(host: string, port: number, policy: ReplicaPolicy) {
    this.host = host;
    this.port = port;
    this.policy = policy;
    this.queue = new RecordQueue(policy.queueSizeRecords);
  }

  /** `host:port`. */
  get address(): string {
    return this.host.includes(":") ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /** Records durable on the master that this replica has not acknowledged. */
  get lagRecords(): number {
    return Math.max(0, this.durableLsn - this.ackedLsn);
  }

  /** Requests sent on this connection whose reply has not arrived. */
  get pendingReplies(): number {
    return this.#pendingReplies;
  }

  /**
   * A batch became durable on the master. Returns the number of records that were buffered
   * when the buffer overflowed and was discarded, the first time it happens since the replica
   * was last current (report it once), or undefined.
   */
  onDurable(batch: DurableBatch): number | undefined {
    assert.equal(batch.firstLsn, this.durableLsn + 1, "durable batches must follow each other");
    this.durableLsn = batch.lastLsn;
    if (batch.lastLsn <= this.ackedLsn) return undefined;
    const result = this.queue.push(batch);
    if (result.kind === "queued" || this.#overflowReported) return undefined;
    this.#overflowReported = true;
    return result.discardedRecords + (batch.lastLsn - batch.firstLsn + 1);
  }

  /** Sets the master's durable LSN at start (before any batch), e.g. after a master restart. */
  setDurableLsn(lsn: number): void {
    this.durableLsn = Math.max(this.durableLsn, lsn);
  }

  /**
   * The source's log was replaced (a forwarding replica received a full sync): it now ends at
   * `lsn`, which may be below what it held. The buffer is dropped and the link goes down without
   * counting a failure: the next handshake decides again from the replica's position.
   */
  resetLog(lsn: number, reason: string): void {
    this.durableLsn = lsn;
    this.queue.clear();
    this.markPaused(reason);
  }

  /** A frame of `rawBytes` of records or pairs left as `wireBytes` (compressed or not). */
  countSent(rawBytes: number, wireBytes: number): void {
    this.sentRawBytes += rawBytes;
    this.sentWireBytes += wireBytes;
  }

  /**
   * The link stops for a reason of the source's, not the replica's (a forwarding replica waits
   * for its own master's stream in a newer epoch): down, but no failure is counted and the
   * replica's health stays as it is.
   */
  markPaused(reason: string): void {
    this.state = "down";
    this.#ahead = undefined;
    this.#pendingReplies = 0;
    this.#snapshotPairsInFlight = 0;
    this.#lastChainReportMs = -Infinity;
    this.sentLsn = this.ackedLsn;
    this.lastError = reason;
  }

  /** True when a forwarding replica should tell this sub-replica about the chain again. */
  chainReportDue(nowMs: number): boolean {
    const interval = this.policy.chainReportIntervalMs ?? 0;
    return interval > 0 && this.state !== "down" &&
      nowMs - this.#lastChainReportMs >= interval;
  }

  /** When the next chain report falls due (Infinity on a master). */
  chainReportDueAtMs(): number {
    const interval = this.policy.chainReportIntervalMs ?? 0;
    return interval > 0 ? this.#lastChainReportMs + interval : Infinity;
  }

  /** A chain report was sent now. */
  onChainReported(nowMs: number): void {
    this.#lastChainReportMs = nowMs;
  }

  /** Decides how a freshly connected replica continues, and counts the handshake a success. */
  onHandshake(facts: HandshakeFacts, nowMs: number): HandshakeDecision {
    // Contact is a success (healthy again), but the retry backoff keeps growing until records
    // or a ping are acknowledged: a replica that fails right after every handshake is not hammered.
    this.markSuccess(nowMs, false);
    this.#pendingReplies = 0;
    this.#snapshotPairsInFlight = 0;
    this.#ahead = undefined;
    const localWrites = facts.replicaLocalWrites ?? 0;
    if (localWrites === 0 && facts.replicaLsn > this.durableLsn && this.policy.forwarding) {
      // A forwarding replica behind its sub-replica (re-pointed from a master or a replica further
      // ahead): not a divergence yet. It waits until its own log reaches the sub-replica's LSN and
      // checks the record there then (see nextSend's "verify").
      this.#ahead = facts;
      this.ackedLsn = facts.replicaLsn;
      this.sentLsn = facts.replicaLsn;
      this.queue.clear();
      this.state = "ahead";
      return { kind: "ahead", replicaLsn: facts.replicaLsn };
    }
    return this.#decide(facts);
  }

  /**
   * A forwarding replica's log reached the LSN its sub-replica holds ({@link nextSend} said
   * `verify`): `facts` now carry this log's epoch and CRC at that LSN. The same decision as at a
   * handshake: stream on, or a full sync when the sub-replica's record differs (its log left
   * this history).
   */
  onVerified(
    facts: Pick<HandshakeFacts, "masterEpochAtReplicaLsn" | "masterCrcAtReplicaLsn">,
  ): HandshakeDecision {
    const ahead = this.#ahead;
    if (ahead === undefined) assert.fail("onVerified without a sub-replica ahead");
    this.#ahead = undefined;
    return this.#decide({ ...ahead, ...facts });
  }

  #decide(facts: HandshakeFacts): HandshakeDecision {
    const { replicaLsn, replicaEpoch, masterEpochAtReplicaLsn } = facts;
    const { replicaCrc, masterCrcAtReplicaLsn } = facts;
    let reason: string | undefined;
    const localWrites = facts.replicaLocalWrites ?? 0;
    if (localWrites > 0) {
      reason = `replica holds ${localWrites} local writes (REPLICATE PUT/BATCHPUT/DELETE sent ` +
        `to it by hand) that are not in the master's history`;
    } else if (facts.filterChanged !== undefined) {
      reason = facts.filterChanged;
    } else if (replicaLsn > this.durableLsn) {
      reason = `replica holds LSN ${replicaLsn}, beyond the master's last LSN ${this.durableLsn} ` +
        `(its log diverged)`;
    } else if (masterEpochAtReplicaLsn === undefined) {
      reason = replicaLsn === 0
        ? "replica is empty and the master's log no longer starts at LSN 1 (compacted)"
        : `the master's log no longer holds the records after LSN ${replicaLsn} (compacted)`;
    } else if (replicaLsn > 0 && masterEpochAtReplicaLsn !== replicaEpoch) {
      reason = `replica's record at LSN ${replicaLsn} has epoch ${replicaEpoch}, the master's ` +
        `has epoch ${masterEpochAtReplicaLsn} (its log diverged)`;
    } else if (
      replicaLsn > 0 && replicaCrc !== 0 && masterCrcAtReplicaLsn !== 0 &&
      replicaCrc !== masterCrcAtReplicaLsn
    ) {
      reason = `replica's record at LSN ${replicaLsn} differs from the master's (CRC ` +
        `${replicaCrc} vs ${masterCrcAtReplicaLsn}): its log diverged`;
    }
    if (reason !== undefined) {
      this.state = "full_sync";
      this.fullSyncs++;
      this.ackedLsn = 0;
      this.sentLsn = 0;
      const diverged = facts.filterChanged === undefined && localWrites === 0 &&
        (replicaLsn > this.durableLsn ||
          (masterEpochAtReplicaLsn !== undefined && masterEpochAtReplicaLsn !== replicaEpoch));
      return { kind: "full_sync", reason, diverged };
    }
    this.ackedLsn = replicaLsn;
    this.sentLsn = replicaLsn;
    this.queue.releaseThrough(replicaLsn);
    this.state = replicaLsn >= this.durableLsn ? "streaming" : "catching_up";
    if (this.state === "streaming") this.#overflowReported = false;
    return { kind: "stream", fromLsn: replicaLsn };
  }

  /**
   * The log no longer holds what the replica needs next (compacted while it caught up; `reason`
   * says where): it gets a full sync on this connection, once every reply due has come.
   */
  onLogGap(reason: string): FullSyncDecision {
    this.state = "full_sync";
    this.fullSyncs++;
    this.sentLsn = this.ackedLsn;
    return { kind: "full_sync", reason, diverged: false };
  }

  /**
   * Whether a snapshot chunk of `pairs` may be sent now: at most `queueSizeRecords` pairs
   * unacknowledged, as for records (a single larger chunk goes alone).
   */
  snapshotWindowOpen(pairs: number): boolean {
    const inFlight = this.#snapshotPairsInFlight;
    return inFlight === 0 || inFlight + pairs <= this.policy.queueSizeRecords;
  }

  /** A full sync delivered the master's state as of `snapshotLsn`. */
  onFullSyncDone(snapshotLsn: number, nowMs: number): void {
    assert.equal(this.state, "full_sync");
    this.ackedLsn = snapshotLsn;
    this.sentLsn = snapshotLsn;
    this.queue.releaseThrough(snapshotLsn);
    this.state = "catching_up";
    this.markSuccess(nowMs);
  }

  /** Whether another frame may be sent now (fewer than `queueSizeRecords` unacknowledged). */
  windowOpen(): boolean {
    return this.sentLsn - this.ackedLsn < this.policy.queueSizeRecords;
  }

  /** What to send next on a connected, handshaken link. */
  nextSend(): NextSend {
    if (this.state === "down") assert.fail("nextSend on a link that is down"); // hot: no assert
    if (this.state === "ahead") {
      const ahead = this.#ahead;
      if (ahead !== undefined && this.durableLsn >= ahead.replicaLsn) {
        return { kind: "verify", lsn: ahead.replicaLsn };
      }
      return { kind: "wait" };
    }
    if (this.sentLsn >= this.durableLsn) {
      if (this.state === "catching_up" && this.ackedLsn >= this.durableLsn) {
        this.state = "streaming";
        this.#overflowReported = false;
      }
      return { kind: "wait" };
    }
    if (!this.windowOpen()) return { kind: "wait" };
    const first = this.queue.firstLsn;
    const last = this.queue.lastLsn;
    if (first !== undefined && last !== undefined && last < this.durableLsn) {
      // The buffer does not reach the durable end (never the case while pushes follow each
      // other): the log is the source of truth.
      this.queue.clear();
      this.state = "catching_up";
      return { kind: "log", afterLsn: this.sentLsn, uptoLsn: this.durableLsn };
    }
    if (first !== undefined && first <= this.sentLsn + 1) {
      if (this.state === "catching_up") {
        this.state = "streaming";
        this.#overflowReported = false;
      }
      return {
        kind: "queue",
        batches: this.queue.batchesAfter(this.sentLsn, this.policy.batchBytes),
      };
    }
    this.state = "catching_up";
    const uptoLsn = first === undefined ? this.durableLsn : first - 1;
    return { kind: "log", afterLsn: this.sentLsn, uptoLsn };
  }

  /**
   * A request that expects one reply was written. `lastLsn`: highest LSN it carried, if any;
   * `snapshotPairs`: the pairs of a snapshot chunk.
   */
  onSent(nowMs: number, lastLsn?: number, snapshotPairs = 0): void {
    if (this.#pendingReplies === 0) this.#waitingSinceMs = nowMs;
    this.#pendingReplies++;
    this.#snapshotPairsInFlight += snapshotPairs;
    this.#lastActivityMs = nowMs;
    if (lastLsn !== undefined && lastLsn > this.sentLsn) this.sentLsn = lastLsn;
  }

  /**
   * A reply to an authentication step arrived (`CHALLENGE`, `PROVE`): the replica answered, but
   * it proved nothing yet, so this is no success (a replica that refuses the token must not be
   * retried at full speed).
   */
  onAuthReply(nowMs: number): void {
    if (this.#pendingReplies <= 0) assert.fail("reply without a request");
    this.#pendingReplies--;
    this.#waitingSinceMs = nowMs;
    this.#lastActivityMs = nowMs;
  }

  /**
   * A reply arrived. `appliedLsn`: the replica's applied LSN when the reply carries one;
   * `snapshotPairs`: the pairs of the snapshot chunk it acknowledges. Returns the number of
   * records newly acknowledged.
   */
  onReply(nowMs: number, appliedLsn?: number, snapshotPairs = 0): number {
    if (this.#pendingReplies <= 0) assert.fail("reply without a request"); // hot: no assert.ok
    this.#pendingReplies--;
    this.#snapshotPairsInFlight -= snapshotPairs;
    this.#waitingSinceMs = nowMs;
    this.#lastActivityMs = nowMs;
    this.markSuccess(nowMs);
    if (appliedLsn === undefined || appliedLsn <= this.ackedLsn) return 0;
    const newly = appliedLsn - this.ackedLsn;
    this.ackedLsn = appliedLsn;
    if (this.sentLsn < appliedLsn) this.sentLsn = appliedLsn;
    this.successfulRecords += newly;
    this.queue.releaseThrough(appliedLsn);
    if (this.state === "catching_up" && appliedLsn >= this.durableLsn) {
      this.state = "streaming";
      this.#overflowReported = false;
    }
    return newly;
  }

  /** True when a reply is overdue: the attempt failed and the link must be dropped. */
  replyOverdue(nowMs: number): boolean {
    return this.#pendingReplies > 0 && nowMs - this.#waitingSinceMs >= this.policy.timeoutMs;
  }

  /** When the oldest awaited reply becomes overdue, or undefined when none is awaited. */
  replyDeadlineMs(): number | undefined {
    return this.#pendingReplies > 0 ? this.#waitingSinceMs + this.policy.timeoutMs : undefined;
  }

  /** True when an idle link should be pinged (nothing sent or received for a check interval). */
  pingDue(nowMs: number): boolean {
    return this.state !== "down" && this.#pendingReplies === 0 &&
      nowMs - this.#lastActivityMs >= this.policy.healthCheckIntervalMs;
  }

  /** When an idle link's ping falls due. */
  pingDueAtMs(): number {
    return this.#lastActivityMs + this.policy.healthCheckIntervalMs;
  }

  /** Counts a success: resets the failure count; the first success marks the replica healthy. */
  markSuccess(nowMs: number, resetRetries = true): boolean {
    const becameHealthy = !this.healthy;
    this.healthy = true;
    this.consecutiveFailures = 0;
    if (resetRetries) this.#retries = 0;
    this.lastSuccessMs = nowMs;
    this.lastError = "";
    return becameHealthy;
  }

  /**
   * Counts a failed attempt and drops the link to `down`. After `maxFailures` consecutive ones
   * the replica is unhealthy. Returns how long to wait before the next attempt.
   */
  markFailure(nowMs: number, reason: string): FailureOutcome {
    this.consecutiveFailures++;
    this.failedAttempts++;
    this.lastFailureMs = nowMs;
    this.lastError = reason;
    this.state = "down";
    this.#ahead = undefined;
    this.#pendingReplies = 0;
    this.#snapshotPairsInFlight = 0;
    this.#lastChainReportMs = -Infinity;
    this.sentLsn = this.ackedLsn;
    const becameUnhealthy = this.healthy && this.consecutiveFailures >= this.policy.maxFailures;
    if (becameUnhealthy) this.healthy = false;
    this.#retries++;
    return { becameUnhealthy, retryDelayMs: this.retryDelayMs() };
  }

  /**
   * Delay before the next attempt: doubling backoff for `maxRetries` retries, then the longest
   * backoff (`maxRetryBackoffMs`, at most the health-check interval).
   */
  retryDelayMs(): number {
    const { maxRetries, retryBackoffMs, healthCheckIntervalMs } = this.policy;
    if (this.#retries === 0) return 0;
    const longestMs = Math.min(healthCheckIntervalMs, this.policy.maxRetryBackoffMs ?? Infinity);
    if (this.#retries > maxRetries) return longestMs;
    return Math.min(longestMs, retryBackoffMs * 2 ** (this.#retries - 1));
  }
}
