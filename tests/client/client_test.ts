import assert from "node:assert/strict";
import {
  KVClient,
  KVConnectionError,
  KVError,
  KVReadOnlyError,
  KVServerError,
  KVTimeoutError,
} from "../../mod.ts";
import { freePort } from "../helpers/cluster.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { waitUntil } from "../helpers/wait.ts";

Deno.test("KVClient: every operation against a real server", async () => {
  await using server = await startTestServer({ FSYNC: "always" });
  await using client = new KVClient({ port: server.port });
  await client.put("user:1", "Ada");
  await client.put("user:2", "");
  assert.equal(await client.read("user:1"), "Ada");
  assert.equal(await client.read("user:2"), "");
  assert.equal(await client.read("nobody"), undefined);
  await client.batchPut([["user:3", "Grace"], ["user:4", "Edsger"]]);
  await client.batchPut({ "user:5": "Barbara" });
  await client.batchPut([]);
  assert.deepEqual(await client.readRange("user:2", "user:4"), [
    ["user:2", ""],
    ["user:3", "Grace"],
    ["user:4", "Edsger"],
  ]);
  assert.deepEqual(await client.readRange("x", "y"), []);
  assert.equal(await client.delete("user:1"), true);
  assert.equal(await client.delete("user:1"), false);
  assert.match(await client.info("storage"), /^# Storage\r\nkeys:4\r\n/);
  assert.match(await client.info(), /# Replication\r\nrole:master/);
  assert.ok((await client.ping()) >= 0);
  assert.equal(await client.send(["DBSIZE"]), 4);
});

Deno.test("KVClient: bytes round-trip exactly; read decodes UTF-8", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using client = new KVClient({ port: server.port });
  const key = new Uint8Array([0, 10, 13, 32, 255]);
  const value = new Uint8Array(256).map((_, i) => i);
  await client.put(key, value);
  assert.deepEqual(await client.readBytes(key), value);
  assert.deepEqual(await client.readRangeBytes(key, key), [[key, value]]);
  await client.put("text", "naïve ☃\r\n");
  assert.equal(await client.read("text"), "naïve ☃\r\n");
  await client.put("latin1", new Uint8Array([0x61, 0xe9]));
  assert.equal(await client.read("latin1"), "a\ufffd");
});

Deno.test("KVClient: concurrent calls share one connection, pipelined, answered in order", async () => {
  await using server = await startTestServer({ FSYNC: "always" });
  await using client = new KVClient({ port: server.port });
  const writes = Array.from({ length: 2000 }, (_, i) => client.put(`k${i}`, `v${i}`));
  const reads = Array.from({ length: 2000 }, (_, i) => client.read(`k${i}`));
  await Promise.all(writes);
  assert.deepEqual(await Promise.all(reads), Array.from({ length: 2000 }, (_, i) => `v${i}`));
  assert.equal(server.node.stats.totalConnections, 1);
});

Deno.test("KVClient: a write to a replica is a KVReadOnlyError; a bad one a KVServerError", async () => {
  await using replica = await startTestServer({ FSYNC: "no", REPLICA: true });
  await using client = new KVClient({ port: replica.port });
  await assert.rejects(client.put("k", "v"), (error) => {
    assert.ok(error instanceof KVReadOnlyError);
    assert.ok(error instanceof KVServerError);
    assert.equal(
      error.message,
      "Replica nodes are read-only. Please send writes to the master node.",
    );
    return true;
  });
  assert.equal(await client.read("k"), undefined);
  await using master = await startTestServer({ FSYNC: "no", MAX_KEY_BYTES: 4 });
  await using other = new KVClient({ port: master.port });
  await assert.rejects(
    other.put("too-long", "v"),
    (error) =>
      error instanceof KVServerError && error.code === "ERR" &&
      error.message === "key of 8 bytes is larger than MAX_KEY_BYTES 4",
  );
});

Deno.test("KVClient: nothing listening is a KVConnectionError naming the address", async () => {
  const port = freePort();
  const client = new KVClient({ port, timeoutMs: 2000 });
  await assert.rejects(client.put("k", "v"), (error) => {
    assert.ok(error instanceof KVConnectionError);
    assert.match(error.message, new RegExp(`^kvstore at 127.0.0.1:${port}: cannot connect`));
    return true;
  });
  await assert.rejects(KVClient.connect({ port, timeoutMs: 2000 }), KVConnectionError);
  await client.close();
});

Deno.test("KVClient: a server that does not answer gives KVTimeoutError, then a new connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    const client = new KVClient({ port: (listener.addr as Deno.NetAddr).port, timeoutMs: 150 });
    const started = Date.now();
    const first = client.read("a");
    const second = client.read("b");
    await assert.rejects(first, (error) => {
      assert.ok(error instanceof KVTimeoutError);
      assert.equal(error.timeoutMs, 150);
      assert.equal(error.command, "READ");
      return true;
    });
    await assert.rejects(second, KVConnectionError);
    assert.ok(Date.now() - started >= 140);
    await assert.rejects(client.ping(), KVTimeoutError);
    // The accept loop runs on the same (possibly loaded) event loop as the client: wait for it.
    await waitUntil("the listener to accept both connections", () => accepted.length >= 2, 5_000);
    assert.equal(accepted.length, 2);
    await client.close();
  } finally {
    listener.close();
    await accepting;
    for (const conn of accepted) conn.close();
  }
});

