/**
 * What a `KVClient` with `nodes` knows of its cluster, and the decisions it takes from it: which
 * node is the master, which nodes may serve a read. Pure (no I/O, time passed in): the client
 * probes each node with `TOPOLOGY` and feeds the answers here.
 *
 * The master is decided from the nodes' own answers, never from one node's word alone:
 *
 * 1. Candidates are reachable nodes that say they are the master, are not deposed, and have not
 *    refused (or failed) a write since they said so (`suspect` for `suspectMs`).
 * 2. A candidate that a replica vouches for (its stream from that master is up, in that epoch)
 *    beats one no replica vouches for; then the highest epoch wins (a promoted node's epoch is
 *    higher than its old master's), then more vouching replicas, then the higher LSN. So a node
 *    that lies about being the master is passed over as long as a replica follows the real one,
 *    and is dropped once it refuses a write.
 * 3. When more replicas follow a master in a higher epoch than follow any candidate the client
 *    reaches, that master is the master even though this client cannot reach it (a partition
 *    between client and master only): writes then fail within the retry bounds instead of going
 *    to a stale master, and reads that allow replicas go on. A master the replicas follow that
 *    the client has not asked yet beats a candidate no replica follows, until it answers.
 *
 * A replica's staleness is the master's own measure of its lag (`lag_ms` in the master's answer);
 * without the master's answer, what the replica says: its own lag behind what it knows of the
 * master while its link is up, else the time since it heard from the master.
 *
 * @module
 */
import type { RespValue } from "../protocol/resp.ts";

/** Where reads go (MongoDB's read preferences; "replica" is MongoDB's "secondary"). */
export type ReadPreference =
  | "primary"
  | "primaryPreferred"
  | "replica"
  | "replicaPreferred"
  | "nearest";

/** The read preferences, for validation. */
export const READ_PREFERENCES: readonly ReadPreference[] = [
  "primary",
  "primaryPreferred",
  "replica",
  "replicaPreferred",
  "nearest",
];

/** A replica as a master reported it. */
export interface ReplicaReport {
  address: string;
  state: string;
  healthy: boolean;
  lsn: number;
  lagRecords: number;
  lagMs: number;
  /** It holds only some keys (selective replication): never a place to read, never a master. */
  filtered: boolean;
}

/** A master as a replica reported it. */
export interface MasterReport {
  address: string;
  epoch: number;
  lsn: number;
  linkUp: boolean;
  /** Milliseconds since the replica heard from it (-1: never). */
  lastIoMs: number;
  fullSync: boolean;
  /** Milliseconds the replica has known of a record of it that it has not applied. */
  lagMs: number;
}

/** What one node said about itself and its cluster (`TOPOLOGY`), checked field by field. */
export interface NodeReport {
  address: string;
  runId: string;
  role: "master" | "replica";
  epoch: number;
  lsn: number;
  deposed: boolean;
  master: MasterReport | undefined;
  replicas: ReplicaReport[];
  /** A replica that holds only some keys (selective replication; absent from older nodes). */
  filtered: boolean;
}

/** A `TOPOLOGY` answer that is not what a kvstore node sends: the node is not used. */
export class TopologyReplyError extends Error {
  override name = "TopologyReplyError";
}

const MAX_TEXT_CHARS = 300;
const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

function field(object: Record<string, unknown>, name: string): unknown {
  if (!Object.hasOwn(object, name)) throw new TopologyReplyError(`no field "${name}"`);
  return object[name];
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TopologyReplyError(`${what} is not an object`);
  }
  return value as Record<string, unknown>;
}

function count(object: Record<string, unknown>, name: string, min = 0): number {
  const value = field(object, name);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new TopologyReplyError(`"${name}" is not a whole number from ${min}`);
  }
  return value;
}

function flag(object: Record<string, unknown>, name: string): boolean {
  const value = field(object, name);
  if (typeof value !== "boolean") throw new TopologyReplyError(`"${name}" is not true or false`);
  return value;
}

function text(object: Record<string, unknown>, name: string): string {
  const value = field(object, name);
  if (typeof value !== "string" || value.length > MAX_TEXT_CHARS) {
    throw new TopologyReplyError(`"${name}" is not a string of at most ${MAX_TEXT_CHARS} chars`);
  }
  return value;
}

function address(object: Record<string, unknown>, name: string): string {
  const value = text(object, name);
  const match = ADDRESS.exec(value);
  if (match === null || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new TopologyReplyError(`"${name}" ${JSON.stringify(value)} is not host:port`);
  }
  return value;
}

