/**
 * What a node remembers of its role across restarts (NODE_STATE.json): the newest epoch it was
 * told of, and a promotion its settings do not say yet.
 */
import assert from "node:assert/strict";
import {
  NODE_STATE_FILE,
  NodeStateError,
  readNodeState,
  writeNodeState,
} from "../../src/replication/node_state.ts";
import { asText, CLUSTER_TEST, KvNode, withClusterDir } from "../helpers/cluster.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** Runs `kvstore serve` expecting it to refuse to start; returns its exit code and log. */
async function refusedStart(args: string[]): Promise<{ code: number; log: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "serve", "--port", "0", ...args],
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: result.code, log: new TextDecoder().decode(result.stderr) };
}

Deno.test("node state: absent means epoch 0; written state reads back; garbage is refused", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(await readNodeState(dir), { highestEpochSeen: 0 });
    const state = { highestEpochSeen: 4, promotedEpoch: 4, promotedAt: "2026-11-26T12:00:00Z" };
    writeNodeState(dir, state);
    assert.deepEqual(await readNodeState(dir), state);
    await Deno.writeTextFile(`${dir}/${NODE_STATE_FILE}`, '{"highestEpochSeen": -1}');
    await assert.rejects(readNodeState(dir), NodeStateError);
    await Deno.writeTextFile(`${dir}/${NODE_STATE_FILE}`, "{not json");
    await assert.rejects(readNodeState(dir), /is not JSON/);
  });
});

Deno.test({
  name: "a replica remembers a newer master's epoch across a restart, before any record of it",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-node-state-test-", async (dir) => {
      let replica = await KvNode.start("replica", `${dir}/replica`, ["--replica"]);
      // A master of epoch 5 says HELLO and goes away before sending any record.
      const hello = await replica.send(["REPLICATE", "HELLO", "5", "0", "1000", "5000"]);
      assert.doesNotMatch(hello, /ERR|STALE/, hello);
      await replica.stop();
      replica = await KvNode.start("replica", `${dir}/replica`, ["--replica"]);
      // A deposed master of epoch 3 comes back: refused, though the log holds no epoch 5 record.
      const stale = await replica.send(["REPLICATE", "HELLO", "3", "0", "1000", "5000"]);
      assert.match(stale, /stale epoch 3: this replica follows epoch 5/);
    }),
});

/** Starts a replica on `data` and promotes it: the master of epoch 1. */
async function startPromoted(data: string): Promise<KvNode> {
  const node = await KvNode.start("node", data, ["--replica"]);
  assert.match(await node.send(["PROMOTE"]), /^PROMOTED epoch 1/);
  return node;
}

Deno.test({
  name: "a promoted node refuses to restart as a replica unless demoted; as a master it stays one",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-node-state-test-", async (dir) => {
      const data = `${dir}/node`;
      let node = await startPromoted(data);
      assert.equal(await node.send(["PUT", "after", "promotion"]), "OK");
      await node.stop();

      // Restarted with its old settings (as systemd would): refuses, and says what to do.
      const refused = await refusedStart(["--replica", "--data-dir", data]);
      assert.equal(refused.code, 1);
      assert.match(refused.log, /PROMOTE made this node the master of epoch 1/);
      assert.match(refused.log, /without --replica .* --replica --demote/s);
      assert.equal((await readNodeState(data)).promotedEpoch, 1, "a refusal changes nothing");

      // Its settings updated: a master, with its data and epoch; the mark is cleared.
      node = await KvNode.start("node", data, []);
      assert.equal(await node.send(["READ", "after"]), "promotion");
      assert.equal(await node.send(["PUT", "as", "master"]), "OK");
      assert.deepEqual(await readNodeState(data), { highestEpochSeen: 1 });
      await node.stop();
    }),
});

Deno.test({
  name: "--replica --demote makes a promoted node a replica again, on purpose",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-node-state-test-", async (dir) => {
      const data = `${dir}/node`;
      let node = await startPromoted(data);
      await node.stop();
      node = await KvNode.start("node", data, ["--replica", "--demote"]);
      assert.ok(node.logsMatching(/DEMOTED/).length === 1, node.logText());
      assert.match(await node.send(["PUT", "k", "v"]), /read-only/);
      assert.deepEqual(await readNodeState(data), { highestEpochSeen: 1 });
      await node.stop();
      // Demoted once: later restarts as a replica need no flag.
      node = await KvNode.start("node", data, ["--replica"]);
      await node.stop();
    }),
});

Deno.test({
  name: "a HELLO with a bad field (an epoch past 2^32-1 among them) is refused and changes nothing",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-node-state-test-", async (dir) => {
      const data = `${dir}/replica`;
      let replica = await KvNode.start("replica", data, ["--replica"]);
      const bad = [
        ["1e10", "0", "1000", "5000"], // parsed as 10^10 and saved before the check, once
        ["4294967296", "0", "1000", "5000"],
        ["9999999999999999", "0", "1000", "5000"],
        ["5", "0", "1000", "later"], // a good epoch with a bad field: nothing may be saved
        ["5", "-1", "1000", "5000"],
        ["5", "0", "1000"],
      ];
      for (const fields of bad) {
        const reply = await replica.send(["REPLICATE", "HELLO", ...fields]);
        assert.match(reply, /^ERR ERR /, `HELLO ${fields.join(" ")}: ${reply}`);
      }
      assert.deepEqual(await readNodeState(data), { highestEpochSeen: 0 });
      // A stream's other epochs have the same bound.
      const conn = await replica.connect();
      try {
        assert.equal(
          asText(await conn.send(["REPLICATE", "HELLO", "0", "0", "1000", "5000"])),
          "0 0 0",
        );
        const begin = await conn.send([
          "REPLICATE",
          "SNAPSHOT",
          "BEGIN",
          "1",
          "4294967296",
          "0",
          "0",
        ]);
        assert.match(
          asText(begin),
          /snapshot epoch "4294967296" is not a whole number from 0 to 4294967295/,
        );
        const diverged = await conn.send(["REPLICATE", "DIVERGED", "1", "1e3"]);
        assert.match(asText(diverged), /epoch "1e3" is not a whole number/);
      } finally {
        conn.close();
      }
      await replica.stop();
      // It restarts, and can be promoted, as if nothing had been sent.
      replica = await KvNode.start("replica", data, ["--replica"]);
      assert.match(await replica.send(["PROMOTE"]), /^PROMOTED epoch 1 /);
      await replica.stop();

      // The highest epoch is accepted; promoting past it is refused with the bound, not a crash.
      replica = await KvNode.start("replica", `${dir}/other`, ["--replica"]);
      const top = await replica.send(["REPLICATE", "HELLO", "4294967295", "0", "1000", "5000"]);
      assert.equal(top, "0 0 0");
      await replica.stop();
      replica = await KvNode.start("replica", `${dir}/other`, ["--replica"]);
      assert.match(await replica.send(["PROMOTE"]), /epoch 4294967296 would be above 4294967295/);
    }),
});
