/**
 * Replication plugged into the server: on a replica, the `REPLICATE` command and the replica's
 * `INFO replication`; on a master with replicas, the {@link Replicator} (started with the node,
 * drained on graceful stop), the sync-mode wait after each client write, and the master's
 * `INFO replication`.
 *
 * Failover (the spec's manual procedure, made safe):
 * - `PROMOTE` turns a replica into a master in a new epoch (its highest known epoch + 1, written
 *   into the log): it keeps its data and LSN and serves writes at once.
 * - `REPLICAS ADD h:p` / `REPLICAS REMOVE h:p` / `REPLICAS` change or list a master's replicas at
 *   runtime (the spec's `add_replica`).
 * - Fencing: a replica refuses `REPLICATE HELLO` from an epoch older than the newest it knows
 *   (`-STALEEPOCH`), so a returning old master can never overwrite the new one; the old master,
 *   told so, refuses client writes (`-READONLY`) and says loudly that it was deposed.
 * - A node whose log diverged (an old master restarted with `--replica`) is told by the new
 *   master how many of its records lie past the promotion point (`REPLICATE DIVERGED`); both log
 *   the count, and the full sync then replaces them.
 *
 * @module
 */
import { getLog } from "../log.ts";
import { Gauge, type Registry } from "../metrics/registry.ts";
import type { Reply } from "../protocol/mod.ts";
import { BUILT_IN_COMMANDS } from "../server/commands.ts";
import {
  CommandError,
  type CommandSpec,
  type InfoFields,
  type ServerExtension,
  type ServerHooks,
  type ServerNode,
} from "../server/hooks.ts";
import { formatHostPort, parseAddresses } from "../config.ts";
import { type NodeState, NodeStateError, readNodeState, writeNodeState } from "./node_state.ts";
import { type ApplierReply, ReplicaApplier, upper } from "./replica_applier.ts";
import type { ReplicationSource } from "./replica_link.ts";
import { masterSourceOf, replicaStoreOf } from "./store_adapters.ts";
import { Replicator, type ReplicatorOptions } from "./replicator.ts";

const log = getLog("replication");
const decoder = new TextDecoder();

/** Client write commands: refused by a master that learned it was deposed. */
const WRITE_COMMANDS: ReadonlySet<string> = new Set(
  [...BUILT_IN_COMMANDS].filter(([, spec]) => spec.write).map(([name]) => name),
);

function toReply(reply: ApplierReply): Reply {
  return reply.type === "integer" ? { type: "integer", value: reply.value } : reply;
}

