/**
 * Automatic failover on a real etcd with real node processes (`--coordinator etcd`, lease TTL
 * 2 s): registration and election, a master SIGKILLed and the most caught-up replica taking over,
 * the old master rejoining as a replica with an identical dump. Skipped, saying why, without the
 * `etcd` binary.
 */
import assert from "node:assert/strict";
import {
  asText,
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
  waitForStreamingMaster,
} from "../helpers/coordinated.ts";
import { kvstore } from "../helpers/cli.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";

const missing = etcdMissing();

/**
 * A 5 s lease (trusted 4.5 s after each renewal, renewed every 1.7 s) where a test needs plain OKs
 * from its master: a 2 s lease is trusted only 1.5 s, and a loaded machine delayed a renewal that
 * long. Also lets a 3-member etcd's own re-election after losing its leader fit in the lease.
 */
const LONGER_LEASE = ["--failover-ttl-seconds", "5"];
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
      const nodes = await startCoordinatedCluster(dir, etcd, 3, {
        args: ["--metrics-port", "0", ...LONGER_LEASE],
      });
      const master = await waitForMaster(nodes);
      // /metrics and TOPOLOGY say who leads (waited for: on a loaded machine a renewal may come
      // late and fence the master for a moment).
      await waitUntil("metrics name the leader", async () => {
        for (const node of nodes) {
          const line = node.logs.find((l) => l.properties.event === "metrics_listening");
          const url = `http://127.0.0.1:${line?.properties.port}/metrics`;
          const text = await (await fetch(url)).text();
          const leader = node === master ? 1 : 0;
          if (!text.includes(`kvstore_coordinator_is_leader ${leader}`)) return false;
        }
        return true;
      });
      await waitUntil("TOPOLOGY names the leader and no fence", async () => {
        const topology = JSON.parse(await master.send(["TOPOLOGY"]));
        assert.equal(topology.coordinator.kind, "etcd");
        return topology.coordinator.leader === master.name &&
          topology.coordinator.write_fence === "";
      });
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
      // cluster status lists the dead master as down (its record went with its lease).
      const status = await kvstore([
        "cluster",
        "status",
        "--json",
        "--etcd-endpoints",
        etcd.endpoints[0],
        "--cluster-name",
        "test",
      ]);
      const members = JSON.parse(status.stdout).members as { name: string; role: string }[];
      assert.deepEqual(
        members.map((m) => `${m.name}:${m.role}`).sort(),
        nodes.map((n) => `${n.name}:${n === master ? "down" : n === next ? "leader" : "replica"}`)
          .sort(),
      );
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

Deno.test({
  name: "failover: sync mode, master SIGKILLed right after a burst of OKs: every OK'd key survives",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-sync-", async (dir) => {
      await using etcd = await startEtcd();
      const args = ["--replication-mode", "sync", "--sync-replicas", "1"];
      let nodes = await startCoordinatedCluster(dir, etcd, 3, { args });
      const acknowledged: string[] = [];
      for (let round = 0; round < 2; round++) {
        const master = await waitForStreamingMaster(nodes, 30_000);
        const baseLsn = Number((await master.info()).get("master_lsn"));
        // 8 writers, pipelined: the kill lands while some writes wait for their replica.
        const conns = await Promise.all(Array.from({ length: 8 }, () => master.connect()));
        let settled = 0;
        const writes = conns.flatMap((conn, c) =>
          Array.from({ length: 300 }, (_, i) => {
            const key = `r${round}c${c}k${i}`;
            return conn.send(["SET", key, "v"]).then(
              (reply) => asText(reply) === "OK" ? key : undefined,
              () => undefined,
            ).finally(() => settled++);
          })
        );
        // Past 200 applied writes, or (a late lease renewal under load fenced the master for a
        // moment and it refused them) every write answered: the kill comes then.
        await waitUntil("a burst acknowledged or answered", async () => {
          return settled === writes.length ||
            Number((await master.info()).get("master_lsn")) > baseLsn + 200;
        });
        await master.kill();
        const oks = (await Promise.all(writes)).filter((k): k is string => k !== undefined);
        acknowledged.push(...oks);
        for (const conn of conns) conn.close();
        assert.ok(round === 0 || acknowledged.length > 0, "no write acknowledged in two rounds");
        const survivors = nodes.filter((n) => n !== master);
        const next = await waitForMaster(survivors);
        const data = new Set((await dump(next)).map((pair) => pair.split("=")[0]));
        const lost = acknowledged.filter((key) => !data.has(key));
        assert.deepEqual(lost, [], `round ${round}: ${lost.length} of ${acknowledged.length} lost`);
        console.log(`round ${round}: ${oks.length} OKs before the kill, all on ${next.name}`);
        // Back on another port: the new master replicates to its new address only.
        const back = await startCoordinatedNode(dir, etcd, master.name, { args });
        nodes = [...survivors, back];
      }
    }),
});

