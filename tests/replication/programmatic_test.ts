/**
 * The spec's programmatic setup and status: settings in code, servers started in-process,
 * `replicator.getStats()` and `replicaManager.getStatus()`.
 */
import assert from "node:assert/strict";
import { replicationExtension, replicatorOf } from "../../src/replication/mod.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { waitUntil } from "../helpers/cluster.ts";

Deno.test("programmatic configuration, getStats() and getStatus() on an in-process master", async () => {
  const options = { extensions: [replicationExtension] };
  await using replica = await startTestServer({ REPLICA: true }, options);
  await using master = await startTestServer({
    REPLICATION_ENABLED: true,
    REPLICATION_MODE: "sync",
    REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: replica.port }],
  }, options);
  assert.equal(replicatorOf(replica.node), undefined, "a replica has no replicator");
  const replicator = replicatorOf(master.node);
  assert.ok(replicator !== undefined);
  for (let i = 0; i < 10; i++) {
    const lsn = await master.node.store.put(`k${i}`, `v${i}`);
    await replicator.waitForReplicas(lsn);
  }
  assert.equal(new TextDecoder().decode(replica.node.store.read("k9")), "v9");
  const stats = replicator.getStats();
  assert.equal(stats.role, "master");
  assert.equal(stats.mode, "sync");
  assert.equal(stats.successfulReplications, 10);
  assert.equal(stats.failedReplications, 0);
  assert.equal(stats.queueSize, 0);
  const status = replicator.replicaManager.getStatus();
  assert.equal(status.totalReplicas, 1);
  assert.equal(status.healthyReplicas, 1);
  assert.equal(status.replicas[0].ackedLsn, 10);
  assert.equal(status.replicas[0].lagRecords, 0);
  await waitUntil("streaming", () => replicator.getStats().replicas[0].state === "streaming");
});
