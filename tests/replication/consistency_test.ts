/**
 * The server side of the cluster-aware client, on in-process nodes: ROLE (compared shape for
 * shape with a real redis-server), TOPOLOGY, WITH LSN / MINLSN / CONCERN, and WAIT, with a
 * replica down.
 */
import assert from "node:assert/strict";
import type { Config } from "../../src/config.ts";
import { RespErrorReply, type RespValue } from "../../src/protocol/resp.ts";
import { replicationExtension } from "../../src/replication/mod.ts";
import type { TopologyDocument } from "../../src/replication/topology.ts";
import { parseInfo, RespConn, textRequest, waitUntil } from "../helpers/cluster.ts";
import { hasCommand, startRedis } from "../helpers/redis.ts";
import { startTestServer, type TestServer } from "../helpers/test_server.ts";

const options = { extensions: [replicationExtension] };
const decoder = new TextDecoder();

/** A master with `replicas` in-process replicas (closed by the caller's `await using`). */
async function cluster(
  replicas: number,
  master: Partial<Config> = {},
): Promise<{ master: TestServer; replicas: TestServer[] } & AsyncDisposable> {
  const started: TestServer[] = [];
  for (let i = 0; i < replicas; i++) {
    started.push(
      await startTestServer({ REPLICA: true, FSYNC: "no", MIN_LSN_WAIT_MS: 300 }, options),
    );
  }
  const node = await startTestServer({
    FSYNC: "no",
    REPLICATION_ENABLED: true,
    REPLICA_ADDRESSES: started.map((r) => ({ host: "127.0.0.1", port: r.port })),
    REPLICATION_TIMEOUT: 0.5,
    REPLICATION_HEALTH_CHECK_INTERVAL: 0.2,
    ...master,
  }, options);
  return {
    master: node,
    replicas: started,
    [Symbol.asyncDispose]: async () => {
      await node[Symbol.asyncDispose]();
      for (const r of started) await r[Symbol.asyncDispose]();
    },
  };
}

async function topology(port: number): Promise<TopologyDocument> {
  const conn = await RespConn.open(port);
  try {
    const reply = await conn.send(["TOPOLOGY"]);
    assert.ok(reply instanceof Uint8Array, `TOPOLOGY answered ${String(reply)}`);
    return JSON.parse(decoder.decode(reply));
  } finally {
    conn.close();
  }
}

async function send(port: number, ...commands: (string | Uint8Array)[][]): Promise<RespValue[]> {
  const conn = await RespConn.open(port);
  try {
    return await Promise.all(commands.map((c) => conn.send(c)));
  } finally {
    conn.close();
  }
}

/** The RESP types of a reply, nested: what Redis tooling relies on. */
function shape(reply: RespValue): unknown {
  if (Array.isArray(reply)) return reply.map(shape);
  if (reply instanceof Uint8Array) return "bulk";
  if (reply instanceof RespErrorReply) return "error";
  if (reply === null) return "null";
  return typeof reply === "number" ? "integer" : "simple";
}

async function caughtUp(master: TestServer): Promise<boolean> {
  const document = await topology(master.port);
  return document.replicas.length > 0 &&
    document.replicas.every((r) => r.state === "streaming" && r.lsn === document.node.lsn);
}

Deno.test("TOPOLOGY: a master lists its replicas; a replica names its master from HELLO", async () => {
  await using c = await cluster(2, { ADVERTISE_ADDRESS: "db.example:7000" });
  await send(c.master.port, ["PUT", "k", "v"]);
  await waitUntil("replicas caught up", () => caughtUp(c.master));
  const master = await topology(c.master.port);
  assert.equal(master.version, 1);
  assert.deepEqual(
    { ...master.node, run_id: "" },
    {
      address: "db.example:7000",
      run_id: "",
      role: "master",
      epoch: 0,
      lsn: 1,
      deposed: false,
      replication_mode: "async",
      chain_depth: 0,
      key_filter: null,
    },
  );
  assert.equal(master.upstream, null);
  assert.equal(master.node.run_id, c.master.node.runId);
  assert.equal(master.master?.address, "db.example:7000");
  assert.deepEqual(
    master.replicas.map((r) => [r.address, r.state, r.healthy, r.lsn, r.lag_records]).sort(),
    c.replicas.map((r) => [`127.0.0.1:${r.port}`, "streaming", true, 1, 0]).sort(),
  );
  const replica = await topology(c.replicas[0].port);
  assert.equal(replica.node.role, "replica");
  assert.equal(replica.node.lsn, 1);
  assert.equal(replica.master?.address, "db.example:7000", "the master's advertised address");
  assert.equal(replica.master?.link_status, "up");
  assert.equal(replica.master?.lsn, 1);
  assert.equal(replica.node.chain_depth, 1);
  assert.equal(
    replica.upstream?.address,
    "db.example:7000",
    "at depth 1 the upstream is the master",
  );
  assert.deepEqual(replica.replicas, []);
  // A replica that goes away shows as down, and ROLE lists only connected replicas.
  await c.replicas[1].close();
  await send(c.master.port, ["PUT", "k", "w"]);
  await waitUntil(
    "replica 1 down",
    async () => (await topology(c.master.port)).replicas.some((r) => r.state === "down"),
  );
  const [role] = await send(c.master.port, ["ROLE"]);
  assert.deepEqual(role, [
    new TextEncoder().encode("master"),
    2,
    [[
      new TextEncoder().encode("127.0.0.1"),
      new TextEncoder().encode(String(c.replicas[0].port)),
      new TextEncoder().encode("2"),
    ]],
  ]);
  // Both framings answer; text gets one line of JSON.
  const [line] = await textRequest(c.master.port, ["TOPOLOGY"]);
  assert.equal(JSON.parse(line.replaceAll("\\\\", "\\")).node.role, "master");
});

