/**
 * scripts/failover.sh, the spec's "Master Node Failure" recovery, run against real processes.
 */
import assert from "node:assert/strict";
import {
  CLUSTER_TEST,
  FAST_FAILURE_FLAGS,
  KvNode,
  type RespConn,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { runFailoverScript } from "../helpers/failover.ts";

const TOKEN = "failover-0123456789";
const FAST = ["--fsync", "no", "--auth-token", TOKEN, ...FAST_FAILURE_FLAGS];
async function authed(node: KvNode): Promise<RespConn> {
  const conn = await node.connect();
  assert.equal(await conn.send(["AUTH", TOKEN]), "OK");
  return conn;
}

function failover(args: string[]) {
  return runFailoverScript(args, { KVSTORE_AUTH_TOKEN: TOKEN });
}

Deno.test({
  name: "failover.sh: refuses while the master answers; then promotes the freshest replica",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-script-", async (dir) => {
      const r1 = await KvNode.start("r1", `${dir}/r1`, ["--replica", ...FAST]);
      const r2 = await KvNode.start("r2", `${dir}/r2`, ["--replica", ...FAST]);
      const a1 = `127.0.0.1:${r1.port}`;
      const a2 = `127.0.0.1:${r2.port}`;
      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `${a1},${a2}`,
        ...FAST,
      ]);
      const writer = await authed(master);
      for (let i = 0; i < 50; i++) assert.equal(await writer.send(["PUT", `k${i}`, "v"]), "OK");
      await waitUntil("replicas caught up", async () => {
        const info = await master.send(["INFO", "replication"], TOKEN);
        return (info.match(/state=streaming,[^\n]*lag_records=0,/g) ?? []).length === 2;
      });
      // r1 falls behind: only r2 gets the last 10 writes.
      assert.equal(await writer.send(["REPLICAS", "REMOVE", a1]), "OK");
      for (let i = 50; i < 60; i++) assert.equal(await writer.send(["PUT", `k${i}`, "v"]), "OK");
      await waitUntil("r2 caught up", async () => {
        const info = await master.send(["INFO", "replication"], TOKEN);
        return /state=streaming,[^\n]*lag_records=0,/.test(info);
      });
      writer.close();

      const args = ["--old-master", `127.0.0.1:${master.port}`, "--replicas", `${a1},${a2}`];
      const refused = await failover(args);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /still answers: stop it first \(spec step 1\)/);
      assert.match(await r1.send(["INFO", "replication"], TOKEN), /role:replica/);

      await master.kill();
      const result = await failover([...args, "--master-file", `${dir}/master-address`]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, new RegExp(`${a1}: replica at LSN 50`));
      assert.match(result.stdout, new RegExp(`${a2}: replica at LSN 60`));
      assert.match(result.stdout, /PROMOTED epoch 1 lsn 60/);
      assert.match(result.stdout, new RegExp(`${a1}: added`));
      assert.match(result.stdout, /every replica streams from the new master/);
      assert.match(result.stdout, new RegExp(`new master: ${a2}\\n`));
      assert.equal(await Deno.readTextFile(`${dir}/master-address`), `${a2}\n`);

      // Clients now write to r2; r1 follows it.
      assert.equal(await r2.send(["PUT", "after", "failover"], TOKEN), "OK");
      await waitUntil("r1 follows r2", async () => {
        const info = await r2.send(["INFO", "replication"], TOKEN);
        return /state=streaming,[^\n]*lag_records=0,/.test(info);
      });
      assert.equal(await r1.send(["READ", "after"], TOKEN), "failover");
      assert.equal(await r1.send(["READ", "k59"], TOKEN), "v");
      assert.equal(await r2.send(["DBSIZE"], TOKEN), "61");
      assert.equal(await r1.send(["DBSIZE"], TOKEN), "61");
      // Run twice, it must not make a second master.
      const again = await failover(args);
      assert.equal(again.code, 1);
      assert.match(again.stderr, new RegExp(`${a2} is already a master \\(epoch 1\\)`));
      assert.match(await r1.send(["INFO", "replication"], TOKEN), /role:replica/);
    }),
});
