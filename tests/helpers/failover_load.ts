/**
 * A write load for failover tests: `writers` connections writing new keys to whichever node is
 * the master now, remembering every key a node acknowledged (and which node), so a test can check
 * that not one acknowledged write was lost, and that no node acknowledged a write it must not have
 * (a deposed or fenced master).
 *
 * Each writer writes `w<i>:<n>` with value `w<i>:<n>`: a new key per acknowledged write, so a
 * lost write is a missing key. After an error it closes its connection and looks for the master
 * again (each node's `INFO replication`: `role:master` with no coordinator write fence) every
 * 20 ms; the key it failed to write is written again (an error may hide an applied write, which
 * is no loss).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  dump,
  type KvNode,
  replicasCaughtUp,
  RespConn,
  waitUntil,
  withClusterDir,
} from "./cluster.ts";
import { startCoordinatedCluster, waitForMaster } from "./coordinated.ts";
import { type EtcdCluster, startEtcd } from "./etcd.ts";

/** A write a node answered OK. */
export interface AckedWrite {
  key: string;
  /** The port of the node that answered OK. */
  port: number;
  /** `performance.now()` when the OK arrived. */
  atMs: number;
}

/** Errors the writers got, by their first word (`READONLY`, `ERR`, `closed`, ...). */
export type ErrorCounts = Map<string, number>;

const decoder = new TextDecoder();

/** `promise`, or a rejection after `ms` (a paused node answers nothing). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout ${what} after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The node that takes writes now (a master without a write fence), or undefined. A node that does
 * not answer within 500 ms (paused, down) is passed over.
 */
export async function writableMaster(nodes: readonly KvNode[]): Promise<KvNode | undefined> {
  for (const node of nodes) {
    try {
      const info = await within(node.info("replication"), 500, "INFO");
      const fence = info.get("coordinator_write_fence") ?? "";
      if (info.get("role") === "master" && fence === "" && !info.has("deposed")) return node;
    } catch {
      // down, paused or restarting
    }
  }
  return undefined;
}

/** A running write load; {@link stop} it before checking. */
export class WriteLoad {
  readonly acked: AckedWrite[] = [];
  readonly errors: ErrorCounts = new Map();
  #stopped = false;
  readonly #loops: Promise<void>[] = [];

  /**
   * Starts `writers` writers over `nodes()` (a function: the test may replace a node by its
   * restarted process). `pauseMs` paces each writer (0: as fast as replies come); a reply not in
   * within `replyTimeoutMs` (a paused master) counts as an error and the writer looks again.
   */
  constructor(
    readonly nodes: () => readonly KvNode[],
    writers: number,
    readonly pauseMs = 2,
    readonly replyTimeoutMs = 3000,
  ) {
    for (let i = 0; i < writers; i++) this.#loops.push(this.#writer(i));
  }

  /** OKs from the node at `port` after `sinceMs` (`performance.now()` time). */
  ackedBy(port: number, sinceMs = 0): AckedWrite[] {
    return this.acked.filter((a) => a.port === port && a.atMs > sinceMs);
  }

  /** Waits until some node other than `port` acknowledged a write after `sinceMs`. */
  async waitForAckElsewhere(port: number, sinceMs: number, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const ack = this.acked.find((a) => a.atMs > sinceMs && a.port !== port);
      if (ack !== undefined) return ack.atMs - sinceMs;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no node but port ${port} acknowledged a write within ${timeoutMs} ms`);
  }

  /** Waits until `count` more writes were acknowledged (the load goes on). */
  async waitForAcks(count: number, timeoutMs = 30_000): Promise<void> {
    const target = this.acked.length + count;
    const deadline = Date.now() + timeoutMs;
    while (this.acked.length < target) {
      if (Date.now() > deadline) {
        throw new Error(
          `only ${this.acked.length - target + count} of ${count} writes acknowledged in ` +
            `${timeoutMs} ms; errors: ${JSON.stringify([...this.errors])}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops every writer (after its write in flight). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }

  #count(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    const word = message.split(" ")[0] || "?";
    this.errors.set(word, (this.errors.get(word) ?? 0) + 1);
  }

  async #writer(id: number): Promise<void> {
    let conn: RespConn | undefined;
    let port = 0;
    let seq = 0;
    // Bounded by stop(): each pass waits for a reply (the server's own timeouts bound it) or
    // 20 ms after an error.
    while (!this.#stopped) {
      const key = `w${id}:${seq}`;
      try {
        if (conn === undefined) {
          const master = await writableMaster(this.nodes());
          if (master === undefined) throw new Error("nomaster");
          port = master.port;
          conn = await RespConn.open(port);
        }
        const reply = await within(conn.send(["SET", key, key]), this.replyTimeoutMs, "SET");
        if (reply !== "OK") {
          const error = typeof reply === "object" && reply !== null && "code" in reply
            ? `${reply.code} ${reply.message}`
            : String(reply);
          throw new Error(error);
        }
        this.acked.push({ key, port, atMs: performance.now() });
        seq++;
        if (this.pauseMs > 0) await new Promise((r) => setTimeout(r, this.pauseMs));
      } catch (error) {
        this.#count(error);
        conn?.close();
        conn = undefined;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    conn?.close();
  }
}

