/**
 * `INFO replication` on a replica tells an operator where its master is and how it is doing: the
 * master's listening address (what clients use, not the stream's outgoing port), the link status,
 * seconds since the master was last heard, and how far behind the replica is.
 */
import assert from "node:assert/strict";
import {
  CLUSTER_TEST,
  FAST_FAILURE_FLAGS,
  startCluster,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";

Deno.test({
  name: "replica INFO: the master's listening address, link status, last contact and lag",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-replica-info-", async (dir) => {
      const flags = ["--fsync", "no", ...FAST_FAILURE_FLAGS];
      const { master, replicas: [replica] } = await startCluster(dir, 1, {
        replicaArgs: flags,
        masterArgs: flags,
      });
      const conn = await master.connect();
      for (let i = 0; i < 10; i++) await conn.send(["PUT", `k${i}`, "v"]);
      conn.close();
      await waitUntil("the replica applied every write", async () =>
        (await replica.info()).get("last_applied_lsn") === "10");
      const info = await replica.info();
      assert.equal(info.get("role"), "replica");
      assert.equal(info.get("master_host"), "127.0.0.1");
      assert.equal(info.get("master_port"), String(master.port));
      assert.equal(info.get("master_address"), `127.0.0.1:${master.port}`);
      // The stream itself comes from the master's outgoing port, which is not where clients go.
      assert.notEqual(info.get("master_stream_peer"), `127.0.0.1:${master.port}`);
      assert.equal(info.get("master_link_status"), "up");
      assert.ok(Number(info.get("master_last_io_seconds_ago")) <= 1);
      assert.equal(info.get("master_last_lsn"), "10");
      assert.equal(info.get("master_lag_records"), "0");
      assert.equal(info.get("master_lag_ms"), "0");

      // The master goes away: the link goes down and the silence is counted.
      await master.kill();
      await waitUntil("the link down", async () =>
        (await replica.info()).get("master_link_status") === "down");
      assert.equal((await replica.info()).get("master_address"), `127.0.0.1:${master.port}`);
    }),
});
