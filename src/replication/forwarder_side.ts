/**
 * What runs on a replica that has replicas of its own (cascading: `--replicas` on a `--replica`
 * node, or `REPLICAS ADD` on a replica): a {@link Replicator} in forwarding mode over the
 * replica's own store. It forwards the records this node made durable, with its master's LSNs
 * and epochs unchanged, so a sub-replica's position means the same on every node of the chain
 * and it can be re-pointed to the master or another replica without a full sync. Catch-up reads
 * this node's log and a full sync sends a snapshot of this node's data, as a master's would.
 *
 * Rules the {@link NodeRole} keeps through it:
 * - Fencing: it announces the newest epoch this node knows, and forwards only while its log's
 *   last record is of that epoch. Once this node learns of a newer master (a HELLO, `REPLICAOF
 *   ... EPOCH`, or a sub-replica's `STALEEPOCH`), it stops forwarding until that master's stream
 *   reached it: its log may hold records a deposed master wrote past the promotion, which the new
 *   master's stream replaces (a full sync) or confirms (its first record in the new epoch).
 * - A full sync that replaced this node's data makes every sub-replica start over with a
 *   handshake (streaming on when its records are still in this node's history).
 * - It is always async: sync mode counts only a master's direct replicas.
 * - `PROMOTE` turns its replicas into the new master's direct replicas (no full sync).
 *
 * @module
 */
import { type Config, formatHostPort, type HostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { ServerNode } from "../server/hooks.ts";
import type { ReplicaInfo } from "./replica_applier.ts";
import { type ChainReport, Replicator } from "./replicator.ts";
import { masterSourceOf } from "./store_adapters.ts";

const log = getLog("replication");

/** What the forwarder needs from the node's role. */
export interface ForwarderOptions {
  /** The replication token proved to each sub-replica. */
  authToken?: string;
  /** Opens a connection to a sub-replica (default TCP). */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** A sub-replica refused a request (`STALEEPOCH`: it knows a newer master). */
  onRefused: (address: string, code: string, message: string) => void;
  /** Where clients reach this node, told to each sub-replica in HELLO. */
  advertisedAddress: () => string;
  /** The newest epoch this node knows. */
  epoch: () => number;
  /** What this node knows of the chain above it. */
  chain: () => ChainReport;
  /** The key prefixes of the data this node holds (a filtered replica), empty: every key. */
  keyFilter: () => readonly string[];
}

/** What a replica's applier knows of the chain above it (see `ReplicaInfo`). */
export type ChainFacts = Pick<
  ReplicaInfo,
  "stalenessMs" | "originKnownLsn" | "originLagMs" | "chainDepth" | "originAddress"
>;

/**
 * What this node tells its sub-replicas about the chain above it, from its applier's `info`
 * (undefined: none yet) and its log's last LSN. The origin's lag is how old this node's data may
 * be, not only its lag: a sub-replica of a node cut off from its master is as stale
 * (`REPLICA_MAX_STALENESS_MS` and clients' `maxStalenessMs` see it).
 */
export function chainReportOf(
  info: ChainFacts | undefined,
  lastLsn: number,
): ChainReport {
  const stalenessMs = info?.stalenessMs ?? 0;
  return {
    originLsn: info?.originKnownLsn ?? lastLsn,
    originLagMs: Number.isFinite(stalenessMs) ? stalenessMs : info?.originLagMs ?? 0,
    depth: info?.chainDepth ?? 0,
    originAddress: info?.originAddress ?? "",
  };
}

/** A replica's forwarding replicator slot; see the module comment. */
export class ForwarderSide {
  readonly #node: ServerNode;
  readonly #options: ForwarderOptions;
  #replicator: Replicator | undefined;

  constructor(node: ServerNode, options: ForwarderOptions) {
    this.#node = node;
    this.#options = options;
  }

  /** The running forwarder, or undefined (no replicas of its own). */
  get replicator(): Replicator | undefined {
    return this.#replicator;
  }

  /** The replicas it forwards to, as listed. */
  addresses(): HostPort[] {
    return this.#replicator?.replicaManager.replicas.map((r) => ({ host: r.host, port: r.port })) ??
      [];
  }

  /**
   * Why this node cannot forward now, or undefined: it knows a newer epoch than its log's last
   * record (a newer master exists whose stream has not reached it yet).
   */
  notReady(): string | undefined {
    const store = this.#node.store;
    const known = this.#options.epoch();
    const logEpoch = Math.max(store.replicationLog.lastEpoch, store.epoch);
    if (logEpoch >= known) return undefined;
    return `this node knows of a master of epoch ${known} but its log ends in epoch ` +
      `${logEpoch}: it forwards again once that master's stream reached it`;
  }

  /** Starts forwarding to `addresses` (with the node, before any record arrives). */
  startWithNode(addresses: HostPort[]): void {
    this.#use(this.#create(addresses, "last"));
  }

  /** Forwards to `addresses` too (`REPLICAS ADD` on a replica). */
  add(addresses: HostPort[]): void {
    for (const address of addresses) {
      if (this.#replicator === undefined) {
        this.#use(this.#create([address], "durable"));
        log.info("sub-replica {replica} added", { replica: formatHostPort(address) });
      } else {
        this.#replicator.addReplica(address.host, address.port, address.keyPrefixes);
      }
    }
  }

  /** Stops forwarding to `address` (`host:port` as listed); false when it is not listed. */
  remove(address: string): Promise<boolean> {
    return this.#replicator?.removeReplica(address) ?? Promise.resolve(false);
  }

  /** This node's log was replaced by a full sync: every sub-replica starts over. */
  logReplaced(): void {
    this.#replicator?.restartLog(
      this.#node.store.lastLsn,
      "this node's data was replaced by a full sync from its master",
    );
  }

  /** This node learned of a newer epoch: forwarding pauses until {@link notReady} clears. */
  epochChanged(): void {
    const why = this.notReady();
    if (why !== undefined) this.#replicator?.pause(why);
  }

  /** Stops forwarding, after up to `drainMs` for the connected sub-replicas to catch up. */
  async stop(drainMs: number): Promise<void> {
    const replicator = this.#replicator;
    this.#replicator = undefined;
    await replicator?.stop(drainMs);
  }

  #create(addresses: HostPort[], position: "last" | "durable"): Replicator {
    const node = this.#node;
    const config: Config = { ...node.config, REPLICA_ADDRESSES: addresses };
    const options = this.#options;
    return new Replicator(masterSourceOf(node.store, position), config, Date.now, {
      connect: options.connect,
      authToken: options.authToken,
      onRefused: options.onRefused,
      masterAddress: options.advertisedAddress,
      forwarding: {
        epoch: options.epoch,
        notReady: () => this.notReady(),
        chain: options.chain,
        keyFilter: options.keyFilter,
      },
    });
  }

  #use(replicator: Replicator): void {
    this.#replicator = replicator;
    replicator.start();
  }
}
