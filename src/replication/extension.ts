/**
 * Replication plugged into the server. Each job has its own module; this one wires them:
 *
 * - `node_role.ts`: the one owner of the node's role (master/replica, epochs, promotion,
 *   demotion, deposition, `NODE_STATE.json`), the replicator of a master and the applier of a
 *   replica. The server's write gate reads it (`ServerHooks.role`).
 * - `replicate_command.ts`: `REPLICATE` (the master's stream on a replica, epoch fencing,
 *   `DIVERGED`, the spec's local writes).
 * - `role_commands.ts`: `PROMOTE`, `REPLICAOF`/`SLAVEOF`, `REPLICAS`, `ROLE`, `TOPOLOGY`.
 * - `consistency.ts`: `WITH` and `WAIT`.
 * - `stale_reads.ts`: a replica's `-MASTERDOWN` past `REPLICA_MAX_STALENESS_MS`.
 * - `replication_info.ts` and `replication_metrics.ts`: `INFO replication` and the metrics.
 *
 * Failover (the spec's manual procedure, made safe):
 * - `PROMOTE` (or `REPLICAOF NO ONE`) turns a replica into a master in a new epoch (its highest
 *   known epoch + 1, written into the log): it keeps its data and LSN and serves writes at once.
 * - `REPLICAOF host port [EPOCH n]` turns a master into a replica at runtime, or re-points a
 *   replica (fencing every master older than epoch n at once).
 * - `REPLICAS ADD h:p` / `REPLICAS REMOVE h:p` / `REPLICAS` change or list a master's replicas at
 *   runtime (the spec's `add_replica`).
 * - Fencing: a node refuses the stream of a master whose epoch is older than the newest it knows
 *   (`-STALEEPOCH <newerEpoch>`): a replica told of a newer master, and a promoted node itself,
 *   at once, so a returning or still running old master can never overwrite the new one. The
 *   old master, told so (or greeted by a newer master's HELLO), is deposed at once: it refuses
 *   client writes (`-READONLY`), answers writes not yet acknowledged with an error instead of OK
 *   (sync ones waiting for replicas included), stops its links, remembers the newer epoch across
 *   restarts and says loudly that it was deposed.
 * - Local writes (the spec's `REPLICATE PUT|BATCHPUT|DELETE` by hand) are accepted only by a
 *   replica that never followed a master, and the first master to connect replaces them with a
 *   full sync: a replica never differs from its master while looking healthy.
 * - A node whose log diverged (an old master back as a replica) is told by the new master how
 *   many of its records lie past the promotion point (`REPLICATE DIVERGED`); both log the count,
 *   and the full sync then replaces them.
 *
 * @module
 */
import type { Registry } from "../metrics/registry.ts";
import { BUILT_IN_COMMANDS } from "../server/commands.ts";
import type { ServerExtension, ServerHooks, ServerNode } from "../server/hooks.ts";
import { consistencyCommands } from "./consistency.ts";
import { LsnWaiters } from "./lsn_waiters.ts";
import { NodeRole, nodeRoleOf } from "./node_role.ts";
import { ReplicateCommand } from "./replicate_command.ts";
import { replicationInfo } from "./replication_info.ts";
import { registerReplicationMetrics } from "./replication_metrics.ts";
import type { Replicator } from "./replicator.ts";
import { roleCommands } from "./role_commands.ts";
import { StaleReadGate } from "./stale_reads.ts";

export { masterInfoFields, masterListeningAddress, writeGuarantee } from "./replication_info.ts";

/** Client write commands: refused by a master that learned it was deposed. */
const WRITE_COMMANDS: ReadonlySet<string> = new Set(
  [...BUILT_IN_COMMANDS].filter(([, spec]) => spec.write).map(([name]) => name),
);

/**
 * The {@link Replicator} of a master node started with {@link replicationExtension} (undefined
 * on a replica or a master without replicas): the spec's programmatic access,
 * `replicatorOf(server.node)?.getStats()` and `.replicaManager.getStatus()`.
 */
export function replicatorOf(node: ServerNode): Replicator | undefined {
  return nodeRoleOf(node)?.replicator;
}

