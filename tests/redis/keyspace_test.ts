/**
 * The keyspace commands against a running server, beyond reply-for-reply conformance: SCAN's
 * guarantee while keys come and go and compaction runs, forged and forgotten cursors, KEYS over
 * many keys in steps while another client is served, RENAME and COPY seen whole by others.
 */
import assert from "node:assert/strict";
import {
  CLUSTER_TEST,
  KvNode,
  startCluster,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { call, decodeReply, RawRespConnection } from "../helpers/resp3.ts";
import { startTestServer } from "../helpers/test_server.ts";

/** One SCAN call: the next cursor and the keys. */
async function scanOnce(
  conn: RawRespConnection,
  cursor: string,
  ...options: string[]
): Promise<[string, string[]]> {
  const reply = await call(conn, "SCAN", cursor, ...options);
  assert.ok(Array.isArray(reply) && reply.length === 2, JSON.stringify(reply));
  return [String(reply[0]), (reply[1] as unknown[]).map(String)];
}

Deno.test("SCAN returns every key present for the whole scan, while others are added, deleted and compacted", async () => {
  await using server = await startTestServer({ FSYNC: "no", SEGMENT_SIZE_BYTES: 64 * 1024 });
  await using scanner = await RawRespConnection.open(server.port);
  await using writer = await RawRespConnection.open(server.port);
  const stable = Array.from({ length: 3000 }, (_, i) => `stable:${String(i).padStart(5, "0")}`);
  await call(writer, "MSET", ...stable.flatMap((key) => [key, "v".repeat(50)]));
  await call(writer, "MSET", ...stable.slice(0, 1000).flatMap((key) => [key, "w".repeat(50)]));
  const seen = new Set<string>();
  let cursor = "0";
  let round = 0;
  let compacting: Promise<unknown> | undefined;
  do {
    const [next, keys] = await scanOnce(scanner, cursor, "COUNT", "37");
    for (const key of keys) seen.add(key);
    cursor = next;
    // Between calls: keys before and after the cursor come and go, and compaction moves records.
    round++;
    const churn = Array.from({ length: 20 }, (_, i) => `churn:${round}:${i}`);
    await call(writer, "MSET", ...churn.flatMap((key) => [key, "x"]));
    await call(
      writer,
      "MSET",
      ...["a", "m", "s", "z"].map((p) => `${p}:${round}`).flatMap((k) => [k, "y"]),
    );
    await call(writer, "DEL", `churn:${round - 1}:3`, `a:${round - 1}`, `z:${round - 1}`);
    if (round === 10) compacting = server.node.store.compact();
  } while (cursor !== "0" && round < 10_000);
  await compacting;
  assert.equal(cursor, "0");
  for (const key of stable) assert.ok(seen.has(key), `${key} was never returned`);
});

Deno.test("SCAN: a made-up or forgotten cursor starts over; the cursor table is bounded", async () => {
  await using server = await startTestServer({ FSYNC: "no", SCAN_MAX_CURSORS: 16 });
  await using conn = await RawRespConnection.open(server.port);
  const keys = Array.from({ length: 100 }, (_, i) => `k:${String(i).padStart(3, "0")}`);
  await call(conn, "MSET", ...keys.flatMap((key) => [key, "v"]));
  // Forged: a huge cursor, the largest one, a negative one (Redis reads it as 2^64-1).
  for (const forged of ["18446744073709551615", "123456789", "-1"]) {
    const [, first] = await scanOnce(conn, forged, "COUNT", "5");
    assert.deepEqual(first, keys.slice(0, 5), forged);
  }
  // More scans in progress than the table holds: the oldest are forgotten, and a forgotten
  // cursor starts its scan over instead of ending it.
  const cursors: string[] = [];
  for (let i = 0; i < 20; i++) cursors.push((await scanOnce(conn, "0", "COUNT", "10"))[0]);
  const [, restarted] = await scanOnce(conn, cursors[0], "COUNT", "10");
  assert.deepEqual(restarted, keys.slice(0, 10));
  const [, continued] = await scanOnce(conn, cursors[19], "COUNT", "10");
  assert.deepEqual(continued, keys.slice(10, 20));
  // MATCH with a literal prefix looks only at that prefix's keys.
  const [end, matched] = await scanOnce(conn, "0", "MATCH", "k:05*", "COUNT", "1000");
  assert.deepEqual([end, matched], ["0", keys.slice(50, 60)]);
});

Deno.test("KEYS * over 200,000 keys runs in steps: another client is answered meanwhile", async () => {
  await using server = await startTestServer({ FSYNC: "no", REQUEST_STEP_MS: 1 });
  await using a = await RawRespConnection.open(server.port);
  await using b = await RawRespConnection.open(server.port);
  for (let batch = 0; batch < 20; batch++) {
    const pairs: string[] = [];
    for (let i = 0; i < 10_000; i++) pairs.push(`key:${batch}:${i}`, "v");
    await call(a, "MSET", ...pairs);
  }
  await a.send(["KEYS", "*"]);
  const started = performance.now();
  let answeredWhileKeys = 0;
  const keysReply = a.readReply(60_000).then((reply) => {
    const keys = decodeReply(reply);
    assert.ok(Array.isArray(keys));
    assert.equal(keys.length, 200_000);
    return performance.now();
  });
  let keysDone = false;
  keysReply.then(() => (keysDone = true));
  while (!keysDone && performance.now() - started < 60_000) {
    assert.equal(await call(b, "PING"), "PONG");
    if (!keysDone) answeredWhileKeys++;
  }
  await keysReply;
  assert.ok(answeredWhileKeys > 0, "no PING was answered while KEYS ran");
});

Deno.test("RENAME and COPY: another client sees the key under one name or the other, never both or none", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using a = await RawRespConnection.open(server.port);
  await using b = await RawRespConnection.open(server.port);
  await call(a, "SET", "name:0", "payload");
  for (let i = 0; i < 200; i++) {
    await a.send(["RENAME", `name:${i}`, `name:${i + 1}`]);
    await b.send(["MGET", `name:${i}`, `name:${i + 1}`]);
    assert.equal(decodeReply(await a.readReply()), "OK");
    const [before, after] = decodeReply(await b.readReply()) as (string | null)[];
    assert.ok((before === null) !== (after === null), `${before} ${after}`);
  }
  assert.equal(await call(a, "COPY", "name:200", "copy"), 1);
  assert.deepEqual(await call(b, "MGET", "name:200", "copy"), ["payload", "payload"]);
});

Deno.test({
  name: "FLUSHALL is durable and replicated: a restarted master and its replica hold no key",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-flushall-", async (dir) => {
      const { master, replicas: [replica] } = await startCluster(dir, 1);
      await master.send(["MSET", "a", "1", "b", "2", "c", "3"]);
      assert.equal(await master.send(["FLUSHALL"]), "OK");
      await master.send(["SET", "after", "x"]);
      await waitUntil("replicated", async () => (await replica.send(["EXISTS", "after"])) === "1");
      assert.equal(await replica.send(["DBSIZE"]), "1");
      await master.kill();
      const restarted = await KvNode.start("master", `${dir}/m`, []);
      assert.equal(await restarted.send(["DBSIZE"]), "1");
      assert.equal(await restarted.send(["EXISTS", "a", "b", "c"]), "0");
    }),
});
