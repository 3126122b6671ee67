/**
 * The master side of replication, as the spec's `Replicator`: it receives every batch of records
 * at the master's durability point, hands it to each replica's buffer, runs one sender per
 * replica, answers sync-mode writes when the required replicas acknowledged them, and reports
 * `getStats()`. The spec's per-operation `replicate_put`/`replicate_batch_put`/`replicate_delete`
 * are one thing here: the log records the store already wrote.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import { AckWaiters } from "./ack_waiters.ts";
import { LagClock } from "./lag_clock.ts";
import { splitBatch } from "./log_records.ts";
import type { ChainFields } from "./stream_protocol.ts";
import { KeyFilter } from "./key_filter.ts";
import type { ReplicationSource } from "./link_context.ts";
import { ReplicaLink } from "./replica_link.ts";
import { ReplicaManager, type ReplicaNodeStatus } from "./replica_manager.ts";
import type { ReplicaNode, ReplicaPolicy } from "./replica_node.ts";
import { DeposedError, SyncAckTracker, SyncReplicationError } from "./sync_tracker.ts";

export { DeposedError, SyncReplicationError } from "./sync_tracker.ts";
export type { ReplicationSource, SourceSnapshot } from "./link_context.ts";

/** What {@link Replicator.getStats} returns (the spec's `get_stats()`, plus lag and positions). */
export interface ReplicatorStats {
  role: "master";
  mode: "async" | "sync";
  /** Records acknowledged by replicas, summed over replicas. */
  successfulReplications: number;
  /** Failed attempts (connect, send, reply timeout, error reply), summed over replicas. */
  failedReplications: number;
  /** Records buffered in memory for replicas, summed over replicas. */
  queueSize: number;
  /** Highest LSN durable on the master. */
  masterLsn: number;
  healthyReplicas: number;
  totalReplicas: number;
  /** Sync-mode writes waiting for acknowledgements. */
  syncWaiting: number;
  replicas: ReplicaNodeStatus[];
}

/**
 * How often a forwarding replica tells each sub-replica what it knows of the chain (the master's
 * LSN, its own lag behind it, its depth), in ms: the sub-replica's end-to-end lag is at most this
 * old. One small `REPLICATE PING` per second per sub-replica.
 */
export const CHAIN_REPORT_INTERVAL_MS = 1000;

/**
 * What a forwarding replica tells its sub-replicas about the chain above it: the newest LSN of
 * the master at the head it knows of, its own lag behind that master in ms, its depth (1 for a
 * replica of the master) and where clients reach that master ("" when unknown).
 */
export type ChainReport = ChainFields;

/**
 * A replica that forwards its master's records to replicas of its own (cascading): the records
 * it made durable leave with the master's LSNs and epochs unchanged.
 */
export interface Forwarding {
  /** The epoch its HELLO announces: the newest this node knows (its log's, when ready). */
  epoch(): number;
  /**
   * Why it cannot forward now, or undefined: a node that learned of a newer master than the one
   * whose records end its log waits for that master's stream (its log may hold records a
   * deposed master wrote past the promotion, which must not reach a sub-replica).
   */
  notReady(): string | undefined;
  /** What it knows of the chain, told to each sub-replica every {@link CHAIN_REPORT_INTERVAL_MS}. */
  chain(): ChainReport;
  /**
   * The key prefixes of the data it holds when it is a filtered replica (empty: every key): a
   * sub-replica given no filter of its own gets this one.
   */
  keyFilter?(): readonly string[];
}

/** Policy of every replica link, from the settings. */
export function replicaPolicyFromConfig(config: Config): ReplicaPolicy {
  return {
    maxFailures: config.REPLICATION_MAX_FAILURES,
    maxRetries: config.REPLICATION_MAX_RETRIES,
    retryBackoffMs: config.REPLICATION_RETRY_BACKOFF_MS,
    maxRetryBackoffMs: config.REPLICATION_RETRY_MAX_BACKOFF_MS,
    healthCheckIntervalMs: config.REPLICATION_HEALTH_CHECK_INTERVAL * 1000,
    timeoutMs: config.REPLICATION_TIMEOUT * 1000,
    queueSizeRecords: config.REPLICATION_QUEUE_SIZE,
    batchBytes: config.REPLICATION_BATCH_BYTES,
  };
}