/**
 * Checks a `TOPOLOGY` answer (a bulk string of JSON, see `src/replication/topology.ts`) and
 * returns what it says; throws {@link TopologyReplyError} for anything else (not JSON, a field
 * missing or of the wrong type, an address that is not host:port, more than `maxNodes`
 * replicas).
 */
export function parseTopologyReply(reply: RespValue, maxNodes: number): NodeReport {
  if (!(reply instanceof Uint8Array)) {
    throw new TopologyReplyError("the answer is not a bulk string");
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(reply));
  } catch (error) {
    throw new TopologyReplyError(
      `the answer is not JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  const document = record(json, "the answer");
  if (field(document, "version") !== 1) {
    throw new TopologyReplyError(`unknown version ${JSON.stringify(document.version)}`);
  }
  const node = record(field(document, "node"), "node");
  const role = field(node, "role");
  if (role !== "master" && role !== "replica") {
    throw new TopologyReplyError(`role ${JSON.stringify(role)} is not master or replica`);
  }
  const master = masterReport(field(document, "master"));
  const replicas = replicaReports(field(document, "replicas"), maxNodes);
  return {
    address: address(node, "address"),
    runId: text(node, "run_id"),
    role,
    epoch: count(node, "epoch"),
    lsn: count(node, "lsn"),
    deposed: flag(node, "deposed"),
    master,
    replicas,
    filtered: Array.isArray(node.key_filter) && node.key_filter.length > 0,
  };
}

/** The `master` of a TOPOLOGY answer (null: none). */
function masterReport(value: unknown): MasterReport | undefined {
  if (value === null) return undefined;
  const m = record(value, "master");
  const linkStatus = field(m, "link_status");
  if (linkStatus !== "up" && linkStatus !== "down") {
    throw new TopologyReplyError("master link_status is not up or down");
  }
  const masterAddress = text(m, "address");
  return {
    address: masterAddress === "" ? "" : address(m, "address"),
    epoch: count(m, "epoch"),
    lsn: count(m, "lsn"),
    linkUp: linkStatus === "up",
    lastIoMs: count(m, "last_io_ms", -1),
    fullSync: flag(m, "full_sync_in_progress"),
    lagMs: count(m, "lag_ms"),
  };
}

/** The `replicas` of a TOPOLOGY answer: a list of at most `maxNodes`. */
function replicaReports(value: unknown, maxNodes: number): ReplicaReport[] {
  if (!Array.isArray(value)) throw new TopologyReplyError("replicas is not a list");
  if (value.length > maxNodes) {
    throw new TopologyReplyError(
      `it lists ${value.length} replicas, more than the client's maxNodes ${maxNodes}`,
    );
  }
  return value.map((item, i): ReplicaReport => {
    const r = record(item, `replica ${i}`);
    return {
      address: address(r, "address"),
      state: text(r, "state"),
      healthy: flag(r, "healthy"),
      lsn: count(r, "lsn"),
      lagRecords: count(r, "lag_records"),
      lagMs: count(r, "lag_ms"),
      filtered: Array.isArray(r.key_filter) && r.key_filter.length > 0,
    };
  });
}

/** One node as the client knows it. */
export interface TrackedNode {
  /** How this client reaches it (`host:port`). */
  readonly address: string;
  /** Given in `nodes` (kept even while it does not answer). */
  readonly seed: boolean;
  /** Its last good answer. */
  report: NodeReport | undefined;
  /** When that answer came (ms, the client's clock). */
  reportedAtMs: number;
  /** Its last probe was answered. */
  reachable: boolean;
  /** Why its last probe or call failed ("" when it did not). */
  lastError: string;
  /** Smoothed round trip of its probes, in ms (undefined before the first). */
  rttMs: number | undefined;
  /** It claimed the master role and refused or failed a write: not believed until then. */
  suspectUntilMs: number;
}

/** Weight of a new round-trip sample in the smoothed average (MongoDB's 0.2). */
const RTT_WEIGHT = 0.2;

/** Where reads with one preference go: take turns among `near`; fall back to `rest`, in order. */
export interface ReaderPlan {
  near: TrackedNode[];
  rest: TrackedNode[];
}

/** The master as the client decided it. */
export interface MasterChoice {
  /** Its address as the client reaches it, or undefined when none is known. */
  address: string | undefined;
  /** Its epoch (0 when none is known). */
  epoch: number;
  /** The client's last probe of it was answered. */
  reachable: boolean;
  /** Replicas that follow it (their stream from it is up, in its epoch). */
  followers: number;
}

/**
 * One node in a {@link KVTopology}.
 *
 * @example
 * ```ts
 * import type { KVNodeInfo } from "../../mod.ts";
 * function describe(node: KVNodeInfo): string {
 *   return `${node.address} ${node.role} lag ${node.stalenessMs ?? "?"} ms`;
 * }
 * ```
 */
