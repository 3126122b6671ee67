/**
 * The replication metrics in the node's registry: per replica (on a master) lag in records and
 * seconds, acknowledged LSN, buffer, health, link state, full syncs and failures; sync writes
 * waiting; on a replica its master link and the time since it heard from it; records discarded
 * by divergence. Every gauge reads the {@link NodeRole} at scrape time, so a role change shows at
 * the next scrape.
 *
 * @module
 */
import { Gauge, type Registry } from "../metrics/registry.ts";
import type { NodeRole } from "./node_role.ts";
import type { ReplicaNodeStatus } from "./replica_manager.ts";

/** The per-replica series of a master: name, help, value, type. */
const PER_REPLICA: [string, string, (r: ReplicaNodeStatus) => number, "gauge" | "counter"][] = [
  [
    "kvstore_replication_lag_records",
    "Records durable here, not yet on the replica.",
    (r) => r.lagRecords,
    "gauge",
  ],
  [
    "kvstore_replication_lag_seconds",
    "Age of the oldest record the replica has not acknowledged.",
    (r) => r.lagMs / 1000,
    "gauge",
  ],
  [
    "kvstore_replication_acked_lsn",
    "Last LSN the replica acknowledged.",
    (r) => r.ackedLsn,
    "gauge",
  ],
  [
    "kvstore_replication_queued_records",
    "Records in the replica's in-memory buffer (REPLICATION_QUEUE_SIZE bounds it).",
    (r) => r.queuedRecords,
    "gauge",
  ],
  [
    "kvstore_replication_healthy",
    "1 while the replica is healthy.",
    (r) => r.healthy ? 1 : 0,
    "gauge",
  ],
  [
    "kvstore_replication_streaming",
    "1 while the replica's link streams (0: down, catching up or full sync).",
    (r) => r.state === "streaming" ? 1 : 0,
    "gauge",
  ],
  [
    "kvstore_replication_full_syncs_total",
    "Full syncs sent to the replica.",
    (r) => r.fullSyncs,
    "counter",
  ],
  [
    "kvstore_replication_filtered",
    "1 when the replica has a key filter (it holds only some keys; never counted for sync acks).",
    (r) => r.keyPrefixes.length > 0 ? 1 : 0,
    "gauge",
  ],
  [
    "kvstore_replication_sent_bytes_total",
    "Log and snapshot bytes sent to the replica, before compression.",
    (r) => r.sentRawBytes,
    "counter",
  ],
  [
    "kvstore_replication_wire_bytes_total",
    "Log and snapshot bytes sent to the replica as they left (compressed or not).",
    (r) => r.sentWireBytes,
    "counter",
  ],
  [
    "kvstore_replication_failures_total",
    "Failed attempts (connect, send, reply timeout, error reply).",
    (r) => r.failedAttempts,
    "counter",
  ],
];

/** What the node-wide series read: the role, and the records discarded by divergence. */
/** Counts the replication extension keeps beside the role. */
export interface ReplicationCounters {
  /** Records this node discarded because its log diverged from its master's. */
  discardedRecords: () => number;
  /** Reads refused past `REPLICA_MAX_STALENESS_MS`. */
  staleReadsRefused: () => number;
}

interface NodeSources extends ReplicationCounters {
  role: NodeRole;
}

/** The node-wide series: name, help, value (undefined: no sample on this node), type. */
const PER_NODE: [
  string,
  string,
  (node: NodeSources) => number | undefined,
  "gauge" | "counter",
][] = [
  [
    "kvstore_replication_sync_writes_waiting",
    "Sync-mode writes waiting for acknowledgements.",
    ({ role }) => role.replicator?.getStats().syncWaiting ?? 0,
    "gauge",
  ],
  [
    "kvstore_replica_link_up",
    "On a replica: 1 while its master's stream is up.",
    ({ role }) =>
      role.applier === undefined
        ? undefined
        : role.applier.getInfo().masterLinkStatus === "up"
        ? 1
        : 0,
    "gauge",
  ],
  [
    "kvstore_replica_master_last_io_seconds",
    "On a replica: seconds since its master was last heard from (-1: never).",
    ({ role }) => role.applier?.getInfo().masterLastIoSecondsAgo,
    "gauge",
  ],
  [
    "kvstore_replica_filtered",
    "On a replica: 1 when it holds only the keys of a key filter (it cannot be promoted).",
    ({ role }) => role.replica ? (role.state.keyFilter?.length ? 1 : 0) : undefined,
    "gauge",
  ],
  [
    "kvstore_replica_chain_depth",
    "On a replica: hops from the master (1: it streams from the master; 2: from a replica of it).",
    ({ role }) => role.applier?.getInfo().chainDepth,
    "gauge",
  ],
  [
    "kvstore_replica_lag_records",
    "On a replica: records of the node it streams from not applied here (this hop).",
    ({ role }) => role.applier?.getInfo().masterLagRecords,
    "gauge",
  ],
  [
    "kvstore_replica_lag_seconds",
    "On a replica: how long it has lagged the node it streams from (this hop).",
    ({ role }) => {
      const info = role.applier?.getInfo();
      return info === undefined ? undefined : info.masterLagMs / 1000;
    },
    "gauge",
  ],
  [
    "kvstore_replica_origin_lag_records",
    "On a replica: records of the master at the chain's head not applied here (end to end).",
    ({ role }) => role.applier?.getInfo().originLagRecords,
    "gauge",
  ],
  [
    "kvstore_replica_origin_lag_seconds",
    "On a replica: how long it has lagged the master at the chain's head (end to end).",
    ({ role }) => {
      const info = role.applier?.getInfo();
      return info === undefined ? undefined : info.originLagMs / 1000;
    },
    "gauge",
  ],
  [
    "kvstore_replica_staleness_seconds",
    "On a replica: how old its data may be (its lag while its master link is up, the time " +
    "since it was up while down; -1 before any master was heard from).",
    ({ role }) => {
      const info = role.applier?.getInfo();
      if (info === undefined) return undefined;
      return Number.isFinite(info.stalenessMs) ? info.stalenessMs / 1000 : -1;
    },
    "gauge",
  ],
  [
    "kvstore_replica_stale_reads_refused_total",
    "On a replica: reads refused with MASTERDOWN past REPLICA_MAX_STALENESS_MS.",
    ({ role, staleReadsRefused }) => role.replica ? staleReadsRefused() : undefined,
    "counter",
  ],
  [
    "kvstore_replication_discarded_records_total",
    "Records this node discarded because its log diverged from its master's.",
    ({ discardedRecords }) => discardedRecords(),
    "counter",
  ],
];

/** Registers the replication metrics of `role` in `registry`. */
export function registerReplicationMetrics(
  registry: Registry,
  role: NodeRole,
  counters: ReplicationCounters,
): void {
  // A master's replicas, or a replica's own (cascading: this hop's lag, as this node sees it).
  const replicas = () => role.downstream?.getStats().replicas ?? [];
  for (const [name, help, value, type] of PER_REPLICA) {
    registry.add(
      new Gauge(
        name,
        help,
        ["replica"],
        () => replicas().map((r) => ({ labels: [r.address], value: value(r) })),
        type,
      ),
    );
  }
  const node: NodeSources = { role, ...counters };
  for (const [name, help, value, type] of PER_NODE) {
    registry.add(
      new Gauge(name, help, [], () => {
        const v = value(node);
        return v === undefined ? [] : [{ value: v }];
      }, type),
    );
  }
}