/** How a {@link Replicator} reaches its replicas (all optional). */
export interface ReplicatorOptions {
  /** Opens a connection to a replica (default: TCP); e.g. TLS trusting the replicas' CA. */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** The replication token, proved (never sent) on each connection before `HELLO`. */
  authToken?: string;
  /** A replica refused a request (`code` is the error's first word, e.g. `STALEEPOCH`). */
  onRefused?: (address: string, code: string, message: string) => void;
  /** Where clients reach this master (`host:port`), told to each replica in HELLO. */
  masterAddress?: () => string;
  /**
   * Set on a replica that forwards to replicas of its own (cascading): always async (sync mode
   * counts only a master's direct replicas), HELLO in the epoch it says.
   */
  forwarding?: Forwarding;
  /**
   * Sync mode: the LSN up to which the source's records count as committed already (0, the
   * default: only the replicas' acknowledgements commit; a replicator started on a running
   * master passes its durable LSN, committed under the rule before it).
   */
  committedLsn?: number;
}

interface SyncToken {
  resolve(): void;
  reject(error: Error): void;
}

/** Replicates a master's log to its replicas. */
export class Replicator {
  readonly mode: "async" | "sync";
  readonly replicaManager: ReplicaManager;
  readonly #source: ReplicationSource;
  readonly #config: Config;
  readonly #options: ReplicatorOptions;
  readonly #links: ReplicaLink[] = [];
  readonly #lagClock: LagClock;
  readonly #tracker: SyncAckTracker<SyncToken>;
  readonly #nowMs: () => number;
  readonly #log = getLog("replication");
  #durableLsn: number;
  #unsubscribe: (() => void) | undefined;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #syncTimerAtMs = Infinity;
  #drainWaiters: (() => void)[] = [];
  #started = false;
  /** Why this master was deposed (a newer master exists), once it was. */
  #deposed: string | undefined;
  /** Highest LSN the required replicas backed so far (sync mode; never decreases). */
  #committedLsn: number;
  /** Highest LSN whose sync wait ran out of time while it was not backed. */
  #expiredThroughLsn = 0;
  /** `WAIT` and write concerns waiting for acknowledgements. */
  readonly #ackWaiters = new AckWaiters((lsn) => this.replicasWith(lsn));

  /**
   * `source`: the master's store, with nothing written since it was opened (its `lastLsn` is
   * durable). `nowMs`: the clock (wall time by default).
   */
  constructor(
    source: ReplicationSource,
    config: Config,
    nowMs: () => number = Date.now,
    options: ReplicatorOptions = {},
  ) {
    this.#source = source;
    this.#config = config;
    this.#options = options;
    this.#nowMs = nowMs;
    const forwarding = options.forwarding;
    // Sync mode counts only a master's direct replicas: a forwarding replica takes no writes.
    this.mode = forwarding === undefined ? config.REPLICATION_MODE : "async";
    const policy: ReplicaPolicy = forwarding === undefined ? replicaPolicyFromConfig(config) : {
      ...replicaPolicyFromConfig(config),
      forwarding: true,
      chainReportIntervalMs: CHAIN_REPORT_INTERVAL_MS,
    };
    this.#lagClock = new LagClock(Math.max(2, config.REPLICATION_QUEUE_SIZE));
    this.replicaManager = new ReplicaManager(policy, nowMs, this.#lagClock);
    this.#tracker = new SyncAckTracker(config.SYNC_REPLICAS, policy.timeoutMs);
    this.#durableLsn = source.lastLsn;
    this.#committedLsn = options.committedLsn ?? 0;
    for (const address of config.REPLICA_ADDRESSES) {
      this.#addLink(address.host, address.port, address.keyPrefixes);
    }
    this.#refreshCommitted();
  }

  #addLink(host: string, port: number, keyPrefixes?: readonly string[]): ReplicaLink {
    const node = this.replicaManager.addReplica(host, port, KeyFilter.of(keyPrefixes));
    node.setDurableLsn(this.#durableLsn);
    const options = this.#options;
    const forwarding = options.forwarding;
    const sourceEpoch = this.#source.epoch ?? 0;
    const link = new ReplicaLink(node, {
      source: this.#source,
      log: this.#log,
      nowMs: this.#nowMs,
      epoch: forwarding === undefined ? () => sourceEpoch : () => forwarding.epoch(),
      notReady: forwarding?.notReady,
      chain: forwarding?.chain,
      heldKeyFilter: forwarding?.keyFilter,
      masterAddress: options.masterAddress,
      snapshotChunkBytes: this.#config.SNAPSHOT_CHUNK_BYTES,
      compression: {
        setting: this.#config.REPLICATION_COMPRESSION,
        minBytes: this.#config.REPLICATION_COMPRESSION_MIN_BYTES,
      },
      maxReplyBytes: this.#config.MAX_REQUEST_BYTES,
      onAck: (n) => this.#onAck(n),
      onHealthChange: () => this.#settle(),
      connect: options.connect,
      authToken: options.authToken,
      onRefused: options.onRefused === undefined
        ? undefined
        : (n, code, message) => options.onRefused?.(n.address, code, message),
    });
    this.#links.push(link);
    return link;
  }

  /**
   * Adds a replica at runtime (the spec's `add_replica`): it gets its own sender, which catches
   * it up from its LSN (or a full sync) like any other. Throws for an address already listed.
   */
  addReplica(host: string, port: number, keyPrefixes?: readonly string[]): ReplicaNode {
    const link = this.#addLink(host, port, keyPrefixes);
    if (this.#started) link.start();
    this.#log.info("replica {replica} added", { replica: link.node.address });
    return link.node;
  }

  /**
   * Removes the replica at `address` (`host:port` as listed): its sender stops and its sync
   * acknowledgements no longer count. Resolves to false when no such replica is listed.
   */
  async removeReplica(address: string): Promise<boolean> {
    const index = this.#links.findIndex((link) => link.node.address === address);
    if (index === -1) return false;
    const [link] = this.#links.splice(index, 1);
    this.replicaManager.removeReplica(link.node);
    await link.stop();
    this.#refreshCommitted();
    this.#settle();
    this.#log.info("replica {replica} removed at acknowledged LSN {ackedLsn}", {
      replica: address,
      ackedLsn: link.node.ackedLsn,
    });
    return true;
  }

