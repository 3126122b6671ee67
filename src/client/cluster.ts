/**
 * The I/O of a `KVClient` with `nodes`: one data connection per node (opened when a call first
 * goes there) and one monitoring connection per node for `TOPOLOGY` probes (small reply bounds,
 * so a node that answers with something huge or endless only loses its place), the periodic and
 * on-error refreshes, and the bounded retry loops of writes and reads. Decisions (which node is
 * the master, which may serve a read) are {@link ClusterState}'s.
 *
 * Retrying a write on the (new) master is safe when it cannot have been applied (the node refused
 * it with `READONLY`, or the connection never opened) or when applying it twice means the same as
 * once (the caller says so: `put`, `delete`, `batchPut`); otherwise a write whose outcome is
 * unknown (the connection broke after it was sent, no reply in time, `-DEPOSED`) fails with
 * {@link KVOutcomeUnknownError}. Reads are always safe to retry, on the same or another node.
 * Every loop is bounded by `maxRetries` and `retryTimeoutMs`, with doubling backoff and jitter.
 *
 * @module
 */
import type { CommandArgument, RespValue } from "../protocol/resp.ts";
import {
  KVAuthError,
  KVConnectionError,
  KVError,
  KVOutcomeUnknownError,
  KVReadOnlyError,
  KVServerError,
  KVTimeoutError,
  KVUnavailableError,
  KVWriteConcernError,
} from "./errors.ts";
import { NodeConnection, type NodeConnectionOptions } from "./node_connection.ts";
import {
  ClusterState,
  type ReadPreference,
  TopologyReplyError,
  type TrackedNode,
} from "./topology.ts";
import { parseTopologyReply } from "./topology.ts";

/** The bounds of a cluster router (every one has a default in `CLIENT_DEFAULTS`). */
export interface ClusterBounds {
  topologyRefreshMs: number;
  topologyTimeoutMs: number;
  maxTopologyReplyBytes: number;
  maxNodes: number;
  maxRetries: number;
  retryTimeoutMs: number;
  retryBackoffMs: number;
  maxRetryBackoffMs: number;
  localThresholdMs: number;
  suspectMs: number;
}

/** How a failed call may go on. */
type Verdict =
  /** It was not applied: try again (elsewhere). */
  | "retry"
  /** It may have been applied: try again only when applying it twice means the same. */
  | "unknown"
  /** An answer for the caller (a bad request, auth, a write concern not met). */
  | "final";

/** What a failed call means for a retry. */
export function verdictOf(error: unknown): Verdict {
  if (error instanceof KVReadOnlyError) return "retry";
  if (error instanceof KVAuthError || error instanceof KVWriteConcernError) return "final";
  if (error instanceof KVServerError) {
    // TRYAGAIN: not yet at the LSN asked for; MASTERDOWN: a replica past its staleness bound.
    if (error.code === "TRYAGAIN" || error.code === "MASTERDOWN") return "retry";
    if (error.code === "DEPOSED") return "unknown";
    return "final";
  }
  if (error instanceof KVConnectionError) return error.requestSent ? "unknown" : "retry";
  if (error instanceof KVTimeoutError) return error.command === "connect" ? "retry" : "unknown";
  return "final";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Splits `host:port` (IPv6 in brackets) for a connection. */
function hostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon);
  return {
    host: host.startsWith("[") ? host.slice(1, -1) : host,
    port: Number(address.slice(colon + 1)),
  };
}

/** Connections, probes and retry loops of a client with several nodes. */
export class ClusterRouter {
  readonly state: ClusterState;
  readonly #bounds: ClusterBounds;
  readonly #connection: NodeConnectionOptions;
  readonly #data = new Map<string, NodeConnection>();
  readonly #monitors = new Map<string, NodeConnection>();
  #lastAddress: string | undefined;
  #lastConnection: NodeConnection | undefined;
  /** Probes in flight, by node address. */
  readonly #probes = new Map<string, Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  /** Resolved (and replaced) after every probe answer or failure. */
  #changed = Promise.withResolvers<void>();

