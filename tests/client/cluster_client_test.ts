/**
 * `KVClient({ nodes })` against real node processes: discovery from any node, writes to the
 * master, reads by preference (spread over replicas, `nearest` by measured round trip,
 * `maxStalenessMs` skipping a replica paused with SIGSTOP), sessions that read their own writes
 * through a slowed replica, write concerns.
 */
import assert from "node:assert/strict";
import {
  KVClient,
  KVUnavailableError,
  KVWriteConcernError,
  type ReadPreference,
} from "../../mod.ts";
import {
  CLUSTER_TEST,
  FAST_FAILURE_FLAGS,
  freePort,
  KvNode,
  replicasCaughtUp,
  startCluster,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";

const HOST = "127.0.0.1";

function at(port: number): string {
  return `${HOST}:${port}`;
}

/** A master with two replicas, all on 127.0.0.1, fsync no, fast to notice a lost replica. */
async function threeNodes(dir: string) {
  const { master, replicas: [r1, r2] } = await startCluster(dir, 2, {
    replicaArgs: ["--fsync", "no"],
    masterArgs: ["--fsync", "no", ...FAST_FAILURE_FLAGS],
  });
  return { master, r1, r2 };
}

Deno.test({
  name:
    "KVClient({ nodes }): finds the master from one replica, writes there, spreads replica reads",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-client-", async (dir) => {
      const { master, r1, r2 } = await threeNodes(dir);
      // A wide latency window: on a loaded machine one replica's measured round trip can pass
      // the other's by more than the default 15 ms, and then every read rightly goes to one.
      await using client = new KVClient({
        nodes: [at(r1.port)],
        timeoutMs: 5000,
        localThresholdMs: 10_000,
      });
      await client.put("k", "v");
      assert.equal(client.address, at(master.port));
      const topology = await client.refreshTopology();
      assert.equal(topology.master, at(master.port));
      assert.equal(topology.masterReachable, true);
      assert.deepEqual(
        topology.nodes.map((n) => `${n.address} ${n.role}`).sort(),
        [`${at(master.port)} master`, `${at(r1.port)} replica`, `${at(r2.port)} replica`].sort(),
      );
      await waitUntil("replicas caught up", () => replicasCaughtUp(master));
      const before = await Promise.all([master, r1, r2].map((n) => n.commandsProcessed()));
      for (let i = 0; i < 200; i++) {
        assert.equal(await client.read("k", { readPreference: "replica" }), "v");
      }
      const after = await Promise.all([master, r1, r2].map((n) => n.commandsProcessed()));
      const served = after.map((n, i) => n - before[i]);
      assert.ok(served[0] < 20, `the master answered ${served[0]} requests (probes only)`);
      assert.ok(
        served[1] > 40 && served[2] > 40,
        `replicas answered ${served[1]} and ${served[2]}`,
      );
      // primary (the default) reads from the master.
      const masterBefore = await master.commandsProcessed();
      for (let i = 0; i < 50; i++) assert.equal(await client.read("k"), "v");
      assert.ok((await master.commandsProcessed()) - masterBefore >= 50);
      // Every method works through the cluster.
      await client.batchPut({ a: "1", b: "2" });
      assert.deepEqual(await client.readRange("a", "b"), [["a", "1"], ["b", "2"]]);
      assert.equal(await client.delete("a"), true);
      assert.match(await client.info("replication"), /role:master/);
      assert.ok((await client.ping()) >= 0);
    }),
});

Deno.test({
  name: "KVClient: a write concern per client and per call; the typed error says how many have it",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-client-wc-", async (dir) => {
      const { master, r1, r2 } = await threeNodes(dir);
      await using client = new KVClient({
        nodes: [at(master.port)],
        writeConcern: { replicas: 2, timeoutMs: 5000 },
      });
      await client.put("a", "1");
      assert.equal(
        await r1.send(["GET", "a"]),
        "1",
        "on both replicas when the put returns",
      );
      assert.equal(await r2.send(["GET", "a"]), "1");
      await r2.kill();
      await assert.rejects(
        client.put("b", "2", { writeConcern: { replicas: 2, timeoutMs: 300 } }),
        (error) => {
          assert.ok(error instanceof KVWriteConcernError, String(error));
          assert.equal(error.acknowledgedReplicas, 1);
          assert.equal(error.requiredReplicas, 2);
          assert.ok(error.lsn >= 2);
          return true;
        },
      );
      assert.equal(await client.read("b"), "2", "the write stays applied on the master");
      await client.put("c", "3", { writeConcern: { replicas: "majority", timeoutMs: 2000 } });
      await client.put("d", "4", { writeConcern: { replicas: 0, timeoutMs: 1 } });
    }),
});

