/**
 * Redis's transactions against a running server: queued commands are applied only at EXEC (the
 * bug where a refused MULTI let them through), WATCH sees every writer (another connection, a
 * replicated record), the queue's and WATCH's bounds, and EXEC running without other clients'
 * requests between its commands.
 */
import assert from "node:assert/strict";
import { concatRuns } from "../../src/replication/log_records.ts";
import { CLUSTER_TEST, startCluster, waitUntil, withClusterDir } from "../helpers/cluster.ts";
import { decodeReply, RawRespConnection, render } from "../helpers/resp3.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { resp, WireClient } from "../helpers/wire.ts";

/** Sends `words` on `conn` and returns the reply rendered (`\r\n` written as such). */
async function call(conn: RawRespConnection, ...words: string[]): Promise<string> {
  await conn.send(words);
  return render(await conn.readReply());
}

Deno.test("MULTI: queued commands answer QUEUED and change nothing until EXEC", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using a = await RawRespConnection.open(server.port);
  await using b = await RawRespConnection.open(server.port);
  assert.equal(await call(a, "MULTI"), "+OK\\r\\n");
  assert.equal(await call(a, "SET", "k", "1"), "+QUEUED\\r\\n");
  assert.equal(await call(a, "DEL", "other"), "+QUEUED\\r\\n");
  // Another client, and the store itself, see nothing yet.
  assert.equal(await call(b, "GET", "k"), "$-1\\r\\n");
  assert.equal(server.node.store.has("k"), false);
  assert.equal(await call(a, "EXEC"), "*2\\r\\n+OK\\r\\n:0\\r\\n");
  assert.equal(await call(b, "GET", "k"), "$1\\r\\n1\\r\\n");
  // DISCARD and an aborted transaction leave nothing behind either.
  await call(a, "MULTI");
  await call(a, "SET", "k", "discarded");
  assert.equal(await call(a, "DISCARD"), "+OK\\r\\n");
  await call(a, "MULTI");
  await call(a, "SET", "k", "aborted");
  await call(a, "NOSUCH");
  assert.match(await call(a, "EXEC"), /^-EXECABORT /);
  assert.equal(await call(b, "GET", "k"), "$1\\r\\n1\\r\\n");
});

Deno.test("WATCH: a key changed by another connection fails EXEC; unchanged keys let it run", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using a = await RawRespConnection.open(server.port);
  await using b = await RawRespConnection.open(server.port);
  await call(a, "SET", "balance", "10");
  // Unchanged: runs.
  await call(a, "WATCH", "balance");
  await call(a, "MULTI");
  await call(a, "SET", "balance", "11");
  assert.equal(await call(a, "EXEC"), "*1\\r\\n+OK\\r\\n");
  // Changed by another connection (even to the same value): fails, nothing applied.
  await call(a, "WATCH", "balance", "absent");
  await call(b, "SET", "balance", "11");
  await call(a, "MULTI");
  await call(a, "SET", "balance", "12");
  assert.equal(await call(a, "EXEC"), "*-1\\r\\n");
  assert.equal(await call(b, "GET", "balance"), "$2\\r\\n11\\r\\n");
  // A key absent when watched, created and deleted again by another: still a change.
  await call(a, "WATCH", "absent");
  await call(b, "SET", "absent", "x");
  await call(b, "DEL", "absent");
  await call(a, "MULTI");
  await call(a, "SET", "balance", "13");
  assert.equal(await call(a, "EXEC"), "*-1\\r\\n");
  // EXEC unwatched everything: another change now does not matter.
  await call(b, "SET", "absent", "y");
  await call(a, "MULTI");
  await call(a, "SET", "balance", "14");
  assert.equal(await call(a, "EXEC"), "*1\\r\\n+OK\\r\\n");
  // A connection that closes while watching leaves no watcher behind (the store stops telling).
  await call(b, "WATCH", "balance");
  b[Symbol.asyncDispose]();
  await using c = await RawRespConnection.open(server.port);
  assert.equal(await call(c, "SET", "balance", "15"), "+OK\\r\\n");
});