/** How a node replicates, besides its settings. */
export interface ReplicationOptions {
  /** The replication token a master proves to its replicas (`CHALLENGE`/`PROVE`, before `HELLO`). */
  authToken?: string;
  /** Opens a master's connection to a replica (default TCP; TLS with `REPLICATION_TLS_CA`). */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** Registry for the replication metrics (lag per replica, buffers, link state). */
  registry?: Registry;
}

/**
 * What the role refuses before a command runs: writes while a coordinator's fence holds them, a
 * replica's reads past its staleness bound, writes to a deposed master (all `-READONLY`, which
 * clients retry elsewhere, or `-MASTERDOWN` for a stale read).
 */
function roleGate(
  node: ServerNode,
  role: NodeRole,
  staleReads: StaleReadGate,
): NonNullable<ServerHooks["authorize"]> {
  return (name, _connection, spec) => {
    const fence = role.writeFence;
    if (fence !== undefined && WRITE_COMMANDS.has(name)) {
      return { type: "error", code: "READONLY", message: `writes paused: ${fence}` };
    }
    if (role.replica) {
      if (staleReads.maxStalenessMs === 0) return undefined;
      return staleReads.refusal(name, spec, role.follower.link(node.store.lastLsn));
    }
    const deposed = role.deposed;
    if (deposed === undefined || !WRITE_COMMANDS.has(name)) return undefined;
    return {
      type: "error",
      code: "READONLY",
      message: `this node was deposed (${deposed}); send writes to the new master`,
    };
  };
}

/** The hooks of a node whose role is `role`. */
function replicationHooks(node: ServerNode, role: NodeRole, registry?: Registry): ServerHooks {
  const replicate = new ReplicateCommand(role);
  const store = node.store;
  const lsnWaiters = new LsnWaiters({
    get lastLsn() {
      return store.lastLsn;
    },
    onDurable: (listener) => store.replicationLog.onDurable(listener),
  });
  const staleReads = new StaleReadGate(node.config.REPLICA_MAX_STALENESS_MS);
  if (registry !== undefined) {
    registerReplicationMetrics(registry, role, {
      discardedRecords: () => replicate.discardedRecords,
      staleReadsRefused: () => staleReads.refused,
    });
  }
  return {
    role,
    // A node without replication answers REPLICATE with an error; this one serves it.
    replaces: { REPLICATE: replicate.spec },
    commands: {
      ...roleCommands(node, role),
      ...consistencyCommands({ node, role, lsnWaiters }),
    },
    awaitReplication: (lsn) => {
      const replicator = role.replicator;
      if (replicator === undefined || replicator.mode !== "sync") return undefined;
      return replicator.waitForReplicas(lsn).then(
        () => undefined,
        (error: Error) => error.message,
      );
    },
    authorize: roleGate(node, role, staleReads),
    connectionClosed: (connection) => replicate.connectionClosed(connection),
    peerClosed: (connection) => {
      // Nobody reads the answers of its waits (WAIT 5 0, a day-long write concern, MINLSN).
      role.replicator?.releaseAcks(connection);
      lsnWaiters.release(connection);
    },
    info: {
      replication: () => [
        ...replicationInfo(role, node.config, {
          discardedRecords: replicate.discardedRecords,
          minLsnReadsWaiting: lsnWaiters.size,
          staleReadsRefused: staleReads.refused,
        }),
        ...role.coordinatorInfo(),
      ],
    },
    close: async () => {
      lsnWaiters.releaseAll();
      await role.close();
    },
  };
}

/** The replication extension of a node, with `options` (token, TLS, metrics). */
export function replicationExtensionWith(options: ReplicationOptions): ServerExtension {
  return async (node) => {
    const role = await NodeRole.open(node, {
      authToken: options.authToken,
      connect: options.connect,
    });
    return replicationHooks(node, role, options.registry);
  };
}

/** The replication extension of a node, without token, TLS or metrics. */
export async function replicationExtension(node: ServerNode): Promise<ServerHooks> {
  return replicationHooks(node, await NodeRole.open(node));
}
