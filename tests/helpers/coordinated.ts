/**
 * Nodes run by the etcd coordinator (`--coordinator etcd`), as real processes: their flags, a
 * cluster of them started together, and "which one is the master now".
 *
 * @module
 */
import { KvNode, replicasCaughtUp, waitUntil } from "./cluster.ts";
import type { EtcdCluster } from "./etcd.ts";

/** Flags of a coordinated node named `name` on `etcd` (TTL 2 s, settle 300 ms unless `extra` says). */
export function coordinatedArgs(
  etcd: EtcdCluster,
  name: string,
  extra: readonly string[] = [],
  cluster = "test",
): string[] {
  return [
    "--coordinator",
    "etcd",
    "--etcd-endpoints",
    etcd.endpoints.join(","),
    "--cluster-name",
    cluster,
    "--node-name",
    name,
    "--failover-ttl-seconds",
    "2",
    "--failover-settle-ms",
    "300",
    "--etcd-timeout-ms",
    "300",
    ...extra,
  ];
}

/** Starts coordinated nodes `n1`..`nN` in `dir/n1`..., each with `args`, and waits for a master. */
export async function startCoordinatedCluster(
  dir: string,
  etcd: EtcdCluster,
  count: number,
  options: { args?: readonly string[] } = {},
): Promise<KvNode[]> {
  const nodes = await Promise.all(
    Array.from({ length: count }, (_, i) => startCoordinatedNode(dir, etcd, `n${i + 1}`, options)),
  );
  await waitForMaster(nodes);
  return nodes;
}

/** Starts (or restarts, on its data directory) coordinated node `name` in `dir/name`. */
export function startCoordinatedNode(
  dir: string,
  etcd: EtcdCluster,
  name: string,
  options: { args?: readonly string[]; port?: number } = {},
): Promise<KvNode> {
  return KvNode.start(name, `${dir}/${name}`, [
    ...coordinatedArgs(etcd, name, options.args),
    ...(options.port === undefined ? [] : ["--port", String(options.port)]),
  ]);
}

/** The node's INFO replication, or undefined when it does not answer. */
async function replicationInfo(node: KvNode): Promise<Map<string, string> | undefined> {
  try {
    return await node.info("replication");
  } catch {
    return undefined;
  }
}

/**
 * Waits until exactly one of `nodes` is a master that takes writes (it holds the leader key, its
 * lease is trusted) and every other answering node is a replica; returns it.
 */
export async function waitForMaster(nodes: readonly KvNode[], timeoutMs = 30_000): Promise<KvNode> {
  let master: KvNode | undefined;
  await waitUntil("one master elected through etcd", async () => {
    const masters: KvNode[] = [];
    for (const node of nodes) {
      const info = await replicationInfo(node);
      if (info === undefined) continue;
      if (info.get("role") === "master" && info.get("coordinator_write_fence") === "") {
        masters.push(node);
      }
    }
    master = masters.length === 1 ? masters[0] : undefined;
    return master !== undefined;
  }, timeoutMs);
  return master as KvNode;
}

/**
 * Waits for {@link waitForMaster}, then until every other node of `nodes` streams from it, caught
 * up (at most `timeoutMs` for that); returns the master.
 */
export async function waitForStreamingMaster(
  nodes: readonly KvNode[],
  timeoutMs = 20_000,
): Promise<KvNode> {
  const master = await waitForMaster(nodes);
  const replicas = String(nodes.length - 1);
  await waitUntil(`${replicas} replicas streaming`, async () => {
    return (await master.info()).get("total_replicas") === replicas &&
      await replicasCaughtUp(master);
  }, timeoutMs);
  return master;
}
