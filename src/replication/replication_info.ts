/**
 * `INFO replication`: what a master says about its replicas (each one's state, acknowledged LSN,
 * lag, failures) and the guarantee its writes get; what a replica says about its master's link.
 * Pure shaping of what the {@link NodeRole} and its replicator or applier report.
 *
 * @module
 */
import { type Config, formatHostPort, type HostPort, parseHostPort } from "../config.ts";
import type {
  InfoFields,
  MasterLinkStatus,
  ReplicaLinkStatus,
  ReplicationStatus,
} from "../server/hooks.ts";
import type { NodeRole } from "./node_role.ts";
import type { ReplicaApplier } from "./replica_applier.ts";
import type { Replicator, ReplicatorStats } from "./replicator.ts";

/**
 * The master's listening address as a replica reports it: what the master announced in HELLO;
 * a wildcard host (a master listening on 0.0.0.0 or ::) is replaced by the host its stream came
 * from. Undefined before any master connected.
 */
export function masterListeningAddress(
  announced: string,
  streamPeer: string,
): HostPort | undefined {
  if (announced === "") return undefined;
  let address: HostPort;
  try {
    address = parseHostPort(announced);
  } catch {
    return undefined;
  }
  if (address.host === "0.0.0.0" || address.host === "::") {
    try {
      address = { host: parseHostPort(streamPeer).host, port: address.port };
    } catch {
      // No usable peer address: keep the wildcard, which still names the port.
    }
  }
  return address;
}

/** `INFO replication` fields of a master. */
export function masterInfoFields(replicator: Replicator | undefined): InfoFields {
  if (replicator === undefined) {
    return [["replication_enabled", false], ["total_replicas", 0], ["healthy_replicas", 0]];
  }
  const stats = replicator.getStats();
  const fields: InfoFields = [
    ["replication_enabled", true],
    ["replication_mode", stats.mode],
    ["master_lsn", stats.masterLsn],
    ["total_replicas", stats.totalReplicas],
    ["healthy_replicas", stats.healthyReplicas],
    ["successful_replications", stats.successfulReplications],
    ["failed_replications", stats.failedReplications],
    ["queue_size", stats.queueSize],
    ["sync_writes_waiting", stats.syncWaiting],
  ];
  fields.push(...replicaLines(stats.replicas));
  return fields;
}

/** One `replicaN:` line per replica (and `replicaN_last_error` when its last attempt failed). */
function replicaLines(replicas: ReplicatorStats["replicas"]): InfoFields {
  const fields: InfoFields = [];
  replicas.forEach((r, i) => {
    fields.push([
      `replica${i}`,
      `address=${r.address},state=${r.state},healthy=${r.healthy ? "yes" : "no"},` +
      `acked_lsn=${r.ackedLsn},lag_records=${r.lagRecords},lag_ms=${r.lagMs},` +
      `queued_records=${r.queuedRecords},consecutive_failures=${r.consecutiveFailures},` +
      `full_syncs=${r.fullSyncs},last_success=${r.lastSuccess ?? "never"},` +
      `last_failure=${r.lastFailure ?? "never"},compression=${
        r.compression.replaceAll(" ", "_")
      },` +
      `sent_bytes=${r.sentRawBytes},wire_bytes=${r.sentWireBytes},` +
      `filtered=${r.keyPrefixes.length > 0 ? "yes" : "no"}`,
    ]);
    if (r.keyPrefixes.length > 0) {
      fields.push([`replica${i}_key_filter`, `[${r.keyPrefixes.join(",")}]`]);
    }
    if (r.lastError !== "") fields.push([`replica${i}_last_error`, r.lastError]);
  });
  return fields;
}

/**
 * A replica's own replicas (cascading): how many, and one `replicaN:` line each, with this hop's
 * lag as this node sees it.
 */