Deno.test({
  name: "WATCH on a replica: a record replicated from the master fails EXEC",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-watch-replica-", async (dir) => {
      const { master, replicas: [replica] } = await startCluster(dir, 1);
      await master.send(["SET", "k", "1"]);
      await waitUntil("replicated", async () => (await replica.send(["GET", "k"])) === "1");
      await using conn = await RawRespConnection.open(replica.port);
      assert.equal(await call(conn, "WATCH", "k"), "+OK\\r\\n");
      await master.send(["SET", "k", "2"]);
      await waitUntil("replicated", async () => (await replica.send(["GET", "k"])) === "2");
      await call(conn, "MULTI");
      await call(conn, "GET", "k");
      assert.equal(await call(conn, "EXEC"), "*-1\\r\\n");
      // A transaction (one MULTI record) and a FLUSHALL replicated from the master count too.
      await call(conn, "WATCH", "k");
      await using writer = await RawRespConnection.open(master.port);
      await call(writer, "MULTI");
      await call(writer, "SET", "other", "x");
      await call(writer, "SET", "k", "3");
      assert.equal(await call(writer, "EXEC"), "*2\\r\\n+OK\\r\\n+OK\\r\\n");
      await waitUntil("replicated", async () => (await replica.send(["GET", "k"])) === "3");
      await call(conn, "MULTI");
      await call(conn, "GET", "k");
      assert.equal(await call(conn, "EXEC"), "*-1\\r\\n");
      await call(conn, "WATCH", "k");
      await call(writer, "FLUSHALL");
      await waitUntil("flushed", async () => (await replica.send(["DBSIZE"])) === "0");
      await call(conn, "MULTI");
      await call(conn, "GET", "k");
      assert.equal(await call(conn, "EXEC"), "*-1\\r\\n");
      // Writes queued on a replica are refused at once, and EXEC aborts.
      await call(conn, "MULTI");
      assert.match(await call(conn, "SET", "k", "3"), /^-READONLY /);
      assert.match(await call(conn, "EXEC"), /^-EXECABORT /);
    }),
});

Deno.test("a hostile client cannot queue without bound: MULTI_MAX_COMMANDS and MULTI_MAX_BYTES", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    MULTI_MAX_COMMANDS: 100,
    MULTI_MAX_BYTES: 64 * 1024,
  });
  await using conn = await RawRespConnection.open(server.port);
  await call(conn, "MULTI");
  for (let i = 0; i < 100; i++) await conn.send(["SET", `k${i}`, "v"]);
  for (let i = 0; i < 100; i++) assert.equal(render(await conn.readReply()), "+QUEUED\\r\\n");
  assert.match(await call(conn, "SET", "one", "more"), /MULTI_MAX_COMMANDS \(100\)/);
  assert.match(await call(conn, "EXEC"), /^-EXECABORT /);
  assert.equal(await call(conn, "EXISTS", "k0"), ":0\\r\\n");
  await call(conn, "MULTI");
  assert.equal(await call(conn, "SET", "big", "x".repeat(60 * 1024)), "+QUEUED\\r\\n");
  assert.match(await call(conn, "SET", "big2", "x".repeat(8 * 1024)), /MULTI_MAX_BYTES \(65536\)/);
  assert.match(await call(conn, "EXEC"), /^-EXECABORT /);
  assert.equal(await call(conn, "EXISTS", "big"), ":0\\r\\n");
});

Deno.test("WATCH_MAX_KEYS bounds the keys one connection watches; a refused WATCH watches none", async () => {
  await using server = await startTestServer({ FSYNC: "no", WATCH_MAX_KEYS: 1000 });
  await using conn = await RawRespConnection.open(server.port);
  const keys = Array.from({ length: 600 }, (_, i) => `w${i}`);
  assert.equal(await call(conn, "WATCH", ...keys), "+OK\\r\\n");
  const more = Array.from({ length: 600 }, (_, i) => `x${i}`);
  assert.match(await call(conn, "WATCH", ...more), /WATCH_MAX_KEYS \(1000\)/);
  // The refused keys are not watched: changing one does not fail EXEC.
  await call(conn, "SET", "x1", "v");
  await call(conn, "MULTI");
  await call(conn, "GET", "x1");
  assert.equal(await call(conn, "EXEC"), "*1\\r\\n$1\\r\\nv\\r\\n");
  // After EXEC nothing is watched, so the bound is free again.
  assert.equal(await call(conn, "WATCH", ...more, ...keys.slice(0, 300)), "+OK\\r\\n");
});

Deno.test("EXEC runs its commands with no other client's request between them", async () => {
  await using server = await startTestServer({ FSYNC: "no", REQUEST_STEP_MS: 0.1 });
  await using a = await RawRespConnection.open(server.port);
  await using b = await RawRespConnection.open(server.port);
  const keys = Array.from({ length: 20_000 }, (_, i) => `key:${i}`);
  await call(a, "MSET", ...keys.flatMap((key) => [key, "v"]));
  await call(a, "MULTI");
  await call(a, "DEL", ...keys); // outside a transaction this DEL would run in steps
  await call(a, "SET", "done", "1");
  await a.send(["EXEC"]);
  // B's reads, sent meanwhile, see either everything before the EXEC or everything after.
  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    await b.send(["MGET", "key:0", "key:19999", "done"]);
    seen.push(render(await b.readReply()));
  }
  const exec = decodeReply(await a.readReply());
  assert.deepEqual(exec, [20_000, "OK"]);
  const before = "*3\\r\\n$1\\r\\nv\\r\\n$1\\r\\nv\\r\\n$-1\\r\\n";
  const after = "*3\\r\\n$-1\\r\\n$-1\\r\\n$1\\r\\n1\\r\\n";
  for (const reply of seen) assert.ok(reply === before || reply === after, reply);
});

