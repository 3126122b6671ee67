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
import { formatHostPort, type HostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { InfoFields, ReplicationStatus, RoleGate, ServerNode } from "../server/hooks.ts";
import { KeptNodeState, type NodeState } from "./node_state.ts";
import { coordinated, reconcileRole } from "./reconcile_role.ts";
import {
  checkFollowEpoch,
  checkPromotion,
  promotionReplicas,
  refusalOutcome,
  RoleChangeError,
} from "./role_rules.ts";
import { replicationStatus } from "./replication_info.ts";
import type { TopologyCoordinator } from "./topology.ts";
import { Follower } from "./follower.ts";
import type { ReplicaApplier } from "./replica_applier.ts";
import { type RoleEvent, RoleListeners } from "./role_events.ts";
import { RoleSides } from "./role_sides.ts";
import type { Replicator } from "./replicator.ts";

const log = getLog("replication");

/** What a node is. */
export type RoleName = "master" | "replica";

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
  /** What runs for each role: a master's replicator, a replica's applier and forwarder. */
  readonly #sides: RoleSides;
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
  readonly #state: KeptNodeState;
  /** A coordinator's reasons this master may not take or acknowledge writes now. */
  #fences: WriteFences | undefined;
  /** A coordinator's fields for `INFO replication` and TOPOLOGY. */
  #coordinator: CoordinatorReport | undefined;
  /** A master told this replica its log diverged; cleared when the full sync replaced it. */
  #diverged = false;
  readonly #listeners = new RoleListeners();
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
    this.#state = new KeptNodeState(node.store.dir, state);
    this.#announcedEpoch = state.highestEpochSeen;
    this.#followedMaster = state.replicaOf ?? "";
    this.#sides = new RoleSides(node, this.follower, {
      authToken: options.authToken,
      connect: options.connect,
      state: this.#state,
      onRefused: (address, code, message) => this.#refused(address, code, message),
      advertisedAddress: () => this.advertisedAddress,
      epoch: () => this.epoch,
      learnEpoch: (epoch) => this.learnEpoch(epoch),
      logReplaced: () => this.#diverged = false,
    });
    const { config, store } = node;
    // With a coordinator every node starts as a replica: the election makes one the master.
    this.#replica = config.REPLICA || coordinated(config);
    this.#sides.startWithNode(this.#replica);
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
    return this.#sides.master.replicator;
  }

  /**
   * A replica's forwarder to replicas of its own (cascading; undefined on a master, or a replica
   * without replicas).
   */
  get forwarder(): Replicator | undefined {
    return this.#sides.forwarder.replicator;
  }

  /** The replicator of this node's replicas, whatever its role: a master's or a forwarder. */
  get downstream(): Replicator | undefined {
    return this.#sides.downstream;
  }

  /** A replica's applier (undefined on a master, and while a demotion runs). */
  get applier(): ReplicaApplier | undefined {
    return this.#sides.replica.applier;
  }

  /** The epoch this node's own records are written in (a master's epoch). */
  get ownEpoch(): number {
    return this.#node.store.epoch;
  }

  /** What this node remembers across restarts (read only: the role writes it). */
  get state(): Readonly<NodeState> {
    return this.#state.current;
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
      this.applier,
      this.downstream,
      this.#state.current.keyFilter,
    );
  }

  /** Calls `listener` after each change of role or epoch; returns the unsubscribe function. */
  subscribe(listener: (event: RoleEvent) => void): () => void {
    return this.#listeners.subscribe(listener);
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
    const epoch = checkPromotion({
      changing: this.changing,
      replica: this.#replica,
      ownEpoch: store.epoch,
      knownEpoch: this.epoch,
      keyFilter: this.#state.keyFilter,
      fullSyncInProgress: this.applier?.getInfo().fullSyncInProgress ?? false,
      epoch: options.epoch,
    });
    // From here on REPLICATE is answered as the master of `epoch` would, and no record is
    // applied: the log ends here.
    this.#promotingEpoch = epoch;
    // Its own replicas (cascading) become the new master's direct replicas.
    const forwarded = this.#sides.forwarder.addresses();
    await this.#sides.forwarder.stop(0);
    try {
      await store.whenDurable(store.lastLsn);
      const fromLsn = store.lastLsn;
      // No await from promote() to start(): the replicator must see every record after the
      // marker from the in-memory stream.
      // Its replicas are added after the marker: a link takes the store's epoch of the moment
      // it is made into its HELLO.
      const replicator = this.#sides.master.create([], "durable", fromLsn);
      const markerLsn = store.replicationLog.promote(epoch);
      // Reads show the old epoch's data once the new epoch's first record is committed (in sync
      // mode: on the required replicas of this master), as a new Raft leader does.
      this.#node.commit.clear();
      this.#node.commit.raiseFloor(markerLsn);
      this.#sides.master.use(replicator);
      for (const address of promotionReplicas(forwarded, options.replicas ?? [])) {
        replicator.addReplica(address.host, address.port, address.keyPrefixes);
      }
      this.#sides.replica.stop();
      this.#deposedBy = undefined;
      this.#followedMaster = "";
      // Client writes stay refused until the promotion is on disk, so a restart with the old
      // settings can never silently turn a master that took writes into a replica.
      // A master has no master and no local writes to replace.
      this.#state.changeRole(
        { highestEpochSeen: epoch, replicaOf: undefined, localWrites: undefined },
        { role: "master", configured: this.#configuredRole },
      );
      this.#replica = false;
      await store.whenDurable(markerLsn);
      this.#listeners.emit({ kind: "promoted", epoch, lsn: fromLsn, by: options.by ?? "" });
      return { epoch, lsn: fromLsn, markerLsn };
    } catch (error) {
      // Still a replica: its own replicas are forwarded to again.
      if (this.#replica && forwarded.length > 0) this.#sides.forwarder.add(forwarded);
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
    const { epoch, by = "" } = options;
    checkFollowEpoch(epoch, this.epoch);
    if (this.#replica) {
      this.#followedMaster = address;
      this.#state.replace({ ...this.#state.current, ...this.#state.following(address, epoch) });
      this.#announce(epoch);
      this.#listeners.emit({ kind: "following", master: address, epoch: this.epoch, by });
      return;
    }
    await this.#demote(address, epoch, by);
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
      await this.#sides.master.stop(node.config.REPLICATION_TIMEOUT * 1000);
      node.commit.clear();
      store.replicationLog.demote();
      this.#followedMaster = address;
      this.#sides.replica.start();
      // The replies of the writes it took as a master were sent (or failed) while it drained:
      // from here on what it writes is its new master's stream, answered as any replica's.
      this.#deposedBy = undefined;
      this.#state.changeRole(
        this.#state.following(address, epoch),
        { role: "replica", configured: this.#configuredRole },
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
    this.#listeners.emit({ kind: "following", master: address, epoch: this.epoch, by });
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
    this.#sides.master.depose(reason);
    try {
      this.#state.rememberEpoch(newerEpoch);
    } catch (error) {
      log.error("could not remember the newer epoch {epoch} in NODE_STATE.json: {error}", {
        epoch: newerEpoch,
        error: String(error),
      });
    }
    this.#listeners.emit({ kind: "deposed", epoch: newerEpoch, reason });
  }

  /**
   * A master's HELLO announced `epoch` (at least the newest known, checked by the caller): it is
   * remembered durably before this returns (a restart must not forget it), then known.
   */
  learnEpoch(epoch: number): void {
    this.#state.rememberEpoch(epoch);
    this.#announce(epoch);
  }

  /**
   * Starts replicating to `addresses` (`REPLICAS ADD`): the first ones start this master's
   * replicator, whose position is the durable LSN (later records come through `onDurable`).
   */
  addReplicas(addresses: HostPort[]): void {
    if (this.#replica) {
      if (this.#demoting || this.applier === undefined) {
        throw new RoleChangeError("this node is becoming a replica (REPLICAOF): retry shortly");
      }
      this.#sides.forwarder.add(addresses);
      return;
    }
    if (this.#deposedBy !== undefined) {
      throw new RoleChangeError(
        `this node was deposed (${this.#deposedBy}): it sends its history to no replica`,
      );
    }
    this.#sides.master.add(addresses);
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
    return this.#sides.remove(this.#replica, address);
  }

  /**
   * A local write is about to be applied on a replica that never followed a master: counted
   * durably first (a crash in between overcounts, which costs one needless full sync).
   */
  countLocalWrite(): void {
    this.#state.countLocalWrite();
  }

  /** Graceful stop: drains the replicas within `SHUTDOWN_TIMEOUT_SECONDS`. */
  async close(): Promise<void> {
    await this.#sides.close(this.#node.config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
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

  #announce(epoch: number | undefined): void {
    if (epoch === undefined || epoch <= this.#announcedEpoch) return;
    const before = this.epoch;
    this.#announcedEpoch = epoch;
    if (this.epoch <= before) return;
    // A newer master exists: its stream decides what of this node's log stays, so nothing is
    // forwarded to this node's own replicas until it reached here.
    this.#sides.forwarder.epochChanged();
    this.#listeners.emit({ kind: "epoch", epoch: this.epoch });
  }

  /**
   * A replica refused this node's stream: `STALEEPOCH` means a newer master exists. A master is
   * deposed; a forwarding replica learns the epoch (it then refuses the old master's stream and
   * forwards nothing until the new master's reached it).
   */
  #refused(address: string, code: string, message: string): void {
    const known = this.epoch;
    const outcome = refusalOutcome({ address, code, message }, {
      replica: this.#replica,
      knownEpoch: known,
    });
    if (outcome.kind === "depose") this.depose(outcome.epoch, outcome.reason);
    if (outcome.kind !== "learn") return;
    log.warn(
      "sub-replica {replica} knows a master of epoch {epoch}, newer than this node's " +
        "{known}: this node refuses older masters from now on",
      { replica: address, epoch: outcome.epoch, known },
    );
    this.learnEpoch(outcome.epoch);
  }
}
