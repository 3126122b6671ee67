/**
 * Failover with real processes: PROMOTE, runtime REPLICAS, epoch fencing of a returning old
 * master, and an old master brought back in line as a replica.
 */
import assert from "node:assert/strict";
import { RespErrorReply } from "../../src/protocol/resp.ts";
import {
  asText,
  CLUSTER_TEST,
  dump,
  FAST_FAILURE_FLAGS,
  KvNode,
  replicasCaughtUp,
  type RespConn,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";

const FAST = ["--fsync", "no", ...FAST_FAILURE_FLAGS];

async function putMany(conn: RespConn, prefix: string, count: number): Promise<void> {
  const replies = [];
  for (let i = 0; i < count; i++) replies.push(conn.send(["PUT", `${prefix}${i}`, `v${i}`]));
  for (const reply of await Promise.all(replies)) assert.equal(reply, "OK");
}

Deno.test({
  name: "failover: PROMOTE, REPLICAS ADD, a returning old master fenced, then realigned as replica",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-test-", async (dir) => {
      const r1 = await KvNode.start("r1", `${dir}/r1`, ["--replica", ...FAST]);
      const r2 = await KvNode.start("r2", `${dir}/r2`, ["--replica", ...FAST]);
      const replicas = `127.0.0.1:${r1.port},127.0.0.1:${r2.port}`;
      let master = await KvNode.start("master", `${dir}/master`, ["--replicas", replicas, ...FAST]);
      const writer = await master.connect();
      await putMany(writer, "before:", 100);
      await waitUntil("replicas caught up", () => replicasCaughtUp(master));

      // The master loses its replicas (REPLICAS REMOVE at runtime), takes 20 more writes that
      // no replica has, and dies: its log now runs past what the survivors hold.
      assert.equal(await master.send(["REPLICAS", "REMOVE", replicas]), "OK");
      assert.equal(await master.send(["REPLICAS"]), "");
      await putMany(writer, "lost:", 20);
      writer.close();
      await master.kill();

      // The spec's recovery: promote a replica, point the other at it, send clients there.
      assert.match(await r1.send(["PROMOTE"]), /^PROMOTED epoch 1 lsn 100$/);
      assert.match(await r1.send(["PROMOTE"]), /already a master \(epoch 1\)/);
      const info1 = await r1.info();
      assert.equal(info1.get("role"), "master");
      assert.equal(info1.get("epoch"), "1");
      assert.equal(await r1.send(["PUT", "after:0", "new"]), "OK");
      assert.equal(await r1.send(["REPLICAS", "ADD", `127.0.0.1:${r2.port}`]), "OK");
      assert.match(
        await r1.send(["REPLICAS", "ADD", `127.0.0.1:${r2.port}`]),
        /already listed/,
      );
      assert.equal(await r1.send(["REPLICAS"]), `127.0.0.1:${r2.port}`);
      await waitUntil("r2 follows r1", () => replicasCaughtUp(r1));
      assert.equal((await r2.info()).get("epoch"), "1");
      // r2 held the same history: it continued from its LSN, no full sync.
      assert.equal((await r1.info()).get("replica0")?.includes("full_syncs=0"), true);
      assert.equal(await r2.send(["READ", "after:0"]), "new");

      // The old master comes back as a master of its old replicas: r2 refuses its epoch, and
      // the old master learns it was deposed and refuses writes.
      master = await KvNode.start("old-master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${r2.port}`,
        ...FAST,
      ]);
      await waitUntil(
        "the old master is deposed",
        () => master.logs.some((line) => line.properties.event === "deposed"),
      );
      const refused = await (async () => {
        const conn = await master.connect();
        try {
          return await conn.send(["PUT", "split", "brain"]);
        } finally {
          conn.close();
        }
      })();
      assert.ok(refused instanceof RespErrorReply, asText(refused));
      assert.equal(refused.code, "READONLY");
      assert.match(refused.message, /deposed .*follows a newer master/);
      assert.equal(await r2.send(["READ", "split"]), "(nil)");
      assert.equal(await r2.send(["READ", "lost:0"]), "(nil)");
      assert.ok(r2.logs.some((line) => line.properties.event === "stale_epoch"));
      // Deposed, it stops its links: it sends its history to no replica, and does not retry.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const attempts = master.logsMatching(/^replica .* failed: /).length;
      assert.ok(attempts <= 1, `${attempts} attempts in about 0.6 s`);
      // A refused HELLO ends its session (it used to wait forever): the stop is graceful.
      assert.deepEqual(await master.stop(), { code: 0, signal: null });

      // Restarted with --replica and added to the new master: its 20 records past the
      // promotion point are discarded (counted and logged on both sides), then it catches up.
      master = await KvNode.start("old-master", `${dir}/master`, ["--replica", ...FAST]);
      assert.equal(await r1.send(["REPLICAS", "ADD", `127.0.0.1:${master.port}`]), "OK");
      await waitUntil("old master realigned", () => replicasCaughtUp(r1));
      const diverged = master.logs.find((line) => line.properties.event === "diverged");
      assert.ok(diverged, master.logText());
      assert.equal(diverged.properties.records, 20);
      assert.equal(diverged.properties.commonLsn, 100);
      assert.ok(r1.logs.some((l) => /diverged after LSN 100: its 20 records/.test(l.message)));
      assert.equal((await master.info()).get("discarded_records"), "20");
      const expected = await dump(r1);
      assert.equal(expected.length, 101);
      assert.deepEqual(await dump(master), expected);
      assert.deepEqual(await dump(r2), expected);
      assert.equal(await master.send(["READ", "lost:0"]), "(nil)");

      // The full sync carried epoch 1 into its log: restarted, it still knows the epoch (so it
      // would refuse the old epoch's stream) and continues from its LSN without another sync.
      const port = master.port;
      await master.stop();
      master = await KvNode.start("old-master", `${dir}/master`, [
        "--replica",
        "--port",
        String(port), // the address r1 knows it by
        ...FAST,
      ]);
      assert.equal((await master.info()).get("epoch"), "1");
      assert.equal(await r1.send(["PUT", "after:1", "newer"]), "OK");
      await waitUntil("old master streams again", () => replicasCaughtUp(r1));
      assert.equal(await master.send(["READ", "after:1"]), "newer");
      const entry = [...(await r1.info()).values()].find((v) => v.includes(`:${master.port},`));
      assert.match(entry ?? "", /full_syncs=1,/);
    }),
});