Deno.test("SET PX 1 is never deleted as it is set: a command reads the clock once", async () => {
  // Inside EXEC expiry is judged at its start, so every key set with PX 1 must exist for the
  // EXISTS at the end. The time a SET reads to add 1 ms to and the time it checks "already past"
  // against are one reading: read twice, about one SET in a thousand straddled a millisecond and
  // was deleted at once (20,000 SETs missed ~20 keys).
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  const count = 20_000;
  const keys = Array.from({ length: count }, (_, i) => `px1:${i}`);
  const parts = [resp("MULTI"), ...keys.map((key) => resp("SET", key, "v", "PX", "1"))];
  parts.push(resp("EXISTS", ...keys), resp("EXEC"));
  await wire.send(concatRuns(parts));
  for (let i = 0; i < count + 2; i++) await wire.readReply(); // +OK, then +QUEUED each
  const replies = await wire.readReply();
  assert.ok(Array.isArray(replies) && replies.length === count + 1);
  assert.equal(replies[count], count, "keys set with PX 1 were gone within their own EXEC");
});

Deno.test("WATCH: a watched key whose time to live runs out fails EXEC, deleted yet or not", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using conn = await RawRespConnection.open(server.port);
  await call(conn, "SET", "short", "v", "PX", "100");
  await call(conn, "WATCH", "short");
  await new Promise((resolve) => setTimeout(resolve, 150));
  await call(conn, "MULTI");
  await call(conn, "SET", "other", "x");
  assert.equal(await call(conn, "EXEC"), "*-1\\r\\n");
  // A key already gone when watched is not a change.
  await call(conn, "WATCH", "short");
  await call(conn, "MULTI");
  await call(conn, "SET", "other", "y");
  assert.equal(await call(conn, "EXEC"), "*1\\r\\n+OK\\r\\n");
});

Deno.test("FLUSHALL by another connection fails the EXEC of a watcher of an existing key", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using a = await RawRespConnection.open(server.port);
  await using b = await RawRespConnection.open(server.port);
  await call(a, "SET", "k", "1");
  await call(a, "WATCH", "k");
  assert.equal(await call(b, "FLUSHALL"), "+OK\\r\\n");
  await call(a, "MULTI");
  await call(a, "SET", "k", "2");
  assert.equal(await call(a, "EXEC"), "*-1\\r\\n");
  assert.equal(await call(b, "DBSIZE"), ":0\\r\\n");
});

Deno.test({
  name: "EXEC on a node that became a replica since MULTI runs nothing (EXECABORT ... READONLY)",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-exec-demoted-", async (dir) => {
      const { master, replicas: [replica] } = await startCluster(dir, 1);
      await using conn = await RawRespConnection.open(master.port);
      await call(conn, "MULTI");
      assert.equal(await call(conn, "SET", "queued", "1"), "+QUEUED\\r\\n");
      // The master steps down: the replica is promoted and the old master follows it.
      assert.match(await replica.send(["PROMOTE"]), /PROMOTED/);
      assert.equal(await master.send(["REPLICAOF", "127.0.0.1", String(replica.port)]), "OK");
      assert.match(
        await call(conn, "EXEC"),
        /^-EXECABORT Transaction discarded because of: READONLY /,
      );
      assert.equal(await master.send(["EXISTS", "queued"]), "0");
    }),
});

Deno.test("queued MULTI arguments count against MAX_CLIENT_MEMORY_BYTES: the hoarder is closed", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    MAX_CLIENT_MEMORY_BYTES: 1024 * 1024,
    MAX_REQUEST_BYTES: 256 * 1024,
  });
  await using bystander = await RawRespConnection.open(server.port);
  await call(bystander, "SET", "k", "v");
  await using hoarder = await RawRespConnection.open(server.port);
  await call(hoarder, "MULTI");
  const value = "x".repeat(64 * 1024);
  let queued = 0;
  try {
    for (; queued < 64; queued++) {
      if ((await call(hoarder, "SET", `big:${queued}`, value)) !== "+QUEUED\\r\\n") break;
    }
  } catch {
    // Closed by the server: expected.
  }
  assert.ok(queued < 32, `${queued} commands of 64 KiB were queued past a 1 MiB bound`);
  assert.ok(await hoarder.closesWithin(), "the hoarding connection was not closed");
  assert.equal(await call(bystander, "GET", "k"), "$1\\r\\nv\\r\\n");
  assert.ok(server.node.stats.evictedForMemory >= 1);
});