  constructor(seeds: readonly string[], connection: NodeConnectionOptions, bounds: ClusterBounds) {
    this.#bounds = bounds;
    this.#connection = connection;
    this.state = new ClusterState(seeds, bounds.maxNodes, bounds.suspectMs);
  }

  /** The data connection to `address` (opened by its first call). */
  connection(address: string): NodeConnection {
    let connection = this.#data.get(address);
    if (connection === undefined) {
      connection = new NodeConnection({ ...this.#connection, ...hostPort(address) });
      this.#data.set(address, connection);
    }
    return connection;
  }

  /** {@link connection}, remembering the last one asked for (the master's, mostly). */
  #connectionTo(address: string): NodeConnection {
    if (address !== this.#lastAddress || this.#lastConnection === undefined) {
      this.#lastConnection = this.connection(address);
      this.#lastAddress = address;
    }
    return this.#lastConnection;
  }

  #monitor(address: string): NodeConnection {
    let monitor = this.#monitors.get(address);
    if (monitor === undefined) {
      monitor = new NodeConnection(
        {
          ...this.#connection,
          ...hostPort(address),
          timeoutMs: this.#bounds.topologyTimeoutMs,
          maxReplyBulkBytes: this.#bounds.maxTopologyReplyBytes,
          maxPendingCalls: 4,
        },
        { maxReplyElements: 16, maxReplyBytes: this.#bounds.maxTopologyReplyBytes },
      );
      this.#monitors.set(address, monitor);
    }
    return monitor;
  }

  /** Starts the periodic refresh (once; not before the first call). */
  #startTimer(): void {
    if (this.#timer !== undefined || this.#closed || this.#bounds.topologyRefreshMs === 0) return;
    const timer = setInterval(() => {
      this.refresh().catch(() => {});
    }, this.#bounds.topologyRefreshMs);
    // The refresh alone must not keep a program running.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /**
   * Asks every tracked node for its topology, at once, and then the nodes their answers named;
   * resolves when all answered or failed (each within `topologyTimeoutMs`). A node whose probe is
   * still out is not asked twice: its probe is joined, and the others' answers count as they
   * come (one node that does not answer never holds back the rest of the view).
   */
  async refresh(): Promise<void> {
    this.#startTimer();
    const asked = new Set<string>();
    for (;;) {
      const round = this.state.nodes.filter((n) => !asked.has(n.address));
      if (round.length === 0 || this.#closed) break;
      for (const node of round) asked.add(node.address);
      await Promise.all(round.map((node) => this.#probeOnce(node)));
    }
    this.state.refreshedAtMs = Date.now();
  }

  /** The probe of `node` in flight, or a new one. */
  #probeOnce(node: TrackedNode): Promise<void> {
    let probe = this.#probes.get(node.address);
    if (probe === undefined) {
      probe = this.#probe(node).finally(() => this.#probes.delete(node.address));
      this.#probes.set(node.address, probe);
    }
    return probe;
  }

  async #probe(node: TrackedNode): Promise<void> {
    const address = node.address;
    const monitor = this.#monitor(address);
    const started = performance.now();
    try {
      const reply = await monitor.send(["TOPOLOGY"]);
      const rttMs = performance.now() - started;
      const report = parseTopologyReply(reply, this.#bounds.maxNodes);
      this.state.answered(address, report, rttMs, Date.now());
    } catch (error) {
      let reason = describe(error);
      if (error instanceof TopologyReplyError) {
        reason = `not a kvstore topology: ${reason}`;
      } else if (error instanceof KVServerError && !(error instanceof KVAuthError)) {
        reason = `not a kvstore node (TOPOLOGY: ${reason})`;
      }
      if (!(error instanceof KVConnectionError) && !(error instanceof KVTimeoutError)) {
        // Whatever it sent, it is not going to be listened to any more.
        this.#monitors.delete(address);
        monitor.close().catch(() => {});
      }
      this.state.failed(address, reason, Date.now());
    } finally {
      const changed = this.#changed;
      this.#changed = Promise.withResolvers<void>();
      changed.resolve();
    }
  }

  /**
   * Refreshes until `ready()` holds (true as soon as it does, even while slower nodes are still
   * being asked), or false once a whole refresh found nothing.
   */
  async #until(ready: () => boolean): Promise<boolean> {
    if (ready()) return true;
    const refreshing = this.refresh();
    let done = false;
    refreshing.then(() => (done = true), () => (done = true));
    while (!ready()) {
      if (done) return false;
      await Promise.race([refreshing.catch(() => {}), this.#changed.promise]);
    }
    return true;
  }

  /** Waits before retry `attempt` (1, 2, ...): doubling backoff with jitter, within `deadline`. */
  async #backoff(attempt: number, deadlineMs: number): Promise<void> {
    const { retryBackoffMs, maxRetryBackoffMs } = this.#bounds;
    const full = Math.min(maxRetryBackoffMs, retryBackoffMs * 2 ** Math.min(attempt - 1, 30));
    const delay = Math.min(full / 2 + Math.random() * full / 2, deadlineMs - Date.now());
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  }

  /** A short account of every node, for errors. */
  describeNodes(): string {
    return this.state.nodes.map((n) => {
      const role = n.report?.role ?? "unknown";
      return `${n.address} ${n.reachable ? role : `unreachable (${n.lastError || "not asked"})`}`;
    }).join("; ");
  }

  /**
   * Sends a write to the master, finding it (again) as needed; `retryable`: applying it twice
   * means the same as once.
   */
  write(parts: readonly CommandArgument[], retryable: boolean): Promise<RespValue> {
    // The usual case, a master known: sent at once, no async frame; the loop only on failure.
    const address = this.state.master.address;
    if (address === undefined) return this.#writeLoop(parts, retryable, undefined);
    return this.#connectionTo(address).send(
      parts,
      (error) => this.#writeLoop(parts, retryable, { address, error }),
    );
  }

  /**
   * The write loop: finds the master (again), sends, judges each failure, backs off, within the
   * bounds. `failed`: the first attempt's failure, when it was made by {@link write}.
   */
  async #writeLoop(
    parts: readonly CommandArgument[],
    retryable: boolean,
    failed: { address: string; error: unknown } | undefined,
  ): Promise<RespValue> {
    const started = Date.now();
    const deadline = started + this.#bounds.retryTimeoutMs;
    let lastError: unknown;
    for (let attempt = 0;; attempt++) {
      let address = this.state.master.address;
      if (attempt === 0 && failed !== undefined) {
        // The first attempt was made already; judge its failure below.
        address = failed.address;
      } else if (address === undefined) {
        // Before the first round is over, only a master some replica follows is taken at once:
        // a node that merely says it is the master waits for the others' answers.
        await this.#until(() =>
          this.state.master.address !== undefined &&
          (this.state.master.followers > 0 || this.state.refreshedAtMs > 0)
        );
        address = this.state.master.address;
      }
      if (address !== undefined) {
        try {
          if (attempt === 0 && failed !== undefined) throw failed.error;
          return await this.connection(address).send(parts);
        } catch (error) {
          lastError = error;
          const verdict = verdictOf(error);
          if (verdict === "final") throw error;
          if (verdict === "unknown" && !retryable) {
            const command = typeof parts[0] === "string" ? parts[0] : "the command";
            throw new KVOutcomeUnknownError(command, address, describe(error), { cause: error });
          }
          if (error instanceof KVServerError) {
            this.state.suspect(address, `refused a write: ${describe(error)}`, Date.now());
          } else {
            this.state.failed(address, describe(error), Date.now());
          }
        }
      } else {
        lastError = new KVError(`no node is the master (${this.describeNodes()})`);
      }
      if (attempt + 1 > this.#bounds.maxRetries || Date.now() >= deadline) {
        throw new KVUnavailableError(
          `no master took the write after ${attempt + 1} attempts in ${
            Date.now() - started
          } ms (maxRetries ${this.#bounds.maxRetries}, retryTimeoutMs ${this.#bounds.retryTimeoutMs}): ${
            describe(lastError)
          }; nodes: ${this.describeNodes()}`,
          { cause: lastError },
        );
      }
      await this.#backoff(attempt + 1, deadline);
      await this.refresh();
    }
  }

  /** Sends a read to a node `preference` allows, trying others (and again) as needed. */
  read(
    parts: readonly CommandArgument[],
    preference: ReadPreference,
    maxStalenessMs: number | undefined,
  ): Promise<RespValue> {
    const node = this.state.nextReader(preference, maxStalenessMs, this.#bounds.localThresholdMs);
    if (node === undefined) return this.#readLoop(parts, preference, maxStalenessMs, undefined);
    const address = node.address;
    return this.#connectionTo(address).send(
      parts,
      (error) => this.#readLoop(parts, preference, maxStalenessMs, { address, error }),
    );
  }

  /** The read loop, after a first attempt's failure (`failed`) or when no node was fit. */
  async #readLoop(
    parts: readonly CommandArgument[],
    preference: ReadPreference,
    maxStalenessMs: number | undefined,
    failed: { address: string; error: unknown } | undefined,
  ): Promise<RespValue> {
    const started = Date.now();
    const deadline = started + this.#bounds.retryTimeoutMs;
    const readers = () =>
      this.state.readers(preference, maxStalenessMs, this.#bounds.localThresholdMs);
    const tried = new Set<string>();
    let lastError: unknown;
    if (failed !== undefined) {
      lastError = failed.error;
      if (verdictOf(failed.error) === "final") throw failed.error;
      if (!(failed.error instanceof KVServerError)) {
        this.state.failed(failed.address, describe(failed.error), Date.now());
      }
      tried.add(failed.address);
    }
    for (let attempt = 0;;) {
      let candidates = readers();
      if (candidates.length === 0) {
        await this.#until(() => readers().length > 0);
        candidates = readers();
      }
      const node = candidates.find((n) => !tried.has(n.address));
      if (node !== undefined) {
        tried.add(node.address);
        try {
          return await this.connection(node.address).send(parts);
        } catch (error) {
          lastError = error;
          if (verdictOf(error) === "final") throw error;
          if (!(error instanceof KVServerError)) {
            this.state.failed(node.address, describe(error), Date.now());
          }
          // Another node may serve it now, without waiting.
          if (candidates.some((n) => !tried.has(n.address))) continue;
        }
      } else {
        lastError ??= new KVError(
          candidates.length === 0
            ? `no node matches readPreference ${preference}${
              maxStalenessMs === undefined ? "" : ` within maxStalenessMs ${maxStalenessMs}`
            }`
            : "every eligible node failed",
        );
      }
      tried.clear();
      attempt++;
      if (attempt > this.#bounds.maxRetries || Date.now() >= deadline) {
        throw new KVUnavailableError(
          `no node served the read (readPreference ${preference}) after ${attempt} rounds in ${
            Date.now() - started
          } ms (maxRetries ${this.#bounds.maxRetries}, retryTimeoutMs ${this.#bounds.retryTimeoutMs}): ${
            describe(lastError)
          }; nodes: ${this.describeNodes()}`,
          { cause: lastError },
        );
      }
      await this.#backoff(attempt, deadline);
      await this.refresh();
    }
  }

  /** Stops the refresh and closes every connection (after their calls in flight). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    const connections = [...this.#data.values(), ...this.#monitors.values()];
    this.#lastConnection = undefined;
    this.#data.clear();
    this.#monitors.clear();
    await Promise.all(connections.map((c) => c.close().catch(() => {})));
    await Promise.all(this.#probes.values());
  }
}
