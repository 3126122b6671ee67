/**
 * Outages around a master that stays up, under 8 writers in sync mode (`--sync-replicas 1`), with
 * a real etcd and real processes (lease TTL 2 s): both replicas SIGKILLed and restarted; etcd
 * SIGKILLed and restarted. Writes may fail meanwhile, never silently: every write acknowledged
 * is on the master at the end, and the three nodes hold the same data. Skipped, saying why,
 * without the `etcd` binary.
 */
import assert from "node:assert/strict";
import { CLUSTER_TEST, withClusterDir } from "../helpers/cluster.ts";
import { startCoordinatedCluster, startCoordinatedNode } from "../helpers/coordinated.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";
import { assertConverged, underLoad, wholeCluster, WriteLoad } from "../helpers/failover_load.ts";

const missing = etcdMissing();
const SYNC = ["--replication-mode", "sync", "--sync-replicas", "1", "--replication-timeout", "1"];

Deno.test({
  name: "failover: both replicas SIGKILLed and restarted under 8 sync writers: writes fail " +
    "meanwhile, resume once one is back, nothing acknowledged is lost, the nodes converge",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    underLoad(
      "kvstore-failover-replicas-",
      SYNC,
      async ({ dir, etcd, started, nodes, master, load }) => {
        await load.waitForAcks(200);
        const replicas = started.filter((n) => n !== master);
        await Promise.all(replicas.map((r) => r.kill()));
        const downAt = performance.now();
        // No replica can acknowledge: sync writes fail with the timeout's error, never OK, and
        // the master keeps its lease and its role.
        await new Promise((r) => setTimeout(r, 1500));
        const okWhileDown = load.acked.filter((a) => a.atMs > downAt + 1100);
        assert.equal(okWhileDown.length, 0, "sync writes acknowledged with no replica up");
        assert.equal((await master.info()).get("role"), "master");
        for (const replica of replicas) {
          nodes.set(
            replica.name,
            await startCoordinatedNode(dir, etcd, replica.name, { args: SYNC, port: replica.port }),
          );
        }
        await wholeCluster([...nodes.values()]);
        await load.waitForAcks(200);
        assert.ok(load.errors.size > 0, "the writers saw the outage");
      },
    ),
});

Deno.test({
  name: "failover: etcd SIGKILLed and restarted under 8 sync writers: writes stop, resume by " +
    "themselves, nothing acknowledged is lost, the nodes converge",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-etcd-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = await startCoordinatedCluster(dir, etcd, 3, { args: SYNC });
      await wholeCluster(nodes);
      const load = new WriteLoad(() => nodes, 8);
      try {
        await load.waitForAcks(200);
        await etcd.members[0].kill();
        const downAt = performance.now();
        // Past the lease (2 s): no master may acknowledge anything.
        await new Promise((r) => setTimeout(r, 3000));
        const late = load.acked.filter((a) => a.atMs > downAt + 2000);
        assert.equal(late.length, 0, `${late.length} writes acknowledged with etcd down past TTL`);
        for (const node of nodes) {
          assert.notEqual(await node.send(["PING"]), "", "every node still answers");
        }
        await etcd.members[0].restart();
        await wholeCluster(nodes);
        await load.waitForAcks(200);
      } finally {
        await load.stop();
      }
      await assertConverged(nodes, load.acked);
    }),
});