Deno.test({
  name: "a replica started with --replication-mode sync --sync-replicas 1 is promoted with it; " +
    "INFO says which guarantee is in force",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-test-", async (dir) => {
      const syncFlags = ["--replication-mode", "sync", "--sync-replicas", "1"];
      const node = await KvNode.start("node", `${dir}/node`, ["--replica", ...syncFlags, ...FAST]);
      let info = await node.info();
      assert.equal(info.get("sync_replicas"), "1");
      assert.match(info.get("write_guarantee_when_promoted") ?? "", /^sync: .* on 1 of 0 replicas/);
      assert.match(info.get("read_guarantee") ?? "", /what this replica applied/);
      assert.match(await node.send(["PROMOTE"]), /^PROMOTED epoch 1 /);
      info = await node.info();
      assert.match(
        info.get("write_guarantee") ?? "",
        /^sync: OK once written here .* on 1 of 0 replicas; only 0 listed: writes fail until REPLICAS ADD/,
      );
      // Without a replica the promise cannot be kept: the write is not acknowledged.
      assert.match(
        await node.send(["PUT", "k", "alone"]),
        /acknowledged by only 0 of 1 required replicas within REPLICATION_TIMEOUT 0.5 s/,
      );
      const replica = await KvNode.start("replica", `${dir}/replica`, ["--replica", ...FAST]);
      assert.equal(await node.send(["REPLICAS", "ADD", `127.0.0.1:${replica.port}`]), "OK");
      await waitUntil("replica caught up", () => replicasCaughtUp(node));
      assert.equal(await node.send(["PUT", "k", "backed"]), "OK");
      assert.equal(await replica.send(["READ", "k"]), "backed");
      assert.match((await node.info()).get("write_guarantee") ?? "", /on 1 of 1 replicas$/);
    }),
});
