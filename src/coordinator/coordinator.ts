/**
 * The coordinator's driver: the I/O around the pure decisions of `election.ts`. It keeps this
 * node's lease in etcd alive, writes its member record, reads and watches the cluster's keys,
 * and carries out each decision through the node's {@link NodeRole} (the one owner of the role):
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
import { type Config, etcdEndpoints, type HostPort, parseHostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { NodeRole } from "../replication/node_role.ts";
import type { InfoFields, ServerNode } from "../server/hooks.ts";
import {
  ackFence,
  decide,
  type Decision,
  eligible,
  type FenceFacts,
  type LeaderRecord,
  type MemberView,
  type SelfFacts,
  writeFence,
} from "./election.ts";
import { EtcdClient, EtcdError, type WatchEvent } from "./etcd_client.ts";
import {
  type ClusterKeys,
  clusterKeys,
  formatLeader,
  formatMember,
  parseLeader,
  parseMember,
} from "./records.ts";

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

/** A switchover was refused or did not finish; the message says why (nothing changed). */
export class SwitchoverError extends Error {
  override name = "SwitchoverError";
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
  #lease = "";
  /** Monotonic ms: the lease can be trusted until then; the last renewal's send time. */
  #trustedUntilMs = 0;
  #lastRenewalMs = 0;
  #leader: LeaderRecord | undefined;
  #leaderGone: { revision: number; atMs: number } | undefined;
  readonly #members = new Map<string, MemberView>();
  /** The lease each member was last seen with: a new one means it restarted. */
  readonly #memberLeases = new Map<string, string>();
  /** The address each member was last replicated to: a new one replaces the old replica. */
  readonly #memberAddresses = new Map<string, string>();
  readonly #nodes = new Set<string>();
  #epochValue = 0;
  #epochModRevision = 0;
  /** The newest etcd revision this node's view includes (0: never read). */
  #revision = 0;
  /** The revision of the last full read: watch events up to it are in the view already. */
  #readRevision = 0;
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
    role.setFences({
      writes: () => writeFence(this.#fenceFacts()),
      acks: () => ackFence(this.#fenceFacts()),
    });
    role.setCoordinatorInfo(() => this.info());
    role.subscribe(() => this.#reportSoon());
  }

  /** This node's name in the cluster (NODE_NAME, else its advertised address). */
  get name(): string {
    return this.#name;
  }

  /** The leader key as last read (undefined: none). */
  get leader(): LeaderRecord | undefined {
    return this.#leader;
  }

  /** The member records as last read. */
  get members(): MemberView[] {
    return [...this.#members.values()];
  }

  /** Milliseconds the lease can still be trusted (0: not at all). */
  leaseLeftMs(): number {
    return Math.max(0, this.#trustedUntilMs - performance.now());
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
    this.#watchLoop();
  }

  /** Shutdown begins: no new writes (the drain that follows still acknowledges what was taken). */
  stopping(): void {
    this.#paused ??= "this node is shutting down; retry on the next master";
  }

  /** Stops the loops and revokes the lease, so another node takes over at once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#trustedUntilMs = 0;
    clearTimeout(this.#timer);
    clearTimeout(this.#recheck);
    this.#abort.abort();
    if (this.#lease !== "") {
      await this.#client.revoke(this.#lease).catch((error) =>
        log.warn("could not revoke lease {lease} at shutdown: {error}", {
          lease: this.#lease,
          error: message(error),
        })
      );
    }
  }

  // ------------------------------------------------------------------------------ the loop

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#renew();
      await this.#report();
      await this.#refresh();
      this.#noteOk();
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

  /** Renews the lease (or takes a new one): extends how long a master may acknowledge writes. */
  async #renew(): Promise<void> {
    const sentMs = performance.now();
    if (this.#lease === "") {
      const granted = await this.#client.grantLease(this.#timing.ttlSeconds);
      this.#lease = granted.id;
      this.#trust(sentMs, granted.ttlSeconds);
      return;
    }
    const ttlSeconds = await this.#client.keepAlive(this.#lease);
    if (ttlSeconds > 0) {
      this.#trust(sentMs, ttlSeconds);
      return;
    }
    log.warn("lease {lease} expired at etcd: registering again with a new one", {
      event: "lease_lost",
      lease: this.#lease,
    });
    this.#lease = "";
    this.#trustedUntilMs = 0;
    const granted = await this.#client.grantLease(this.#timing.ttlSeconds);
    this.#lease = granted.id;
    this.#trust(sentMs, granted.ttlSeconds);
  }

  #trust(sentMs: number, ttlSeconds: number): void {
    this.#lastRenewalMs = sentMs;
    this.#trustedUntilMs = Math.max(
      this.#trustedUntilMs,
      sentMs + ttlSeconds * 1000 - this.#timing.driftMarginMs,
    );
  }

  /** Writes this node's member record (and, once, its persistent node key). */
  async #report(): Promise<void> {
    if (this.#lease === "" || this.#stopped) return;
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
      lease: this.#lease,
      reportedAtMs: Date.now(),
    });
    try {
      await this.#client.put(this.#keys.members + this.#name, record, this.#lease);
    } catch (error) {
      if (error instanceof EtcdError && /lease not found/i.test(error.message)) {
        this.#lease = "";
        this.#trustedUntilMs = 0;
      }
      throw error;
    }
    if (!this.#registeredNode) {
      await this.#client.put(this.#keys.nodes + this.#name, self.address);
      this.#registeredNode = true;
    }
  }

  #reportSoon(): void {
    if (this.#stopped || this.#lease === "") return;
    this.#report().catch((error) => this.#noteError(error));
  }

  /** Reads every key of the cluster: the view the decisions start from. */
  async #refresh(): Promise<void> {
    const { kvs, revision } = await this.#client.range(this.#keys.prefix, { prefix: true });
    // The watch delivered newer changes while this read ran: the view is newer than the read.
    if (revision < this.#revision) return;
    let leader: LeaderRecord | undefined;
    this.#members.clear();
    this.#nodes.clear();
    for (const kv of kvs) {
      if (kv.key === this.#keys.leader) {
        leader = parseLeader(kv);
      } else if (kv.key === this.#keys.epoch) {
        this.#epochValue = Number(kv.value) || 0;
        this.#epochModRevision = kv.modRevision;
      } else if (kv.key.startsWith(this.#keys.members)) {
        const record = parseMember(kv);
        if (record !== undefined) {
          this.#members.set(record.name, { record, modRevision: kv.modRevision });
        }
      } else if (kv.key.startsWith(this.#keys.nodes)) {
        this.#nodes.add(kv.key.slice(this.#keys.nodes.length));
      }
    }
    if (!kvs.some((kv) => kv.key === this.#keys.epoch)) {
      this.#epochValue = 0;
      this.#epochModRevision = 0;
    }
    this.#setLeader(leader, revision);
    this.#revision = Math.max(this.#revision, revision);
    this.#readRevision = revision;
  }

  #setLeader(leader: LeaderRecord | undefined, revision: number): void {
    if (leader === undefined) {
      if (this.#leaderGone === undefined) {
        this.#leaderGone = { revision, atMs: performance.now() };
        if (this.#leader !== undefined) {
          log.warn("the leader key of {name} is gone (revision {revision}): an election starts", {
            event: "leader_gone",
            name: this.#leader.name,
            revision,
          });
        }
        this.#reportSoon();
      }
    } else {
      this.#leaderGone = undefined;
    }
    this.#leader = leader;
  }

  // ------------------------------------------------------------------------------ watching

  async #watchLoop(): Promise<void> {
    let backoffMs = 50;
    while (!this.#stopped) {
      if (this.#revision === 0) {
        await this.#sleep(50);
        continue;
      }
      try {
        await this.#client.watch(
          this.#keys.prefix,
          this.#revision + 1,
          (events) => this.#onEvents(events),
          this.#abort.signal,
        );
        backoffMs = 50;
      } catch (error) {
        if (this.#stopped) return;
        log.debug("watch: {error}", { error: message(error) });
        await this.#sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, this.#timing.tickMs);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#abort.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }

  #onEvents(events: WatchEvent[]): void {
    for (const { type, kv } of events) {
      // A watch running behind a full read must not put older states back.
      if (kv.modRevision <= this.#readRevision) continue;
      this.#revision = Math.max(this.#revision, kv.modRevision);
      if (kv.key === this.#keys.leader) {
        this.#setLeader(type === "PUT" ? parseLeader(kv) : undefined, kv.modRevision);
      } else if (kv.key === this.#keys.epoch) {
        this.#epochValue = type === "PUT" ? Number(kv.value) || 0 : 0;
        this.#epochModRevision = type === "PUT" ? kv.modRevision : 0;
      } else if (kv.key.startsWith(this.#keys.members)) {
        const name = kv.key.slice(this.#keys.members.length);
        const record = type === "PUT" ? parseMember(kv) : undefined;
        if (record === undefined) this.#members.delete(name);
        else this.#members.set(name, { record, modRevision: kv.modRevision });
      } else if (kv.key.startsWith(this.#keys.nodes) && type === "PUT") {
        this.#nodes.add(kv.key.slice(this.#keys.nodes.length));
      }
    }
    this.#act();
  }

  // ------------------------------------------------------------------------------ deciding

  #selfFacts(): SelfFacts {
    const role = this.#role;
    const store = this.#node.store;
    return {
      name: this.#name,
      address: role.advertisedAddress,
      lease: this.#lease,
      role: role.current,
      lsn: store.lastLsn,
      lastEpoch: store.lastEpoch,
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
    const leader = this.#leader;
    return {
      leaderIsSelf: leader !== undefined && leader.name === this.#name &&
        leader.lease === this.#lease && this.#lease !== "",
      trustedUntilMs: this.#trustedUntilMs,
      lastRenewalMs: this.#lastRenewalMs,
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
    if (this.#stopped || this.#revision === 0 || this.#name === "") return;
    const decision = decide({
      self: this.#selfFacts(),
      leader: this.#leader,
      leaderGone: this.#leaderGone,
      members: [...this.#members.values()],
      nodes: [...this.#nodes],
      syncReplicas: this.#node.config.REPLICATION_MODE === "sync"
        ? this.#node.config.SYNC_REPLICAS
        : undefined,
      settleMs: this.#timing.settleMs,
      nowMs: performance.now(),
    });
    this.#noteDecision(decision);
    if (decision.kind === "wait" && this.#leader === undefined) this.#recheckSoon();
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
        if (!role.replica) this.#addMembersAsReplicas();
        return;
      case "campaign":
        return await this.#campaign();
      case "promote":
        return await this.#promote(decision.epoch);
      case "follow":
        await role.follow(parseHostPort(decision.address, "leader address"), {
          epoch: decision.epoch,
          by: `etcd (leader ${this.#leader?.name ?? "?"})`,
        });
        log.info("following {leader} at {address} (epoch {epoch})", {
          event: "following_leader",
          leader: this.#leader?.name ?? "",
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
    const epoch = Math.max(
      this.#epochValue,
      self.epoch,
      ...[...this.#members.values()].map((m) => m.record.epoch),
    ) + 1;
    const { succeeded, revision } = await this.#client.txn(
      [
        { key: this.#keys.leader, target: "CREATE", createRevision: 0 },
        { key: this.#keys.epoch, target: "MOD", modRevision: this.#epochModRevision },
      ],
      [
        {
          put: {
            key: this.#keys.leader,
            value: formatLeader({ name: this.#name, address: self.address, epoch }),
            lease: this.#lease,
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
    this.#epochValue = epoch;
    this.#epochModRevision = revision;
    this.#setLeader(
      { name: this.#name, address: self.address, epoch, lease: this.#lease },
      revision,
    );
    this.#actAgain = true;
  }

  async #promote(epoch: number): Promise<void> {
    const replicas = this.#otherMemberAddresses();
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
      [{ key: this.#keys.leader, target: "LEASE", lease: this.#lease }],
      [{ deleteRange: { key: this.#keys.leader } }],
    );
    return succeeded;
  }

  #otherMemberAddresses(): HostPort[] {
    const addresses: HostPort[] = [];
    for (const { record } of this.#members.values()) {
      if (record.name === this.#name) continue;
      try {
        addresses.push(parseHostPort(record.address, "member address"));
      } catch {
        // A record with a bad address is skipped (parseMember keeps only well-formed ones).
      }
    }
    return addresses;
  }

  /**
   * A master replicates to every registered member: new ones are added; one that registered
   * again (a new lease: it restarted) is retried at once instead of at the next health check.
   */
  #addMembersAsReplicas(): void {
    const role = this.#role;
    if (role.deposed !== undefined && role.writeFence === undefined) return;
    const listed = new Set(role.replicator?.replicaManager.replicas.map((r) => r.address) ?? []);
    const added: HostPort[] = [];
    for (const { record } of this.#members.values()) {
      if (record.name === this.#name) continue;
      const known = this.#memberLeases.get(record.name);
      this.#memberLeases.set(record.name, record.lease);
      const before = this.#memberAddresses.get(record.name);
      this.#memberAddresses.set(record.name, record.address);
      if (before !== undefined && before !== record.address && listed.has(before)) {
        // The same node registered at another address (restarted on another port).
        log.info("member {name} moved from {before} to {address}: replicating to the new one", {
          event: "member_moved",
          name: record.name,
          before,
          address: record.address,
        });
        role.removeReplica(before).catch((error) =>
          log.warn("could not remove replica {before}: {error}", { before, error: message(error) })
        );
      }
      if (!listed.has(record.address)) {
        try {
          added.push(parseHostPort(record.address, "member address"));
        } catch {
          // skipped, as above
        }
      } else if (known !== undefined && known !== record.lease) {
        role.replicator?.retryNow(record.address);
      }
    }
    if (added.length > 0) role.addReplicas(added);
  }

  // ---------------------------------------------------------------------------- switchover

  /**
   * Planned switchover to member `target`: new writes are refused (`-READONLY`, which clients
   * retry), the writes taken are made durable and waited for on the target (up to `timeoutMs`),
   * then one transaction hands the leader key (bound to the target's lease) and a new epoch to it.
   * This node then follows it. On any failure writes resume here and the error says why.
   */
  async switchover(target: string, timeoutMs: number): Promise<{ epoch: number; lsn: number }> {
    const role = this.#role;
    const facts = this.#fenceFacts();
    if (role.replica || !facts.leaderIsSelf) {
      throw new SwitchoverError(
        `this node is not the master; run it on the master (${this.#leader?.name ?? "none now"})`,
      );
    }
    if (target === this.#name) throw new SwitchoverError(`${target} is the master already`);
    const member = this.#members.get(target)?.record;
    if (member === undefined) {
      throw new SwitchoverError(
        `no registered member is named ${target} (members: ${
          [...this.#members.keys()].join(", ")
        })`,
      );
    }
    if (!eligible(member)) {
      throw new SwitchoverError(
        `${target} cannot lead: ` +
          (member.filtered ? "it is a selective replica (key filter)" : "its log is incomplete " +
            "(a full sync has not finished)"),
      );
    }
    if (this.#paused !== undefined) throw new SwitchoverError(`writes are paused: ${this.#paused}`);
    this.#paused = `a switchover to ${target} is in progress; retry in a moment`;
    const startedMs = performance.now();
    try {
      const store = this.#node.store;
      await store.whenDurable(store.lastLsn);
      const lsn = store.lastLsn;
      log.warn("SWITCHOVER to {target}: writes paused; waiting for it to have LSN {lsn}", {
        event: "switchover_started",
        target,
        lsn,
      });
      await this.#waitForAck(member.address, lsn, startedMs + timeoutMs, target);
      const epoch = Math.max(
        this.#epochValue,
        role.epoch,
        ...[...this.#members.values()].map((m) => m.record.epoch),
      ) + 1;
      const { succeeded, revision } = await this.#client.txn(
        [
          { key: this.#keys.leader, target: "LEASE", lease: this.#lease },
          { key: this.#keys.epoch, target: "MOD", modRevision: this.#epochModRevision },
        ],
        [
          {
            put: {
              key: this.#keys.leader,
              value: formatLeader({ name: target, address: member.address, epoch }),
              lease: member.lease,
            },
          },
          { put: { key: this.#keys.epoch, value: String(epoch) } },
        ],
      );
      if (!succeeded) {
        await this.#refresh();
        throw new SwitchoverError("the leader key or the epoch changed meanwhile; nothing done");
      }
      this.#epochValue = epoch;
      this.#epochModRevision = revision;
      this.#setLeader(
        { name: target, address: member.address, epoch, lease: member.lease },
        revision,
      );
      log.warn("SWITCHOVER: the leader key is {target}'s (epoch {epoch}) after {ms} ms", {
        event: "switchover_done",
        target,
        epoch,
        ms: Math.round(performance.now() - startedMs),
      });
      this.#act();
      return { epoch, lsn };
    } finally {
      this.#paused = undefined;
    }
  }

  async #waitForAck(address: string, lsn: number, deadlineMs: number, name: string) {
    for (;;) {
      const replica = this.#role.replicator?.replicaManager.getStatus().replicas.find((r) =>
        r.address === address
      );
      const acked = replica?.ackedLsn ?? 0;
      if (acked >= lsn) return;
      if (performance.now() >= deadlineMs) {
        throw new SwitchoverError(
          `${name} has LSN ${acked} of ${lsn} after the timeout; nothing done, writes resume here`,
        );
      }
      await this.#sleep(5);
    }
  }

  // ------------------------------------------------------------------------------ reading

  /** The coordinator's `INFO replication` fields. */
  info(): InfoFields {
    const leader = this.#leader;
    return [
      ["coordinator", "etcd"],
      ["coordinator_cluster", this.#node.config.CLUSTER_NAME],
      ["coordinator_node_name", this.#name],
      ["coordinator_etcd", this.#etcdOk ? "ok" : "unreachable"],
      ["coordinator_last_error", this.#lastError.replaceAll(/[\r\n]/g, " ")],
      ["coordinator_leader", leader?.name ?? ""],
      ["coordinator_leader_address", leader?.address ?? ""],
      ["coordinator_leader_epoch", leader?.epoch ?? 0],
      ["coordinator_members", this.#members.size],
      ["coordinator_lease_ttl_left_ms", Math.round(this.leaseLeftMs())],
      ["coordinator_decision", this.#lastDecision],
      ["coordinator_write_fence", this.#role.writeFence ?? ""],
    ];
  }
}
