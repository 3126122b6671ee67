/**
 * Replication plugged into the server: on a replica, the `REPLICATE` command and the replica's
 * `INFO replication`; on a master with replicas, the {@link Replicator} (started with the node,
 * drained on graceful stop), the sync-mode wait after each client write, and the master's
 * `INFO replication`.
 *
 * @module
 */
import type { Reply } from "../protocol/mod.ts";
import type { CommandSpec, InfoFields, ServerHooks, ServerNode } from "../server/hooks.ts";
import { type ApplierReply, ReplicaApplier } from "./replica_applier.ts";
import { masterSourceOf, replicaStoreOf } from "./store_adapters.ts";
import { Replicator } from "./replicator.ts";

function toReply(reply: ApplierReply): Reply {
  return reply.type === "integer" ? { type: "integer", value: reply.value } : reply;
}

function errorReply(error: unknown): Reply {
  return { type: "error", message: error instanceof Error ? error.message : String(error) };
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
  stats.replicas.forEach((r, i) => {
    fields.push([
      `replica${i}`,
      `address=${r.address},state=${r.state},healthy=${r.healthy ? "yes" : "no"},` +
      `acked_lsn=${r.ackedLsn},lag_records=${r.lagRecords},lag_ms=${r.lagMs},` +
      `queued_records=${r.queuedRecords},consecutive_failures=${r.consecutiveFailures},` +
      `full_syncs=${r.fullSyncs},last_success=${r.lastSuccess ?? "never"},` +
      `last_failure=${r.lastFailure ?? "never"}`,
    ]);
    if (r.lastError !== "") fields.push([`replica${i}_last_error`, r.lastError]);
  });
  return fields;
}

const replicators = new WeakMap<ServerNode, Replicator>();

/**
 * The {@link Replicator} of a master node started with {@link replicationExtension} (undefined
 * on a replica or a master without replicas): the spec's programmatic access,
 * `replicatorOf(server.node)?.getStats()` and `.replicaManager.getStatus()`.
 */
export function replicatorOf(node: ServerNode): Replicator | undefined {
  return replicators.get(node);
}

/** The replication extension of a node. */
export function replicationExtension(node: ServerNode): ServerHooks {
  const { config, store } = node;
  if (node.replica) {
    const applier = new ReplicaApplier(replicaStoreOf(store));
    const replicate: CommandSpec = {
      minArgs: 1,
      maxArgs: Infinity,
      replicaOnly: true,
      handler: (args, out, ctx) => {
        const result = applier.handle(args, ctx.connection.id, ctx.connection.peer);
        if (result instanceof Promise) return result.then(toReply, errorReply);
        if (result.type === "integer" && result.durableLsn !== undefined) {
          ctx.wrote(result.durableLsn); // answered with this read's other replies, once durable
        }
        out.reply(toReply(result));
      },
    };
    return {
      commands: { REPLICATE: replicate },
      connectionClosed: (connection) => applier.connectionClosed(connection.id),
      info: {
        replication: () => {
          const info = applier.getInfo();
          return [
            ["master_link_status", info.masterLinkStatus],
            ["master_address", info.masterAddress],
            ["master_last_io_seconds_ago", info.masterLastIoSecondsAgo],
            ["last_applied_lsn", info.lastAppliedLsn],
            ["epoch", info.epoch],
            ["master_epoch", info.masterEpoch],
            ["full_sync_in_progress", info.fullSyncInProgress],
            ["full_syncs", info.fullSyncs],
            ["applied_frames", info.appliedFrames],
          ];
        },
      },
    };
  }
  if (!config.REPLICATION_ENABLED || config.REPLICA_ADDRESSES.length === 0) {
    return { info: { replication: () => masterInfoFields(undefined) } };
  }
  const replicator = new Replicator(masterSourceOf(store), config);
  replicators.set(node, replicator);
  replicator.start();
  return {
    awaitReplication: config.REPLICATION_MODE === "sync"
      ? (lsn) =>
        replicator.waitForReplicas(lsn).then(() => undefined, (error: Error) => error.message)
      : undefined,
    info: { replication: () => masterInfoFields(replicator) },
    close: () => replicator.stop(config.SHUTDOWN_TIMEOUT_SECONDS * 1000),
  };
}