export interface KVNodeInfo {
  /** How the client reaches it. */
  address: string;
  /** What it said it is (`unknown` before it answered). */
  role: "master" | "replica" | "unknown";
  /** The epoch it knows. */
  epoch: number;
  /** Its last LSN (a replica: applied). */
  lsn: number;
  /** It answered the client's last probe. */
  reachable: boolean;
  /** Smoothed round trip of its probes in ms (undefined before the first). */
  rttMs: number | undefined;
  /** A replica's estimated staleness in ms (undefined for a master or when unknown). */
  stalenessMs: number | undefined;
  /** Why its last probe or call failed ("" when it did not). */
  lastError: string;
}

/**
 * A client's view of the cluster (`client.topology()`): the master it sends writes to and every
 * node it tracks.
 *
 * @example
 * ```ts
 * import type { KVClient } from "../../mod.ts";
 * function whereWritesGo(client: KVClient): string {
 *   const topology = client.topology();
 *   return topology.master ?? "no master known";
 * }
 * ```
 */
export interface KVTopology {
  /** The master's address, or undefined when none is known. */
  master: string | undefined;
  /** The master's epoch (0 when none is known). */
  masterEpoch: number;
  /** The master answered the client's last probe. */
  masterReachable: boolean;
  /** Every node the client tracks. */
  nodes: KVNodeInfo[];
  /** When the last probe round finished (ms since the epoch; 0 before the first). */
  refreshedAtMs: number;
}

/** The nodes a client tracks and what it decided from their answers. */
export class ClusterState {
  readonly #nodes = new Map<string, TrackedNode>();
  readonly #maxNodes: number;
  readonly #suspectMs: number;
  #master: MasterChoice = { address: undefined, epoch: 0, reachable: false, followers: 0 };
  /** Round-robin position among equally good readers. */
  #turn = 0;
  /** Reader plans by preference, staleness bound and threshold; cleared when the view changes. */
  readonly #plans = new Map<string, ReaderPlan>();
  refreshedAtMs = 0;

  constructor(seeds: readonly string[], maxNodes: number, suspectMs: number) {
    this.#maxNodes = maxNodes;
    this.#suspectMs = suspectMs;
    for (const seed of seeds) this.#add(seed, true);
  }

