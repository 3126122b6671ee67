/**
 * The client commands with a cluster: `--nodes h:p,h:p` (and `KVSTORE_NODES`) find the master,
 * `--read-from primary|replica|nearest` chooses where reads go.
 */
import assert from "node:assert/strict";
import { CLUSTER_TEST, startCluster, waitUntil, withClusterDir } from "../helpers/cluster.ts";
import { kvstore } from "../helpers/cli.ts";

function at(port: number): string {
  return `127.0.0.1:${port}`;
}

Deno.test({
  name: "kvstore --nodes: writes find the master from a replica; --read-from replica reads there",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-cli-nodes-", async (dir) => {
      const { master, replicas: [replica] } = await startCluster(dir, 1, {
        replicaArgs: ["--fsync", "no"],
        masterArgs: ["--fsync", "no"],
      });
      // Only the replica is named: the write still lands on the master.
      const put = await kvstore(["--nodes", at(replica.port), "put", "k", "v"]);
      assert.equal(put.code, 0, put.stderr);
      assert.equal(await master.send(["GET", "k"]), "v");
      await waitUntil("replicated", async () => (await replica.send(["GET", "k"])) === "v");
      const before = await replica.commandsProcessed();
      const read = await kvstore(["read", "k", "--read-from", "replica"], {
        KVSTORE_NODES: `${at(master.port)},${at(replica.port)}`,
      });
      assert.equal(read.code, 0, read.stderr);
      assert.equal(read.stdout, "v\n");
      assert.ok((await replica.commandsProcessed()) - before >= 2, "the replica served the read");
      const range = await kvstore([
        "--nodes",
        at(master.port),
        "readrange",
        "a",
        "z",
        "--read-from",
        "nearest",
      ]);
      assert.equal(range.stdout, "k\tv\n");
      // Flags win over KVSTORE_NODES: --host/--port talk to that one node.
      const direct = await kvstore(["--port", String(replica.port), "put", "x", "y"], {
        KVSTORE_NODES: at(master.port),
      });
      assert.equal(direct.code, 1);
      assert.match(direct.stderr, /read-only/);
    }),
});

Deno.test("kvstore --nodes: misuse is refused before anything is sent", async () => {
  const both = await kvstore(["--nodes", "127.0.0.1:1", "--port", "2", "read", "k"]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /give --nodes or --host\/--port, not both/);
  const bad = await kvstore(["--nodes", "nowhere", "read", "k"]);
  assert.match(bad.stderr, /--nodes entry "nowhere" is not host:port/);
  const oneNode = await kvstore(["--nodes", "127.0.0.1:1", "promote"]);
  assert.match(oneNode.stderr, /promote acts on one node: give it --host and --port/);
  const lonely = await kvstore(["read", "k", "--read-from", "replica"]);
  assert.match(lonely.stderr, /--read-from chooses among a cluster's nodes/);
  const where = await kvstore(["--nodes", "127.0.0.1:1", "read", "k", "--read-from", "secondary"]);
  assert.match(where.stderr, /--read-from "secondary" is not one of primary, replica, nearest/);
  const wrongCommand = await kvstore([
    "--nodes",
    "127.0.0.1:1",
    "put",
    "k",
    "v",
    "--read-from",
    "replica",
  ]);
  assert.match(wrongCommand.stderr, /put takes no --read-from/);
});