/** The keys of `acked` that `node` does not hold with their value (MGET in batches of 500). */
export async function missingKeys(
  node: KvNode,
  acked: readonly { key: string }[],
): Promise<string[]> {
  const conn = await node.connect();
  const missing: string[] = [];
  try {
    for (let i = 0; i < acked.length; i += 500) {
      const keys = acked.slice(i, i + 500).map((a) => a.key);
      const reply = await conn.send(["MGET", ...keys]);
      if (!Array.isArray(reply)) throw new Error(`MGET answered ${String(reply)}`);
      reply.forEach((value, j) => {
        if (!(value instanceof Uint8Array) || decoder.decode(value) !== keys[j]) {
          missing.push(keys[j]);
        }
      });
    }
  } finally {
    conn.close();
  }
  return missing;
}

/**
 * Waits until the cluster is whole: one master taking writes, and every other node of `nodes`
 * its healthy, streaming replica. Returns the master.
 */
export async function wholeCluster(nodes: readonly KvNode[], timeoutMs = 30_000): Promise<KvNode> {
  const master = await waitForMaster(nodes, timeoutMs);
  await waitUntil(`${nodes.length - 1} replicas streaming from ${master.name}`, async () => {
    const info = await master.info();
    const lines = [...info.entries()].filter(([k]) => /^replica\d+$/.test(k));
    return lines.length === nodes.length - 1 &&
      lines.every(([, v]) => v.includes("state=streaming") && v.includes("healthy=yes"));
  }, timeoutMs);
  return master;
}

/**
 * Waits until the cluster is whole and quiet (every replica acknowledged the master's last LSN;
 * call it once the writers stopped). Returns the master.
 */
export async function converged(nodes: readonly KvNode[], timeoutMs = 30_000): Promise<KvNode> {
  const master = await wholeCluster(nodes, timeoutMs);
  await waitUntil("every replica at the master's LSN", () => replicasCaughtUp(master), timeoutMs);
  return master;
}

/**
 * Waits until the cluster converged ({@link converged}), then asserts that every node holds the
 * same data and that the master holds every key of `mustHold` (the acknowledged writes a scenario
 * may not lose). Returns the master.
 */
export async function assertConverged(
  nodes: readonly KvNode[],
  mustHold: readonly { key: string }[] = [],
): Promise<KvNode> {
  const master = await converged(nodes);
  assert.deepEqual(await missingKeys(master, mustHold), [], "acknowledged writes lost");
  const dumps = await Promise.all(nodes.map(dump));
  for (const [i, other] of dumps.entries()) {
    assert.deepEqual(other, dumps[0], `${nodes[i].name} differs from ${nodes[0].name}`);
  }
  return master;
}

/** What {@link underLoad} hands its scenario. */
export interface ClusterUnderLoad {
  dir: string;
  etcd: EtcdCluster;
  /** The nodes as started (n1..n3). */
  started: KvNode[];
  /** The nodes by name: a scenario that restarts one puts the new process here. */
  nodes: Map<string, KvNode>;
  /** The master once the cluster was whole, before the scenario. */
  master: KvNode;
  load: WriteLoad;
}

/**
 * A scenario on three coordinated nodes (`args` their flags) on an etcd of their own, whole,
 * under 8 writers; then the writers stop and the nodes must converge with every acknowledged
 * write ({@link assertConverged}).
 */
export function underLoad(
  prefix: string,
  args: string[],
  scenario: (cluster: ClusterUnderLoad) => Promise<void>,
): Promise<void> {
  return withClusterDir(prefix, async (dir) => {
    await using etcd = await startEtcd();
    const started = await startCoordinatedCluster(dir, etcd, 3, { args });
    const nodes = new Map(started.map((n) => [n.name, n]));
    const master = await wholeCluster(started);
    const load = new WriteLoad(() => [...nodes.values()], 8);
    try {
      await scenario({ dir, etcd, started, nodes, master, load });
    } finally {
      await load.stop();
    }
    await assertConverged([...nodes.values()], load.acked);
  });
}
