/**
 * At most one master acknowledges writes, on a real etcd with real processes (lease TTL 2 s): a
 * master paused (SIGSTOP) past its lease acknowledges not one write when it wakes and rejoins as a
 * replica; with etcd down, reads keep working everywhere, writes stop with an error that says why,
 * and resume by themselves once etcd is back. Skipped, saying why, without the `etcd` binary.
 */
import assert from "node:assert/strict";
import {
  asText,
  CLUSTER_TEST,
  dump,
  replicasCaughtUp,
  type RespConn,
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

/** Sends `count` SETs pipelined on `conn`; the replies as text, in order. */
function pipelinedSets(conn: RespConn, prefix: string, count: number): Promise<string[]> {
  return Promise.all(
    Array.from(
      { length: count },
      (_, i) => conn.send(["SET", `${prefix}${i}`, `v${i}`]).then(asText, (e) => `closed ${e}`),
    ),
  );
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test({
  name: "lease: a master SIGSTOPped past its lease acknowledges nothing when it wakes",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-lease-stop-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = await startCoordinatedCluster(dir, etcd, 3, {
        args: ["--replication-mode", "sync", "--sync-replicas", "1"],
      });
      const master = await waitForStreamingMaster(nodes);
      const before = await master.connect();
      const acked = (await pipelinedSets(before, "a", 100)).filter((r) => r === "OK").length;
      assert.equal(acked, 100);
      const conn = await master.connect();
      Deno.kill(master.pid, "SIGSTOP");
      let woke = false;
      try {
        // Writes that reach the paused master wait in its socket.
        const replies = pipelinedSets(conn, "late", 200);
        const survivors = nodes.filter((n) => n !== master);
        const next = await waitForMaster(survivors, 20_000);
        assert.equal(await next.send(["SET", "after", "1"]), "OK");
        Deno.kill(master.pid, "SIGCONT");
        woke = true;
        const answers = await replies;
        const oks = answers.filter((r) => r === "OK");
        assert.equal(oks.length, 0, `the woken master acknowledged ${oks.length} writes`);
        assert.ok(
          answers.every((r) => /READONLY|DEPOSED|closed/.test(r)),
          `unexpected replies: ${[...new Set(answers)].slice(0, 3).join(" | ")}`,
        );
        // It rejoins as a replica of the new master, with the same data.
        await waitUntil("the old master streaming as a replica", async () => {
          const info = await master.info();
          return info.get("role") === "replica" && info.get("master_link_status") === "up" &&
            await replicasCaughtUp(next);
        }, 30_000);
        const expected = await dump(next);
        for (let i = 0; i < 100; i++) assert.ok(expected.includes(`a${i}=v${i}`));
        assert.deepEqual(await dump(master), expected);
      } finally {
        if (!woke) Deno.kill(master.pid, "SIGCONT");
        before.close();
        conn.close();
      }
    }),
});

Deno.test({
  name: "lease: etcd down stops writes with a clear error, reads go on, writes resume after",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-lease-etcd-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = await startCoordinatedCluster(dir, etcd, 3);
      const master = await waitForMaster(nodes);
      assert.equal(await master.send(["SET", "k", "1"]), "OK");
      await waitUntil("replicas caught up", () => replicasCaughtUp(master));
      await etcd.members[0].kill();
      // A write taken just before the lease's end gets -DEPOSED (outcome unknown), later ones
      // are refused before anything is applied.
      let refusal = "";
      await waitUntil("writes refused", async () => {
        refusal = await master.send(["SET", "k", "2"]);
        assert.match(refusal, /^OK$|READONLY|DEPOSED/);
        return refusal.includes("READONLY");
      }, 10_000);
      assert.match(refusal, /READONLY writes paused: the leader lease in etcd cannot be trusted/);
      // Reads keep working on every node.
      const value = await master.send(["GET", "k"]);
      assert.match(value, /^[12]$/);
      await waitUntil("replicas caught up", async () => {
        for (const node of nodes) if (await node.send(["GET", "k"]) !== value) return false;
        return true;
      });
      await sleep(1000);
      assert.match(await master.send(["SET", "k", "3"]), /READONLY/);
      await etcd.members[0].restart();
      const next = await waitForMaster(nodes, 20_000);
      await waitUntil("writes resume", async () => await next.send(["SET", "k", "4"]) === "OK");
      await waitUntil("replicas caught up", () => replicasCaughtUp(next));
      for (const node of nodes) assert.equal(await node.send(["GET", "k"]), "4");
    }),
});
