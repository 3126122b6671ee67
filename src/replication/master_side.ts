/**
 * What runs on a master for its role: its {@link Replicator}, created with the node (settings),
 * at the first `REPLICAS ADD`, or by a promotion, and stopped by a demotion or the shutdown. It
 * plugs the replicator into the server's commit point in sync mode (reads then stop at what the
 * required replicas acknowledged) and unplugs it when it stops. `NodeRole` owns one and decides
 * when it runs.
 *
 * @module
 */
import { type Config, formatHostPort, type HostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { ServerNode } from "../server/hooks.ts";
import { Replicator, type ReplicatorOptions } from "./replicator.ts";
import { masterSourceOf } from "./store_adapters.ts";

const log = getLog("replication");

/** How a master's replicator reaches its replicas and reports refusals. */
export interface MasterSideOptions {
  /** The replication token a master proves to its replicas. */
  authToken?: string;
  /** Opens a master's connection to a replica (default TCP). */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** A replica refused a request (`STALEEPOCH`: a newer master exists). */
  onRefused: (address: string, code: string, message: string) => void;
  /** Where clients reach this master, told to each replica in HELLO. */
  masterAddress: () => string;
}

/** A master's replicator slot; see the module comment. */
export class MasterSide {
  readonly #node: ServerNode;
  readonly #options: MasterSideOptions;
  #replicator: Replicator | undefined;

  constructor(node: ServerNode, options: MasterSideOptions) {
    this.#node = node;
    this.#options = options;
  }

  /** The running replicator, or undefined (a replica, or a master without replicas). */
  get replicator(): Replicator | undefined {
    return this.#replicator;
  }

  /**
   * A replicator for `addresses`, not started. `position`: `"last"` for one created with the
   * store, before any write; `"durable"` for one created at runtime (records appended but not yet
   * durable reach it through `onDurable`). `committedLsn`: what counts as committed already in
   * sync mode (0 for a master starting up, whose log may hold writes whose sync wait failed).
   */
  create(addresses: HostPort[], position: "last" | "durable", committedLsn: number): Replicator {
    const node = this.#node;
    const config: Config = { ...node.config, REPLICA_ADDRESSES: addresses };
    const options: ReplicatorOptions = {
      connect: this.#options.connect,
      authToken: this.#options.authToken,
      onRefused: this.#options.onRefused,
      masterAddress: this.#options.masterAddress,
      committedLsn,
    };
    return new Replicator(masterSourceOf(node.store, position), config, Date.now, options);
  }

  /**
   * Makes `replicator` this master's and starts it; in sync mode, reads then stop at what its
   * replicas acknowledged (the server's commit point).
   */
  use(replicator: Replicator): void {
    this.#replicator = replicator;
    replicator.start();
    if (replicator.mode !== "sync") return;
    this.#node.commit.setReplication({
      committedLsn: () => replicator.committedLsn,
      awaitReplication: (lsn) =>
        replicator.waitForReplicas(lsn).then(() => undefined, (error: Error) => error.message),
    });
  }

  /** Starts replicating to the replicas of the node's settings (at start, before any write). */
  startWithNode(addresses: HostPort[]): void {
    this.use(this.create(addresses, "last", 0));
  }

  /**
   * Starts replicating to `addresses` (`REPLICAS ADD`): the first ones start a replicator whose
   * position is the durable LSN.
   */
  add(addresses: HostPort[]): void {
    for (const address of addresses) {
      if (this.#replicator === undefined) {
        this.use(this.create([address], "durable", this.#node.store.durableLsn));
        log.info("replica {replica} added", { replica: formatHostPort(address) });
      } else {
        this.#replicator.addReplica(address.host, address.port, address.keyPrefixes);
      }
    }
  }

  /** Stops replicating to `address` (`host:port` as listed); false when it is not listed. */
  remove(address: string): Promise<boolean> {
    return this.#replicator?.removeReplica(address) ?? Promise.resolve(false);
  }

  /**
   * Stops the replicator after up to `drainMs` for the connected replicas to acknowledge what is
   * durable (waiting sync writes then fail with the usual error), and unplugs it.
   */
  async stop(drainMs: number): Promise<void> {
    const replicator = this.#replicator;
    this.#replicator = undefined;
    this.#node.commit.setReplication(undefined);
    await replicator?.stop(drainMs);
  }

  /** A newer master exists: waiting sync writes fail now, the links stop (in the background). */
  depose(reason: string): void {
    this.#replicator?.depose(reason).catch((error) =>
      log.error("stopping the links of a deposed master failed: {error}", { error: String(error) })
    );
  }
}
