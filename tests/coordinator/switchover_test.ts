/**
 * Planned switchover and `cluster status` on a real etcd with real processes: `kvstore switchover
 * --to NAME` under a steady write load from a cluster client loses no acknowledged write, the
 * client sees no error, the old master follows the new one, and `kvstore cluster status` shows
 * who is who. Skipped, saying why, without the `etcd` binary.
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import { kvstore } from "../helpers/cli.ts";
import {
  CLUSTER_TEST,
  dump,
  replicasCaughtUp,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import {
  startCoordinatedCluster,
  waitForMaster,
  waitForStreamingMaster,
} from "../helpers/coordinated.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";

const missing = etcdMissing();

Deno.test({
  name: "switchover: the master hands over to a named replica under load, losing nothing",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-switchover-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = await startCoordinatedCluster(dir, etcd, 3, {
        args: ["--replication-mode", "sync", "--sync-replicas", "1"],
      });
      const master = await waitForStreamingMaster(nodes);
      const target = nodes.find((n) => n !== master);
      assert.ok(target !== undefined);
      const etcdFlags = ["--etcd-endpoints", etcd.endpoints.join(","), "--cluster-name", "test"];
      const before = await kvstore(["cluster", "status", ...etcdFlags]);
      assert.equal(before.code, 0, before.stderr);
      assert.match(before.stdout, new RegExp(`leader ${master.name}, epoch`));
      assert.match(before.stdout, /MEMBER\s+ROLE\s+ADDRESS\s+EPOCH\s+LSN\s+LAG\s+LEASE\s+HEALTH/);

      // A steady writer through a cluster client: every OK is remembered.
      await using client = new KVClient({
        nodes: nodes.map((n) => `127.0.0.1:${n.port}`),
        retryTimeoutMs: 20_000,
      });
      const acknowledged: string[] = [];
      const errors: string[] = [];
      let writing = true;
      const writer = (async () => {
        for (let i = 0; writing && i < 100_000; i++) {
          try {
            await client.put(`w${i}`, `v${i}`);
            acknowledged.push(`w${i}`);
          } catch (error) {
            errors.push(String(error));
          }
        }
      })();
      await waitUntil("some writes", () => acknowledged.length >= 50);
      const run = await kvstore(["switchover", "--to", target.name, ...etcdFlags]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`SWITCHED to ${target.name} epoch \\d+ lsn \\d+`));
      const done = master.logs.find((l) => l.properties.event === "switchover_done");
      console.log(`switchover: writes paused for ${done?.properties.ms} ms on the old master`);
      const newMaster = await waitForMaster(nodes);
      assert.equal(newMaster, target);
      const count = acknowledged.length;
      await waitUntil("writes on the new master", () => acknowledged.length >= count + 50);
      writing = false;
      await writer;
      assert.deepEqual(errors, []);
      await waitUntil("the old master streams from the new one", async () => {
        const info = await master.info();
        return info.get("role") === "replica" && await replicasCaughtUp(target);
      }, 20_000);
      const data = new Set((await dump(target)).map((pair) => pair.split("=")[0]));
      const lost = acknowledged.filter((key) => !data.has(key));
      assert.deepEqual(lost, [], `${lost.length} acknowledged writes lost`);
      for (const node of nodes) assert.deepEqual(await dump(node), await dump(target));
      const after = await kvstore(["cluster", "status", "--json", ...etcdFlags]);
      const status = JSON.parse(after.stdout);
      assert.equal(status.leader, target.name);
      assert.equal(status.members.length, 3);
      // Nothing changes when the target is unknown.
      const refused = await kvstore(["switchover", "--to", "nobody", ...etcdFlags]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /no registered member of test is named nobody/);
    }),
});

Deno.test({
  name: "switchover: a target that dies while the master waits for it ends the pause at once",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-switchover-dead-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = await startCoordinatedCluster(dir, etcd, 2);
      const master = await waitForMaster(nodes);
      const target = nodes.find((n) => n !== master);
      assert.ok(target !== undefined);
      await waitUntil("the replica streaming", () => replicasCaughtUp(master));
      // The target stalls, then dies: the master cannot bring it up to date.
      Deno.kill(target.pid, "SIGSTOP");
      assert.equal(await master.send(["SET", "k", "1"]), "OK");
      const answer = master.send(["SWITCHOVER", target.name, "60000"]);
      await target.kill();
      const reply = await answer;
      assert.match(reply, /replication link is down.*nothing done, writes resume here/);
      assert.equal(await master.send(["SET", "k", "2"]), "OK");
    }),
});
