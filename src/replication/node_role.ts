/**
 * The one owner of a node's role: master or replica, the epochs it knows, a promotion in
 * progress, deposition, and what it remembers of them across restarts (`NODE_STATE.json`). No
 * other module writes any of these; everything that changes a role comes through this door:
 * `PROMOTE`, `REPLICAOF`, `REPLICAS ADD`, the stream's epoch fencing, the start of the node, and
 * an automatic failover coordinator (which finds the door with {@link nodeRoleOf}).
 *
 * The role also owns what runs for it: on a master its {@link Replicator} (started with the node,
 * at the first `REPLICAS ADD`, or by a promotion; stopped by a demotion, a deposition or the
 * shutdown), on a replica its {@link ReplicaApplier}. The server's write gate reads
 * {@link NodeRole.replica} and {@link NodeRole.deposed} (through `ServerHooks.role`).
 *
 * Transitions:
 * - replica → master: {@link NodeRole.promote} (a new epoch, written into the log).
 * - master → replica: {@link NodeRole.follow} (writes refused at once, the replicas drained,
 *   then the applier takes the new master's stream, which replaces what this node's log holds
 *   past the new master's history with a full sync).
 * - replica → replica of another master: {@link NodeRole.follow} with the new master's epoch
 *   (the old master's stream is fenced at once).
 * - master → deposed master: {@link NodeRole.depose} (a newer master exists; writes refused).
 *
 * @module
 */
