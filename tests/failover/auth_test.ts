/**
 * A coordinated cluster with a client token and a separate replication token, with a real etcd
 * and real processes: the nodes replicate to each other with the replication token; a hostile
 * client holding a valid client token cannot move the leader (`SWITCHOVER` is an admin command),
 * while `kvstore switchover` given the replication token can. Skipped, saying why, without the
 * `etcd` binary.
 */
import assert from "node:assert/strict";
import {
  CLUSTER_TEST,
  type KvNode,
  parseInfo,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { kvstore } from "../helpers/cli.ts";
import { startCoordinatedNode } from "../helpers/coordinated.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";

const missing = etcdMissing();
const CLIENT_TOKEN = "client-token-0123456789abcdef";
const REPLICATION_TOKEN = "replication-token-0123456789abcdef";

/** The node whose INFO (read with the replication token) says it is a master taking writes. */
async function masterOf(nodes: readonly KvNode[]): Promise<KvNode | undefined> {
  for (const node of nodes) {
    const info = parseInfo(await node.send(["INFO", "replication"], REPLICATION_TOKEN));
    const healthy = Number(info.get("healthy_replicas") ?? 0);
    if (
      info.get("role") === "master" && info.get("coordinator_write_fence") === "" && healthy === 2
    ) {
      return node;
    }
  }
  return undefined;
}

Deno.test({
  name: "failover: with client and replication tokens the nodes replicate; a client token " +
    "cannot SWITCHOVER, the replication token can",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-auth-", async (dir) => {
      await using etcd = await startEtcd();
      const args = ["--auth-token", CLIENT_TOKEN, "--replication-token", REPLICATION_TOKEN];
      const nodes = await Promise.all(
        ["n1", "n2", "n3"].map((name) => startCoordinatedNode(dir, etcd, name, { args })),
      );
      let master: KvNode | undefined;
      await waitUntil("a master streaming to two replicas", async () => {
        master = await masterOf(nodes);
        return master !== undefined;
      }, 30_000);
      assert.ok(master !== undefined);
      assert.equal(await master.send(["SET", "k", "v"], CLIENT_TOKEN), "OK");
      const target = nodes.find((n) => n !== master);
      assert.ok(target !== undefined);

      const refused = await master.send(["SWITCHOVER", target.name], CLIENT_TOKEN);
      assert.match(refused, /^ERR NOAUTH .*SWITCHOVER .*needs the replication token/, refused);
      assert.equal(await masterOf(nodes), master, "nothing changed");

      const etcdFlags = ["--etcd-endpoints", etcd.endpoints.join(","), "--cluster-name", "test"];
      const clientRun = await kvstore([
        "switchover",
        "--to",
        target.name,
        "--auth-token",
        CLIENT_TOKEN,
        ...etcdFlags,
      ]);
      assert.equal(clientRun.code, 1, "refused with the client token only");
      const run = await kvstore([
        "switchover",
        "--to",
        target.name,
        "--replication-token",
        REPLICATION_TOKEN,
        ...etcdFlags,
      ]);
      assert.equal(run.code, 0, run.stderr);
      await waitUntil("the target leads", async () => await masterOf(nodes) === target, 20_000);
      assert.equal(await target.send(["GET", "k"], CLIENT_TOKEN), "v");
    }),
});