function forwardedInfo(forwarder: Replicator | undefined): InfoFields {
  if (forwarder === undefined) return [["total_replicas", 0]];
  const stats = forwarder.getStats();
  return [
    ["total_replicas", stats.totalReplicas],
    ["healthy_replicas", stats.healthyReplicas],
    ["forwarded_lsn", stats.masterLsn],
    ...replicaLines(stats.replicas),
  ];
}

/**
 * What a write is acknowledged after, in words, for `INFO replication` (`write_guarantee`):
 * the durability point of the fsync policy and, in sync mode, the replicas.
 */
export function writeGuarantee(config: Config, replicas: number, healthyReplicas: number): string {
  const local = config.FSYNC === "always"
    ? "on disk here (fsync always)"
    : config.FSYNC === "everysec"
    ? "written here (fsync everysec: up to 1 s of writes can be lost if the machine fails)"
    : "written here (fsync no: the OS decides when it reaches disk)";
  if (config.REPLICATION_MODE === "async") {
    return `async: OK once ${local}; replicas get it after the OK`;
  }
  const required = config.SYNC_REPLICAS;
  if (required === 0) {
    return `sync: OK once ${local} and on every healthy replica (${healthyReplicas} of ` +
      `${replicas} healthy; with none healthy, on this node alone)`;
  }
  const shortfall = replicas < required
    ? `; only ${replicas} listed: writes fail until REPLICAS ADD lists ${required}`
    : "";
  return `sync: OK once ${local} and on ${required} of ${replicas} replicas${shortfall}`;
}

/** Counts the replication extension keeps beside the role. */
export interface ReplicationCounts {
  /** Records this node discarded because its log diverged from its master's. */
  discardedRecords: number;
  /** Reads waiting for this node's log to reach their LSN (`WITH MINLSN`). */
  minLsnReadsWaiting: number;
  /** Reads a replica refused past `REPLICA_MAX_STALENESS_MS`. */
  staleReadsRefused: number;
}

function replicaInfo(role: NodeRole, config: Config, counts: ReplicationCounts): InfoFields {
  const applier = role.applier;
  if (applier === undefined) return [];
  const info = applier.getInfo();
  const master = masterListeningAddress(info.masterAdvertisedAddress, info.masterAddress);
  return [
    // Where clients reach the master (what it announced in HELLO), as Redis's master_host and
    // master_port; the stream's own peer address is its outgoing port.
    ["master_host", master?.host ?? ""],
    ["master_port", master?.port ?? 0],
    ["master_address", master === undefined ? "" : formatHostPort(master)],
    ["master_stream_peer", info.masterAddress],
    ["master_link_status", info.masterLinkStatus],
    ["master_last_io_seconds_ago", info.masterLastIoSecondsAgo],
    ["master_last_lsn", info.masterKnownLsn],
    ["master_lag_records", info.masterLagRecords],
    ["master_lag_ms", info.masterLagMs],
    // How old this replica's data may be (-1: no master heard from yet), the bound past which it
    // refuses reads (0: none), and the reads it refused.
    ["staleness_ms", Number.isFinite(info.stalenessMs) ? info.stalenessMs : -1],
    ["max_staleness_ms", config.REPLICA_MAX_STALENESS_MS],
    ["stale_reads_refused", counts.staleReadsRefused],
    ["last_applied_lsn", info.lastAppliedLsn],
    // Cascading: how deep in the chain, and the lag behind the master at its head (the
    // master_* fields above are the node this replica streams from: one hop).
    ["chain_depth", info.chainDepth],
    ["origin_address", info.originAddress],
    ["origin_last_lsn", info.originKnownLsn],
    ["origin_lag_records", info.originLagRecords],
    ["origin_lag_ms", info.originLagMs],
    ["epoch", info.epoch],
    ["master_epoch", info.masterEpoch],
    ["full_sync_in_progress", info.fullSyncInProgress],
    ["full_syncs", info.fullSyncs],
    ["applied_frames", info.appliedFrames],
    ["discarded_records", counts.discardedRecords],
    ["min_lsn_reads_waiting", counts.minLsnReadsWaiting],
    ["local_writes", role.state.localWrites ?? 0],
    // Selective replication: the keys this replica holds (a filtered one cannot be promoted).
    ["key_filter", role.state.keyFilter?.length ? `[${role.state.keyFilter.join(",")}]` : ""],
    ["read_guarantee", "what this replica applied (it may lag its master)"],
    // The settings it takes when promoted: a replica accepts --replication-mode and
    // --sync-replicas for that moment.
    ["replication_mode", config.REPLICATION_MODE],
    ["sync_replicas", config.SYNC_REPLICAS],
    ["write_guarantee_when_promoted", writeGuarantee(config, 0, 0)],
    ...(role.followedMaster === "" ? [] : [["replica_of", role.followedMaster]] as InfoFields),
    ...forwardedInfo(role.forwarder),
  ];
}