  /** Every tracked node, seeds first. */
  get nodes(): TrackedNode[] {
    return [...this.#nodes.values()];
  }

  /** The tracked node at `address`, if any. */
  node(address: string): TrackedNode | undefined {
    return this.#nodes.get(address);
  }

  /** The master as decided after the last answer. */
  get master(): MasterChoice {
    return this.#master;
  }

  #add(address: string, seed: boolean): TrackedNode | undefined {
    const known = this.#nodes.get(address);
    if (known !== undefined) return known;
    if (this.#nodes.size >= this.#maxNodes) return undefined;
    const node: TrackedNode = {
      address,
      seed,
      report: undefined,
      reportedAtMs: 0,
      reachable: false,
      lastError: "",
      rttMs: undefined,
      suspectUntilMs: 0,
    };
    this.#nodes.set(address, node);
    return node;
  }

  /**
   * Records a node's answer (`rttMs`: the probe's round trip), adds the nodes it names (up to
   * `maxNodes`), and decides the master again. A node that turns out to be another tracked node
   * under a second address (same `run_id`) is dropped unless it is a seed.
   */
  answered(address: string, report: NodeReport, rttMs: number, nowMs: number): void {
    const node = this.#nodes.get(address);
    if (node === undefined) return;
    const twin = this.nodes.find((other) =>
      other !== node && other.report?.runId === report.runId && other.reachable
    );
    if (twin !== undefined && !node.seed) {
      this.#nodes.delete(address);
      this.#decide(nowMs);
      return;
    }
    node.report = report;
    node.reportedAtMs = nowMs;
    node.reachable = true;
    node.lastError = "";
    node.rttMs = node.rttMs === undefined ? rttMs : node.rttMs + RTT_WEIGHT * (rttMs - node.rttMs);
    if (report.role === "master") {
      // A filtered replica holds only some keys: reads never go there.
      for (const replica of report.replicas) {
        if (!replica.filtered) this.#add(replica.address, false);
      }
    } else if (report.master !== undefined && report.master.address !== "") {
      this.#add(report.master.address, false);
    }
    this.#decide(nowMs);
  }

  /** Records that a node did not answer (or answered something that is not a topology). */
  failed(address: string, reason: string, nowMs: number): void {
    const node = this.#nodes.get(address);
    if (node === undefined) return;
    node.reachable = false;
    node.lastError = reason;
    this.#decide(nowMs);
  }

  /**
   * A node the client took for the master refused a write (`READONLY`) or failed it: it is not
   * believed to be the master for `suspectMs`, unless no other node claims the role.
   */
  suspect(address: string, reason: string, nowMs: number): void {
    const node = this.#nodes.get(address);
    if (node === undefined) return;
    node.suspectUntilMs = nowMs + this.#suspectMs;
    node.lastError = reason;
    this.#decide(nowMs);
  }

  /** Decides the master from every node's last answer (see the module comment). */
  #decide(nowMs: number): void {
    const reports = this.nodes.filter((n) => n.reachable && n.report !== undefined);
    // Replicas whose stream from a master is up, by the master they follow.
    const followers = new Map<string, { epoch: number; count: number }>();
    for (const node of reports) {
      const m = node.report?.master;
      if (node.report?.role !== "replica" || m === undefined || !m.linkUp || m.address === "") {
        continue;
      }
      const key = `${m.epoch} ${m.address}`;
      const entry = followers.get(key) ?? { epoch: m.epoch, count: 0 };
      entry.count++;
      followers.set(key, entry);
    }
    const vouches = (node: TrackedNode): number => {
      const report = node.report as NodeReport;
      return (followers.get(`${report.epoch} ${node.address}`)?.count ?? 0) +
        (report.address === node.address
          ? 0
          : followers.get(`${report.epoch} ${report.address}`)?.count ?? 0);
    };
    const claimants = reports.filter((n) => n.report?.role === "master" && !n.report.deposed);
    let candidates = claimants.filter((n) => n.suspectUntilMs <= nowMs);
    if (candidates.length === 0) candidates = claimants;
    const ranked = candidates.map((node) => ({ node, vouches: vouches(node) })).sort((a, b) => {
      const ra = a.node.report as NodeReport;
      const rb = b.node.report as NodeReport;
      return Number(b.vouches > 0) - Number(a.vouches > 0) || rb.epoch - ra.epoch ||
        b.vouches - a.vouches || rb.lsn - ra.lsn;
    });
    const best = ranked[0];
    let choice: MasterChoice = best === undefined
      ? { address: undefined, epoch: 0, reachable: false, followers: 0 }
      : {
        address: best.node.address,
        epoch: (best.node.report as NodeReport).epoch,
        reachable: true,
        followers: best.vouches,
      };
    // A master the replicas follow that the client cannot reach (a partition between client and
    // master only): it is the master when no reachable node is, or when it is in a newer epoch
    // and more replicas follow it than follow the reachable one (one lying replica cannot move
    // the writes).
    for (const [key, { epoch, count }] of followers) {
      const address = key.slice(key.indexOf(" ") + 1);
      const target = this.#nodes.get(address) ??
        this.nodes.find((n) => n.report?.address === address);
      if (target !== undefined && target.reachable && target.report !== undefined) continue;
      // Not asked yet (just learned of): followed by replicas, it beats a reachable node no
      // replica follows until its own answer (or silence) tells more.
      const unasked = target === undefined ||
        (target.report === undefined && target.lastError === "");
      const better = choice.reachable
        ? (epoch > choice.epoch && count > choice.followers) || (unasked && choice.followers === 0)
        : choice.address === undefined || count > choice.followers ||
          (count === choice.followers && epoch > choice.epoch);
      if (!better) continue;
      choice = { address: target?.address ?? address, epoch, reachable: false, followers: count };
    }
    this.#master = choice;
    this.#plans.clear();
  }

