/**
 * scripts/failover.sh, the spec's "Master Node Failure" recovery, run against real processes.
 */
import assert from "node:assert/strict";
import {
  asText,
  clusterLogTail,
  killAll,
  KvNode,
  type RespConn,
  waitUntil,
} from "../helpers/cluster.ts";

const CLUSTER = { sanitizeOps: false, sanitizeResources: false };
const ROOT = new URL("../../", import.meta.url);
const TOKEN = "failover-0123456789";
const FAST = [
  "--fsync",
  "no",
  "--auth-token",
  TOKEN,
  "--replication-timeout",
  "0.5",
  "--replication-health-check-interval",
  "0.3",
  "--replication-retry-backoff-ms",
  "20",
];

async function authed(node: KvNode): Promise<RespConn> {
  const conn = await node.connect();
  assert.equal(await conn.send(["AUTH", TOKEN]), "OK");
  return conn;
}

async function run(node: KvNode, parts: string[]): Promise<string> {
  const conn = await authed(node);
  try {
    return asText(await conn.send(parts));
  } finally {
    conn.close();
  }
}

async function failover(args: string[]) {
  const output = await new Deno.Command("sh", {
    args: ["scripts/failover.sh", ...args],
    cwd: ROOT,
    env: {
      KVSTORE: `${Deno.execPath()} run -A ${new URL("cli.ts", ROOT).pathname}`,
      KVSTORE_AUTH_TOKEN: TOKEN,
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test({
  name: "failover.sh: refuses while the master answers; then promotes the freshest replica",
  ...CLUSTER,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kvstore-failover-script-" });
    try {
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
        const info = await run(master, ["INFO", "replication"]);
        return (info.match(/state=streaming,[^\n]*lag_records=0,/g) ?? []).length === 2;
      });
      // r1 falls behind: only r2 gets the last 10 writes.
      assert.equal(await writer.send(["REPLICAS", "REMOVE", a1]), "OK");
      for (let i = 50; i < 60; i++) assert.equal(await writer.send(["PUT", `k${i}`, "v"]), "OK");
      await waitUntil("r2 caught up", async () => {
        const info = await run(master, ["INFO", "replication"]);
        return /state=streaming,[^\n]*lag_records=0,/.test(info);
      });
      writer.close();

      const args = ["--old-master", `127.0.0.1:${master.port}`, "--replicas", `${a1},${a2}`];
      const refused = await failover(args);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /still answers: stop it first \(spec step 1\)/);
      assert.match(await run(r1, ["INFO", "replication"]), /role:replica/);

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
      assert.equal(await run(r2, ["PUT", "after", "failover"]), "OK");
      await waitUntil("r1 follows r2", async () => {
        const info = await run(r2, ["INFO", "replication"]);
        return /state=streaming,[^\n]*lag_records=0,/.test(info);
      });
      assert.equal(await run(r1, ["READ", "after"]), "failover");
      assert.equal(await run(r1, ["READ", "k59"]), "v");
      assert.equal(await run(r2, ["DBSIZE"]), "61");
      assert.equal(await run(r1, ["DBSIZE"]), "61");
      // Run twice, it must not make a second master.
      const again = await failover(args);
      assert.equal(again.code, 1);
      assert.match(again.stderr, new RegExp(`${a2} is already a master \\(epoch 1\\)`));
      assert.match(await run(r1, ["INFO", "replication"]), /role:replica/);
    } catch (error) {
      console.error(`cluster logs at the failure:\n${clusterLogTail()}`);
      throw error;
    } finally {
      await killAll();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
