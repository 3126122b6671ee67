/**
 * Attacks on `KVClient({ nodes })`: bad nodes in the seed list (a Redis server, a silent port, a
 * garbage talker, a closed port), a node that lies about its role, topology answers that are huge
 * or absurd, and a partition between the client and the master only.
 */
import assert from "node:assert/strict";
import { KVClient, KVUnavailableError } from "../../mod.ts";
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
import { bulk, startFakeNode, topologyJson } from "../helpers/fake_node.ts";
import { hasCommand, startRedis } from "../helpers/redis.ts";

function at(port: number): string {
  return `127.0.0.1:${port}`;
}

Deno.test({
  name: "KVClient: bad seeds (Redis, a silent port, garbage, a closed port) are passed over",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-attack-seeds-", async (dir) => {
      const master = await KvNode.start("master", `${dir}/m`, ["--fsync", "no"]);
      await using silent = startFakeNode(() => "silence");
      await using garbage = startFakeNode(() => "\x00\xff not RESP at all\r\n");
      const closed = at(freePort());
      const redis = hasCommand("redis-server") ? await startRedis() : undefined;
      try {
        const seeds = [
          silent.address,
          garbage.address,
          closed,
          ...(redis === undefined ? [] : [at(redis.port)]),
          at(master.port),
        ];
        await using client = new KVClient({ nodes: seeds, topologyTimeoutMs: 500 });
        const started = performance.now();
        await client.put("k", "v");
        assert.equal(await client.read("k"), "v");
        // The silent seed held the first call back by one probe timeout at most.
        assert.ok(performance.now() - started < 1500, `${performance.now() - started} ms`);
        await client.refreshTopology();
        const byAddress = new Map(client.topology().nodes.map((n) => [n.address, n]));
        assert.equal(client.topology().master, at(master.port));
        assert.match(byAddress.get(silent.address)?.lastError ?? "", /no reply to TOPOLOGY/);
        assert.match(byAddress.get(garbage.address)?.lastError ?? "", /refused the server's reply/);
        assert.match(byAddress.get(closed)?.lastError ?? "", /cannot connect/);
        if (redis !== undefined) {
          assert.match(byAddress.get(at(redis.port))?.lastError ?? "", /not a kvstore node/);
        }
        for (const address of seeds.slice(0, -1)) {
          assert.equal(byAddress.get(address)?.reachable, false, address);
        }
      } finally {
        await redis?.stop();
      }
    }),
});

Deno.test({
  name: "KVClient: a node that lies about being the master is passed over, or dropped once it " +
    "refuses a write",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-attack-liar-", async (dir) => {
      const { master, replicas: [replica] } = await startCluster(dir, 1, {
        replicaArgs: ["--fsync", "no"],
        masterArgs: ["--fsync", "no"],
      });
      // It claims the master role in a far newer epoch, and refuses every write.
      await using liar = startFakeNode((words) => {
        if (words[0].toUpperCase() === "TOPOLOGY") {
          return bulk(topologyJson({ address: "127.0.0.1:1", role: "master", epoch: 99 }));
        }
        return "-READONLY You can't write against a read only replica.\r\n";
      });
      // With the real replica in view: it vouches for the real master, so the liar is never used.
      {
        await using client = new KVClient({ nodes: [liar.address, at(replica.port)] });
        await client.put("a", "1");
        assert.equal(client.topology().master, at(master.port));
        assert.equal(await master.send(["GET", "a"]), "1");
        assert.ok(!liar.received.includes("PUT"), `the liar got ${liar.received}`);
      }
      // Against a master no replica follows: the liar (newer epoch) is tried first, refuses, and
      // is not believed again.
      const solo = await KvNode.start("solo", `${dir}/s`, ["--fsync", "no"]);
      {
        await using client = new KVClient({ nodes: [liar.address, at(solo.port)] });
        await client.put("b", "2");
        assert.equal(await solo.send(["GET", "b"]), "2");
        assert.equal(client.topology().master, at(solo.port));
        await client.put("c", "3");
        assert.equal(liar.received.filter((w) => w === "PUT").length, 1, "refused once, once");
      }
      // A lying replica that follows a master no one else knows cannot move the writes.
      await using liarReplica = startFakeNode((words) => {
        if (words[0].toUpperCase() !== "TOPOLOGY") return "-ERR no\r\n";
        return bulk(topologyJson({
          address: "127.0.0.1:2",
          role: "replica",
          epoch: 999,
          master: { address: "127.0.0.1:3", epoch: 999 },
        }));
      });
      {
        await using client = new KVClient({
          nodes: [liarReplica.address, at(replica.port), at(master.port)],
        });
        await client.put("d", "4");
        assert.equal(client.topology().master, at(master.port));
      }
    }),
});

