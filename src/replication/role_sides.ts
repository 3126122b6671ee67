/**
 * What runs for a node's role, in one place: the master's replicator slot ({@link MasterSide}),
 * a replica's forwarder to replicas of its own ({@link ForwarderSide}) and a replica's applier
 * ({@link ReplicaSide}), made with the node and wired to the role. `NodeRole` decides which runs
 * when; this makes them, starts the ones the settings ask for, routes a removal to the running
 * one and drains both senders at shutdown.
 *
 * @module
 */
import type { ServerNode } from "../server/hooks.ts";
import { chainReportOf, ForwarderSide } from "./forwarder_side.ts";
import type { Follower } from "./follower.ts";
import { MasterSide } from "./master_side.ts";
import type { KeptNodeState } from "./node_state.ts";
import { ReplicaSide } from "./replica_side.ts";
import type { Replicator } from "./replicator.ts";

/** What the sides ask of the node's role. */
export interface RoleSidesOptions {
  /** The replication token proved to replicas and sub-replicas. */
  authToken?: string;
  /** Opens a connection to a replica (default TCP). */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** The node state the role keeps. */
  state: KeptNodeState;
  /** A replica refused a request (`STALEEPOCH`: a newer master exists). */
  onRefused(address: string, code: string, message: string): void;
  /** Where clients reach this node, told to each replica in HELLO. */
  advertisedAddress(): string;
  /** The newest epoch this node knows. */
  epoch(): number;
  /** A master's HELLO announced `epoch`: remembered durably, then known. */
  learnEpoch(epoch: number): void;
  /** A full sync replaced this replica's data (its sub-replicas start over meanwhile). */
  logReplaced(): void;
}

/** The three sides of a node's role; see the module comment. */
export class RoleSides {
  readonly #node: ServerNode;
  /** What runs for the master role: its replicator. */
  readonly master: MasterSide;
  /** What runs on a replica with replicas of its own (cascading): its forwarder. */
  readonly forwarder: ForwarderSide;
  /** What runs for the replica role: its applier. */
  readonly replica: ReplicaSide;

  constructor(node: ServerNode, follower: Follower, options: RoleSidesOptions) {
    this.#node = node;
    const { authToken, connect, state } = options;
    const onRefused = options.onRefused;
    this.master = new MasterSide(node, {
      authToken,
      connect,
      onRefused,
      masterAddress: options.advertisedAddress,
    });
    this.forwarder = new ForwarderSide(node, {
      authToken,
      connect,
      onRefused,
      advertisedAddress: options.advertisedAddress,
      epoch: options.epoch,
      keyFilter: () => state.keyFilter,
      chain: () => chainReportOf(this.replica.applier?.getInfo(), node.store.lastLsn),
    });
    this.replica = new ReplicaSide(node, follower, {
      state,
      knownEpoch: options.epoch,
      learnEpoch: options.learnEpoch,
      fullSyncCommitted: () => {
        options.logReplaced();
        this.forwarder.logReplaced();
      },
    });
  }

  /**
   * Starts what the role runs with the node: a replica's applier (and its forwarder, when the
   * settings list replicas), or a master's replicator to the replicas its settings list.
   */
  startWithNode(replica: boolean): void {
    const { config, commit, store } = this.#node;
    const replicas = config.REPLICATION_ENABLED ? config.REPLICA_ADDRESSES : [];
    if (replica) {
      this.replica.start();
      if (replicas.length > 0) this.forwarder.startWithNode(replicas);
    } else if (replicas.length > 0) {
      this.master.startWithNode(replicas);
      // The log may hold writes whose sync wait failed before a restart: reads wait until the
      // replicas have everything (async mode: it is durable already, the floor costs nothing).
      commit.raiseFloor(store.lastLsn);
    }
  }

  /** The replicator of this node's replicas, whatever its role: a master's or a forwarder. */
  get downstream(): Replicator | undefined {
    return this.master.replicator ?? this.forwarder.replicator;
  }

  /** Stops replicating to `address` (`host:port` as listed); false when it is not listed. */
  remove(replica: boolean, address: string): Promise<boolean> {
    return replica ? this.forwarder.remove(address) : this.master.remove(address);
  }

  /** Graceful stop: drains the replicas within `drainMs`. */
  async close(drainMs: number): Promise<void> {
    await Promise.all([this.master.stop(drainMs), this.forwarder.stop(drainMs)]);
  }
}
