/**
 * The master cut off from both replicas (a fault proxy in front of each replica goes silent) while
 * every node still reaches etcd, under 8 sync writers: the master keeps its lease and its role,
 * acknowledges nothing it cannot replicate, the replicas refuse reads once past
 * `--replica-max-staleness-ms`, and when the network heals everything resumes by itself: nothing
 * acknowledged is lost and the nodes converge. Real etcd, real processes, lease TTL 2 s. Skipped,
 * saying why, without the `etcd` binary.
 */
import assert from "node:assert/strict";
import { CLUSTER_TEST, freePort, type KvNode, withClusterDir } from "../helpers/cluster.ts";
import { startCoordinatedNode, waitForMaster } from "../helpers/coordinated.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";
import { assertConverged, wholeCluster, WriteLoad } from "../helpers/failover_load.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";

const missing = etcdMissing();
const ARGS = [
  ...["--replication-mode", "sync", "--sync-replicas", "1", "--replication-timeout", "0.5"],
  ...["--replication-health-check-interval", "0.3", "--replica-max-staleness-ms", "1000"],
];

Deno.test({
  name: "failover: the master cut off from both replicas keeps its role, acknowledges nothing, " +
    "the replicas refuse stale reads, and all resumes when the network heals",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-replica-cut-", async (dir) => {
      await using etcd = await startEtcd();
      // Each node is reached by the others through its own proxy (its advertised address).
      const names = ["n1", "n2", "n3"];
      const ports = new Map(names.map((name) => [name, freePort()]));
      const proxies = new Map(
        names.map((name) => [name, FaultProxy.start(ports.get(name) ?? 0)]),
      );
      try {
        const nodes: KvNode[] = await Promise.all(names.map((name) =>
          startCoordinatedNode(dir, etcd, name, {
            port: ports.get(name),
            args: [...ARGS, "--advertise-address", `127.0.0.1:${proxies.get(name)?.port}`],
          })
        ));
        const master = await wholeCluster(nodes);
        const replicas = nodes.filter((n) =>
          n !== master
        );
        const load = new WriteLoad(() => nodes, 8);
        try {
          await load.waitForAcks(200);
          for (const replica of replicas) proxies.get(replica.name)?.setMode("blackhole");
          const cutAt = performance.now();
          // Each replica's link goes down and its data grows stale: reads are refused.
          await Promise.all(replicas.map(async (replica) => {
            for (let i = 0; i < 200; i++) {
              if (/^ERR MASTERDOWN /.test(await replica.send(["GET", "w0:0"]))) return;
              await new Promise((r) => setTimeout(r, 50));
            }
            assert.fail(`${replica.name} kept serving reads while cut off`);
          }));
          const oks = load.acked.filter((a) => a.atMs > cutAt + 600);
          assert.equal(oks.length, 0, `${oks.length} sync writes acknowledged with no replica`);
          assert.equal(await waitForMaster(nodes, 5000), master, "the master kept its role");
          for (const replica of replicas) proxies.get(replica.name)?.setMode("pass");
          await wholeCluster(nodes);
          await load.waitForAcks(200);
          for (const replica of replicas) {
            assert.equal(await replica.send(["GET", "w0:0"]), "w0:0", "reads served again");
          }
        } finally {
          await load.stop();
        }
        await assertConverged(nodes, load.acked);
      } finally {
        await Promise.all([...proxies.values()].map((p) => p.close()));
      }
    }),
});