Deno.test({
  name: "KVClient: a session reads its own writes 10,000 times from a replica slowed by a proxy",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-client-session-", async (dir) => {
      const replica = await KvNode.start("replica", `${dir}/r`, [
        "--replica",
        "--fsync",
        "no",
        "--min-lsn-wait-ms",
        "5000",
      ]);
      // The master reaches the replica through the proxy: its stream arrives late. The client
      // reaches the replica directly (a seed), so a read can overtake the write it follows.
      const proxy = FaultProxy.start(replica.port);
      try {
        const master = await KvNode.start("master", `${dir}/m`, [
          "--fsync",
          "no",
          "--replicas",
          at(proxy.port),
        ]);
        await waitUntil("replica streaming", () => replicasCaughtUp(master));
        proxy.setDelay(10);
        await using client = new KVClient({ nodes: [at(master.port), at(replica.port)] });
        await client.refreshTopology();
        assert.ok(
          client.topology().nodes.some((n) =>
            n.address === at(replica.port) && n.role === "replica"
          ),
        );
        const sessions = 50;
        const rounds = 200;
        let replicaReads = 0;
        const masterBefore = await master.commandsProcessed();
        await Promise.all(Array.from({ length: sessions }, async (_, s) => {
          const session = client.session({ readPreference: "replica" });
          for (let i = 0; i < rounds; i++) {
            const value = `${s}:${i}`;
            await session.put(`key${s}`, value);
            const seen = await session.read(`key${s}`);
            assert.equal(seen, value, `session ${s} round ${i} read ${seen}`);
            replicaReads++;
          }
        }));
        assert.equal(replicaReads, sessions * rounds);
        // The reads went to the replica: the master answered the writes (and probes) only.
        const masterServed = (await master.commandsProcessed()) - masterBefore;
        assert.ok(
          masterServed < sessions * rounds * 1.2,
          `the master answered ${masterServed} requests for ${sessions * rounds} writes`,
        );
      } finally {
        await proxy.close();
      }
    }),
});

Deno.test({
  name: "KVClient: maxStalenessMs skips a replica paused with SIGSTOP; it comes back after SIGCONT",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-client-stale-", async (dir) => {
      const { master, r1, r2 } = await threeNodes(dir);
      // Probes wait long for an answer: the paused replica still looks reachable to the client
      // (its probe is out), so only its staleness, as the master measures it, can exclude it.
      await using client = new KVClient({
        nodes: [at(master.port)],
        topologyRefreshMs: 100,
        topologyTimeoutMs: 8000,
        timeoutMs: 8000,
      });
      await client.put("k", "v");
      await client.refreshTopology();
      Deno.kill(r2.pid, "SIGSTOP");
      try {
        // Writes go on; the master sees the paused replica fall behind.
        const writer = (async () => {
          for (let i = 0; i < 40; i++) {
            await client.put(`w${i}`, "x");
            await new Promise((resolve) => setTimeout(resolve, 25));
          }
        })();
        await waitUntil("the client sees r2 stale", () => {
          const node = client.topology().nodes.find((n) => n.address === at(r2.port));
          return node !== undefined && (node.stalenessMs ?? Infinity) > 500;
        }, 10_000);
        const paused = client.topology().nodes.find((n) => n.address === at(r2.port));
        assert.equal(paused?.reachable, true, "its probe has not failed yet");
        await writer;
        const r1Before = await r1.commandsProcessed();
        const started = performance.now();
        for (let i = 0; i < 100; i++) {
          assert.equal(
            await client.read("k", { readPreference: "replica", maxStalenessMs: 500 }),
            "v",
          );
        }
        const elapsedMs = performance.now() - started;
        assert.ok((await r1.commandsProcessed()) - r1Before >= 100, "r1 served every read");
        assert.ok(elapsedMs < 4000, `100 reads took ${elapsedMs} ms (none waited for r2)`);
      } finally {
        Deno.kill(r2.pid, "SIGCONT");
      }
      await waitUntil("r2 fresh again", () => {
        const node = client.topology().nodes.find((n) => n.address === at(r2.port));
        return node?.reachable === true && node.stalenessMs === 0;
      }, 15_000);
    }),
});