Deno.test({
  name: "ROLE answers in redis-server's shapes (master, replica) and WAIT's errors in its words",
  ignore: !hasCommand("redis-server"),
  fn: async () => {
    await using redisMaster = await startRedis(["--repl-diskless-sync-delay", "0"]);
    await using redisReplica = await startRedis([
      "--replicaof",
      "127.0.0.1",
      String(redisMaster.port),
    ]);
    await waitUntil("the redis replica is connected", async () => {
      const [role] = await send(redisReplica.port, ["ROLE"]);
      return Array.isArray(role) && decoder.decode(role[3] as Uint8Array) === "connected";
    });
    await send(redisMaster.port, ["SET", "k", "v"]);
    await waitUntil("the redis master lists its replica", async () => {
      const [role] = await send(redisMaster.port, ["ROLE"]);
      return Array.isArray(role) && Array.isArray(role[2]) && role[2].length === 1;
    });
    await using c = await cluster(1);
    await send(c.master.port, ["PUT", "k", "v"]);
    await waitUntil("replica caught up", () => caughtUp(c.master));
    const [redisMasterRole] = await send(redisMaster.port, ["ROLE"]);
    const [redisReplicaRole] = await send(redisReplica.port, ["ROLE"]);
    const [masterRole] = await send(c.master.port, ["ROLE"]);
    const [replicaRole] = await send(c.replicas[0].port, ["ROLE"]);
    assert.deepEqual(shape(masterRole), shape(redisMasterRole));
    assert.deepEqual(shape(replicaRole), shape(redisReplicaRole));
    assert.equal(decoder.decode((replicaRole as Uint8Array[])[0]), "slave");
    assert.equal(decoder.decode((replicaRole as Uint8Array[])[3]), "connected");
    assert.equal((replicaRole as RespValue[])[2], c.master.port);
    // WAIT: the same errors for the same mistakes.
    for (
      const command of [["WAIT", "x", "1"], ["WAIT", "1", "-1"], ["WAIT", "1", "x"], ["WAIT", "1"]]
    ) {
      const [ours] = await send(c.master.port, command);
      const [theirs] = await send(redisMaster.port, command);
      assert.ok(ours instanceof RespErrorReply && theirs instanceof RespErrorReply);
      if (command.length === 3) assert.equal(ours.message, theirs.message, command.join(" "));
    }
    const [ours] = await send(c.replicas[0].port, ["WAIT", "1", "10"]);
    const [theirs] = await send(redisReplica.port, ["WAIT", "1", "10"]);
    assert.ok(ours instanceof RespErrorReply && theirs instanceof RespErrorReply);
    assert.equal(ours.message.split(".")[0], theirs.message.split(".")[0]);
  },
});