Deno.test({
  name: "failover: a 3-member etcd losing a member keeps the lease and the election working",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-etcd3-", async (dir) => {
      await using etcd = await startEtcd({ members: 3 });
      // A lease longer than etcd's own re-election after losing its leader on a loaded machine.
      const nodes = await startCoordinatedCluster(dir, etcd, 2, { args: LONGER_LEASE });
      const master = await waitForMaster(nodes);
      // The first endpoint (every node's preferred one) dies: requests move to the others.
      await etcd.members[0].kill();
      const until = performance.now() + 3000;
      let writes = 0;
      while (performance.now() < until) {
        assert.equal(await put(master, `k${writes}`, "v"), "OK", "writes must go on");
        writes++;
      }
      assert.equal((await master.info()).get("coordinator_etcd"), "ok");
      await waitUntil("the replica caught up", () => replicasCaughtUp(master));
      await master.kill();
      const next = await waitForMaster(nodes.filter((n) => n !== master));
      assert.equal(await put(next, "after", "1"), "OK");
      assert.equal(await next.send(["GET", `k${writes - 1}`]), "v");
    }),
});

Deno.test({
  name: "failover: a master restarted within its lease revokes its old lease; an election follows",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-restart-", async (dir) => {
      await using etcd = await startEtcd();
      // A long lease: only the revocation can end it early.
      const args = ["--failover-ttl-seconds", "30"];
      const nodes = await startCoordinatedCluster(dir, etcd, 2, { args });
      const master = await waitForMaster(nodes);
      assert.equal(await put(master, "k", "1"), "OK");
      await waitUntil("the replica caught up", () => replicasCaughtUp(master));
      const port = master.port;
      await master.kill();
      const back = await startCoordinatedNode(dir, etcd, master.name, { port, args });
      await waitUntil(
        "the old lease revoked",
        () => back.logs.some((l) => l.properties.event === "stale_leader_revoked"),
        10_000,
      );
      const others = nodes.filter((n) => n !== master);
      const next = await waitForMaster([back, ...others], 10_000);
      assert.equal(await put(next, "k2", "2"), "OK");
      assert.equal(await next.send(["GET", "k"]), "1");
    }),
});