Deno.test({
  name: "KVClient: nearest picks the faster of two nodes behind proxies with different delays",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-client-nearest-", async (dir) => {
      const replica = await KvNode.start("replica", `${dir}/r`, ["--replica", "--fsync", "no"]);
      const slowProxy = FaultProxy.start(replica.port);
      const masterPort = freePort();
      const fastProxy = FaultProxy.start(masterPort);
      try {
        const master = await KvNode.start("master", `${dir}/m`, [
          "--port",
          String(masterPort),
          "--fsync",
          "no",
          "--replicas",
          at(slowProxy.port),
          "--advertise-address",
          at(fastProxy.port),
        ]);
        await waitUntil("replica streaming", () => replicasCaughtUp(master));
        await using client = new KVClient({
          nodes: [at(fastProxy.port), at(slowProxy.port)],
          readPreference: "nearest",
        });
        await client.put("k", "v");
        // 120 ms: on a loaded machine the near node alone measured 55 ms, so 40 ms was too close.
        slowProxy.setDelay(120);
        fastProxy.setDelay(2);
        for (let i = 0; i < 4; i++) await client.refreshTopology();
        const rtt = new Map(client.topology().nodes.map((n) => [n.address, n.rttMs ?? 0]));
        assert.ok(
          (rtt.get(at(slowProxy.port)) ?? 0) > (rtt.get(at(fastProxy.port)) ?? 0) + 30,
          `measured ${JSON.stringify([...rtt])}`,
        );
        const masterBefore = await master.commandsProcessed();
        const replicaBefore = await replica.commandsProcessed();
        for (let i = 0; i < 30; i++) assert.equal(await client.read("k"), "v");
        assert.ok(
          (await master.commandsProcessed()) - masterBefore >= 30,
          "the near master served them",
        );
        assert.ok(
          (await replica.commandsProcessed()) - replicaBefore < 10,
          "the far replica did not",
        );
        // The other way round, the replica is nearest.
        slowProxy.setDelay(2);
        fastProxy.setDelay(120);
        for (let i = 0; i < 8; i++) await client.refreshTopology();
        const replicaBefore2 = await replica.commandsProcessed();
        for (let i = 0; i < 30; i++) assert.equal(await client.read("k"), "v");
        assert.ok(
          (await replica.commandsProcessed()) - replicaBefore2 >= 30,
          "now the replica is nearest",
        );
      } finally {
        await slowProxy.close();
        await fastProxy.close();
      }
    }),
});

Deno.test({
  name: "KVClient: bad options fail the constructor; no eligible replica is a KVUnavailableError",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-client-opts-", async (dir) => {
      assert.throws(() => new KVClient({ nodes: [] }), RangeError);
      assert.throws(() => new KVClient({ nodes: ["nope"] }), /not host:port/);
      assert.throws(() => new KVClient({ nodes: ["a:1"], port: 5 }), /not both/);
      assert.throws(
        () => new KVClient({ nodes: ["a:1"], readPreference: "secondary" as ReadPreference }),
        /readPreference/,
      );
      assert.throws(
        () => new KVClient({ nodes: ["a:1"], writeConcern: { replicas: -1, timeoutMs: 5 } }),
        /writeConcern/,
      );
      const master = await KvNode.start("master", `${dir}/m`, ["--fsync", "no"]);
      await using client = new KVClient({
        nodes: [at(master.port)],
        maxRetries: 2,
        retryTimeoutMs: 1000,
      });
      await client.put("k", "v");
      await assert.rejects(
        client.read("k", { readPreference: "replica" }),
        (error) =>
          error instanceof KVUnavailableError && /readPreference replica/.test(error.message),
      );
      assert.equal(await client.read("k", { readPreference: "replicaPreferred" }), "v");
      assert.equal(await client.read("k", { readPreference: "nearest" }), "v");
    }),
});