Deno.test("WITH LSN: replies carry the LSN; errors stay errors; the text protocol is refused", async () => {
  await using c = await cluster(1);
  const [put, put2, read, missing, range, del, bad] = await send(
    c.master.port,
    ["WITH", "LSN", "PUT", "a", "1"],
    ["WITH", "LSN", "SET", "b", "2"],
    ["WITH", "LSN", "READ", "a"],
    ["WITH", "LSN", "GET", "nope"],
    ["WITH", "LSN", "READRANGE", "a", "z"],
    ["WITH", "LSN", "DEL", "nope"],
    ["WITH", "LSN", "SET", "a", "1", "EX", "10"],
  );
  assert.deepEqual(put, ["OK", 1]);
  assert.deepEqual(put2, ["OK", 2]);
  assert.deepEqual(read, [new TextEncoder().encode("1"), 2]);
  assert.deepEqual(missing, [null, 2]);
  assert.equal((range as RespValue[])[1], 2);
  assert.equal(((range as RespValue[])[0] as RespValue[]).length, 4);
  assert.deepEqual(del, [0, 2]);
  assert.ok(bad instanceof RespErrorReply);
  const [noCommand, notData, badLsn, writeWithMin] = await send(
    c.master.port,
    ["WITH", "LSN"],
    ["WITH", "LSN", "PROMOTE"],
    ["WITH", "MINLSN", "-1", "GET", "a"],
    ["WITH", "MINLSN", "1", "PUT", "a", "1"],
  );
  for (const reply of [noCommand, notData, badLsn, writeWithMin]) {
    assert.ok(reply instanceof RespErrorReply, String(reply));
  }
  assert.match((notData as RespErrorReply).message, /WITH runs one of PUT/);
  assert.deepEqual(await textRequest(c.master.port, ["WITH LSN READ a"]), [
    "ERROR: WITH needs RESP framing (it is for client libraries)",
  ]);
  // On a replica: reads yes (with the replica's applied LSN), writes no.
  await waitUntil("replica caught up", () => caughtUp(c.master));
  const [replicaRead, replicaWrite] = await send(
    c.replicas[0].port,
    ["WITH", "LSN", "GET", "b"],
    ["WITH", "LSN", "PUT", "x", "y"],
  );
  assert.deepEqual(replicaRead, [new TextEncoder().encode("2"), 2]);
  assert.ok(replicaWrite instanceof RespErrorReply && replicaWrite.code === "READONLY");
});