  /**
   * Gives the replica at `address` (`host:port` as listed) a new key filter (none: it receives
   * everything again). Its session ends and the next one resyncs it to hold exactly the keys the
   * filter now selects (a full sync). False when no such replica is listed.
   */
  setKeyFilter(address: string, keyPrefixes: readonly string[]): boolean {
    const link = this.#links.find((l) => l.node.address === address);
    if (link === undefined) return false;
    link.node.keyFilter = KeyFilter.of(keyPrefixes);
    link.node.keyFilterGiven = link.node.keyFilter !== undefined;
    this.#log.warn("replica {replica}: key filter now {filter}; it is resynced", {
      replica: address,
      filter: link.node.keyFilter?.toString() ?? "(none: every key)",
    });
    link.interrupt("its key filter changed");
    this.#refreshCommitted();
    this.#settle();
    return true;
  }

  /** The link to `address` (`host:port` as listed) tries again now; false when not listed. */
  retryNow(address: string): boolean {
    const link = this.#links.find((l) => l.node.address === address);
    link?.retryNow();
    return link !== undefined;
  }

  /** Subscribes to the store's durable batches and starts one sender per replica. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#unsubscribe = this.#source.onDurable((records, firstLsn, lastLsn) =>
      this.#onDurable(records, firstLsn, lastLsn)
    );
    for (const link of this.#links) link.start();
    this.#log.info("replicating to {replicas} in {mode} mode from LSN {lsn}", {
      replicas: this.replicaManager.replicas.map((r) => r.address).join(", "),
      mode: this.mode,
      lsn: this.#durableLsn,
    });
  }

  /** Highest LSN durable on the master. */
  get durableLsn(): number {
    return this.#durableLsn;
  }

  #onDurable(records: Uint8Array, firstLsn: number, lastLsn: number): void {
    if (firstLsn !== this.#durableLsn + 1 && this.#options.forwarding !== undefined) {
      // A replica's log: a batch may start with a local record (it reuses the last LSN; a
      // sub-replica skips it), or follow a full sync that restarted the log elsewhere.
      if (lastLsn <= this.#durableLsn) return;
      if (firstLsn > this.#durableLsn + 1) {
        this.restartLog(
          lastLsn,
          `this node's log jumped from LSN ${this.#durableLsn} to ${firstLsn}`,
        );
        return;
      }
      firstLsn = this.#durableLsn + 1;
    }
    const now = this.#nowMs();
    this.#durableLsn = lastLsn;
    if (this.#committedLsn < lastLsn && this.mode === "sync") this.#refreshCommitted();
    this.#lagClock.record(lastLsn, now);
    // The bytes are ours to keep (storage contract): shared by every replica's buffer.
    const batches = splitBatch(
      { records, firstLsn, lastLsn },
      this.replicaManager.replicas[0]?.policy.batchBytes ?? Infinity,
    );
    for (const link of this.#links) {
      const node = link.node;
      for (const batch of batches) {
        const overflowRecords = node.onDurable(batch);
        if (overflowRecords !== undefined) {
          this.#log.warn(
            "Queue full for replica {replica}: {records} records waiting, more than " +
              "REPLICATION_QUEUE_SIZE {queueSize} (state {state}); switched to catch-up from " +
              "the log on disk, nothing is dropped",
            {
              replica: node.address,
              records: overflowRecords,
              queueSize: node.policy.queueSizeRecords,
              state: node.state,
            },
          );
        }
      }
      link.wake();
    }
  }

  /**
   * A forwarding replica's log was replaced (a full sync from its master): it ends at `lsn` now.
   * Every link starts over with a handshake (a sub-replica then streams on, or gets a full sync
   * of this node's new contents); no failure is counted.
   */
  restartLog(lsn: number, reason: string): void {
    this.#durableLsn = lsn;
    this.#lagClock.reset();
    for (const link of this.#links) {
      link.node.resetLog(lsn, reason);
      link.interrupt(reason);
    }
    this.#log.info("forwarding starts over at LSN {lsn}: {reason}", { lsn, reason });
  }

  /**
   * The links end their sessions now, without counting a failure, and wait until the source is
   * ready again (a forwarding replica that learned of a newer epoch). `reason` says why.
   */
  pause(reason: string): void {
    for (const link of this.#links) link.interrupt(reason);
  }

  /** Every link looks again (the source may be ready now). */
  wakeAll(): void {
    for (const link of this.#links) link.wake();
  }

  #onAck(_node: ReplicaNode): void {
    this.#refreshCommitted();
    this.#settle();
    if (this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const wake of waiters) wake();
    }
    this.#lagClock.forgetThrough(this.replicaManager.minAckedLsn());
  }

  /**
   * Resolves when the write at `lsn` is backed as sync mode requires (immediately in async mode);
   * rejects with {@link SyncReplicationError} after `REPLICATION_TIMEOUT`.
   */
  waitForReplicas(lsn: number): Promise<void> {
    const replicas = this.replicaManager.complete;
    if (this.mode !== "sync" || lsn <= this.#committedLsn) return Promise.resolve();
    if (this.#tracker.isBacked(lsn, replicas)) return Promise.resolve();
    if (this.#deposed !== undefined) return Promise.reject(new DeposedError(lsn, this.#deposed));
    if (lsn <= this.#expiredThroughLsn) {
      // A read of a write that already ran out of time: it fails now, not after a timeout more.
      return Promise.reject(
        new SyncReplicationError(
          lsn,
          replicas.filter((r) => r.ackedLsn >= lsn).length,
          this.#tracker.requiredCount(replicas),
          this.#config.REPLICATION_TIMEOUT * 1000,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#tracker.add(lsn, this.#nowMs(), { resolve, reject });
      this.#armSyncTimer();
    });
  }

  /**
   * The commit point of sync mode: every record at or below it is on the required replicas (and
   * durable here). It never decreases (a replica that reconnects and is caught up again from
   * LSN 0 takes nothing back). In async mode replication commits nothing: the durable LSN.
   */
  get committedLsn(): number {
    return this.mode === "sync" ? this.#committedLsn : this.#durableLsn;
  }

  #refreshCommitted(): void {
    const backed = this.#tracker.backedLsn(this.replicaManager.complete, this.#durableLsn);
    if (backed > this.#committedLsn) this.#committedLsn = backed;
  }

  #settle(): void {
    this.#refreshCommitted();
    this.#ackWaiters.settle();
    if (this.#tracker.size === 0) return;
    const replicas = this.replicaManager.complete;
    const { acknowledged, expired } = this.#tracker.settle(replicas, this.#nowMs());
    for (const token of acknowledged) token.resolve();
    for (const { token, error } of expired) {
      if (error.lsn > this.#expiredThroughLsn) this.#expiredThroughLsn = error.lsn;
      token.reject(error);
    }
    if (expired.length > 0) {
      for (
        const { token, error } of this.#tracker.expireThrough(this.#expiredThroughLsn, replicas)
      ) {
        token.reject(error);
      }
    }
    this.#armSyncTimer();
  }

  /**
   * How many replicas have `lsn`: acknowledged it (a replica that did and is down now still holds
   * it on its disk). For LSN 0 (a connection that wrote nothing) the replicas connected now, as
   * Redis's `WAIT` counts.
   */
  replicasWith(lsn: number): number {
    let count = 0;
    for (const r of this.replicaManager.complete) {
      if (lsn === 0 ? r.state !== "down" : r.ackedLsn >= lsn) count++;
    }
    return count;
  }

  /**
   * Replicas that make a majority of the nodes with this master (`floor((replicas + 1) / 2)`):
   * 1 of 2, 2 of 3 or 4; 0 without replicas (the master alone is a majority of one).
   */
  majorityReplicas(): number {
    return Math.floor((this.replicaManager.complete.length + 1) / 2);
  }

  /**
   * Waits until `needed` replicas have `lsn` or `timeoutMs` passed (0: no limit), or `owner` is
   * released; resolves with how many have it then. Never rejects (`WAIT`, write concerns).
   */
  waitForAcks(lsn: number, needed: number, timeoutMs: number, owner?: object): Promise<number> {
    return this.#ackWaiters.wait(lsn, needed, timeoutMs, owner);
  }

  /** `WAIT`s and write concerns waiting for acknowledgements now. */
  get ackWaits(): number {
    return this.#ackWaiters.size;
  }

  /** Ends the waits of `owner` now, with the counts as they are (its connection closed). */
  releaseAcks(owner: object): void {
    this.#ackWaiters.release(owner);
  }

  /** Why this master was deposed, or undefined. */
  get deposed(): string | undefined {
    return this.#deposed;
  }

  /**
   * A newer master exists (`reason` says who said so): every waiting sync write fails now with
   * {@link DeposedError} (applied here, not acknowledged, may be lost), later ones at once, and
   * the links stop: this node's history past the new master's is not sent anywhere.
   */
  async depose(reason: string): Promise<void> {
    if (this.#deposed !== undefined) return;
    this.#deposed = reason;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const { lsn, token } of this.#tracker.takeAll()) {
      token.reject(new DeposedError(lsn, reason));
    }
    await Promise.all(this.#links.map((link) => link.stop()));
  }

  /**
   * Keeps one timer armed at or before the earliest deadline of a waiting write. A timer that is
   * no longer needed (its writes were acknowledged) is left to fire and find nothing, and a later
   * deadline reuses the earlier timer, which re-arms when it fires: deadlines are the write's
   * time plus one timeout, so at one write at a time this arms one timer per `REPLICATION_TIMEOUT`
   * instead of one per write (a `setTimeout` + `clearTimeout` pair per sync write delayed its LOG
   * frame measurably: docs/ARCHITECTURE.md, "Measured costs").
   */
  #armSyncTimer(): void {
    const deadline = this.#tracker.nextDeadlineMs();
    if (deadline === undefined) return;
    if (this.#syncTimer !== undefined && this.#syncTimerAtMs <= deadline) return;
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimerAtMs = deadline;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      this.#syncTimerAtMs = Infinity;
      this.#settle();
    }, Math.max(1, deadline - this.#nowMs()));
  }

  /** Replication figures: counters, buffer size, health, and per replica position and lag. */
  getStats(): ReplicatorStats {
    const status = this.replicaManager.getStatus();
    let successful = 0;
    let failed = 0;
    let queued = 0;
    for (const r of this.replicaManager.replicas) {
      successful += r.successfulRecords;
      failed += r.failedAttempts;
      queued += r.queue.sizeRecords;
    }
    return {
      role: "master",
      mode: this.mode,
      successfulReplications: successful,
      failedReplications: failed,
      queueSize: queued,
      masterLsn: this.#durableLsn,
      healthyReplicas: status.healthyReplicas,
      totalReplicas: status.totalReplicas,
      syncWaiting: this.#tracker.size,
      replicas: status.replicas,
    };
  }

  /**
   * Graceful stop: waits up to `drainTimeoutMs` for every connected replica to acknowledge the
   * master's last durable LSN, then closes the links. What a replica did not get stays in the
   * log and is sent at the next start. Waiting sync writes fail with the usual error.
   */
  async stop(drainTimeoutMs: number): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    // A deposed master's links are stopped already: its history goes nowhere, nothing drains.
    const deadline = this.#nowMs() + (this.#deposed === undefined ? drainTimeoutMs : 0);
    // A replica still in its handshake counts: it connected moments before the stop (a write
    // acknowledged then would otherwise stay behind on this node alone).
    const behind = () =>
      this.#links.filter(({ node, inSession }) =>
        (node.state !== "down" || inSession) && node.ackedLsn < this.#durableLsn
      ).map((link) => link.node);
    while (behind().length > 0 && this.#nowMs() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - this.#nowMs()));
        this.#drainWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const left = behind();
    if (left.length > 0) {
      this.#log.warn(
        "stopping with {count} replicas not fully drained ({detail}); the rest stays in the log " +
          "for the next start",
        {
          count: left.length,
          detail: left.map((r) => `${r.address} at LSN ${r.ackedLsn} of ${this.#durableLsn}`)
            .join(", "),
        },
      );
    }
    await Promise.all(this.#links.map((link) => link.stop()));
    this.#ackWaiters.releaseAll();
    for (const { token, error } of this.#tracker.failAll(this.replicaManager.complete)) {
      token.reject(error);
    }
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
  }
}