function errorReply(error: unknown): Reply {
  if (error instanceof CommandError) {
    return { type: "error", message: error.message, code: error.code };
  }
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

/** How a node replicates, besides its settings. */
export interface ReplicationOptions {
  /** The replication token a master presents to its replicas (with `AUTH`, before `HELLO`). */
  authToken?: string;
  /** Opens a master's connection to a replica (default TCP; TLS with `REPLICATION_TLS_CA`). */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** Registry for the replication metrics (lag per replica, buffers, link state). */
  registry?: Registry;
}

/** The replication state of one node, which may change role once (PROMOTE). */
class NodeReplication {
  readonly #node: ServerNode;
  readonly #options: ReplicationOptions;
  #applier: ReplicaApplier | undefined;
  #replicator: Replicator | undefined;
  /** Highest epoch a master announced to this replica (its log holds it once records come). */
  #announcedEpoch = 0;
  #promoting = false;
  /** Why this master refuses writes: a replica follows a newer master. */
  #deposedBy: string | undefined;
  /** Records this node discarded because its log diverged from its master's. */
  #discardedRecords = 0;

  /** What this node remembers across restarts (see `node_state.ts`). */
  #state: NodeState;

  constructor(node: ServerNode, options: ReplicationOptions, state: NodeState) {
    this.#node = node;
    this.#options = options;
    this.#state = state;
    this.#announcedEpoch = state.highestEpochSeen;
    const { config, store } = node;
    if (node.replica) {
      this.#applier = new ReplicaApplier(replicaStoreOf(store));
    } else if (config.REPLICATION_ENABLED && config.REPLICA_ADDRESSES.length > 0) {
      this.#replicator = this.#newReplicator(masterSourceOf(store), config.REPLICA_ADDRESSES);
      replicators.set(node, this.#replicator);
      this.#replicator.start();
    }
    if (options.registry !== undefined) this.#registerMetrics(options.registry);
  }

  #newReplicator(
    source: ReplicationSource,
    addresses: { host: string; port: number }[],
  ): Replicator {
    const config = { ...this.#node.config, REPLICA_ADDRESSES: addresses };
    const options: ReplicatorOptions = {
      connect: this.#options.connect,
      authToken: this.#options.authToken,
      onRefused: (address, code, message) => this.#refused(address, code, message),
    };
    return new Replicator(source, config, Date.now, options);
  }

  /** The highest epoch this node knows of. */
  get #knownEpoch(): number {
    const store = this.#node.store;
    return Math.max(store.epoch, store.lastEpoch, this.#announcedEpoch);
  }

  #refused(address: string, code: string, message: string): void {
    if (code !== "STALEEPOCH" || this.#deposedBy !== undefined) return;
    this.#deposedBy = `replica ${address} follows a newer master: ${message}`;
    log.error(
      "DEPOSED: replica {replica} refuses this master's epoch {epoch}: {message}. Another node " +
        "was promoted; this node now refuses client writes. Stop it, or restart it with " +
        "--replica and add it to the new master (REPLICAS ADD)",
      { event: "deposed", replica: address, epoch: this.#node.store.epoch, message },
    );
  }

  /** `REPLICATE` on a replica: epoch fencing and divergence reports, then the applier. */
  #replicate: CommandSpec = {
    minArgs: 1,
    maxArgs: Infinity,
    replicaOnly: true,
    handler: (args, out, ctx) => {
      const applier = this.#applier;
      if (applier === undefined || this.#promoting) {
        throw new CommandError("this node is being promoted to master: REPLICATE refused");
      }
      const sub = upper(args[0]);
      if (sub === "HELLO" && args.length >= 2) {
        const epoch = Number(decoder.decode(args[1]));
        const known = this.#knownEpoch;
        if (Number.isInteger(epoch) && epoch < known) {
          log.warn(
            "refused a master stream from {master} in epoch {epoch}: this replica follows " +
              "epoch {known}",
            { event: "stale_epoch", master: ctx.connection.peer, epoch, known },
          );
          throw new CommandError(
            `stale epoch ${epoch}: this replica follows epoch ${known} (a newer master was ` +
              `promoted)`,
            "STALEEPOCH",
          );
        }
        if (Number.isInteger(epoch)) this.#announcedEpoch = Math.max(this.#announcedEpoch, epoch);
        if (Number.isInteger(epoch) && epoch > this.#state.highestEpochSeen) {
          // Durable before the master hears OK: a restart must not forget this epoch. The args
          // are views of the connection's buffer, which is reused once this handler returns.
          const kept = args.map((arg) => arg.slice());
          return this.#rememberEpoch({ ...this.#state, highestEpochSeen: epoch }).then(() => {
            const result = applier.handle(kept, ctx.connection.id, ctx.connection.peer);
            return result instanceof Promise ? result.then(toReply, errorReply) : toReply(result);
          }, errorReply);
        }
      }
      if (sub === "DIVERGED") {
        this.#diverged(args, ctx.connection.peer);
        out.ok();
        return;
      }
      const result = applier.handle(args, ctx.connection.id, ctx.connection.peer);
      if (result instanceof Promise) return result.then(toReply, errorReply);
      if (result.type !== "integer") {
        out.reply(toReply(result));
        return;
      }
      // Every LOG frame comes here: the integer is written without a reply object.
      if (result.durableLsn !== undefined) {
        ctx.wrote(result.durableLsn); // answered with this read's other replies, once durable
      }
      out.integer(result.value);
    },
  };

  /** `REPLICATE DIVERGED <commonLsn> <masterEpoch>`: the master says where the logs part. */
  #diverged(args: Uint8Array[], peer: string): void {
    if (args.length !== 3) throw new CommandError("REPLICATE DIVERGED requires lsn and epoch");
    const commonLsn = Number(decoder.decode(args[1]));
    const masterEpoch = Number(decoder.decode(args[2]));
    const store = this.#node.store;
    const records = Math.max(0, store.lastLsn - commonLsn);
    this.#discardedRecords += records;
    log.warn(
      "this node's log diverged from master {master}'s after LSN {commonLsn}: its {records} " +
        "records past that point (LSN {first}..{last}, epoch {epoch}) are not in the master's " +
        "history (epoch {masterEpoch}) and are discarded; a full sync replaces them",
      {
        event: "diverged",
        master: peer,
        commonLsn,
        records,
        first: commonLsn + 1,
        last: store.lastLsn,
        epoch: store.lastEpoch,
        masterEpoch,
      },
    );
  }

  /** Replaces the node state, durably, and keeps it. */
  async #rememberEpoch(state: NodeState): Promise<void> {
    await writeNodeState(this.#node.store.dir, state);
    this.#state = state;
  }

  async #promote(peer: string): Promise<Reply> {
    const node = this.#node;
    const store = node.store;
    const applier = this.#applier;
    if (!node.replica || applier === undefined) {
      throw new CommandError(`this node is already a master (epoch ${store.epoch})`);
    }
    if (this.#promoting) throw new CommandError("a PROMOTE is already running");
    if (applier.getInfo().fullSyncInProgress) {
      throw new CommandError(
        "a full sync from the master is in progress: this replica's data is incomplete; " +
          "promote another replica, or wait for the sync to finish",
      );
    }
    this.#promoting = true;
    try {
      // No REPLICATE is accepted from here on: once what was appended is durable, the log ends.
      await store.whenDurable(store.lastLsn);
      const epoch = this.#knownEpoch + 1;
      const fromLsn = store.lastLsn;
      const replicator = this.#newReplicator(masterSourceOf(store, "durable"), []);
      // No await from promote() to start(): the replicator must see every record after the
      // marker from the in-memory stream.
      const markerLsn = store.promote(epoch);
      this.#replicator = replicator;
      replicators.set(node, replicator);
      this.#applier = undefined;
      replicator.start();
      // Client writes stay refused until the promotion is on disk, so a restart with the old
      // settings can never silently turn a master that took writes into a replica.
      await this.#rememberEpoch({
        highestEpochSeen: epoch,
        promotedEpoch: epoch,
        promotedAt: new Date().toISOString(),
      });
      node.replica = false;
      await store.whenDurable(markerLsn);
      log.warn(
        "PROMOTED to master by {peer}: epoch {epoch}, data up to LSN {lsn} kept; serving writes. " +
          "Add replicas with REPLICAS ADD host:port, and make it permanent in this node's " +
          "settings (no --replica; --replicas for its replicas): until then it refuses to " +
          "restart as a replica",
        { event: "promoted", peer, epoch, lsn: fromLsn, markerLsn },
      );
      return { type: "status", text: `PROMOTED epoch ${epoch} lsn ${fromLsn}` };
    } finally {
      this.#promoting = false;
    }
  }

  async #replicas(args: Uint8Array[]): Promise<Reply> {
    const sub = args.length === 0 ? "LIST" : decoder.decode(args[0]).toUpperCase();
    if (sub === "LIST" && args.length <= 1) {
      const addresses = this.#replicator?.replicaManager.replicas.map((r) => r.address) ?? [];
      return {
        type: "array",
        items: addresses.map((a) => ({ type: "value", value: new TextEncoder().encode(a) })),
      };
    }
    if ((sub !== "ADD" && sub !== "REMOVE") || args.length !== 2) {
      throw new CommandError(
        "usage: REPLICAS [LIST] | REPLICAS ADD host:port | REPLICAS REMOVE host:port",
      );
    }
    if (this.#node.replica) {
      throw new CommandError("a replica has no replicas of its own: PROMOTE it first");
    }
    let addresses;
    try {
      addresses = parseAddresses(decoder.decode(args[1]), "replica address");
    } catch (error) {
      throw new CommandError(error instanceof Error ? error.message : String(error));
    }
    if (addresses.length === 0) throw new CommandError(`REPLICAS ${sub} needs host:port`);
    const listed = () =>
      new Set(this.#replicator?.replicaManager.replicas.map((r) => r.address) ?? []);
    if (sub === "ADD") {
      for (const address of addresses) {
        const text = formatHostPort(address);
        if (listed().has(text)) throw new CommandError(`replica ${text} is already listed`);
        if (address.host === this.#node.host && address.port === this.#node.port) {
          throw new CommandError(`${text} is this node itself`);
        }
      }
      for (const address of addresses) {
        if (this.#replicator === undefined) {
          this.#replicator = this.#newReplicator(masterSourceOf(this.#node.store, "durable"), [
            address,
          ]);
          replicators.set(this.#node, this.#replicator);
          this.#replicator.start();
          log.info("replica {replica} added", { replica: formatHostPort(address) });
        } else {
          this.#replicator.addReplica(address.host, address.port);
        }
      }
      return { type: "ok" };
    }
    const replicator = this.#replicator;
    const remaining = (replicator?.replicaManager.replicas.length ?? 0) - addresses.length;
    const { config } = this.#node;
    if (config.REPLICATION_MODE === "sync" && remaining < config.SYNC_REPLICAS) {
      throw new CommandError(
        `removing would leave ${remaining} replicas, fewer than SYNC_REPLICAS ${config.SYNC_REPLICAS}`,
      );
    }
    for (const address of addresses) {
      const text = formatHostPort(address);
      if (replicator === undefined || !listed().has(text)) {
        throw new CommandError(
          `no replica ${text} (replicas: ${[...listed()].join(", ") || "none"})`,
        );
      }
    }
    for (const address of addresses) await replicator?.removeReplica(formatHostPort(address));
    return { type: "ok" };
  }

  #replicaInfo(): InfoFields {
    const applier = this.#applier;
    if (applier === undefined) return [];
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
      ["discarded_records", this.#discardedRecords],
    ];
  }

  #info(): InfoFields {
    if (this.#node.replica) return this.#replicaInfo();
    const fields = masterInfoFields(this.#replicator);
    fields.push(["epoch", this.#node.store.epoch]);
    if (this.#deposedBy !== undefined) fields.push(["deposed", this.#deposedBy]);
    return fields;
  }

  #registerMetrics(registry: Registry): void {
    const replicas = () => this.#replicator?.getStats().replicas ?? [];
    const perReplica = (
      name: string,
      help: string,
      value: (r: ReturnType<typeof replicas>[number]) => number,
      type: "gauge" | "counter" = "gauge",
    ) =>
      registry.add(
        new Gauge(name, help, ["replica"], () =>
          replicas().map((r) => ({ labels: [r.address], value: value(r) })), type),
      );
    perReplica(
      "kvstore_replication_lag_records",
      "Records durable here, not yet on the replica.",
      (r) => r.lagRecords,
    );
    perReplica(
      "kvstore_replication_lag_seconds",
      "Age of the oldest record the replica has not acknowledged.",
      (r) => r.lagMs / 1000,
    );
    perReplica(
      "kvstore_replication_acked_lsn",
      "Last LSN the replica acknowledged.",
      (r) => r.ackedLsn,
    );
    perReplica(
      "kvstore_replication_queued_records",
      "Records in the replica's in-memory buffer (REPLICATION_QUEUE_SIZE bounds it).",
      (r) => r.queuedRecords,
    );
    perReplica(
      "kvstore_replication_healthy",
      "1 while the replica is healthy.",
      (r) => r.healthy ? 1 : 0,
    );
    perReplica(
      "kvstore_replication_streaming",
      "1 while the replica's link streams (0: down, catching up or full sync).",
      (r) => r.state === "streaming" ? 1 : 0,
    );
    perReplica(
      "kvstore_replication_full_syncs_total",
      "Full syncs sent to the replica.",
      (r) => r.fullSyncs,
      "counter",
    );
    perReplica(
      "kvstore_replication_failures_total",
      "Failed attempts (connect, send, reply timeout, error reply).",
      (r) => r.failedAttempts,
      "counter",
    );
    registry.add(
      new Gauge(
        "kvstore_replication_sync_writes_waiting",
        "Sync-mode writes waiting for acknowledgements.",
        [],
        () => [{ value: this.#replicator?.getStats().syncWaiting ?? 0 }],
      ),
    );
    registry.add(
      new Gauge(
        "kvstore_replica_link_up",
        "On a replica: 1 while its master's stream is up.",
        [],
        () =>
          this.#applier === undefined
            ? []
            : [{ value: this.#applier.getInfo().masterLinkStatus === "up" ? 1 : 0 }],
      ),
    );
    registry.add(
      new Gauge(
        "kvstore_replica_master_last_io_seconds",
        "On a replica: seconds since its master was last heard from (-1: never).",
        [],
        () =>
          this.#applier === undefined
            ? []
            : [{ value: this.#applier.getInfo().masterLastIoSecondsAgo }],
      ),
    );
    registry.add(
      new Gauge(
        "kvstore_replication_discarded_records_total",
        "Records this node discarded because its log diverged from its master's.",
        [],
        () => [{ value: this.#discardedRecords }],
        "counter",
      ),
    );
  }

  hooks(): ServerHooks {
    const config = this.#node.config;
    return {
      commands: {
        REPLICATE: this.#replicate,
        PROMOTE: {
          minArgs: 0,
          maxArgs: 0,
          handler: (_args, _out, ctx) => this.#promote(ctx.connection.peer),
        },
        REPLICAS: {
          minArgs: 0,
          maxArgs: 2,
          handler: (args) => this.#replicas(args.map((a) => a.slice())),
        },
      },
      awaitReplication: (lsn) => {
        const replicator = this.#replicator;
        if (replicator === undefined || replicator.mode !== "sync") return undefined;
        return replicator.waitForReplicas(lsn).then(
          () => undefined,
          (error: Error) => error.message,
        );
      },
      authorize: (name) => {
        if (this.#deposedBy === undefined || !WRITE_COMMANDS.has(name)) return undefined;
        return {
          type: "error",
          code: "READONLY",
          message: `this node was deposed (${this.#deposedBy}); send writes to the new master`,
        };
      },
      connectionClosed: (connection) => this.#applier?.connectionClosed(connection.id),
      info: { replication: () => this.#info() },
      close: async () => {
        await this.#replicator?.stop(config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
      },
    };
  }
}

/**
 * Reads the node state and reconciles it with the role the settings ask for: a node that
 * PROMOTE made a master refuses to start as a replica unless demoted on purpose (`--demote`),
 * and starting it as a master clears the mark (its settings now say what PROMOTE did).
 */
async function reconcileRole(node: ServerNode): Promise<NodeState> {
  const dir = node.store.dir;
  const state = await readNodeState(dir);
  if (state.promotedEpoch === undefined) return state;
  const cleared: NodeState = { highestEpochSeen: state.highestEpochSeen };
  if (!node.replica) {
    await writeNodeState(dir, cleared);
    log.info("PROMOTE of epoch {epoch} is now this master's configured role", {
      event: "promotion_confirmed",
      epoch: state.promotedEpoch,
    });
    return cleared;
  }
  if (!node.config.DEMOTE) {
    throw new NodeStateError(
      `${dir} belongs to a master: PROMOTE made this node the master of epoch ` +
        `${state.promotedEpoch} (at ${state.promotedAt}), but it was started with --replica, ` +
        `which would leave the cluster without a master. Start it without --replica (make ` +
        `the promotion permanent in its settings), or, to rejoin it as a replica on purpose, ` +
        `start it once with --replica --demote`,
    );
  }
  await writeNodeState(dir, cleared);
  log.warn(
    "DEMOTED: this node, master of epoch {epoch} since {promotedAt}, starts as a replica " +
      "(--demote); writes it took since then are replaced by its master's data",
    { event: "demoted", epoch: state.promotedEpoch, promotedAt: state.promotedAt },
  );
  return cleared;
}

/** The replication extension of a node, with `options` (token, TLS, metrics). */
export function replicationExtensionWith(options: ReplicationOptions): ServerExtension {
  return async (node) => new NodeReplication(node, options, await reconcileRole(node)).hooks();
}

/** The replication extension of a node, without token, TLS or metrics. */
export async function replicationExtension(node: ServerNode): Promise<ServerHooks> {
  return new NodeReplication(node, {}, await reconcileRole(node)).hooks();
}