Deno.test({
  name: "failover: async mode, the writes a dead master never shipped are counted by both sides",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-async-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = await startCoordinatedCluster(dir, etcd, 3, { args: LONGER_LEASE });
      const master = await waitForStreamingMaster(nodes);
      assert.equal(await put(master, "shipped", "1"), "OK");
      await waitUntil("replicas caught up", () => replicasCaughtUp(master));
      const replicas = nodes.filter((n) => n !== master);
      // The replicas stall: of the master's next 32 MiB of acknowledged writes, only what fits
      // in their sockets' buffers reaches them.
      for (const r of replicas) Deno.kill(r.pid, "SIGSTOP");
      // Random: the stream is compressed, so a repeated byte would fit in the buffers.
      const chunks = Array.from(
        { length: 16 },
        () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(48 * 1024)))),
      );
      const big = chunks.join("");
      try {
        for (let i = 0; i < 32; i++) assert.equal(await put(master, `tail${i}`, big), "OK");
      } finally {
        await master.kill();
        for (const r of replicas) Deno.kill(r.pid, "SIGCONT");
      }
      const next = await waitForMaster(replicas);
      assert.equal(await next.send(["GET", "shipped"]), "1");
      assert.equal(await put(next, "new", "1"), "OK");
      const back = await startCoordinatedNode(dir, etcd, master.name, { port: master.port });
      await waitUntil("the old master replaced its tail", async () => {
        return (await back.info()).get("master_link_status") === "up" &&
          await replicasCaughtUp(next);
      }, 30_000);
      // Both sides say how many records were lost.
      const replicaSide = back.logs.find((l) => l.properties.event === "diverged");
      assert.ok(replicaSide !== undefined, "the old master did not log its divergence");
      const lost = Number(replicaSide.properties.records);
      assert.ok(lost >= 1 && lost <= 32, `${lost} records lost`);
      console.log(`async failover: ${lost} acknowledged writes never shipped, counted`);
      assert.ok(next.logs.some((l) => /diverged after LSN/.test(l.message)));
      assert.deepEqual(await dump(back), await dump(next));
      assert.equal(await back.send(["GET", "tail31"]), "(nil)");
    }),
});

Deno.test({
  name: "failover: a master stopped gracefully hands over at once (its lease revoked, not expired)",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-stop-", async (dir) => {
      await using etcd = await startEtcd();
      // A long lease: only the revocation at shutdown can end it early.
      const nodes = await startCoordinatedCluster(dir, etcd, 2, {
        args: ["--failover-ttl-seconds", "30"],
      });
      const master = await waitForMaster(nodes);
      assert.equal(await put(master, "k", "1"), "OK");
      await waitUntil("the replica caught up", () => replicasCaughtUp(master));
      // The replica comes back on another port: the master replaces its old address.
      const replica = nodes.find((n) => n !== master) as KvNode;
      await replica.kill();
      const moved = await startCoordinatedNode(dir, etcd, replica.name, {
        args: ["--failover-ttl-seconds", "30"],
      });
      await waitUntil("the master streams to the new address only", async () => {
        const info = await master.info();
        return info.get("total_replicas") === "1" && await replicasCaughtUp(master);
      });
      assert.ok(master.logs.some((l) => l.properties.event === "member_moved"));
      assert.equal((await master.stop()).code, 0);
      const next = await waitForMaster([moved], 10_000);
      assert.equal(await next.send(["GET", "k"]), "1");
      assert.equal(await put(next, "k", "2"), "OK");
    }),
});

Deno.test({
  name: "failover: an etcd member that stops answering (SIGSTOP) is left, watch included",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-etcd-stop-", async (dir) => {
      await using etcd = await startEtcd({ members: 3 });
      const nodes = await startCoordinatedCluster(dir, etcd, 2, { args: LONGER_LEASE });
      const master = await waitForMaster(nodes);
      const replica = nodes.find((n) => n !== master) as KvNode;
      // The member the replica talks to (and watches) goes silent: connections stay open,
      // nothing answers.
      const endpoint = (await replica.info()).get("coordinator_etcd_endpoint");
      const silent = etcd.members.find((m) => m.clientUrl === endpoint);
      assert.ok(silent !== undefined, `no etcd member at ${endpoint}`);
      silent.signal("SIGSTOP");
      await waitUntil("writes taken with the member silent", async () => {
        return await put(master, "k", "1") === "OK";
      });
      // The replica's requests (and its watch, on the next tick or at its next start) leave it.
      await waitUntil("the replica left the silent member", async () => {
        const info = await replica.info();
        return info.get("coordinator_etcd_endpoint") !== endpoint &&
          info.get("coordinator_etcd") === "ok";
      });
      await waitUntil("the replica caught up", () => replicasCaughtUp(master));
      await master.kill();
      const next = await waitForMaster([replica], 20_000);
      assert.equal(await next.send(["GET", "k"]), "1");
      assert.equal(await put(next, "k", "2"), "OK");
    }),
});
