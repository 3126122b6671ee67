/**
 * A replica that comes back is served at once, and a replica that lost its master says so and,
 * when asked to, refuses reads past a staleness bound (issue 12, item 6). Real processes: a
 * replica killed with SIGKILL and restarted on its port, a master killed and restarted.
 */
import assert from "node:assert/strict";
import { verdictOf } from "../../src/client/cluster.ts";
import { KVServerError } from "../../src/client/errors.ts";
import {
  CLUSTER_TEST,
  dump,
  FAST_FAILURE_FLAGS,
  KvNode,
  replicasCaughtUp,
  startCluster,
  textRequest,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";

Deno.test({
  name: "a killed replica that comes back is caught up within about a second, not at the next " +
    "30 s health probe",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-replica-return-", async (dir) => {
      // Default retry settings: 100, 200, 400 ms, then every REPLICATION_RETRY_MAX_BACKOFF_MS
      // (1 s); before, the pace after the quick retries was the 30 s health-check interval.
      const flags = ["--fsync", "no"];
      const { master, replicas: [replica] } = await startCluster(dir, 1, {
        replicaArgs: flags,
        masterArgs: flags,
      });
      const conn = await master.connect();
      for (let i = 0; i < 5; i++) await conn.send(["PUT", `before${i}`, "v"]);
      await waitUntil("the replica caught up", () => replicasCaughtUp(master));
      const port = replica.port;
      await replica.kill();
      for (let i = 0; i < 20; i++) await conn.send(["PUT", `while-down${i}`, "v"]);
      // Past the quick retries: the master now probes at its slow pace.
      await waitUntil("the master gave up its quick retries", async () =>
        Number((await master.info()).get("failed_replications")) >= 4);
      const back = await KvNode.start("r1-again", `${dir}/r1`, ["--replica", "--port", `${port}`]);
      const startedMs = Date.now();
      await waitUntil("the replica caught up again", () =>
        replicasCaughtUp(master), 20_000);
      const tookMs = Date.now() - startedMs;
      assert.ok(tookMs < 5000, `caught up ${tookMs} ms after it listened (was up to 30 s)`);
      assert.deepEqual(await dump(back), await dump(master));
      conn.close();
    }),
});

Deno.test({
  name: "past REPLICA_MAX_STALENESS_MS a replica whose master is down refuses reads with a " +
    "retryable MASTERDOWN, and serves them again once the master is back",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-stale-reads-", async (dir) => {
      const { master, replicas: [replica] } = await startCluster(dir, 1, {
        replicaArgs: ["--fsync", "no", "--replica-max-staleness-ms", "300"],
        masterArgs: ["--fsync", "no"],
      });
      const conn = await master.connect();
      await conn.send(["PUT", "k", "v1"]);
      conn.close();
      await waitUntil("the replica caught up", () => replicasCaughtUp(master));
      assert.equal(await replica.send(["GET", "k"]), "v1", "a replica in touch serves reads");
      let info = await replica.info();
      assert.equal(info.get("staleness_ms"), "0");
      assert.equal(info.get("max_staleness_ms"), "300");

      const masterPort = master.port;
      await master.kill();
      await waitUntil("the link down for longer than the bound", async () => {
        const fields = await replica.info();
        return fields.get("master_link_status") === "down" &&
          Number(fields.get("staleness_ms")) > 300;
      });
      const refused = await replica.send(["GET", "k"]);
      assert.match(refused, /^ERR MASTERDOWN Link with MASTER is down and this replica's data/);
      assert.match(refused, /past REPLICA_MAX_STALENESS_MS 300; read from the master or retry$/);
      assert.match(await replica.send(["MGET", "k"]), /^ERR MASTERDOWN /);
      const [text] = await textRequest(replica.port, ["READ k"]);
      assert.match(text, /^ERROR: Link with MASTER is down/);
      // Writes are refused as on any replica; INFO, ROLE and PING still answer.
      assert.match(await replica.send(["PUT", "k", "x"]), /^ERR READONLY /);
      assert.equal(await replica.send(["PING"]), "PONG");
      info = await replica.info();
      assert.ok(Number(info.get("staleness_ms")) > 300, info.get("staleness_ms"));
      assert.equal(info.get("stale_reads_refused"), "3");
      assert.equal(
        verdictOf(new KVServerError("MASTERDOWN", refused)),
        "retry",
        "a client tries another node",
      );

      // The master comes back (same port and data): it reconnects within its backoff and the
      // replica serves reads at once.
      await KvNode.start("master-again", `${dir}/m`, [
        "--port",
        `${masterPort}`,
        "--fsync",
        "no",
        "--replicas",
        `127.0.0.1:${replica.port}`,
      ]);
      await waitUntil("reads served again", async () =>
        (await replica.send(["GET", "k"])) === "v1", 10_000);
      assert.equal((await replica.info()).get("staleness_ms"), "0");
    }),
});

Deno.test({
  name: "a replica restarted without its master refuses reads until a master streams to it",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-stale-start-", async (dir) => {
      const replica = await KvNode.start("r", `${dir}/r`, [
        "--replica",
        "--replica-max-staleness-ms",
        "1000",
      ]);
      assert.match(
        await replica.send(["GET", "k"]),
        /^ERR MASTERDOWN .*no master has been heard from since this replica started/,
      );
      assert.equal((await replica.info()).get("staleness_ms"), "-1");
      const master = await KvNode.start("m", `${dir}/m`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
      ]);
      await master.send(["PUT", "k", "v"]);
      await waitUntil(
        "the replica serves the master's data",
        async () => (await replica.send(["GET", "k"])) === "v",
      );
    }),
});

Deno.test({
  name: "in a chain master → r1 → r2, a master gone makes r2 stale too: it refuses reads past " +
    "its bound although its own link to r1 is up",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-stale-chain-", async (dir) => {
      const flags = ["--fsync", "no", ...FAST_FAILURE_FLAGS];
      const r2 = await KvNode.start("r2", `${dir}/r2`, [
        "--replica",
        "--replica-max-staleness-ms",
        "1500",
        ...flags,
      ]);
      const r1 = await KvNode.start("r1", `${dir}/r1`, [
        "--replica",
        "--replicas",
        `127.0.0.1:${r2.port}`,
        ...flags,
      ]);
      const master = await KvNode.start("m", `${dir}/m`, [
        "--replicas",
        `127.0.0.1:${r1.port}`,
        ...flags,
      ]);
      await master.send(["SET", "k", "v"]);
      await waitUntil("r2 serves the master's write through r1", async () =>
        (await r2.send(["GET", "k"])) === "v");
      await master.kill();
      await waitUntil("r2 refuses reads", async () =>
        /^ERR MASTERDOWN /.test(await r2.send(["GET", "k"])), 10_000);
      const info = await r2.info();
      assert.equal(info.get("master_link_status"), "up", "its own link to r1 is fine");
      assert.ok(Number(info.get("origin_lag_ms")) > 1500, info.get("origin_lag_ms"));
    }),
});