import { type Config, formatHostPort, type HostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { InfoFields, ReplicationStatus, RoleGate, ServerNode } from "../server/hooks.ts";
import { MAX_EPOCH } from "../storage/mod.ts";
import { ForwarderSide } from "./forwarder_side.ts";
import { MasterSide } from "./master_side.ts";
import {
  markRole,
  type NodeState,
  NodeStateError,
  readNodeState,
  writeNodeState,
} from "./node_state.ts";
import { replicationStatus } from "./replication_info.ts";
import type { TopologyCoordinator } from "./topology.ts";
import { Follower } from "./follower.ts";
import { ReplicaApplier } from "./replica_applier.ts";
import type { Replicator } from "./replicator.ts";
import { replicaStoreOf } from "./store_adapters.ts";

const log = getLog("replication");

/** What a node is. */
export type RoleName = "master" | "replica";

/** A change of role or epoch, as {@link NodeRole.subscribe} listeners hear it. */
export type RoleEvent =
  /** Now a master of `epoch`; its data up to `lsn` kept. */
  | { kind: "promoted"; epoch: number; lsn: number; by: string }
  /** Now a replica (or re-pointed): it expects `master` (`host:port`, "" when not named). */
  | { kind: "following"; master: string; epoch: number; by: string }
  /** A newer master (`epoch`) exists: this master refuses writes. */
  | { kind: "deposed"; epoch: number; reason: string }
  /** The newest epoch this node knows rose to `epoch` (a HELLO, `REPLICAOF ... EPOCH`). */
  | { kind: "epoch"; epoch: number };

/** The role's options besides the node's settings. */
export interface NodeRoleOptions {
  /** The replication token a master proves to its replicas. */
  authToken?: string;
  /** Opens a master's connection to a replica (default TCP). */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
}

/** What {@link NodeRole.promote} did. */
export interface Promotion {
  epoch: number;
  /** The last LSN of the data kept (the old master's history). */
  lsn: number;
  /** LSN of the empty record that carries the new epoch into the log. */
  markerLsn: number;
}

/** What a coordinator reports through the role (see {@link NodeRole.setCoordinatorReport}). */
export interface CoordinatorReport {
  info(): InfoFields;
  topology(): TopologyCoordinator;
}

/** A coordinator's write fences (see {@link NodeRole.setFences}). */
export interface WriteFences {
  /** Why new client writes are refused now, or undefined. */
  writes(): string | undefined;
  /** Why no write may be acknowledged now, or undefined. */
  acks(): string | undefined;
}

/** A role change was refused: the node is not in a state that allows it. */
export class RoleChangeError extends Error {
  override name = "RoleChangeError";
}

const roles = new WeakMap<ServerNode, NodeRole>();

/**
 * The role of a node started with the replication extension (undefined without it): the door
 * through which a failover coordinator promotes, demotes and re-points the node.
 */
export function nodeRoleOf(node: ServerNode): NodeRole | undefined {
  return roles.get(node);
}

/** The one writer of a node's role; see the module comment. */
export class NodeRole implements RoleGate {
  readonly #node: ServerNode;
  readonly #options: NodeRoleOptions;
  #replica: boolean;
  #applier: ReplicaApplier | undefined;
  /** What runs for the master role: its replicator. */
  readonly #master: MasterSide;
  /** What runs on a replica with replicas of its own (cascading): its forwarder. */
  readonly #forwarder: ForwarderSide;
  /** Highest epoch a master announced (or REPLICAOF named); the log holds it once records come. */
  #announcedEpoch: number;
  /** The epoch a PROMOTE in progress takes (REPLICATE is answered as by that master meanwhile). */
  #promotingEpoch: number | undefined;
  /** A demotion in progress (master → replica): writes refused, replicas draining. */
  #demoting = false;
  /** Why this node refuses to acknowledge writes: a newer master exists. */
  #deposedBy: string | undefined;
  /** The master REPLICAOF named (`host:port`), "" when none was named. */
  #followedMaster = "";
  /** What this node remembers across restarts (see `node_state.ts`). */
  #state: NodeState;
  /** A coordinator's reasons this master may not take or acknowledge writes now. */
  #fences: WriteFences | undefined;
  /** A coordinator's fields for `INFO replication` and TOPOLOGY. */
  #coordinator: CoordinatorReport | undefined;
  /** A master told this replica its log diverged; cleared when the full sync replaced it. */
  #diverged = false;
  readonly #listeners = new Set<(event: RoleEvent) => void>();
  /**
   * The replica side's state machine: the streams, their epochs, the full-sync phase. It lives as
   * long as the node (a promoted master still fences the streams of older masters by it).
   */
  readonly follower = new Follower(Date.now);

  /**
   * Reads `NODE_STATE.json`, reconciles it with the role the settings ask for (see
   * {@link reconcileRole}) and starts what the role runs (replicator or applier).
   */
  static async open(node: ServerNode, options: NodeRoleOptions = {}): Promise<NodeRole> {
    const role = new NodeRole(node, options, await reconcileRole(node));
    roles.set(node, role);
    return role;
  }

  private constructor(node: ServerNode, options: NodeRoleOptions, state: NodeState) {
    this.#node = node;
    this.#options = options;
    this.#state = state;
    this.#announcedEpoch = state.highestEpochSeen;
    this.#followedMaster = state.replicaOf ?? "";
    this.#master = new MasterSide(node, {
      authToken: options.authToken,
      connect: options.connect,
      onRefused: (address, code, message) => this.#refused(address, code, message),
      masterAddress: () => this.advertisedAddress,
    });
    this.#forwarder = new ForwarderSide(node, {
      authToken: options.authToken,
      connect: options.connect,
      onRefused: (address, code, message) => this.#refused(address, code, message),
      advertisedAddress: () => this.advertisedAddress,
      epoch: () => this.epoch,
      keyFilter: () => this.#state.keyFilter ?? [],
      chain: () => {
        const info = this.#applier?.getInfo();
        // How old this node's data may be, not only its lag: a sub-replica of a node cut off from
        // its master is as stale (REPLICA_MAX_STALENESS_MS and clients' maxStalenessMs see it).
        const stalenessMs = info?.stalenessMs ?? 0;
        return {
          originLsn: info?.originKnownLsn ?? node.store.lastLsn,
          originLagMs: Number.isFinite(stalenessMs) ? stalenessMs : info?.originLagMs ?? 0,
          depth: info?.chainDepth ?? 0,
          originAddress: info?.originAddress ?? "",
        };
      },
    });
    const { config, store } = node;
    // With a coordinator every node starts as a replica: the election makes one the master.
    this.#replica = config.REPLICA || coordinated(config);
    if (this.#replica) {
      this.#applier = this.#newApplier();
      if (config.REPLICATION_ENABLED && config.REPLICA_ADDRESSES.length > 0) {
        this.#forwarder.startWithNode(config.REPLICA_ADDRESSES);
      }
    } else if (config.REPLICATION_ENABLED && config.REPLICA_ADDRESSES.length > 0) {
      this.#master.startWithNode(config.REPLICA_ADDRESSES);
      // The log may hold writes whose sync wait failed before a restart: reads wait until the
      // replicas have everything (async mode: it is durable already, the floor costs nothing).
      node.commit.raiseFloor(store.lastLsn);
    }
    if (
      !this.#replica &&
      state.highestEpochSeen > Math.max(store.epoch, store.replicationLog.lastEpoch)
    ) {
      // Told of a newer master before it stopped: it stays deposed (a restart must not make a
      // deposed master take writes again).
      this.depose(
        state.highestEpochSeen,
        `NODE_STATE.json says a master of epoch ${state.highestEpochSeen} exists; this node's ` +
          `epoch is ${store.epoch}`,
      );
    }
  }

  // ------------------------------------------------------------------------------ reading

  /** `master` or `replica` (a master being demoted is a replica already: it takes no writes). */
  get current(): RoleName {
    return this.#replica ? "replica" : "master";
  }

  /** True on a replica: client writes are refused (the server's write gate). */
  get replica(): boolean {
    return this.#replica;
  }

  /** The highest epoch this node knows of. */
  get epoch(): number {
    const store = this.#node.store;
    return Math.max(store.epoch, store.replicationLog.lastEpoch, this.#announcedEpoch);
  }

  /**
   * Why this master must acknowledge no more writes (a newer master exists), or undefined: the
   * server answers the replies of writes still waiting with an error that says so.
   */
  get deposed(): string | undefined {
    if (this.#deposedBy !== undefined || this.#replica) return this.#deposedBy;
    return this.#fences?.acks();
  }

  /**
   * Why this master takes no new client write right now although no newer master is known (its
   * coordinator's lease cannot be trusted, a switchover hands over), or undefined: writes are
   * refused with it as `-READONLY`, which clients retry.
   */
  get writeFence(): string | undefined {
    return this.#replica || this.#fences === undefined ? undefined : this.#fences.writes();
  }

  /**
   * Installs a coordinator's fences. `writes()` refuses new client writes while it returns a
   * reason; `acks()` also turns the replies of writes applied but not yet sent into errors (the
   * server asks it when a batch's replies leave: as fresh as the clock, so a master paused past
   * its lease acknowledges nothing when it wakes).
   */
  setFences(fences: WriteFences | undefined): void {
    this.#fences = fences;
  }

  /** Installs what a coordinator reports in `INFO replication` (after the role's own) and TOPOLOGY. */
  setCoordinatorReport(report: CoordinatorReport | undefined): void {
    this.#coordinator = report;
  }

  /** The coordinator's `INFO replication` fields (none without a coordinator). */
  coordinatorInfo(): InfoFields {
    return this.#coordinator?.info() ?? [];
  }

  /** The coordinator's TOPOLOGY object (undefined without a coordinator). */
  coordinatorTopology(): TopologyCoordinator | undefined {
    return this.#coordinator?.topology();
  }

  /** True from a master's `REPLICATE DIVERGED` until the full sync replaced this node's log. */
  get diverged(): boolean {
    return this.#diverged;
  }

  /** A master said this replica's log diverged from its own: a full sync will replace it. */
  noteDiverged(): void {
    this.#diverged = true;
  }

  /** The epoch a `PROMOTE` in progress takes, or undefined. */
  get promotingEpoch(): number | undefined {
    return this.#promotingEpoch;
  }

  /** True while a role change runs (a promotion or a demotion). */
  get changing(): boolean {
    return this.#promotingEpoch !== undefined || this.#demoting;
  }

  /** The master `REPLICAOF` named (`host:port`), or "" (a replica by its settings). */
  get followedMaster(): string {
    return this.#followedMaster;
  }

  /** A master's replicator (undefined on a replica, or a master without replicas). */
  get replicator(): Replicator | undefined {
    return this.#master.replicator;
  }

  /**
   * A replica's forwarder to replicas of its own (cascading; undefined on a master, or a replica
   * without replicas).
   */
  get forwarder(): Replicator | undefined {
    return this.#forwarder.replicator;
  }

  /** The replicator of this node's replicas, whatever its role: a master's or a forwarder. */
  get downstream(): Replicator | undefined {
    return this.#master.replicator ?? this.#forwarder.replicator;
  }

  /** A replica's applier (undefined on a master, and while a demotion runs). */
  get applier(): ReplicaApplier | undefined {
    return this.#applier;
  }

  /** The epoch this node's own records are written in (a master's epoch). */
  get ownEpoch(): number {
    return this.#node.store.epoch;
  }

  /** What this node remembers across restarts (read only: the role writes it). */
  get state(): Readonly<NodeState> {
    return this.#state;
  }

  /** Where clients reach this node: `ADVERTISE_ADDRESS`, else the address it listens on. */
  get advertisedAddress(): string {
    const node = this.#node;
    if (node.config.ADVERTISE_ADDRESS !== "") return node.config.ADVERTISE_ADDRESS;
    return formatHostPort({ host: node.host, port: node.port });
  }

  /** The node's links as data: a replica's master, or a master's replicas. */
  status(): ReplicationStatus {
    return replicationStatus(
      this.#replica,
      this.#applier,
      this.downstream,
      this.#state.keyFilter,
    );
  }

  /** Calls `listener` after each change of role or epoch; returns the unsubscribe function. */
  subscribe(listener: (event: RoleEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // -------------------------------------------------------------------------- transitions

  /**
   * Replica → master in `epoch` (default: the highest known + 1; a coordinator passes the epoch
   * it was granted, which must be above every epoch this node knows). From the first moment,
   * `REPLICATE` is answered as the master of `epoch` would (an older master's stream gets
   * STALEEPOCH); the node keeps its data and LSN, writes an empty record in the new epoch, starts
   * a replicator (to `replicas`, or none until `REPLICAS ADD`) and takes client writes once the
   * promotion is in `NODE_STATE.json`. `by` says who asked (logged).
   */
  async promote(
    options: { epoch?: number; by?: string; replicas?: HostPort[] } = {},
  ): Promise<Promotion> {
    const store = this.#node.store;
    if (this.changing) {
      throw new RoleChangeError("a role change (PROMOTE or REPLICAOF) is already running");
    }
    if (!this.#replica) {
      throw new RoleChangeError(`this node is already a master (epoch ${store.epoch})`);
    }
    const filter = this.#state.keyFilter ?? [];
    if (filter.length > 0) {
      throw new RoleChangeError(
        `this replica is filtered: it holds only keys under [${filter.join(",")}], not every ` +
          `write, so it can never become a master; promote a replica without a key filter`,
      );
    }
    if (this.#applier?.getInfo().fullSyncInProgress) {
      throw new RoleChangeError(
        "a full sync from the master is in progress: this replica's data is incomplete; " +
          "promote another replica, or wait for the sync to finish",
      );
    }
    const epoch = options.epoch ?? this.epoch + 1;
    if (!Number.isInteger(epoch) || epoch > MAX_EPOCH) {
      throw new RoleChangeError(`cannot promote: epoch ${epoch} would be above ${MAX_EPOCH}`);
    }
    if (epoch <= this.epoch) {
      throw new RoleChangeError(
        `cannot promote to epoch ${epoch}: this node knows epoch ${this.epoch} already`,
      );
    }
    // From here on REPLICATE is answered as the master of `epoch` would, and no record is
    // applied: the log ends here.
    this.#promotingEpoch = epoch;
    // Its own replicas (cascading) become the new master's direct replicas.
    const forwarded = this.#forwarder.addresses();
    await this.#forwarder.stop(0);
    try {
      await store.whenDurable(store.lastLsn);
      const fromLsn = store.lastLsn;
      // No await from promote() to start(): the replicator must see every record after the
      // marker from the in-memory stream.
      // Its replicas are added after the marker: a link takes the store's epoch of the moment
      // it is made into its HELLO.
      const replicator = this.#master.create([], "durable", fromLsn);
      const markerLsn = store.replicationLog.promote(epoch);
      // Reads show the old epoch's data once the new epoch's first record is committed (in sync
      // mode: on the required replicas of this master), as a new Raft leader does.
      this.#node.commit.clear();
      this.#node.commit.raiseFloor(markerLsn);
      this.#master.use(replicator);
      const added = new Set<string>();
      for (const address of [...forwarded, ...(options.replicas ?? [])]) {
        const text = formatHostPort(address);
        if (added.has(text)) continue;
        added.add(text);
        replicator.addReplica(address.host, address.port, address.keyPrefixes);
      }
      this.#applier?.stop();
      this.#applier = undefined;
      this.#deposedBy = undefined;
      this.#followedMaster = "";
      // Client writes stay refused until the promotion is on disk, so a restart with the old
      // settings can never silently turn a master that took writes into a replica.
      // A master has no master and no local writes to replace.
      this.#saveState(
        markRole(
          { ...this.#state, highestEpochSeen: epoch, replicaOf: undefined, localWrites: undefined },
          { role: "master", configured: this.#configuredRole, nowIso: new Date().toISOString() },
        ),
      );
      this.#replica = false;
      await store.whenDurable(markerLsn);
      this.#emit({ kind: "promoted", epoch, lsn: fromLsn, by: options.by ?? "" });
      return { epoch, lsn: fromLsn, markerLsn };
    } catch (error) {
      // Still a replica: its own replicas are forwarded to again.
      if (this.#replica && forwarded.length > 0) this.#forwarder.add(forwarded);
      throw error;
    } finally {
      this.#promotingEpoch = undefined;
    }
  }

  /**
   * Makes this node a replica that expects `master` (`undefined`: not named; the stream of
   * whichever master connects in the newest epoch is taken), in `epoch` when given (the new
   * master's: every older master's stream is fenced from now on, and the epoch is remembered
   * across restarts before this returns).
   *
   * On a replica this only re-points it. On a master it is a demotion: client writes are refused
   * at once, what was written is made durable and drained to the connected replicas (up to
   * `REPLICATION_TIMEOUT`; waiting sync writes that get no acknowledgement fail with the usual
   * error), the replicator stops, and the applier takes the new master's stream (a log that went
   * past the new master's history is replaced by a full sync). A demoted node refuses to restart
   * as a master (`NODE_STATE.json`) until its settings say `--replica`.
   */
  async follow(
    master: HostPort | undefined,
    options: { epoch?: number; by?: string } = {},
  ): Promise<void> {
    if (this.changing) {
      throw new RoleChangeError("a role change (PROMOTE or REPLICAOF) is already running");
    }
    const address = master === undefined ? "" : formatHostPort(master);
    if (master !== undefined && this.#isSelf(master)) {
      throw new RoleChangeError(`${address} is this node itself`);
    }
    const epoch = options.epoch;
    if (epoch !== undefined && (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH)) {
      throw new RoleChangeError(`epoch ${epoch} is not a whole number from 0 to ${MAX_EPOCH}`);
    }
    if (epoch !== undefined && epoch < this.epoch) {
      throw new RoleChangeError(
        `epoch ${epoch} is older than epoch ${this.epoch}, the newest this node knows: a master ` +
          `of epoch ${epoch} is deposed`,
      );
    }
    if (this.#replica) {
      this.#followedMaster = address;
      this.#saveState({
        ...this.#state,
        highestEpochSeen: this.#newerEpoch(epoch),
        ...this.#replicaOf(address),
      });
      this.#announce(epoch);
      this.#emit({ kind: "following", master: address, epoch: this.epoch, by: options.by ?? "" });
      return;
    }
    await this.#demote(address, epoch, options.by ?? "");
  }

  async #demote(address: string, epoch: number | undefined, by: string): Promise<void> {
    const node = this.#node;
    const store = node.store;
    this.#demoting = true;
    this.#replica = true; // client writes refused from now on
    try {
      log.warn(
        "DEMOTING to replica{of} by {by}: client writes are refused from now on; draining the " +
          "replicas",
        { event: "demoting", of: address === "" ? "" : ` of ${address}`, master: address, by },
      );
      await store.whenDurable(store.lastLsn);
      await this.#master.stop(node.config.REPLICATION_TIMEOUT * 1000);
      node.commit.clear();
      store.replicationLog.demote();
      this.#followedMaster = address;
      this.#applier = this.#newApplier();
      // The replies of the writes it took as a master were sent (or failed) while it drained:
      // from here on what it writes is its new master's stream, answered as any replica's.
      this.#deposedBy = undefined;
      this.#saveState(
        markRole(
          {
            ...this.#state,
            highestEpochSeen: this.#newerEpoch(epoch),
            ...this.#replicaOf(address),
          },
          { role: "replica", configured: this.#configuredRole, nowIso: new Date().toISOString() },
        ),
      );
      this.#announce(epoch);
    } finally {
      this.#demoting = false;
    }
    log.warn(
      "DEMOTED to replica{of} by {by} at LSN {lsn} (epoch {epoch}): it takes the stream of the " +
        "master of the newest epoch; records past that master's history are replaced by a full " +
        "sync. Make it permanent in this node's settings (--replica): until then it refuses to " +
        "restart as a master",
      {
        event: "demoted",
        of: address === "" ? "" : ` of ${address}`,
        master: address,
        by,
        lsn: store.lastLsn,
        epoch: this.epoch,
      },
    );
    this.#emit({ kind: "following", master: address, epoch: this.epoch, by });
  }

  /**
   * A newer master exists (epoch `newerEpoch`): from now on this node acknowledges no write.
   * Client writes are refused (`-READONLY`); writes applied here whose replies are not sent yet
   * get an error instead of OK (the server's `deposed`); waiting sync writes fail at once; the
   * links to replicas stop. The epoch is remembered (NODE_STATE.json): restarted as a master, it
   * is still deposed. Nothing happens on a replica, or on a master deposed already.
   */
  depose(newerEpoch: number, reason: string): void {
    if (this.#replica || this.#deposedBy !== undefined) return;
    this.#deposedBy = reason;
    this.#announcedEpoch = Math.max(this.#announcedEpoch, newerEpoch);
    log.error(
      "DEPOSED: {reason}. Another node was promoted (epoch {newerEpoch}; this node's is " +
        "{epoch}); this node now refuses client writes, and writes not yet acknowledged are " +
        "answered with an error. Stop it, or make it a replica of the new master (REPLICAOF " +
        "host port, or restart it with --replica) and add it there (REPLICAS ADD)",
      { event: "deposed", reason, newerEpoch, epoch: this.#node.store.epoch },
    );
    this.#master.depose(reason);
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
    this.#emit({ kind: "deposed", epoch: newerEpoch, reason });
  }

  /**
   * A master's HELLO announced `epoch` (at least the newest known, checked by the caller): it is
   * remembered durably before this returns (a restart must not forget it), then known.
   */
  learnEpoch(epoch: number): void {
    if (epoch > this.#state.highestEpochSeen) {
      this.#saveState({ ...this.#state, highestEpochSeen: epoch });
    }
    this.#announce(epoch);
  }

  /**
   * Starts replicating to `addresses` (`REPLICAS ADD`): the first ones start this master's
   * replicator, whose position is the durable LSN (later records come through `onDurable`).
   */
  addReplicas(addresses: HostPort[]): void {
    if (this.#replica) {
      if (this.#demoting || this.#applier === undefined) {
        throw new RoleChangeError("this node is becoming a replica (REPLICAOF): retry shortly");
      }
      this.#forwarder.add(addresses);
      return;
    }
    if (this.#deposedBy !== undefined) {
      throw new RoleChangeError(
        `this node was deposed (${this.#deposedBy}): it sends its history to no replica`,
      );
    }
    this.#master.add(addresses);
  }

  /**
   * Gives the replica at `address` (`host:port` as listed) the key filter `prefixes` (none: every
   * key); it is resynced to hold exactly those keys. False when it is not listed.
   */
  setKeyFilter(address: string, prefixes: readonly string[]): boolean {
    return this.downstream?.setKeyFilter(address, prefixes) ?? false;
  }

  /** Stops replicating to `address` (`host:port` as listed); false when it is not listed. */
  removeReplica(address: string): Promise<boolean> {
    return this.#replica ? this.#forwarder.remove(address) : this.#master.remove(address);
  }

  /**
   * A local write is about to be applied on a replica that never followed a master: counted
   * durably first (a crash in between overcounts, which costs one needless full sync).
   */
  countLocalWrite(): void {
    this.#saveState({ ...this.#state, localWrites: (this.#state.localWrites ?? 0) + 1 });
  }

  /** Graceful stop: drains the replicas within `SHUTDOWN_TIMEOUT_SECONDS`. */
  async close(): Promise<void> {
    const drainMs = this.#node.config.SHUTDOWN_TIMEOUT_SECONDS * 1000;
    await Promise.all([this.#master.stop(drainMs), this.#forwarder.stop(drainMs)]);
  }

  // ------------------------------------------------------------------------------ private

  /** The role the node's settings give it. */
  get #configuredRole(): RoleName {
    return this.#node.config.REPLICA || coordinated(this.#node.config) ? "replica" : "master";
  }

  #isSelf(address: HostPort): boolean {
    const node = this.#node;
    return (address.host === node.host && address.port === node.port) ||
      formatHostPort(address) === this.advertisedAddress;
  }

  #newerEpoch(epoch: number | undefined): number {
    return Math.max(this.#state.highestEpochSeen, epoch ?? 0);
  }

  #announce(epoch: number | undefined): void {
    if (epoch === undefined || epoch <= this.#announcedEpoch) return;
    const before = this.epoch;
    this.#announcedEpoch = epoch;
    if (this.epoch <= before) return;
    // A newer master exists: its stream decides what of this node's log stays, so nothing is
    // forwarded to this node's own replicas until it reached here.
    this.#forwarder.epochChanged();
    this.#emit({ kind: "epoch", epoch: this.epoch });
  }

  /** The `replicaOf` field of the node state for `address` ("" removes it). */
  #replicaOf(address: string): Partial<NodeState> {
    return { replicaOf: address === "" ? undefined : address };
  }

  #newApplier(): ReplicaApplier {
    return new ReplicaApplier(replicaStoreOf(this.#node.store), Date.now, {
      knownEpoch: () => this.epoch,
      learnEpoch: (epoch) => this.learnEpoch(epoch),
      localWrites: () => this.#state.localWrites ?? 0,
      compression: this.#node.config.REPLICATION_COMPRESSION,
      keyFilter: () => this.#state.keyFilter ?? [],
      keyFilterHeld: (prefixes) => {
        const { keyFilter: _, ...rest } = this.#state;
        this.#saveState(prefixes.length === 0 ? rest : { ...rest, keyFilter: [...prefixes] });
        log.warn("this replica now holds {filter}", {
          event: "key_filter_held",
          filter: prefixes.length === 0 ? "every key" : `only keys under [${prefixes.join(",")}]`,
        });
      },
      maxUnpackedBytes: this.#node.config.MAX_REQUEST_BYTES,
      fullSyncCommitted: () => {
        this.#diverged = false;
        this.#forwarder.logReplaced();
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
    }, this.follower);
  }

  /**
   * A replica refused this node's stream: `STALEEPOCH` means a newer master exists. A master is
   * deposed; a forwarding replica learns the epoch (it then refuses the old master's stream and
   * forwards nothing until the new master's reached it).
   */
  #refused(address: string, code: string, message: string): void {
    if (code !== "STALEEPOCH") return;
    const newer = newerEpochOf(message) ?? this.epoch + 1;
    if (this.#replica) {
      if (newer > this.epoch) {
        log.warn(
          "sub-replica {replica} knows a master of epoch {epoch}, newer than this node's " +
            "{known}: this node refuses older masters from now on",
          { replica: address, epoch: newer, known: this.epoch },
        );
        this.learnEpoch(newer);
      }
      return;
    }
    this.depose(newer, `replica ${address} follows a newer master: ${message}`);
  }

  /** Replaces the node state (fields set to undefined are left out), durably, and keeps it. */
  #saveState(state: NodeState): void {
    const cleaned = Object.fromEntries(
      Object.entries(state).filter(([, value]) => value !== undefined),
    ) as unknown as NodeState;
    writeNodeState(this.#node.store.dir, cleaned);
    this.#state = cleaned;
  }

  #emit(event: RoleEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        log.error("a role listener failed on {kind}: {error}", {
          kind: event.kind,
          error: String(error),
        });
      }
    }
  }
}

