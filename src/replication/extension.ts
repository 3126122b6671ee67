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
 * - A node whose log diverged (an old master restarted with `--replica`) is told by the new
 *   master how many of its records lie past the promotion point (`REPLICATE DIVERGED`); both log
 *   the count, and the full sync then replaces them.
 *
 * @module
 */
import {
  type Config,
  formatHostPort,
  type HostPort,
  parseAddresses,
  parseHostPort,
} from "../config.ts";
import { getLog } from "../log.ts";
import { Gauge, type Registry } from "../metrics/registry.ts";
import type { Reply } from "../protocol/mod.ts";
import { BUILT_IN_COMMANDS, REPLICATE_ON_MASTER_MESSAGE } from "../server/commands.ts";
import {
  type CommandContext,
  CommandError,
  type CommandSpec,
  type ConnectionInfo,
  type InfoFields,
  type ServerExtension,
  type ServerHooks,
  type ServerNode,
} from "../server/hooks.ts";
import { MAX_EPOCH } from "../storage/mod.ts";
import { RECORD_HEADER_BYTES, recordEpochAt } from "./log_records.ts";
import {
  isEpoch,
  type NodeState,
  NodeStateError,
  readNodeState,
  writeNodeState,
} from "./node_state.ts";
import { type ApplierReply, ReplicaApplier, upper } from "./replica_applier.ts";
import type { ReplicationSource } from "./replica_link.ts";
import { MAX_LSN, parseHelloRequest, parseOrThrow, parseStreamNumber } from "./stream_protocol.ts";
import { masterSourceOf, replicaStoreOf } from "./store_adapters.ts";
import { Replicator, type ReplicatorOptions } from "./replicator.ts";
import { consistencyCommands } from "./consistency.ts";
import { LsnWaiters } from "./lsn_waiters.ts";
import { roleReply, topologyDocument, type TopologyFacts } from "./topology.ts";

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
  /** The replication token a master proves to its replicas (`CHALLENGE`/`PROVE`, before `HELLO`). */
  authToken?: string;
  /** Opens a master's connection to a replica (default TCP; TLS with `REPLICATION_TLS_CA`). */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** Registry for the replication metrics (lag per replica, buffers, link state). */
  registry?: Registry;
}

/** Per-connection key (`ConnectionInfo.state`): the epoch a master's HELLO announced on it. */
const STREAM_EPOCH = "replication.streamEpoch";
/** Per-connection key: this connection's old master was already logged as fenced. */
const FENCED_LOGGED = "replication.fencedLogged";

/** The manual `REPLICATE` writes of the spec, stored as local writes on a replica. */
const LOCAL_WRITE_SUBCOMMANDS: ReadonlySet<string> = new Set(["PUT", "BATCHPUT", "DELETE"]);

/** `-STALEEPOCH <newerEpoch> stale epoch <epoch>: <text>`: the refusal that deposes a master. */
function staleEpochError(newerEpoch: number, staleEpoch: number, text: string): CommandError {
  return new CommandError(`${newerEpoch} stale epoch ${staleEpoch}: ${text}`, "STALEEPOCH");
}

/** The newer epoch a `STALEEPOCH` refusal carries (its first word), or undefined. */
function newerEpochOf(message: string): number | undefined {
  const match = /^(\d{1,10}) /.exec(message);
  const epoch = match === null ? NaN : Number(match[1]);
  return isEpoch(epoch) ? epoch : undefined;
}

