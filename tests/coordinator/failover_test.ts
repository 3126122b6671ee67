/**
 * Automatic failover on a real etcd with real node processes (`--coordinator etcd`, lease TTL
 * 2 s): registration and election, a master SIGKILLed and the most caught-up replica taking over,
 * the old master rejoining as a replica with an identical dump. Skipped, saying why, without the
 * `etcd` binary.
 */
import assert from "node:assert/strict";
import {
  CLUSTER_TEST,
  dump,
  KvNode,
  replicasCaughtUp,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import {
  startCoordinatedCluster,
  startCoordinatedNode,
  waitForMaster,
} from "../helpers/coordinated.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";

const missing = etcdMissing();
if (missing !== undefined) console.log(`tests/coordinator: skipped: ${missing}`);

async function put(node: KvNode, key: string, value: string): Promise<string> {
  return await node.send(["SET", key, value]);
}

Deno.test({
  name: "failover: a SIGKILLed master is replaced by the most caught-up replica; it rejoins",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = await startCoordinatedCluster(dir, etcd, 3);
      const master = await waitForMaster(nodes);
      await waitUntil("three members registered", async () => {
        return (await master.info()).get("coordinator_members") === "3";
      });
      // Every member is registered, and the master replicates to the other two.
      await waitUntil("both replicas streaming", async () => {
        const i = await master.info();
        return i.get("total_replicas") === "2" && await replicasCaughtUp(master);
      });
      for (let i = 0; i < 50; i++) assert.equal(await put(master, `k${i}`, `v${i}`), "OK");
      await waitUntil("replicas caught up", () => replicasCaughtUp(master));
      const port = master.port;
      const killedAt = performance.now();
      await master.kill();
      const survivors = nodes.filter((n) => n !== master);
      const next = await waitForMaster(survivors);
      console.log(`failover after SIGKILL: ${Math.round(performance.now() - killedAt)} ms`);
      const nextInfo = await next.info();
      assert.ok(Number(nextInfo.get("coordinator_leader_epoch")) >= 2);
      assert.equal(await next.send(["GET", "k49"]), "v49");
      for (let i = 50; i < 80; i++) assert.equal(await put(next, `k${i}`, `v${i}`), "OK");
      // The old master comes back on its data and port: it rejoins as a replica by itself.
      const back = await startCoordinatedNode(dir, etcd, master.name, { port });
      await waitUntil("the old master streaming from the new one", async () => {
        const i = await back.info();
        return i.get("role") === "replica" && i.get("master_link_status") === "up" &&
          await replicasCaughtUp(next);
      }, 30_000);
      const expected = await dump(next);
      assert.equal(expected.length, 80);
      for (const node of [back, ...survivors.filter((n) => n !== next)]) {
        assert.deepEqual(await dump(node), expected, `${node.name} differs from the master`);
      }
      // Writes on the old master are refused: it is a replica now.
      assert.match(await put(back, "x", "1"), /READONLY/);
    }),
});
