/**
 * A graceful stop (SIGTERM) of a master drains its replicas first, including one whose handshake
 * is still running: an asynchronous write acknowledged just before the stop reaches it.
 */

import assert from "node:assert/strict";
import { CLUSTER_TEST, KvNode, withClusterDir } from "../helpers/cluster.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";

Deno.test({
  name: "graceful stop: a replica still in its handshake gets the write acknowledged before it",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-graceful-stop-", async (dir) => {
      const replica = await KvNode.start("replica", `${dir}/replica`, ["--replica"]);
      // Every chunk waits 250 ms each way: the handshake's several round trips take a second or
      // more, so the write and the stop below both land while the replica is still "down".
      const proxy = FaultProxy.start(replica.port);
      proxy.setDelay(250);
      try {
        const master = await KvNode.start("master", `${dir}/master`, [
          "--replicas",
          `127.0.0.1:${proxy.port}`,
        ]);
        assert.equal(await master.send(["SET", "greeting", "hello"]), "OK");
        assert.match(
          (await master.info()).get("replica0") ?? "",
          /state=down/,
          "the write must be taken before the handshake ends, or this test proves nothing",
        );
        const exit = await master.stop();
        assert.equal(exit.code, 0);
        assert.equal(await replica.send(["GET", "greeting"]), "hello");
        assert.equal(master.logsMatching(/not fully drained/).length, 0);
      } finally {
        await proxy.close();
      }
    }),
});