Deno.test("KVClient: a broken connection fails the calls on it and the next call reconnects", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  const proxy = FaultProxy.start(server.port);
  try {
    await using client = new KVClient({ port: proxy.port, timeoutMs: 2000 });
    await client.put("k", "1");
    proxy.setMode("reset");
    await assert.rejects(client.read("k"), KVConnectionError);
    proxy.setMode("pass");
    assert.equal(await client.read("k"), "1");
    assert.equal(proxy.stats.accepted, 2);
  } finally {
    await proxy.close();
  }
});

Deno.test("KVClient: close waits for calls in flight; later calls are refused", async () => {
  await using server = await startTestServer({ FSYNC: "always" });
  const client = new KVClient({ port: server.port });
  const writes = Array.from({ length: 100 }, (_, i) => client.put(`k${i}`, "v"));
  await client.close();
  await Promise.all(writes);
  assert.equal(server.node.store.stats().keys, 100);
  await assert.rejects(client.read("k1"), /the client is closed/);
});

Deno.test("KVClient: calls past maxPendingCalls are refused at once, the others answered", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using client = new KVClient({ port: server.port, maxPendingCalls: 3 });
  const calls = Array.from({ length: 5 }, (_, i) => client.put(`p${i}`, "v"));
  const results = await Promise.allSettled(calls);
  assert.deepEqual(results.map((r) => r.status), [
    "fulfilled",
    "fulfilled",
    "fulfilled",
    "rejected",
    "rejected",
  ]);
  const refused = results[3] as PromiseRejectedResult;
  assert.ok(refused.reason instanceof KVError);
  assert.match(refused.reason.message, /3 calls .* already waiting .*maxPendingCalls 3/);
  assert.equal(await client.read("p2"), "v");
  assert.equal(await client.read("p3"), undefined, "a refused call was never sent");
  assert.throws(() => new KVClient({ maxPendingCalls: 0 }), /maxPendingCalls 0 must be/);
});

Deno.test("KVClient: a value past maxReplyBulkBytes fails that connection, not the next", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using writer = new KVClient({ port: server.port });
  await writer.put("big", "x".repeat(100));
  await writer.put("small", "y");
  await using client = new KVClient({ port: server.port, maxReplyBulkBytes: 10 });
  await assert.rejects(client.read("big"), (error: Error) => {
    assert.ok(error instanceof KVConnectionError);
    assert.match(error.message, /bulk length 100 is out of bounds/);
    return true;
  });
  assert.equal(await client.read("small"), "y");
});