/** The fields of `INFO replication` after the server's `role` line. */
export function replicationInfo(
  role: NodeRole,
  config: Config,
  counts: ReplicationCounts,
): InfoFields {
  if (role.replica) return replicaInfo(role, config, counts);
  const replicator = role.replicator;
  const fields = masterInfoFields(replicator);
  const stats = replicator?.getStats();
  fields.push(["epoch", role.ownEpoch]);
  fields.push(["sync_replicas", config.SYNC_REPLICAS]);
  fields.push(["acks_waiting", replicator?.ackWaits ?? 0]);
  fields.push(["min_lsn_reads_waiting", counts.minLsnReadsWaiting]);
  const deposed = role.deposed;
  if (deposed !== undefined) {
    fields.push(["deposed", deposed]);
    fields.push(["write_guarantee", "none: deposed, this node refuses writes"]);
  } else {
    fields.push([
      "write_guarantee",
      writeGuarantee(config, stats?.totalReplicas ?? 0, stats?.healthyReplicas ?? 0),
    ]);
  }
  fields.push([
    "read_guarantee",
    "committed writes only (a read of a key whose newest write is not committed waits for it)",
  ]);
  return fields;
}

/**
 * The links of a node as data (`ServerNode.replication()`): a replica's master (from its
 * `applier`), or a master's replicas (from its `replicator`): the facts `INFO replication`
 * prints.
 */
export function replicationStatus(
  replica: boolean,
  applier: ReplicaApplier | undefined,
  replicator: Replicator | undefined,
  keyFilter: readonly string[] = [],
): ReplicationStatus {
  if (replica) {
    if (applier === undefined) return { replicas: [] };
    const info = applier.getInfo();
    const listening = masterListeningAddress(info.masterAdvertisedAddress, info.masterAddress);
    const master: MasterLinkStatus = {
      address: listening === undefined ? "" : formatHostPort(listening),
      linkStatus: info.masterLinkStatus,
      lastAppliedLsn: info.lastAppliedLsn,
      lagRecords: info.masterLagRecords,
      lagMs: info.masterLagMs,
      fullSyncInProgress: info.fullSyncInProgress,
    };
    if (info.masterLastIoSecondsAgo >= 0) master.lastContactSeconds = info.masterLastIoSecondsAgo;
    if (keyFilter.length > 0) master.keyFilter = [...keyFilter];
    return { master, replicas: linkStatuses(replicator) };
  }
  return { replicas: linkStatuses(replicator) };
}

function linkStatuses(replicator: Replicator | undefined): ReplicaLinkStatus[] {
  const replicas = replicator?.getStats().replicas ?? [];
  return replicas.map((r) => ({
    address: r.address,
    state: r.state,
    healthy: r.healthy,
    ackedLsn: r.ackedLsn,
    lagRecords: r.lagRecords,
    lagMs: r.lagMs,
    queuedRecords: r.queuedRecords,
    fullSyncs: r.fullSyncs,
    ...(r.keyPrefixes.length === 0 ? {} : { keyFilter: [...r.keyPrefixes] }),
    ...(r.lastError === "" ? {} : { lastError: r.lastError }),
  }));
}
