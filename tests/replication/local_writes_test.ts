/**
 * Writes made on a replica by hand (the spec's `REPLICATE PUT|BATCHPUT|DELETE`, LOCAL records)
 * with real processes: refused once the replica follows a master; before that, accepted and
 * replaced by a full sync when the first master connects. A replica never differs from its
 * master while looking healthy.
 */
import assert from "node:assert/strict";
import { readNodeState } from "../../src/replication/node_state.ts";
import {
  CLUSTER_TEST,
  dump,
  FAST_FAILURE_FLAGS,
  KvNode,
  replicasCaughtUp,
  textRequest,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";

const FAST = ["--fsync", "no", ...FAST_FAILURE_FLAGS];

Deno.test({
  name: "a replica that follows a master refuses REPLICATE PUT/BATCHPUT/DELETE by hand",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-local-writes-test-", async (dir) => {
      const replica = await KvNode.start("replica", `${dir}/replica`, ["--replica", ...FAST]);
      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
        ...FAST,
      ]);
      assert.equal(await master.send(["PUT", "k", "master"]), "OK");
      await waitUntil("replica caught up", () => replicasCaughtUp(master));
      for (
        const line of [
          "REPLICATE PUT k forged",
          "REPLICATE BATCHPUT a||k 1||2",
          "REPLICATE DELETE k",
        ]
      ) {
        const [reply] = await textRequest(replica.port, [line]);
        assert.match(reply, /^ERROR: REPLICATE \w+ refused: this replica follows a master/, line);
      }
      assert.equal(await replica.send(["READ", "k"]), "master");
      assert.deepEqual(await dump(replica), await dump(master));
      assert.equal((await replica.info()).get("local_writes"), "0");
    }),
});

Deno.test({
  name: "local writes on a replica that never followed a master are replaced by a full sync " +
    "when its first master connects, also across a restart",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-local-writes-test-", async (dir) => {
      let replica = await KvNode.start("replica", `${dir}/replica`, ["--replica", ...FAST]);
      // The spec's troubleshooting step works on a stand-alone replica.
      assert.deepEqual(
        await textRequest(replica.port, ["REPLICATE PUT local v", "REPLICATE PUT shared x"]),
        ["OK", "OK"],
      );
      assert.equal((await readNodeState(`${dir}/replica`)).localWrites, 2);
      const port = replica.port;
      await replica.stop();
      replica = await KvNode.start("replica", `${dir}/replica`, [
        "--replica",
        "--port",
        String(port),
        ...FAST,
      ]);
      assert.equal((await replica.info()).get("local_writes"), "2");

      const master = await KvNode.start("master", `${dir}/master`, FAST);
      assert.equal(await master.send(["PUT", "shared", "master"]), "OK");
      assert.equal(await master.send(["REPLICAS", "ADD", `127.0.0.1:${port}`]), "OK");
      await waitUntil("replica caught up", () => replicasCaughtUp(master));
      assert.deepEqual(await dump(replica), ["shared=master"]);
      assert.equal(await replica.send(["READ", "local"]), "(nil)");
      assert.ok(
        master.logsMatching(/full sync \(replica holds 2 local writes/).length === 1,
        master.logText(),
      );
      assert.ok(replica.logs.some((l) => l.properties.event === "local_writes_replaced"));
      assert.equal((await replica.info()).get("local_writes"), "0");
      assert.equal((await readNodeState(`${dir}/replica`)).localWrites, undefined);
      // Following now, it refuses more.
      const [refused] = await textRequest(port, ["REPLICATE PUT local again"]);
      assert.match(refused, /refused: this replica follows a master/);
    }),
});
