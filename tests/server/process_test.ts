import assert from "node:assert/strict";
import { startServerProcess } from "../helpers/server_process.ts";
import { withTempDir } from "../helpers/temp_dir.ts";
import { resp, WireClient } from "../helpers/wire.ts";

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

Deno.test("SIGKILL amid INCRs with --fsync always: each counter comes back at its last acknowledged value or later", async () => {
  await withTempDir(async (dataDir) => {
    const keys = Array.from({ length: 2000 }, (_, i) => `ctr${i % 10}`);
    const steps = keys.map((_, i) => (i % 7 === 0 ? -3 : 3));
    // Each key's value after each of its operations, in order, and how many were acknowledged.
    const history = new Map<string, number[]>();
    keys.forEach((key, i) => {
      const values = history.get(key) ?? [];
      values.push((values.at(-1) ?? 0) + steps[i]);
      history.set(key, values);
    });
    const acknowledged = new Map<string, number>();
    {
      await using server = await startServerProcess({ dataDir, args: ["--fsync", "always"] });
      await using wire = await WireClient.connect(server.port);
      // Pipelined, so the kill lands while the later ones are still in flight.
      const requests = keys.map((key, i) =>
        steps[i] < 0 ? resp("DECRBY", key, "3") : resp("INCRBY", key, "3")
      );
      await wire.send(new Uint8Array(requests.flatMap((request) => [...request])));
      for (let i = 0; i < 1000; i++) {
        const reply = (await wire.readLine()).trimEnd();
        const count = (acknowledged.get(keys[i]) ?? 0) + 1;
        acknowledged.set(keys[i], count);
        assert.equal(reply, `:${(history.get(keys[i]) as number[])[count - 1]}`, `reply ${i}`);
      }
      await server.kill("SIGKILL");
    }
    await using restarted = await startServerProcess({ dataDir });
    await using wire = await WireClient.connect(restarted.port);
    for (const [key, count] of acknowledged) {
      await wire.send(resp("GET", key));
      await wire.readLine(); // $<length>
      const stored = Number((await wire.readLine()).trimEnd());
      // Every acknowledged operation survived; ones in flight at the kill may have, in order.
      const possible = (history.get(key) as number[]).slice(count - 1);
      assert.ok(possible.includes(stored), `${key}: ${stored}, acknowledged ${possible[0]}`);
      await wire.send(resp("INCR", key));
      assert.equal((await wire.readLine()).trimEnd(), `:${stored + 1}`, `${key} counts on`);
    }
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