  /** A replica's estimated staleness in ms (undefined when nothing tells it). */
  staleness(node: TrackedNode): number | undefined {
    const report = node.report;
    if (report === undefined || report.role !== "replica") return undefined;
    const masterNode = this.#master.address === undefined
      ? undefined
      : this.#nodes.get(this.#master.address);
    const entry = masterNode?.reachable
      ? masterNode.report?.replicas.find((r) =>
        r.address === node.address || r.address === report.address
      )
      : undefined;
    if (entry !== undefined) {
      // The master's measure; a link it sees down is at least as stale as the replica says.
      if (entry.state !== "down") return entry.lagMs;
      const heard = report.master?.lastIoMs ?? -1;
      return Math.max(entry.lagMs, heard < 0 ? Infinity : heard);
    }
    const master = report.master;
    if (master === undefined) return undefined;
    if (master.linkUp && (this.#master.epoch === 0 || master.epoch >= this.#master.epoch)) {
      return master.lagMs;
    }
    return master.lastIoMs < 0 ? Infinity : Math.max(master.lastIoMs, master.lagMs);
  }

  /**
   * The nodes a read with `preference` may go to, in two groups: `near`, the best ones, among
   * which reads take turns, and `rest`, the fallbacks in order. For `primary` the master; for
   * the replica preferences the reachable replicas within `maxStalenessMs` (not in a full sync),
   * with the master after them for `replicaPreferred` and before them for `primaryPreferred`;
   * for `nearest` all of those. Replicas (and `nearest`'s nodes) are ordered by round trip; `near`
   * holds those within `localThresholdMs` of the fastest. Cached until the view changes.
   */
  readerPlan(
    preference: ReadPreference,
    maxStalenessMs: number | undefined,
    localThresholdMs: number,
  ): ReaderPlan {
    const key = `${preference} ${maxStalenessMs ?? ""} ${localThresholdMs}`;
    const cached = this.#plans.get(key);
    if (cached !== undefined) return cached;
    const plan = this.#plan(preference, maxStalenessMs, localThresholdMs);
    this.#plans.set(key, plan);
    return plan;
  }

  #plan(
    preference: ReadPreference,
    maxStalenessMs: number | undefined,
    localThresholdMs: number,
  ): ReaderPlan {
    const master = this.#master.address === undefined
      ? undefined
      : this.#nodes.get(this.#master.address);
    const masterUp = master !== undefined && this.#master.reachable ? [master] : [];
    if (preference === "primary") return { near: master === undefined ? [] : [master], rest: [] };
    const replicas = this.nodes.filter((node) => {
      const report = node.report;
      if (!node.reachable || report === undefined || report.role !== "replica") return false;
      if (report.filtered) return false;
      if (report.master?.fullSync) return false;
      if (maxStalenessMs === undefined) return true;
      const staleness = this.staleness(node);
      return staleness !== undefined && staleness <= maxStalenessMs;
    });
    const spread = (nodes: TrackedNode[]): ReaderPlan => {
      const sorted = [...nodes].sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
      const fastest = sorted[0]?.rttMs ?? Infinity;
      const near = sorted.filter((n) => (n.rttMs ?? Infinity) <= fastest + localThresholdMs);
      return near.length === 0
        ? { near: sorted.slice(0, 1), rest: sorted.slice(1) }
        : { near, rest: sorted.slice(near.length) };
    };
    switch (preference) {
      case "primaryPreferred": {
        if (masterUp.length > 0) return { near: masterUp, rest: spread(replicas).near };
        return spread(replicas);
      }
      case "replica":
        return spread(replicas);
      case "replicaPreferred": {
        if (replicas.length === 0) return { near: masterUp, rest: [] };
        const plan = spread(replicas);
        return { near: plan.near, rest: [...plan.rest, ...masterUp] };
      }
      case "nearest":
        return spread([...masterUp, ...replicas]);
    }
  }

  /** The next node a read with `preference` goes to (taking turns among the near ones). */
  nextReader(
    preference: ReadPreference,
    maxStalenessMs: number | undefined,
    localThresholdMs: number,
  ): TrackedNode | undefined {
    const { near, rest } = this.readerPlan(preference, maxStalenessMs, localThresholdMs);
    if (near.length === 0) return rest[0];
    if (near.length === 1) return near[0];
    const turn = this.#turn++;
    if (this.#turn > 1_000_000_000) this.#turn = 0;
    return near[turn % near.length];
  }

  /** Every node a read with `preference` may go to, the next one first (see {@link readerPlan}). */
  readers(
    preference: ReadPreference,
    maxStalenessMs: number | undefined,
    localThresholdMs: number,
  ): TrackedNode[] {
    const { near, rest } = this.readerPlan(preference, maxStalenessMs, localThresholdMs);
    const start = near.length <= 1 ? 0 : this.#turn++ % near.length;
    if (this.#turn > 1_000_000_000) this.#turn = 0;
    return [...near.slice(start), ...near.slice(0, start), ...rest];
  }

  /** The public view (`client.topology()`). */
  snapshot(): KVTopology {
    return {
      master: this.#master.address,
      masterEpoch: this.#master.epoch,
      masterReachable: this.#master.reachable,
      refreshedAtMs: this.refreshedAtMs,
      nodes: this.nodes.map((node) => ({
        address: node.address,
        role: node.report?.role ?? "unknown",
        epoch: node.report?.epoch ?? 0,
        lsn: node.report?.lsn ?? 0,
        reachable: node.reachable,
        rttMs: node.rttMs,
        stalenessMs: this.staleness(node),
        lastError: node.lastError,
      })),
    };
  }
}