/** True when a coordinator (etcd) gives the node its role. */
function coordinated(config: Config): boolean {
  return config.COORDINATOR !== "none";
}

/** The newer epoch a `STALEEPOCH` refusal carries (its first word), or undefined. */
export function newerEpochOf(message: string): number | undefined {
  const match = /^(\d{1,10}) /.exec(message);
  const epoch = match === null ? NaN : Number(match[1]);
  return Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH ? epoch : undefined;
}

/**
 * Reads the node state and reconciles it with the role the settings ask for. A node that
 * `PROMOTE` made a master refuses to start as a replica unless demoted on purpose (`--demote`),
 * and one that `REPLICAOF` made a replica refuses to start as a master (it would be a second
 * one); starting it in the role it took clears the mark (its settings now say what the command
 * did).
 */
export async function reconcileRole(node: ServerNode): Promise<NodeState> {
  const dir = node.store.dir;
  const state = await readNodeState(dir);
  // With a coordinator the settings name no role: the node starts as a replica, and the
  // election (not a person) decides whether its promotion stands.
  const replica = node.config.REPLICA || coordinated(node.config);
  if (state.demotedAt !== undefined) {
    if (!replica) {
      throw new NodeStateError(
        `${dir} belongs to a replica: REPLICAOF made this node a replica` +
          (state.replicaOf === undefined ? "" : ` of ${state.replicaOf}`) +
          ` (at ${state.demotedAt}), but it was started as a master, which could make two ` +
          `masters. Start it with --replica (make the demotion permanent in its settings); to ` +
          `make it a master again, PROMOTE it once it runs as a replica`,
      );
    }
    const { demotedAt: _, ...cleared } = state;
    writeNodeState(dir, cleared);
    return cleared;
  }
  if (state.promotedEpoch === undefined) return state;
  const { promotedEpoch: _, promotedAt: __, ...cleared } = state;
  if (!replica) {
    const store = node.store;
    if (Math.max(store.epoch, store.replicationLog.lastEpoch) < state.promotedEpoch) {
      // The promotion's marker record did not survive (fsync no/everysec and a power loss):
      // write it again, so this master's records carry the epoch it was promoted to.
      await store.whenDurable(store.replicationLog.promote(state.promotedEpoch));
    }
    writeNodeState(dir, cleared);
    log.info("PROMOTE of epoch {epoch} is now this master's configured role", {
      event: "promotion_confirmed",
      epoch: state.promotedEpoch,
    });
    return cleared;
  }
  if (!node.config.DEMOTE && !coordinated(node.config)) {
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
