/**
 * The set of replicas of one master and their health, as the spec's `ReplicaManager`:
 * `addReplica`, `getHealthyReplicas`, `markSuccess`, `markFailure`, `getStatus`. Pure: time is
 * passed in (and `getStatus` reads the injected clock).
 *
 * @module
 */
import type { KeyFilter } from "./key_filter.ts";
import type { LagClock } from "./lag_clock.ts";
import {
  type FailureOutcome,
  ReplicaNode,
  type ReplicaPolicy,
  type ReplicaState,
} from "./replica_node.ts";

/** One replica's line in {@link ReplicaStatus}. */
export interface ReplicaNodeStatus {
  address: string;
  host: string;
  port: number;
  healthy: boolean;
  state: ReplicaState;
  consecutiveFailures: number;
  /** ISO time of the last success, or null. */
  lastSuccess: string | null;
  /** ISO time of the last failure, or null. */
  lastFailure: string | null;
  lastError: string;
  ackedLsn: number;
  lagRecords: number;
  lagMs: number;
  /** Records in this replica's in-memory buffer. */
  queuedRecords: number;
  successfulRecords: number;
  failedAttempts: number;
  fullSyncs: number;
  /** The codec its stream is packed with, or why not ("off": this node does not compress). */
  compression: string;
  /** Its key prefixes (selective replication); empty: it receives every key. */
  keyPrefixes: readonly string[];
  /** Log and snapshot bytes sent since start, before and after compression. */
  sentRawBytes: number;
  sentWireBytes: number;
}

/** What {@link ReplicaManager.getStatus} returns (the spec's `get_status()`). */
export interface ReplicaStatus {
  totalReplicas: number;
  healthyReplicas: number;
  replicas: ReplicaNodeStatus[];
}

/** Every replica of this master. */
export class ReplicaManager {
  readonly replicas: ReplicaNode[] = [];
  readonly #policy: ReplicaPolicy;
  readonly #nowMs: () => number;
  readonly #lagClock: LagClock | undefined;

  /** `nowMs`: the clock of {@link getStatus}; `lagClock`: durable times, for lag in ms. */
  constructor(policy: ReplicaPolicy, nowMs: () => number = Date.now, lagClock?: LagClock) {
    this.#policy = policy;
    this.#nowMs = nowMs;
    this.#lagClock = lagClock;
  }

  /** Adds a replica (the same address twice is an error: it would get two senders). */
  addReplica(host: string, port: number, keyFilter?: KeyFilter): ReplicaNode {
    const node = new ReplicaNode(host, port, this.#policy);
    node.keyFilter = keyFilter;
    node.keyFilterGiven = keyFilter !== undefined;
    if (this.replicas.some((r) => r.address === node.address)) {
      throw new Error(`replica ${node.address} is listed twice in REPLICA_ADDRESSES`);
    }
    this.replicas.push(node);
    return node;
  }

  /**
   * The replicas that hold every key: those without a key filter. Only they count for sync-mode
   * acknowledgements, `WAIT` and majorities (a filtered replica does not hold every write).
   */
  get complete(): ReplicaNode[] {
    return this.replicas.filter((r) => r.keyFilter === undefined);
  }

  /** Removes `node` (a replica taken out at runtime). */
  removeReplica(node: ReplicaNode): void {
    const index = this.replicas.indexOf(node);
    if (index !== -1) this.replicas.splice(index, 1);
  }

  /** The replicas currently marked healthy. */
  getHealthyReplicas(): ReplicaNode[] {
    return this.replicas.filter((r) => r.healthy);
  }

  /** Counts a success of `node`; returns true when it became healthy again. */
  markSuccess(node: ReplicaNode, nowMs: number): boolean {
    return node.markSuccess(nowMs);
  }

  /** Counts a failure of `node`. */
  markFailure(node: ReplicaNode, nowMs: number, reason: string): FailureOutcome {
    return node.markFailure(nowMs, reason);
  }

  /** Lowest LSN every replica acknowledged (what the master may forget from memory). */
  minAckedLsn(): number {
    let min = Infinity;
    for (const r of this.replicas) min = Math.min(min, r.ackedLsn);
    return min === Infinity ? 0 : min;
  }

  /** Health, position and lag (records and ms) of every replica, now. */
  getStatus(): ReplicaStatus {
    const nowMs = this.#nowMs();
    const lagClock = this.#lagClock;
    const iso = (ms: number | undefined) => ms === undefined ? null : new Date(ms).toISOString();
    return {
      totalReplicas: this.replicas.length,
      healthyReplicas: this.getHealthyReplicas().length,
      replicas: this.replicas.map((r) => ({
        address: r.address,
        host: r.host,
        port: r.port,
        healthy: r.healthy,
        state: r.state,
        consecutiveFailures: r.consecutiveFailures,
        lastSuccess: iso(r.lastSuccessMs),
        lastFailure: iso(r.lastFailureMs),
        lastError: r.lastError,
        ackedLsn: r.ackedLsn,
        lagRecords: r.lagRecords,
        lagMs: r.lagRecords === 0 || lagClock === undefined
          ? 0
          : Math.round(lagClock.lagMs(r.ackedLsn, nowMs)),
        queuedRecords: r.queue.sizeRecords,
        successfulRecords: r.successfulRecords,
        failedAttempts: r.failedAttempts,
        fullSyncs: r.fullSyncs,
        compression: r.compression,
        keyPrefixes: r.keyFilter?.prefixes ?? [],
        sentRawBytes: r.sentRawBytes,
        sentWireBytes: r.sentWireBytes,
      })),
    };
  }
}
