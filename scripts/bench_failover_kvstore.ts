/**
 * The kvstore half of `deno task bench failover`: three nodes coordinated by a local etcd
 * (`--coordinator etcd`, `--failover-ttl-seconds` = the detection timeout), async or sync
 * (`--sync-replicas 1`) replication, every other setting at its default. Writers find the master
 * by asking each node's `INFO replication` (the one that says `role:master` with no write fence),
 * every 20 ms after an error, as the Sentinel writers ask a sentinel.
 *
 * @module
 */
import type { KvNode } from "../tests/helpers/cluster.ts";
import { startCoordinatedNode } from "../tests/helpers/coordinated.ts";
import { startEtcd } from "../tests/helpers/etcd.ts";
import { type FailoverCluster, info, type Member } from "./failover_cluster.ts";

const NODES = ["n1", "n2", "n3"];

/** Three kvstore nodes coordinated by etcd, in `mode` (async or sync replication). */
export async function kvstoreFailoverCluster(
  dir: string,
  ttlSeconds: number,
  mode: "async" | "sync",
): Promise<FailoverCluster> {
  const etcd = await startEtcd();
  const args = [
    "--failover-ttl-seconds",
    String(ttlSeconds),
    ...(mode === "sync" ? ["--replication-mode", "sync", "--sync-replicas", "1"] : []),
  ];
  const nodes = new Map<string, KvNode>();
  const start = async (name: string, port?: number) => {
    const node = await startCoordinatedNode(dir, etcd, name, { args, port });
    nodes.set(name, node);
    return node;
  };
  try {
    await Promise.all(NODES.map((name) => start(name)));
  } catch (error) {
    await Promise.all([...nodes.values()].map((n) => n.kill()));
    await etcd.stop();
    throw error;
  }
  const members: Member[] = NODES.map((name) => {
    const port = nodes.get(name)?.port ?? 0;
    return {
      name,
      port,
      kill: async () => {
        await nodes.get(name)?.kill();
      },
      restart: async () => {
        await start(name, port);
      },
    };
  });
  const master = async (): Promise<number | undefined> => {
    for (const member of members) {
      try {
        const fields = await info(member.port, "replication");
        const fence = fields.get("coordinator_write_fence") ?? "";
        if (fields.get("role") === "master" && fence === "") return member.port;
      } catch {
        // down or restarting
      }
    }
    return undefined;
  };
  return {
    label: `kvstore ${mode}`,
    members,
    master,
    whole: async () => {
      const port = await master();
      if (port === undefined) return false;
      const fields = await info(port, "replication");
      const lines = [...fields.entries()].filter(([k]) => /^replica\d+$/.test(k));
      return lines.length === NODES.length - 1 &&
        lines.every(([, v]) => v.includes("state=streaming") && v.includes("healthy=yes"));
    },
    close: async () => {
      await Promise.all([...nodes.values()].map((n) => n.kill()));
      await etcd.stop();
    },
  };
}