Deno.test({
  name:
    "KVClient: huge or absurd topology answers cost the node its place, not the client's memory",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-attack-huge-", async (dir) => {
      const master = await KvNode.start("master", `${dir}/m`, ["--fsync", "no"]);
      const hugeBulk = new Uint8Array(64 * 1024 * 1024 + 64);
      const header = new TextEncoder().encode(`$${64 * 1024 * 1024}\r\n`);
      hugeBulk.set(header);
      await using huge = startFakeNode(() => hugeBulk);
      await using deep = startFakeNode(() => "*1\r\n".repeat(300_000));
      await using wide = startFakeNode(() => `*100000000\r\n`);
      const manyReplicas = Array.from({ length: 10_000 }, (_, i) => ({
        address: `10.0.${i >> 8}.${i & 255}:5555`,
      }));
      await using crowd = startFakeNode(() =>
        bulk(topologyJson({
          address: "127.0.0.1:4",
          role: "master",
          epoch: 0,
          replicas: manyReplicas,
        }))
      );
      await using odd = startFakeNode(() =>
        bulk(JSON.stringify({ version: 1, node: { role: "master", epoch: "lots" } }))
      );
      await using client = new KVClient({
        nodes: [
          huge.address,
          deep.address,
          wide.address,
          crowd.address,
          odd.address,
          at(master.port),
        ],
      });
      await client.put("k", "v");
      await client.refreshTopology();
      const byAddress = new Map(client.topology().nodes.map((n) => [n.address, n]));
      assert.equal(client.topology().master, at(master.port));
      assert.equal(byAddress.size, 6, "nothing was added from the bad answers");
      assert.match(byAddress.get(huge.address)?.lastError ?? "", /out of bounds|larger than/);
      assert.match(byAddress.get(deep.address)?.lastError ?? "", /larger than/);
      assert.match(byAddress.get(wide.address)?.lastError ?? "", /out of bounds/);
      assert.match(
        byAddress.get(crowd.address)?.lastError ?? "",
        /more than the client's maxNodes/,
      );
      assert.match(byAddress.get(odd.address)?.lastError ?? "", /not a kvstore topology/);
    }),
});

Deno.test({
  name: "KVClient: a partition between the client and the master only: writes fail in bounds, " +
    "replica reads go on, writes resume when it heals",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-attack-partition-", async (dir) => {
      const replica = await KvNode.start("replica", `${dir}/r`, [
        "--replica",
        "--fsync",
        "no",
      ]);
      // The client reaches the master only through the proxy (its advertised address); the
      // master reaches its replica directly.
      const masterPort = freePort();
      const proxy = FaultProxy.start(masterPort);
      try {
        const master = await KvNode.start("master", `${dir}/m`, [
          "--port",
          String(masterPort),
          "--fsync",
          "no",
          "--replicas",
          at(replica.port),
          "--advertise-address",
          at(proxy.port),
          ...FAST_FAILURE_FLAGS,
        ]);
        await waitUntil("replica streaming", () => replicasCaughtUp(master));
        await using client = new KVClient({
          nodes: [at(proxy.port), at(replica.port)],
          timeoutMs: 500,
          topologyTimeoutMs: 300,
          retryTimeoutMs: 2000,
        });
        await client.put("k", "before");
        assert.equal(client.topology().master, at(proxy.port));
        proxy.setMode("blackhole");
        const started = performance.now();
        await assert.rejects(client.put("k", "during"), (error) => {
          assert.ok(error instanceof KVUnavailableError, String(error));
          return true;
        });
        const elapsedMs = performance.now() - started;
        assert.ok(elapsedMs < 4000, `gave up after ${elapsedMs} ms`);
        // The replica still follows the master: the client keeps it as the master (unreachable)
        // rather than writing anywhere else, and reads that allow a replica go on.
        const topology = client.topology();
        assert.equal(topology.master, at(proxy.port));
        assert.equal(topology.masterReachable, false);
        assert.equal(await client.read("k", { readPreference: "primaryPreferred" }), "before");
        assert.equal(await client.read("k", { readPreference: "replica" }), "before");
        proxy.setMode("pass");
        await client.put("k", "after");
        assert.equal(await master.send(["GET", "k"]), "after");
      } finally {
        await proxy.close();
      }
    }),
});
