/**
 * The coordinator's driver: the I/O around the pure decisions of `election.ts`. It keeps this
 * node's lease in etcd alive (`lease_keeper.ts`), writes its member record, reads and watches the
 * cluster's keys (`cluster_watch.ts`), and carries out each decision through the node's {@link NodeRole} (the one owner of the role):
 * a campaign for the leader key, a promotion in the epoch etcd handed out, a re-point or a
 * demotion to the leader, a step-down.
 *
 * Lease and writes: the lease is renewed every third of its TTL. A master trusts it until the send
 * time of its last successful renewal plus the TTL etcd answered, minus a margin for clock drift
 * (Patroni's rule): past that instant etcd may have expired it and elected another node, so the
 * master refuses writes and acknowledges none (the server asks the fence when replies leave, on
 * the monotonic clock: a master paused past it acknowledges nothing when it wakes). It steps down
 * only when etcd says the leader key is not its own any more.
 *
 * @module
 */
import { type Config, etcdEndpoints, parseHostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { NodeRole } from "../replication/node_role.ts";
import type { TopologyCoordinator } from "../replication/topology.ts";
import type { InfoFields, ServerNode } from "../server/hooks.ts";
import {
  ackFence,
  decide,
  type Decision,
  type FenceFacts,
  type LeaderRecord,
  type MemberView,
  type SelfFacts,
  writeFence,
} from "./election.ts";
import { EtcdClient, EtcdError } from "./etcd_client.ts";
import { ClusterWatch, sleepUnlessAborted } from "./cluster_watch.ts";
import { LeaseKeeper } from "./lease_keeper.ts";
import { ClusterView } from "./cluster_view.ts";
import { memberAddresses, MemberReplicas } from "./member_replicas.ts";
import { type ClusterKeys, clusterKeys, formatLeader, formatMember } from "./records.ts";
import { switchover } from "./switchover.ts";

export { SwitchoverError } from "./switchover.ts";

const log = getLog("coordinator");

/** The timing a coordinator derives from FAILOVER_TTL_SECONDS and ETCD_TIMEOUT_MS. */
export interface CoordinatorTiming {
  ttlSeconds: number;
  /** Between two renewals (a third of the TTL). */
  tickMs: number;
  /** Subtracted from the lease's end for clock drift between this node and etcd. */
  driftMarginMs: number;
  /** New writes stop this long before acknowledgements do (a fifth of the margin, ≤ 200 ms). */
  writeHeadroomMs: number;
  /** One etcd request on one endpoint. */
  requestTimeoutMs: number;
  settleMs: number;
}

/** The timing of `config`. */
export function coordinatorTiming(config: Config): CoordinatorTiming {
  const ttlMs = config.FAILOVER_TTL_SECONDS * 1000;
  const tickMs = Math.floor(ttlMs / 3);
  const driftMarginMs = Math.max(500, Math.floor(ttlMs / 10));
  return {
    ttlSeconds: config.FAILOVER_TTL_SECONDS,
    tickMs,
    driftMarginMs,
    writeHeadroomMs: Math.min(200, Math.floor(driftMarginMs / 5)),
    requestTimeoutMs: Math.min(config.ETCD_TIMEOUT_MS, tickMs),
    settleMs: config.FAILOVER_SETTLE_MS,
  };
}

/** The etcd client of `config`'s endpoints. */
export function etcdClientOf(config: Config): EtcdClient {
  return new EtcdClient({
    endpoints: etcdEndpoints(config),
    timeoutMs: coordinatorTiming(config).requestTimeoutMs,
  });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** See the module comment. */
export class Coordinator {
  readonly #node: ServerNode;
  readonly #role: NodeRole;
  readonly #client: EtcdClient;
  readonly #keys: ClusterKeys;
  readonly #timing: CoordinatorTiming;
  readonly #abort = new AbortController();
  #name = "";
  readonly #lease: LeaseKeeper;
  readonly #view: ClusterView;
  readonly #watch: ClusterWatch;
  readonly #replicas = new MemberReplicas();
  /** The last etcd round (renew, report, read) succeeded. */
  #etcdOk = false;
  #lastError = "";
  #lastDecision = "";
  #paused: string | undefined;
  #stopped = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Decides again soon: a candidate waits for time to pass (the settle window). */
  #recheck: ReturnType<typeof setTimeout> | undefined;
  #acting: Promise<void> | undefined;
  #actAgain = false;
  #registeredNode = false;
  /** etcd errors since start (metrics). */
  etcdErrors = 0;

  constructor(node: ServerNode, role: NodeRole, client = etcdClientOf(node.config)) {
    this.#node = node;
    this.#role = role;
    this.#client = client;
    this.#keys = clusterKeys(node.config.CLUSTER_NAME);
    this.#timing = coordinatorTiming(node.config);
    this.#view = new ClusterView(this.#keys, (previous, revision) => {
      if (previous !== undefined) {
        log.warn("the leader key of {name} is gone (revision {revision}): an election starts", {
          event: "leader_gone",
          name: previous.name,
          revision,
        });
      }
      this.#reportSoon();
    });
    this.#lease = new LeaseKeeper(client, this.#timing);
    this.#watch = new ClusterWatch({
      client,
      prefix: this.#keys.prefix,
      view: this.#view,
      onEvents: () => this.#act(),
      signal: this.#abort.signal,
      maxBackoffMs: this.#timing.tickMs,
    });
    role.setFences({
      writes: () => writeFence(this.#fenceFacts()),
      acks: () => ackFence(this.#fenceFacts()),
    });
    role.setCoordinatorReport({ info: () => this.info(), topology: () => this.topology() });
    role.subscribe(() => this.#reportSoon());
  }

  /** This node's name in the cluster (NODE_NAME, else its advertised address). */
  get name(): string {
    return this.#name;
  }

  /** The leader key as last read (undefined: none). */
  get leader(): LeaderRecord | undefined {
    return this.#view.leader;
  }

  /** The member records as last read. */
  get members(): MemberView[] {
    return [...this.#view.members.values()];
  }

  /** Milliseconds the lease can still be trusted (0: not at all). */
  leaseLeftMs(): number {
    return this.#lease.leftMs();
  }

  /** Starts the loops; call once the server listens (the advertised address is known then). */
  start(): void {
    this.#name = this.#node.config.NODE_NAME || this.#role.advertisedAddress;
    log.info(
      "coordinator: node {name} of cluster {cluster} on etcd {endpoints}, lease TTL {ttl} s",
      {
        event: "coordinator_started",
        name: this.#name,
        cluster: this.#node.config.CLUSTER_NAME,
        endpoints: this.#client.endpoints.join(","),
        ttl: this.#timing.ttlSeconds,
      },
    );
    this.#tick();
    this.#watch.run();
  }

  /** Shutdown begins: no new writes (the drain that follows still acknowledges what was taken). */
  stopping(): void {
    this.#paused ??= "this node is shutting down; retry on the next master";
  }

  /** Stops the loops and revokes the lease, so another node takes over at once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#lease.distrust();
    clearTimeout(this.#timer);
    clearTimeout(this.#recheck);
    this.#abort.abort();
    const lease = this.#lease.id;
    await this.#lease.revoke().catch((error) =>
      log.warn("could not revoke lease {lease} at shutdown: {error}", {
        lease,
        error: message(error),
      })
    );
  }

  // ------------------------------------------------------------------------------ the loop

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#lease.renew();
      await this.#report();
      await this.#refresh();
      this.#noteOk();
      this.#watch.followRequests();
    } catch (error) {
      this.#noteError(error);
    }
    await this.#act();
    if (!this.#stopped) this.#timer = setTimeout(() => this.#tick(), this.#timing.tickMs);
  }

  #noteOk(): void {
    if (!this.#etcdOk && this.#lastError !== "") {
      log.info("etcd answers again", { event: "etcd_reachable" });
    }
    this.#etcdOk = true;
    this.#lastError = "";
  }

  #noteError(error: unknown): void {
    this.etcdErrors++;
    const text = message(error);
    if (this.#etcdOk || this.#lastError === "") {
      log.warn("etcd: {error}", { event: "etcd_error", error: text });
    }
    this.#etcdOk = false;
    this.#lastError = text;
  }

  /** Writes this node's member record (and, once, its persistent node key). */
  async #report(): Promise<void> {
    const lease = this.#lease.id;
    if (lease === "" || this.#stopped) return;
    const self = this.#selfFacts();
    const record = formatMember({
      name: self.name,
      address: self.address,
      role: self.role,
      lsn: self.lsn,
      lastEpoch: self.lastEpoch,
      epoch: self.epoch,
      fullSync: self.fullSync,
      diverged: self.diverged,
      filtered: self.filtered,
      healthy: this.#healthy(),
      lease,
      reportedAtMs: Date.now(),
    });
    try {
      await this.#client.put(this.#keys.members + this.#name, record, lease);
    } catch (error) {
      if (error instanceof EtcdError && /lease not found/i.test(error.message)) {
        this.#lease.forget();
      }
      throw error;
    }
    if (!this.#registeredNode) {
      await this.#client.put(this.#keys.nodes + this.#name, self.address);
      this.#registeredNode = true;
    }
  }

  #reportSoon(): void {
    if (this.#stopped || this.#lease.id === "") return;
    this.#report().catch((error) => this.#noteError(error));
  }

  /** Reads every key of the cluster: the view the decisions start from. */
  async #refresh(): Promise<void> {
    const { kvs, revision } = await this.#client.range(this.#keys.prefix, { prefix: true });
    this.#view.applyRead(kvs, revision, performance.now());
  }

  // ------------------------------------------------------------------------------ deciding

  #selfFacts(): SelfFacts {
    const role = this.#role;
    const store = this.#node.store;
    return {
      name: this.#name,
      address: role.advertisedAddress,
      lease: this.#lease.id,
      role: role.current,
      lsn: store.lastLsn,
      lastEpoch: store.replicationLog.lastEpoch,
      epoch: role.epoch,
      fullSync: role.applier?.getInfo().fullSyncInProgress ?? false,
      diverged: role.diverged,
      filtered: (role.state.keyFilter?.length ?? 0) > 0,
      changing: role.changing,
      following: role.followedMaster,
    };
  }

  #healthy(): boolean {
    if (this.#role.replica) return this.#role.applier?.getInfo().masterLinkStatus === "up";
    return this.#role.writeFence === undefined;
  }

  #fenceFacts(): FenceFacts {
    const leader = this.#view.leader;
    const lease = this.#lease;
    return {
      leaderIsSelf: leader !== undefined && leader.name === this.#name &&
        leader.lease === lease.id && lease.id !== "",
      trustedUntilMs: lease.trustedUntilMs,
      lastRenewalMs: lease.lastRenewalMs,
      trustedUntilWallMs: lease.trustedUntilWallMs,
      wallNowMs: Date.now(),
      nowMs: performance.now(),
      paused: this.#paused,
      writeHeadroomMs: this.#timing.writeHeadroomMs,
    };
  }

  /** Decides and carries out, one decision at a time (a call meanwhile runs once more after). */
  #act(): Promise<void> {
    if (this.#acting !== undefined) {
      this.#actAgain = true;
      return this.#acting;
    }
    this.#acting = (async () => {
      do {
        this.#actAgain = false;
        try {
          await this.#actOnce();
        } catch (error) {
          log.error("coordinator: {error}", { event: "coordinator_error", error: message(error) });
        }
      } while (this.#actAgain && !this.#stopped);
    })().finally(() => this.#acting = undefined);
    return this.#acting;
  }

  async #actOnce(): Promise<void> {
    const view = this.#view;
    if (this.#stopped || view.revision === 0 || this.#name === "") return;
    const decision = decide({
      self: this.#selfFacts(),
      leader: view.leader,
      leaderGone: view.leaderGone,
      members: [...view.members.values()],
      nodes: [...view.nodes],
      syncReplicas: this.#node.config.REPLICATION_MODE === "sync"
        ? this.#node.config.SYNC_REPLICAS
        : undefined,
      settleMs: this.#timing.settleMs,
      nowMs: performance.now(),
    });
    this.#noteDecision(decision);
    if (decision.kind === "wait" && view.leader === undefined) this.#recheckSoon();
    // A view etcd did not confirm lately decides nothing but keeping things as they are.
    if (!this.#etcdOk && decision.kind !== "steady" && decision.kind !== "wait") return;
    await this.#carryOut(decision);
  }

  /**
   * While there is no leader, a waiting candidate's answer changes with time alone (the settle
   * window ends): decide again after a tenth of it (20 to 250 ms), not only at the next event.
   */
  #recheckSoon(): void {
    if (this.#recheck !== undefined || this.#stopped) return;
    const delayMs = Math.min(250, Math.max(20, this.#timing.settleMs / 10));
    this.#recheck = setTimeout(() => {
      this.#recheck = undefined;
      this.#act();
    }, delayMs);
  }

  #noteDecision(decision: Decision): void {
    const text = decision.kind === "wait" ? `wait: ${decision.reason}` : decision.kind;
    if (text === this.#lastDecision) return;
    this.#lastDecision = text;
    if (decision.kind !== "steady") {
      log.info("coordinator: {decision}", { event: "coordinator_decision", decision: text });
    }
  }

  async #carryOut(decision: Decision): Promise<void> {
    const role = this.#role;
    switch (decision.kind) {
      case "wait":
        return;
      case "steady":
        this.#replicas.sync(role, this.#view.members.values(), this.#name);
        return;
      case "campaign":
        return await this.#campaign();
      case "promote":
        return await this.#promote(decision.epoch);
      case "follow":
        await role.follow(parseHostPort(decision.address, "leader address"), {
          epoch: decision.epoch,
          by: `etcd (leader ${this.#view.leader?.name ?? "?"})`,
        });
        log.info("following {leader} at {address} (epoch {epoch})", {
          event: "following_leader",
          leader: this.#view.leader?.name ?? "",
          address: decision.address,
          epoch: decision.epoch,
        });
        this.#reportSoon();
        return;
      case "step_down":
        log.warn("stepping down: the leader key is not this node's any more", {
          event: "stepping_down",
        });
        await role.follow(undefined, { by: "etcd (no leader key)" });
        this.#reportSoon();
        return;
      case "revoke":
        log.warn(
          "the leader key names this node under lease {lease} of a previous run: revoking it " +
            "so the election runs now",
          { event: "stale_leader_revoked", lease: decision.lease },
        );
        await this.#client.revoke(decision.lease);
        return;
    }
  }

  /** Tries to take the leader key, with the next epoch, in one transaction. */
  async #campaign(): Promise<void> {
    const self = this.#selfFacts();
    const epoch = this.#view.nextEpoch(self.epoch);
    const { succeeded, revision } = await this.#client.txn(
      [
        { key: this.#keys.leader, target: "CREATE", createRevision: 0 },
        { key: this.#keys.epoch, target: "MOD", modRevision: this.#view.epochModRevision },
      ],
      [
        {
          put: {
            key: this.#keys.leader,
            value: formatLeader({ name: this.#name, address: self.address, epoch }),
            lease: this.#lease.id,
          },
        },
        { put: { key: this.#keys.epoch, value: String(epoch) } },
      ],
    );
    if (!succeeded) {
      await this.#refresh();
      this.#actAgain = true;
      return;
    }
    log.warn(
      "ELECTED: {name} took the leader key (epoch {epoch}, LSN {lsn}, revision {revision})",
      { event: "elected", name: this.#name, epoch, lsn: self.lsn, revision },
    );
    this.#view.noteEpoch(epoch, revision);
    this.#view.setLeader(
      { name: this.#name, address: self.address, epoch, lease: this.#lease.id },
      revision,
      performance.now(),
    );
    this.#actAgain = true;
  }

  async #promote(epoch: number): Promise<void> {
    const replicas = memberAddresses(this.#view.members.values(), this.#name);
    try {
      const promotion = await this.#role.promote({ epoch, by: "etcd election", replicas });
      log.warn(
        "PROMOTED to master by the etcd election: epoch {epoch}, data up to LSN {lsn} kept; " +
          "replicas {replicas}",
        {
          event: "promoted",
          epoch: promotion.epoch,
          lsn: promotion.lsn,
          replicas: replicas.map((r) => `${r.host}:${r.port}`).join(","),
        },
      );
    } catch (error) {
      log.error("cannot become the master ({error}): giving the leader key back", {
        event: "promotion_failed",
        error: message(error),
      });
      await this.#resign();
    }
    this.#reportSoon();
  }

  /** Deletes the leader key if this node's lease still holds it. */
  async #resign(): Promise<boolean> {
    const { succeeded } = await this.#client.txn(
      [{ key: this.#keys.leader, target: "LEASE", lease: this.#lease.id }],
      [{ deleteRange: { key: this.#keys.leader } }],
    );
    return succeeded;
  }

  /** Planned switchover to member `target` (see `switchover.ts`). */
  async switchover(target: string, timeoutMs: number): Promise<{ epoch: number; lsn: number }> {
    try {
      return await switchover(
        {
          role: this.#role,
          store: this.#node.store,
          view: this.#view,
          client: this.#client,
          keys: this.#keys,
          selfName: this.#name,
          lease: this.#lease.id,
          leaderIsSelf: this.#fenceFacts().leaderIsSelf,
          paused: this.#paused,
          pause: (reason) => this.#paused = reason,
          refresh: () => this.#refresh(),
          sleep: (ms) => sleepUnlessAborted(ms, this.#abort.signal),
        },
        target,
        timeoutMs,
      );
    } finally {
      this.#act();
    }
  }

  // ------------------------------------------------------------------------------ reading

  /** The coordinator's TOPOLOGY object. */
  topology(): TopologyCoordinator {
    const leader = this.#view.leader;
    return {
      kind: "etcd",
      cluster: this.#node.config.CLUSTER_NAME,
      name: this.#name,
      etcd: this.#etcdOk ? "ok" : "unreachable",
      leader: leader?.name ?? "",
      leader_address: leader?.address ?? "",
      leader_epoch: leader?.epoch ?? 0,
      lease_left_ms: Math.round(this.leaseLeftMs()),
      write_fence: this.#role.writeFence ?? "",
    };
  }

  /** The coordinator's `INFO replication` fields. */
  info(): InfoFields {
    const leader = this.#view.leader;
    return [
      ["coordinator", "etcd"],
      ["coordinator_cluster", this.#node.config.CLUSTER_NAME],
      ["coordinator_node_name", this.#name],
      ["coordinator_etcd", this.#etcdOk ? "ok" : "unreachable"],
      ["coordinator_etcd_endpoint", this.#client.preferredEndpoint],
      ["coordinator_last_error", this.#lastError.replaceAll(/[\r\n]/g, " ")],
      ["coordinator_leader", leader?.name ?? ""],
      ["coordinator_leader_address", leader?.address ?? ""],
      ["coordinator_leader_epoch", leader?.epoch ?? 0],
      ["coordinator_members", this.#view.members.size],
      ["coordinator_lease_ttl_left_ms", Math.round(this.leaseLeftMs())],
      ["coordinator_decision", this.#lastDecision],
      ["coordinator_write_fence", this.#role.writeFence ?? ""],
    ];
  }
}