Deno.test("WITH MINLSN: a replica answers once it applied the LSN, else -TRYAGAIN after the bound", async () => {
  await using c = await cluster(1);
  const replica = c.replicas[0].port;
  await send(c.master.port, ["PUT", "k", "old"]);
  await waitUntil("replica caught up", () => caughtUp(c.master));
  const conn = await RespConn.open(replica);
  try {
    // Asked before the master wrote LSN 2: answered once the replica applied it.
    const waiting = conn.send(["WITH", "LSN", "MINLSN", "2", "GET", "k"]);
    // Pipelined behind it: each request runs as it arrives, the replies leave in order.
    const later = conn.send(["WITH", "LSN", "MINLSN", "2", "GET", "k"]);
    const ping = conn.send(["PING"]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await send(c.master.port, ["PUT", "k", "new"]);
    assert.deepEqual(await waiting, [new TextEncoder().encode("new"), 2]);
    assert.deepEqual(await later, [new TextEncoder().encode("new"), 2]);
    assert.equal(await ping, "PONG");
    // Never reached within MIN_LSN_WAIT_MS (300 ms here): a retryable error that says why.
    const started = performance.now();
    const refused = await conn.send(["WITH", "MINLSN", "99", "GET", "k"]);
    const waitedMs = performance.now() - started;
    assert.ok(refused instanceof RespErrorReply);
    assert.equal(refused.code, "TRYAGAIN");
    assert.match(refused.message, /applied LSN 2, not yet LSN 99 .*MIN_LSN_WAIT_MS 300 ms/);
    assert.ok(waitedMs >= 250, `answered after ${waitedMs} ms`);
    // A satisfied MINLSN costs nothing: answered in the same batch.
    assert.deepEqual(
      await conn.send(["WITH", "MINLSN", "2", "READ", "k"]),
      new TextEncoder().encode("new"),
    );
  } finally {
    conn.close();
  }
});

Deno.test("WAIT and WITH CONCERN with one replica down: the right count and the typed error", async () => {
  await using c = await cluster(2);
  await waitUntil("replicas connected", () => caughtUp(c.master));
  const conn = await RespConn.open(c.master.port);
  try {
    assert.equal(await conn.send(["WAIT", "0", "0"]), 2, "no writes yet: the connected replicas");
    assert.equal(await conn.send(["PUT", "a", "1"]), "OK");
    assert.equal(await conn.send(["WAIT", "2", "5000"]), 2);
    assert.deepEqual(
      await conn.send(["WITH", "CONCERN", "2", "5000", "LSN", "PUT", "b", "2"]),
      ["OK", 2],
    );
    await c.replicas[1].close();
    assert.equal(await conn.send(["PUT", "c", "3"]), "OK");
    const started = performance.now();
    assert.equal(await conn.send(["WAIT", "2", "300"]), 1, "one replica has it");
    assert.ok(performance.now() - started >= 250);
    assert.equal(await conn.send(["WAIT", "1", "0"]), 1, "reached at once");
    // The write concern: majority (1 of 2) holds; 2 does not, typed, and the write stays.
    assert.equal(await conn.send(["WITH", "CONCERN", "majority", "2000", "PUT", "d", "4"]), "OK");
    const refused = await conn.send(["WITH", "CONCERN", "2", "300", "PUT", "e", "5"]);
    assert.ok(refused instanceof RespErrorReply);
    assert.equal(refused.code, "WRITECONCERN");
    assert.match(
      refused.message,
      /^1 2 5 write applied on the master \(LSN 5\) but on only 1 of the 2/,
    );
    assert.deepEqual(await conn.send(["GET", "e"]), new TextEncoder().encode("5"));
    // A concern that can never be met is refused before anything is written.
    const never = await conn.send(["WITH", "CONCERN", "3", "100", "PUT", "f", "6"]);
    assert.ok(never instanceof RespErrorReply && /nothing was written/.test(never.message));
    assert.equal(await conn.send(["GET", "f"]), null);
    // A delete of a missing key writes nothing and waits for nothing.
    assert.equal(await conn.send(["WITH", "CONCERN", "2", "5000", "DELETE", "nope"]), 0);
  } finally {
    conn.close();
  }
});

Deno.test("WAIT on a master without replicas waits out its timeout and answers 0", async () => {
  await using master = await startTestServer({ FSYNC: "no" }, options);
  const [zero, waited] = await send(master.port, ["WAIT", "0", "0"], ["WAIT", "1", "100"]);
  assert.equal(zero, 0);
  assert.equal(waited, 0);
  // A write concern of replicas it does not have is refused; majority of none is the master.
  const [none, majority] = await send(
    master.port,
    ["WITH", "CONCERN", "1", "100", "PUT", "k", "v"],
    ["WITH", "CONCERN", "majority", "100", "PUT", "k", "v"],
  );
  assert.ok(none instanceof RespErrorReply);
  assert.equal(majority, "OK");
});

Deno.test("WITH LSN and MINLSN around commands over many keys (MGET and READRANGE in steps, DEL at once)", async () => {
  await using c = await cluster(1);
  const keys = Array.from({ length: 3000 }, (_, i) => `key${String(i).padStart(5, "0")}`);
  const pairs = keys.flatMap((key) => [key, "v"]);
  const [batch] = await send(c.master.port, ["BATCHPUT", ...pairs]);
  assert.equal(batch, "OK");
  await waitUntil("replica caught up", () => caughtUp(c.master));
  const conn = await RespConn.open(c.replicas[0].port);
  try {
    const mget = await conn.send(["WITH", "LSN", "MGET", ...keys]) as RespValue[];
    assert.equal(mget[1], 1);
    assert.equal((mget[0] as RespValue[]).length, 3000);
    // Waiting for LSN 2, then a range of 3000 pairs read in steps.
    const waiting = conn.send(["WITH", "LSN", "MINLSN", "2", "READRANGE", "key", "key~"]);
    await send(c.master.port, ["PUT", "key~", "last"]);
    const range = await waiting as RespValue[];
    assert.equal(range[1], 2);
    assert.equal((range[0] as RespValue[]).length, 2 * 3001, "3000 keys and key~");
  } finally {
    conn.close();
  }
  const [deleted] = await send(c.master.port, ["WITH", "LSN", "DEL", ...keys]);
  // One MULTI record deletes all 3000 (LSN 3, after the BATCHPUT and the PUT): all or none.
  assert.deepEqual(deleted, [3000, 3]);
});

Deno.test("waits of a closed connection end with it: WAIT forever, a long write concern, MINLSN", async () => {
  await using c = await cluster(1, { MIN_LSN_WAIT_MS: 600_000 });
  await using replica = await startTestServer(
    { REPLICA: true, FSYNC: "no", MIN_LSN_WAIT_MS: 600_000 },
    options,
  );
  const info = async (port: number) =>
    parseInfo(decoder.decode((await send(port, ["INFO", "replication"]))[0] as Uint8Array));
  const hostile = await RespConn.open(c.master.port);
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < 200; i++) {
    pending.push(hostile.send(["PUT", `k${i}`, "v"]).catch(() => {}));
    pending.push(hostile.send(["WAIT", "5", "0"]).catch(() => {}));
    pending.push(
      hostile.send(["WITH", "CONCERN", "1", "86400000", "PUT", "x", "y"]).catch(() => {}),
    );
  }
  const reader = await RespConn.open(replica.port);
  for (let i = 0; i < 200; i++) {
    pending.push(reader.send(["WITH", "MINLSN", "999999999", "GET", "k"]).catch(() => {}));
  }
  await c.replicas[0].close(); // the replica goes away: the concerns cannot be met either
  await waitUntil(
    "the waits are held",
    async () =>
      Number((await info(c.master.port)).get("acks_waiting")) >= 200 &&
      Number((await info(replica.port)).get("min_lsn_reads_waiting")) === 200,
  );
  hostile.close();
  reader.close();
  await waitUntil(
    "the waits ended with their connections",
    async () =>
      (await info(c.master.port)).get("acks_waiting") === "0" &&
      (await info(replica.port)).get("min_lsn_reads_waiting") === "0",
  );
  await Promise.all(pending);
});
