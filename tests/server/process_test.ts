import assert from "node:assert/strict";
import { startServerProcess } from "../helpers/server_process.ts";
import { withTempDir } from "../helpers/temp_dir.ts";
import { WireClient } from "../helpers/wire.ts";

Deno.test("startup logs role, address, data dir, keys recovered and recovery time", async () => {
  await using server = await startServerProcess({ args: ["--replica"] });
  const listening = await server.waitForLog((line) => line.properties.event === "listening");
  assert.equal(listening.properties.host, "127.0.0.1");
  assert.equal(listening.properties.port, server.port);
  assert.equal(listening.properties.role, "replica");
  assert.equal(listening.properties.dataDir, server.dataDir);
  assert.equal(listening.properties.keys, 0);
  assert.equal(typeof listening.properties.recoveryMs, "number");
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal}: in-flight requests finish, the log is synced, exit 0`, async () => {
    await withTempDir(async (dataDir) => {
      const acknowledged: string[] = [];
      {
        await using server = await startServerProcess({ dataDir });
        await using wire = await WireClient.connect(server.port);
        let requests = "";
        for (let i = 0; i < 3000; i++) requests += `PUT key${i} value${i}\n`;
        await wire.send(requests);
        assert.equal(await wire.readLine(), "OK");
        acknowledged.push("key0");
        const exiting = server.stop();
        // Every reply the server sends before closing is an OK for the next key in order.
        for (let i = 1;; i++) {
          let line: string;
          try {
            line = await wire.readLine();
          } catch {
            break;
          }
          assert.equal(line, "OK");
          acknowledged.push(`key${i}`);
        }
        const exit = await exiting;
        assert.deepEqual(exit, { code: 0, signal: null });
        assert.ok(server.logs.some((line) => line.properties.event === "stopped"));
      }
      await using restarted = await startServerProcess({ dataDir });
      await using wire = await WireClient.connect(restarted.port);
      await wire.send(acknowledged.map((key) => `READ ${key}\n`).join(""));
      const values = await wire.readLines(acknowledged.length);
      assert.deepEqual(values, acknowledged.map((key) => key.replace("key", "value")));
    }, "kvstore-test-");
  });
}

Deno.test("SIGKILL after acknowledged writes with --fsync always loses none of them", async () => {
  await withTempDir(async (dataDir) => {
    {
      await using server = await startServerProcess({ dataDir, args: ["--fsync", "always"] });
      await using wire = await WireClient.connect(server.port);
      let requests = "";
      for (let i = 0; i < 500; i++) requests += `PUT k${i} v${i}\n`;
      await wire.send(requests + "BATCHPUT x||y 1||2\nDELETE k7\n");
      const replies = await wire.readLines(502);
      assert.ok(replies.every((line) => line === "OK"));
      await server.kill("SIGKILL");
    }
    await using restarted = await startServerProcess({ dataDir });
    await using wire = await WireClient.connect(restarted.port);
    await wire.send("READ k0\nREAD k499\nREAD x\nREAD y\nREAD k7\n");
    assert.deepEqual(await wire.readLines(5), ["v0", "v499", "1", "2", "NOT_FOUND"]);
  }, "kvstore-test-");
});

Deno.test("a second node on a locked data directory fails to start with a clear message", async () => {
  await using first = await startServerProcess();
  // It names the node that holds the directory: its PID and address.
  await assert.rejects(
    startServerProcess({ dataDir: first.dataDir }),
    new RegExp(
      `is in use by a running node \\(pid ${first.pid}, serving 127\\.0\\.0\\.1:${first.port}`,
    ),
  );
});