/** A stream request that does not parse, as the client's error. */
function asCommandError<T>(parse: () => T): T {
  return parseOrThrow(parse, (message) => new CommandError(message));
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

/** The replication state of one node, which may change role once (PROMOTE). */
class NodeReplication {
  readonly #node: ServerNode;
  readonly #options: ReplicationOptions;
  #applier: ReplicaApplier | undefined;
  #replicator: Replicator | undefined;
  /** Highest epoch a master announced to this replica (its log holds it once records come). */
  #announcedEpoch = 0;
  /** The epoch a PROMOTE in progress takes (REPLICATE is answered as by that master meanwhile). */
  #promotingEpoch: number | undefined;
  /** Why this master refuses writes: a newer master exists. */
  #deposedBy: string | undefined;
  /** Records this node discarded because its log diverged from its master's. */
  #discardedRecords = 0;

  /** What this node remembers across restarts (see `node_state.ts`). */
  #state: NodeState;
  /** Reads waiting for this node's log to reach their LSN (`WITH MINLSN`). */
  readonly #lsnWaiters: LsnWaiters;

  constructor(node: ServerNode, options: ReplicationOptions, state: NodeState) {
    this.#node = node;
    this.#options = options;
    this.#state = state;
    this.#announcedEpoch = state.highestEpochSeen;
    this.#lsnWaiters = new LsnWaiters(node.store);
    const { config, store } = node;
    if (node.replica) {
      this.#applier = this.#newApplier();
    } else if (config.REPLICATION_ENABLED && config.REPLICA_ADDRESSES.length > 0) {
      this.#use(this.#newReplicator(masterSourceOf(store), config.REPLICA_ADDRESSES));
      // The log may hold writes whose sync wait failed before a restart: reads wait until the
      // replicas have everything (async mode: it is durable already, the floor costs nothing).
      node.commit.raiseFloor(store.lastLsn);
    }
    if (!node.replica && state.highestEpochSeen > Math.max(store.epoch, store.lastEpoch)) {
      // Told of a newer master before it stopped: it stays deposed (a restart must not make a
      // deposed master take writes again).
      this.#depose(
        state.highestEpochSeen,
        `NODE_STATE.json says a master of epoch ${state.highestEpochSeen} exists; this node's ` +
          `epoch is ${store.epoch}`,
      );
    }
    if (options.registry !== undefined) this.#registerMetrics(options.registry);
  }

  #newApplier(): ReplicaApplier {
    return new ReplicaApplier(replicaStoreOf(this.#node.store), Date.now, {
      localWrites: () => this.#state.localWrites ?? 0,
      fullSyncCommitted: () => {
        const replaced = this.#state.localWrites ?? 0;
        if (replaced === 0) return Promise.resolve();
        const { localWrites: _, ...rest } = this.#state;
        this.#saveState(rest);
        log.warn("the full sync replaced this replica's {localWrites} local writes", {
          event: "local_writes_replaced",
          localWrites: replaced,
        });
        return Promise.resolve();
      },
    });
  }

  /**
   * A replicator for `addresses`. `committedLsn`: what counts as committed already (sync mode);
   * the default 0 is for a master starting up, whose log may hold writes whose sync wait failed.
   */
  #newReplicator(
    source: ReplicationSource,
    addresses: { host: string; port: number }[],
    committedLsn = 0,
  ): Replicator {
    const config = { ...this.#node.config, REPLICA_ADDRESSES: addresses };
    const options: ReplicatorOptions = {
      connect: this.#options.connect,
      authToken: this.#options.authToken,
      onRefused: (address, code, message) => this.#refused(address, code, message),
      masterAddress: () => this.#advertisedAddress(),
      committedLsn,
    };
    return new Replicator(source, config, Date.now, options);
  }

  /** Where clients reach this node: `ADVERTISE_ADDRESS`, else the address it listens on. */
  #advertisedAddress(): string {
    const node = this.#node;
    if (node.config.ADVERTISE_ADDRESS !== "") return node.config.ADVERTISE_ADDRESS;
    return formatHostPort({ host: node.host, port: node.port });
  }

  /** What ROLE and TOPOLOGY report about this node and its cluster. */
  #topologyFacts(): TopologyFacts {
    const node = this.#node;
    const applier = this.#applier;
    const info = node.replica ? applier?.getInfo() : undefined;
    return {
      address: this.#advertisedAddress(),
      runId: node.runId,
      role: node.replica ? "replica" : "master",
      epoch: this.#knownEpoch,
      lsn: node.store.lastLsn,
      deposed: this.#deposedBy,
      replicationMode: node.config.REPLICATION_MODE,
      master: info === undefined ? undefined : {
        address: info.masterAdvertisedAddress,
        epoch: info.masterEpoch,
        lsn: info.masterKnownLsn,
        linkStatus: info.masterLinkStatus,
        lastIoMs: info.masterLastIoMs,
        fullSyncInProgress: info.fullSyncInProgress,
      },
      replicas: node.replica ? [] : this.#replicator?.getStats().replicas ?? [],
    };
  }

  /**
   * Makes `replicator` this master's and starts it; in sync mode, reads then stop at what its
   * replicas acknowledged (the server's commit point).
   */
  #use(replicator: Replicator): void {
    this.#replicator = replicator;
    replicators.set(this.#node, replicator);
    replicator.start();
    if (replicator.mode !== "sync") return;
    this.#node.commit.setReplication({
      committedLsn: () => replicator.committedLsn,
      awaitReplication: (lsn) =>
        replicator.waitForReplicas(lsn).then(() => undefined, (error: Error) => error.message),
    });
  }

  /** The highest epoch this node knows of. */
  get #knownEpoch(): number {
    const store = this.#node.store;
    return Math.max(store.epoch, store.lastEpoch, this.#announcedEpoch);
  }

  #refused(address: string, code: string, message: string): void {
    if (code !== "STALEEPOCH") return;
    const newer = newerEpochOf(message) ?? this.#knownEpoch + 1;
    this.#depose(newer, `replica ${address} follows a newer master: ${message}`);
  }

  /**
   * A newer master exists (epoch `newerEpoch`): from now on this node acknowledges no write.
   * Client writes are refused (`-READONLY`); writes applied here whose replies are not sent yet
   * get an error instead of OK (the server's `deposed`); waiting sync writes fail at once; the
   * links to replicas stop. The epoch is remembered (NODE_STATE.json): restarted as a master, it
   * is still deposed.
   */
  #depose(newerEpoch: number, reason: string): void {
    if (this.#deposedBy !== undefined) return;
    this.#deposedBy = reason;
    this.#node.deposed = reason;
    this.#announcedEpoch = Math.max(this.#announcedEpoch, newerEpoch);
    log.error(
      "DEPOSED: {reason}. Another node was promoted (epoch {newerEpoch}; this node's is " +
        "{epoch}); this node now refuses client writes, and writes not yet acknowledged are " +
        "answered with an error. Stop it, or restart it with --replica and add it to the new " +
        "master (REPLICAS ADD)",
      { event: "deposed", reason, newerEpoch, epoch: this.#node.store.epoch },
    );
    this.#replicator?.depose(reason).catch((error) =>
      log.error("stopping the links of a deposed master failed: {error}", { error: String(error) })
    );
    if (newerEpoch > this.#state.highestEpochSeen) {
      try {
        this.#saveState({ ...this.#state, highestEpochSeen: newerEpoch });
      } catch (error) {
        log.error("could not remember the newer epoch {epoch} in NODE_STATE.json: {error}", {
          epoch: newerEpoch,
          error: String(error),
        });
      }
    }
  }

  /** `REPLICATE`: on a replica, fencing, divergence and local writes, then the applier. */
  #replicate: CommandSpec = {
    minArgs: 1,
    maxArgs: Infinity,
    // Not replicaOnly: a master answers the stream of an older master with STALEEPOCH.
    admin: true,
    handler: (args, out, ctx) => {
      const applier = this.#applier;
      if (!this.#node.replica || applier === undefined || this.#promotingEpoch !== undefined) {
        this.#replicateOnMaster(args, ctx.connection);
      }
      const sub = upper(args[0]);
      if (sub === "HELLO") return this.#hello(args, ctx.connection, applier);
      if (sub === "DIVERGED") {
        this.#diverged(args, ctx.connection.peer);
        out.ok();
        return;
      }
      if (LOCAL_WRITE_SUBCOMMANDS.has(sub)) return this.#localWrite(sub, args, ctx, applier);
      const streamEpoch = ctx.connection.state.get(STREAM_EPOCH);
      if (typeof streamEpoch === "number" && streamEpoch < this.#knownEpoch) {
        // A newer master said HELLO since this stream began: its master is deposed.
        throw staleEpochError(
          this.#knownEpoch,
          streamEpoch,
          `this replica follows epoch ${this.#knownEpoch} now (a newer master was promoted)`,
        );
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

  /**
   * `REPLICATE HELLO` on a replica: every field checked first (a bad one changes nothing), then
   * the epoch fenced (an older master is refused with STALEEPOCH), then a newer epoch made
   * durable before the master hears OK (a restart must not forget it), then the applier.
   */
  #hello(
    args: Uint8Array[],
    connection: ConnectionInfo,
    applier: ReplicaApplier,
  ): void | Promise<Reply> {
    const { epoch } = asCommandError(() => parseHelloRequest(args));
    const known = this.#knownEpoch;
    if (epoch < known) {
      log.warn(
        "refused a master stream from {master} in epoch {epoch}: this replica follows " +
          "epoch {known}",
        { event: "stale_epoch", master: connection.peer, epoch, known },
      );
      throw staleEpochError(
        known,
        epoch,
        `this replica follows epoch ${known} (a newer master ` +
          `was promoted)`,
      );
    }
    if (epoch > this.#state.highestEpochSeen) {
      // Durable before the master hears OK: a restart must not forget this epoch.
      this.#saveState({ ...this.#state, highestEpochSeen: epoch });
    }
    connection.state.set(STREAM_EPOCH, epoch);
    this.#announcedEpoch = Math.max(this.#announcedEpoch, epoch);
    return this.#applied(applier.handle(args, connection.id, connection.peer));
  }

  /** An applier's answer as the handler's (a promise of it when it is late). */
  #applied(result: ApplierReply | Promise<ApplierReply>): Promise<Reply> {
    return result instanceof Promise
      ? result.then(toReply, errorReply)
      : Promise.resolve(toReply(result));
  }

  /**
   * `REPLICATE` where no replica applier serves: on a master, or on a replica being promoted.
   * The stream of an older master is refused with STALEEPOCH (which deposes it); a HELLO from a
   * newer master deposes this one; anything else gets the spec's refusal. Always throws.
   */
  #replicateOnMaster(args: Uint8Array[], connection: ConnectionInfo): never {
    const own = this.#promotingEpoch ?? this.#knownEpoch;
    const sub = upper(args[0]);
    let senderEpoch: number | undefined;
    if (sub === "HELLO") {
      senderEpoch = asCommandError(() => parseHelloRequest(args)).epoch;
      if (senderEpoch > own) {
        this.#depose(
          senderEpoch,
          `master ${connection.peer} of epoch ${senderEpoch} tried to replicate to this node`,
        );
        throw new CommandError(
          `this node was the master of epoch ${own} and is deposed by the master of epoch ` +
            `${senderEpoch}; it cannot follow it while it runs as a master: restart it with ` +
            `--replica (its records past the new master's history are then replaced)`,
        );
      }
    } else if (!LOCAL_WRITE_SUBCOMMANDS.has(sub)) {
      const announced = connection.state.get(STREAM_EPOCH);
      if (typeof announced === "number") senderEpoch = announced;
      else if (sub === "LOG" && args.length === 2 && args[1].length >= RECORD_HEADER_BYTES) {
        senderEpoch = recordEpochAt(args[1], 0);
      }
    }
    if (senderEpoch !== undefined && senderEpoch < own) {
      if (!connection.state.has(FENCED_LOGGED)) {
        // Once per connection: the frames the old master had in flight all come back refused.
        connection.state.set(FENCED_LOGGED, true);
        log.warn(
          "fenced the master {master} of epoch {epoch}: this node is the master of epoch {own}",
          { event: "fenced_old_master", master: connection.peer, epoch: senderEpoch, own },
        );
      }
      throw staleEpochError(
        own,
        senderEpoch,
        `this node is the master of epoch ${own} (promoted): a master of epoch ${senderEpoch} ` +
          `is deposed and must not acknowledge writes`,
      );
    }
    if (this.#promotingEpoch !== undefined) {
      throw new CommandError("this node is being promoted to master: REPLICATE refused");
    }
    throw new CommandError(REPLICATE_ON_MASTER_MESSAGE);
  }

  /**
   * Why this replica takes no local writes: it follows a master (one streamed to it, or its log
   * holds a master's records, or a master's epoch was announced to it); undefined when it never
   * did, the spec's stand-alone replica (its troubleshooting step writes to one by hand).
   */
  #followedMaster(applier: ReplicaApplier): string | undefined {
    const info = applier.getInfo();
    if (info.masterAddress !== "") return `master ${info.masterAddress} streams to it`;
    const lsn = this.#node.store.lastLsn;
    if (lsn > 0) return `it holds its master's records up to LSN ${lsn}`;
    if (this.#state.highestEpochSeen > 0) {
      return `a master of epoch ${this.#state.highestEpochSeen} streamed to it`;
    }
    return undefined;
  }

  /**
   * The spec's `REPLICATE PUT|BATCHPUT|DELETE` by hand: refused once the replica follows a
   * master (the write would exist only here, and the replica would differ from its master
   * forever while looking healthy); before that, counted durably and then applied as a local
   * write, which the first master to connect replaces with a full sync.
   */
  #localWrite(
    sub: string,
    args: Uint8Array[],
    ctx: CommandContext,
    applier: ReplicaApplier,
  ): Promise<Reply> {
    const following = this.#followedMaster(applier);
    if (following !== undefined) {
      throw new CommandError(
        `REPLICATE ${sub} refused: this replica follows a master (${following}); a write made ` +
          `here would not be in the master's history. Send writes to the master`,
        "READONLY",
      );
    }
    // Counted durably first, then applied in this turn (a pipelined read sees it): a crash in
    // between overcounts, which costs one needless full sync, never a write left unreplaced.
    this.#saveState({ ...this.#state, localWrites: (this.#state.localWrites ?? 0) + 1 });
    return this.#applied(applier.handle(args, ctx.connection.id, ctx.connection.peer));
  }

  /** `REPLICATE DIVERGED <commonLsn> <masterEpoch>`: the master says where the logs part. */
  #diverged(args: Uint8Array[], peer: string): void {
    if (args.length !== 3) throw new CommandError("REPLICATE DIVERGED requires lsn and epoch");
    const commonLsn = asCommandError(() => parseStreamNumber(args[1], "common LSN", MAX_LSN));
    const masterEpoch = asCommandError(() => parseStreamNumber(args[2], "epoch", MAX_EPOCH));
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

  /** Replaces the node state, durably (before this returns), and keeps it. */
  #saveState(state: NodeState): void {
    writeNodeState(this.#node.store.dir, state);
    this.#state = state;
  }

  async #promote(peer: string): Promise<Reply> {
    const node = this.#node;
    const store = node.store;
    const applier = this.#applier;
    if (!node.replica || applier === undefined) {
      throw new CommandError(`this node is already a master (epoch ${store.epoch})`);
    }
    if (this.#promotingEpoch !== undefined) throw new CommandError("a PROMOTE is already running");
    if (applier.getInfo().fullSyncInProgress) {
      throw new CommandError(
        "a full sync from the master is in progress: this replica's data is incomplete; " +
          "promote another replica, or wait for the sync to finish",
      );
    }
    const epoch = this.#knownEpoch + 1;
    if (epoch > MAX_EPOCH) {
      throw new CommandError(`cannot promote: epoch ${epoch} would be above ${MAX_EPOCH}`);
    }
    // From here on REPLICATE is answered as the master of `epoch` would (an older master's
    // stream gets STALEEPOCH at once), and no record is applied: the log ends here.
    this.#promotingEpoch = epoch;
    try {
      await store.whenDurable(store.lastLsn);
      const fromLsn = store.lastLsn;
      const replicator = this.#newReplicator(masterSourceOf(store, "durable"), [], fromLsn);
      // No await from promote() to start(): the replicator must see every record after the
      // marker from the in-memory stream.
      const markerLsn = store.promote(epoch);
      // Reads show the old epoch's data once the new epoch's first record is committed (in sync
      // mode: on the required replicas of this master), as a new Raft leader does.
      node.commit.raiseFloor(markerLsn);
      this.#use(replicator);
      this.#applier = undefined;
      // Client writes stay refused until the promotion is on disk, so a restart with the old
      // settings can never silently turn a master that took writes into a replica.
      this.#saveState({
        highestEpochSeen: epoch,
        promotedEpoch: epoch,
        promotedAt: new Date().toISOString(),
      });
      node.replica = false;
      await store.whenDurable(markerLsn);
      log.warn(
        "PROMOTED to master by {peer}: epoch {epoch}, data up to LSN {lsn} kept; serving writes " +
          "({guarantee}). Add replicas with REPLICAS ADD host:port, and make it permanent in " +
          "this node's settings (no --replica; --replicas for its replicas): until then it " +
          "refuses to restart as a replica",
        {
          event: "promoted",
          peer,
          epoch,
          lsn: fromLsn,
          markerLsn,
          guarantee: writeGuarantee(node.config, 0, 0),
        },
      );
      return { type: "status", text: `PROMOTED epoch ${epoch} lsn ${fromLsn}` };
    } finally {
      this.#promotingEpoch = undefined;
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
    if (sub === "ADD" && this.#deposedBy !== undefined) {
      throw new CommandError(
        `this node was deposed (${this.#deposedBy}): it sends its history to no replica`,
      );
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
          const store = this.#node.store;
          this.#use(
            this.#newReplicator(masterSourceOf(store, "durable"), [address], store.durableLsn),
          );
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
      ["last_applied_lsn", info.lastAppliedLsn],
      ["epoch", info.epoch],
      ["master_epoch", info.masterEpoch],
      ["full_sync_in_progress", info.fullSyncInProgress],
      ["full_syncs", info.fullSyncs],
      ["applied_frames", info.appliedFrames],
      ["discarded_records", this.#discardedRecords],
      ["min_lsn_reads_waiting", this.#lsnWaiters.size],
      ["local_writes", this.#state.localWrites ?? 0],
      ["read_guarantee", "what this replica applied (it may lag its master)"],
      // The settings it takes when promoted: a replica accepts --replication-mode and
      // --sync-replicas for that moment.
      ["replication_mode", this.#node.config.REPLICATION_MODE],
      ["sync_replicas", this.#node.config.SYNC_REPLICAS],
      ["write_guarantee_when_promoted", writeGuarantee(this.#node.config, 0, 0)],
    ];
  }

  #info(): InfoFields {
    if (this.#node.replica) return this.#replicaInfo();
    const config = this.#node.config;
    const fields = masterInfoFields(this.#replicator);
    const stats = this.#replicator?.getStats();
    fields.push(["epoch", this.#node.store.epoch]);
    fields.push(["sync_replicas", config.SYNC_REPLICAS]);
    fields.push(["acks_waiting", this.#replicator?.ackWaits ?? 0]);
    fields.push(["min_lsn_reads_waiting", this.#lsnWaiters.size]);
    if (this.#deposedBy !== undefined) {
      fields.push(["deposed", this.#deposedBy]);
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
          admin: true,
          handler: (_args, _out, ctx) => this.#promote(ctx.connection.peer),
        },
        REPLICAS: {
          minArgs: 0,
          maxArgs: 2,
          admin: true,
          handler: (args) => this.#replicas(args.map((a) => a.slice())),
        },
        ROLE: {
          minArgs: 0,
          maxArgs: 0,
          handler: (_args, out) => out.reply(roleReply(this.#topologyFacts())),
        },
        TOPOLOGY: {
          minArgs: 0,
          maxArgs: 0,
          handler: (_args, out) =>
            out.textValue(JSON.stringify(topologyDocument(this.#topologyFacts()))),
        },
        ...consistencyCommands({
          node: this.#node,
          replicator: () => this.#replicator,
          deposedBy: () => this.#deposedBy,
          lsnWaiters: this.#lsnWaiters,
        }),
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
      peerClosed: (connection) => {
        // Nobody reads the answers of its waits (WAIT 5 0, a day-long write concern, MINLSN).
        this.#replicator?.releaseAcks(connection);
        this.#lsnWaiters.release(connection);
      },
      info: { replication: () => this.#info() },
      close: async () => {
        this.#lsnWaiters.releaseAll();
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
  const { promotedEpoch: _, promotedAt: __, ...cleared } = state;
  if (!node.replica) {
    const store = node.store;
    if (Math.max(store.epoch, store.lastEpoch) < state.promotedEpoch) {
      // The promotion's marker record did not survive (fsync no/everysec and a power loss):
      // write it again, so this master's records carry the epoch it was promoted to.
      await store.whenDurable(store.promote(state.promotedEpoch));
    }
    writeNodeState(dir, cleared);
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
  writeNodeState(dir, cleared);
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
