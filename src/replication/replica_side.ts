/**
 * What runs on a replica for its role: its {@link ReplicaApplier}, created with the node or by a
 * demotion and stopped by a promotion, wired to the node's {@link Follower} and to the node state
 * it keeps (the key filter it holds, the local writes a full sync replaces). `NodeRole` owns one
 * and decides when it runs.
 *
 * @module
 */
import { getLog } from "../log.ts";
import type { ServerNode } from "../server/hooks.ts";
import type { Follower } from "./follower.ts";
import type { KeptNodeState } from "./node_state.ts";
import { ReplicaApplier } from "./replica_applier.ts";
import { replicaStoreOf } from "./store_adapters.ts";

const log = getLog("replication");

/** What a replica's applier asks of its role. */
export interface ReplicaSideOptions {
  /** The node state the role keeps. */
  state: KeptNodeState;
  /** The newest epoch this node knows. */
  knownEpoch(): number;
  /** A master's HELLO announced `epoch`: remembered durably, then known. */
  learnEpoch(epoch: number): void;
  /** A full sync replaced this node's data (after the node state forgot its local writes). */
  fullSyncCommitted(): void;
}

/** A replica's applier slot; see the module comment. */
export class ReplicaSide {
  readonly #node: ServerNode;
  readonly #follower: Follower;
  readonly #options: ReplicaSideOptions;
  #applier: ReplicaApplier | undefined;

  constructor(node: ServerNode, follower: Follower, options: ReplicaSideOptions) {
    this.#node = node;
    this.#follower = follower;
    this.#options = options;
  }

  /** The running applier (undefined on a master, and while a demotion runs). */
  get applier(): ReplicaApplier | undefined {
    return this.#applier;
  }

  /** Starts a new applier (the node is a replica now). */
  start(): void {
    const { state, knownEpoch, learnEpoch, fullSyncCommitted } = this.#options;
    const config = this.#node.config;
    this.#applier = new ReplicaApplier(replicaStoreOf(this.#node.store), Date.now, {
      knownEpoch,
      learnEpoch,
      localWrites: () => state.localWrites,
      compression: config.REPLICATION_COMPRESSION,
      keyFilter: () => state.keyFilter,
      keyFilterHeld: (prefixes) => {
        state.holdKeyFilter(prefixes);
        log.warn("this replica now holds {filter}", {
          event: "key_filter_held",
          filter: prefixes.length === 0 ? "every key" : `only keys under [${prefixes.join(",")}]`,
        });
      },
      maxUnpackedBytes: config.MAX_REQUEST_BYTES,
      fullSyncCommitted: () => {
        fullSyncCommitted();
        const replaced = state.forgetLocalWrites();
        if (replaced > 0) {
          log.warn("the full sync replaced this replica's {localWrites} local writes", {
            event: "local_writes_replaced",
            localWrites: replaced,
          });
        }
        return Promise.resolve();
      },
    }, this.#follower);
  }

  /** Stops the applier (the node is a master now). */
  stop(): void {
    this.#applier?.stop();
    this.#applier = undefined;
  }
}
