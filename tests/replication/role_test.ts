/**
 * The one door to a node's role (`NodeRole`, `REPLICAOF`), on in-process nodes: a master turned
 * into a replica of a new master at runtime (its diverged records replaced), a replica re-pointed
 * to a new master (the old one fenced at once), `REPLICAOF NO ONE`, the role events a failover
 * coordinator listens to, and the restart rules of a demoted master.
 */
import assert from "node:assert/strict";
import { type Config, loadConfig } from "../../src/config.ts";
import { RespErrorReply, type RespValue } from "../../src/protocol/resp.ts";
import { nodeRoleOf, replicationExtension, type RoleEvent } from "../../src/replication/mod.ts";
import { readNodeState } from "../../src/replication/node_state.ts";
import { startServer } from "../../src/server/mod.ts";
import { parseInfo, RespConn, waitUntil } from "../helpers/cluster.ts";
import { startTestServer, type TestServer } from "../helpers/test_server.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const options = { extensions: [replicationExtension] };
const FAST: Partial<Config> = {
  FSYNC: "no",
  REPLICATION_TIMEOUT: 0.5,
  REPLICATION_HEALTH_CHECK_INTERVAL: 0.2,
  REPLICATION_RETRY_BACKOFF_MS: 20,
};

async function send(port: number, command: string[]): Promise<RespValue> {
  const conn = await RespConn.open(port);
  try {
    return await conn.send(command);
  } finally {
    conn.close();
  }
}

async function info(node: TestServer): Promise<Map<string, string>> {
  const reply = await send(node.port, ["INFO", "replication"]);
  assert.ok(reply instanceof Uint8Array);
  return parseInfo(new TextDecoder().decode(reply));
}

function text(reply: RespValue): string {
  if (reply instanceof Uint8Array) return new TextDecoder().decode(reply);
  if (reply instanceof RespErrorReply) return `-${reply.code} ${reply.message}`;
  return String(reply);
}

async function read(node: TestServer, key: string): Promise<string> {
  return text(await send(node.port, ["READ", key]));
}

function address(node: TestServer): string[] {
  return ["127.0.0.1", String(node.port)];
}

/** Resolves once `master`'s link to its first replica streams. */
function linkStreams(master: TestServer): Promise<void> {
  return waitUntil(
    "the link streams",
    () => nodeRoleOf(master.node)?.replicator?.getStats().replicas[0].state === "streaming",
  );
}

/** A master streaming to one replica, both in-process. */
async function pair(): Promise<{ master: TestServer; replica: TestServer } & AsyncDisposable> {
  const replica = await startTestServer({ ...FAST, REPLICA: true }, options);
  const master = await startTestServer({
    ...FAST,
    REPLICATION_ENABLED: true,
    REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: replica.port }],
  }, options);
  return {
    master,
    replica,
    [Symbol.asyncDispose]: async () => {
      await master[Symbol.asyncDispose]();
      await replica[Symbol.asyncDispose]();
    },
  };
}

Deno.test("REPLICAOF turns a running master into a replica of a new master; its extra records go", async () => {
  await using c = await pair();
  const { master, replica } = c;
  assert.equal(text(await send(master.port, ["PUT", "a", "1"])), "OK");
  await waitUntil("replica has a", async () => (await read(replica, "a")) === "1");
  // The replica is promoted while the old master still takes a write it never sends.
  assert.equal(text(await send(replica.port, ["PROMOTE"])), "PROMOTED epoch 1 lsn 1");
  const events: RoleEvent[] = [];
  nodeRoleOf(master.node)?.subscribe((event) => events.push(event));
  // The old master is told to follow the new one (what a failover coordinator does).
  const replicaOf = await send(master.port, ["REPLICAOF", ...address(replica), "EPOCH", "1"]);
  assert.equal(text(replicaOf), "OK");
  assert.equal(master.node.replica, true);
  // (It may have been deposed by its link first: then it knew epoch 1 already.)
  assert.equal(events.at(-1)?.kind, "following");
  const refused = await send(master.port, ["PUT", "b", "2"]);
  assert.ok(refused instanceof RespErrorReply && refused.code === "READONLY", text(refused));
  const fields = await info(master);
  assert.equal(fields.get("role"), "replica");
  assert.equal(fields.get("replica_of"), `127.0.0.1:${replica.port}`);
  const state = await readNodeState(master.dataDir);
  assert.equal(state.highestEpochSeen, 1);
  assert.equal(state.replicaOf, `127.0.0.1:${replica.port}`);
  assert.ok(state.demotedAt !== undefined, "a demoted master is marked");
  // The new master adds it and streams to it; a write on the new master arrives.
  assert.equal(
    text(await send(replica.port, ["REPLICAS", "ADD", `127.0.0.1:${master.port}`])),
    "OK",
  );
  assert.equal(text(await send(replica.port, ["PUT", "c", "3"])), "OK");
  await waitUntil("old master has c", async () => (await read(master, "c")) === "3");
  assert.equal(await read(master, "a"), "1");
  const roleReply = await send(master.port, ["ROLE"]);
  assert.ok(Array.isArray(roleReply));
  assert.equal(text(roleReply[0]), "slave");
});

Deno.test("REPLICAOF on a master with records past the new master's history: a full sync replaces them", async () => {
  await using c = await pair();
  const { master, replica } = c;
  assert.equal(text(await send(master.port, ["PUT", "a", "1"])), "OK");
  await waitUntil("replica has a", async () => (await read(replica, "a")) === "1");
  // Cut the link (the replica is removed), then the old master writes on alone.
  assert.equal(
    text(await send(master.port, ["REPLICAS", "REMOVE", `127.0.0.1:${replica.port}`])),
    "OK",
  );
  assert.equal(text(await send(master.port, ["PUT", "lost", "x"])), "OK");
  assert.equal(text(await send(replica.port, ["PROMOTE"])), "PROMOTED epoch 1 lsn 1");
  assert.equal(text(await send(master.port, ["REPLICAOF", ...address(replica)])), "OK");
  assert.equal(
    text(await send(replica.port, ["REPLICAS", "ADD", `127.0.0.1:${master.port}`])),
    "OK",
  );
  await waitUntil("the diverged record is gone", async () => (await read(master, "lost")) !== "x");
  assert.equal(await read(master, "a"), "1");
  const fields = await info(master);
  assert.equal(fields.get("discarded_records"), "1");
  assert.equal(fields.get("full_syncs"), "1");
});

Deno.test("REPLICAOF re-points a replica: the old master's stream is fenced at once and it is deposed", async () => {
  const other = await startTestServer({ ...FAST, REPLICA: true }, options);
  try {
    await using c = await pair();
    const { master, replica } = c;
    assert.equal(text(await send(master.port, ["PUT", "a", "1"])), "OK");
    await waitUntil("replica has a", async () => (await read(replica, "a")) === "1");
    // `other` is promoted (epoch 1: the coordinator's choice) and the replica told to follow it.
    assert.equal(text(await send(other.port, ["REPLICAOF", "NO", "ONE", "EPOCH", "1"])), "OK");
    assert.equal(other.node.replica, false);
    const events: RoleEvent[] = [];
    nodeRoleOf(replica.node)?.subscribe((event) => events.push(event));
    const reply = await send(replica.port, ["REPLICAOF", ...address(other), "EPOCH", "1"]);
    assert.equal(text(reply), "OK");
    assert.deepEqual(events.map((e) => e.kind), ["epoch", "following"]);
    assert.equal((await readNodeState(replica.dataDir)).highestEpochSeen, 1);
    // The old master's next frame is refused with STALEEPOCH: it is deposed.
    await send(master.port, ["PUT", "b", "2"]);
    await waitUntil("old master deposed", () => master.node.deposed !== undefined);
    const refused = await send(master.port, ["PUT", "c", "3"]);
    assert.ok(refused instanceof RespErrorReply && refused.code === "READONLY", text(refused));
    assert.notEqual(await read(replica, "b"), "2");
    // Its new master streams to it.
    assert.equal(
      text(await send(other.port, ["REPLICAS", "ADD", `127.0.0.1:${replica.port}`])),
      "OK",
    );
    assert.equal(text(await send(other.port, ["PUT", "d", "4"])), "OK");
    await waitUntil("replica follows other", async () => (await read(replica, "d")) === "4");
  } finally {
    await other[Symbol.asyncDispose]();
  }
});

Deno.test("REPLICAOF refuses an older epoch, itself and bad words; NO ONE on a master is OK", async () => {
  await using c = await pair();
  const { master, replica } = c;
  assert.equal(text(await send(replica.port, ["REPLICAOF", "NO", "ONE", "EPOCH", "3"])), "OK");
  const older = await send(replica.port, ["REPLICAOF", ...address(master), "EPOCH", "2"]);
  assert.match(text(older), /epoch 2 is older than epoch 3/);
  assert.equal(replica.node.replica, false, "a refused REPLICAOF changes nothing");
  assert.match(text(await send(master.port, ["REPLICAOF", ...address(master)])), /itself/);
  assert.match(text(await send(master.port, ["REPLICAOF", "h", "p"])), /port|address/);
  assert.match(text(await send(master.port, ["REPLICAOF", "h", "1", "AT", "2"])), /usage/);
  assert.match(text(await send(master.port, ["REPLICAOF", "NO", "ONE", "EPOCH", "x"])), /EPOCH/);
  assert.equal(text(await send(master.port, ["REPLICAOF", "NO", "ONE"])), "OK");
  assert.equal(master.node.replica, false);
  const promoteTwice = await send(replica.port, ["PROMOTE"]);
  assert.match(text(promoteTwice), /already a master/);
});

Deno.test("a master demoted by REPLICAOF refuses to restart as a master, and restarts as a replica", async () => {
  await withTempDir(async (dataDir) => {
    const configOf = (overrides: Partial<Config>) =>
      loadConfig({
        overrides: { HOST: "127.0.0.1", PORT: 0, DATA_DIR: dataDir, ...FAST, ...overrides },
      })
        .config;
    const first = await startServer(configOf({}), options);
    assert.equal(text(await send(first.port, ["PUT", "a", "1"])), "OK");
    assert.equal(text(await send(first.port, ["REPLICAOF", "127.0.0.1", "1", "EPOCH", "4"])), "OK");
    await first.close();
    await assert.rejects(
      () => startServer(configOf({}), options),
      /REPLICAOF made this node a replica of 127\.0\.0\.1:1 .* Start it with --replica/,
    );
    const second = await startServer(configOf({ REPLICA: true }), options);
    try {
      const state = await readNodeState(dataDir);
      assert.equal(state.demotedAt, undefined, "its settings now agree: the mark is cleared");
      assert.equal(state.highestEpochSeen, 4);
      assert.equal(nodeRoleOf(second.node)?.followedMaster, "127.0.0.1:1");
      assert.equal(nodeRoleOf(second.node)?.epoch, 4);
      // It follows a master: no local writes.
      const local = await send(second.port, ["REPLICATE", "PUT", "k", "v"]);
      assert.match(text(local), /REPLICAOF made it follow 127\.0\.0\.1:1/);
    } finally {
      await second.close();
    }
  }, "kvstore-role-");
});

Deno.test("a switchover: the demoted master drains its replica before REPLICAOF answers, then follows it", async () => {
  await using c = await pair();
  const { master, replica } = c;
  await linkStreams(master);
  const conn = await RespConn.open(master.port);
  try {
    // Writes and the demotion in one pipeline: the last writes are in flight as it demotes.
    const writes = Array.from({ length: 200 }, (_, i) => conn.send(["PUT", `k${i}`, `v${i}`]));
    const demoted = conn.send(["REPLICAOF", ...address(replica)]);
    for (const reply of await Promise.all(writes)) assert.equal(text(reply), "OK");
    assert.equal(text(await demoted), "OK");
  } finally {
    conn.close();
  }
  // Every write it acknowledged is on the replica already: nothing to wait for.
  assert.equal(replica.node.store.lastLsn, master.node.store.lastLsn);
  assert.equal(await read(replica, "k199"), "v199");
  assert.equal(text(await send(replica.port, ["PROMOTE"])), "PROMOTED epoch 1 lsn 200");
  assert.equal(
    text(await send(replica.port, ["REPLICAS", "ADD", `127.0.0.1:${master.port}`])),
    "OK",
  );
  assert.equal(text(await send(replica.port, ["PUT", "after", "1"])), "OK");
  await waitUntil("the old master follows", async () => (await read(master, "after")) === "1");
  assert.equal((await info(master)).get("full_syncs"), "0", "no full sync: the logs agree");
});

Deno.test("promote({ epoch, replicas }) streams to the replicas in the new epoch (a coordinator's call)", async () => {
  await using c = await pair();
  const { master, replica } = c;
  const other = await startTestServer({ ...FAST, REPLICA: true }, options);
  try {
    assert.equal(text(await send(master.port, ["PUT", "a", "1"])), "OK");
    await waitUntil("replica has a", async () => (await read(replica, "a")) === "1");
    const role = nodeRoleOf(replica.node);
    assert.ok(role !== undefined);
    const events: RoleEvent[] = [];
    role.subscribe((event) => events.push(event));
    const promotion = await role.promote({
      epoch: 7,
      by: "test coordinator",
      replicas: [{ host: "127.0.0.1", port: other.port }],
    });
    assert.deepEqual(promotion, { epoch: 7, lsn: 1, markerLsn: 2 });
    assert.deepEqual(events, [{ kind: "promoted", epoch: 7, lsn: 1, by: "test coordinator" }]);
    // The epoch shows at HELLO; the full sync that brings "a" follows it.
    await waitUntil(
      "other follows in epoch 7",
      async () =>
        (await info(other)).get("master_epoch") === "7" && (await read(other, "a")) === "1",
    );
    await assert.rejects(() => role.promote({ epoch: 8 }), /already a master/);
  } finally {
    await other[Symbol.asyncDispose]();
  }
});

Deno.test("one role change at a time: a PROMOTE or REPLICAOF during another is refused", async () => {
  await using c = await pair();
  const { master, replica } = c;
  await linkStreams(master);
  const replicaRole = nodeRoleOf(replica.node);
  const masterRole = nodeRoleOf(master.node);
  assert.ok(replicaRole !== undefined && masterRole !== undefined);
  // A promotion waits for the log's durability before it changes anything: meanwhile, no other.
  const promoting = replicaRole.promote({ by: "first" });
  assert.equal(replicaRole.changing, true);
  // Both asked in the same turn as the first: it has not finished.
  const follow = replicaRole.follow({ host: "127.0.0.1", port: master.port });
  const second = replicaRole.promote({ by: "second" });
  await assert.rejects(follow, /a role change \(PROMOTE or REPLICAOF\) is already running/);
  await assert.rejects(second, /already running/);
  await promoting;
  assert.equal(replicaRole.current, "master");
  // A demotion drains first: meanwhile the node takes no writes and no other role change.
  const demoting = masterRole.follow({ host: "127.0.0.1", port: replica.port }, { epoch: 1 });
  assert.equal(masterRole.replica, true, "writes are refused from the first moment");
  const promoteMeanwhile = masterRole.promote();
  await assert.rejects(promoteMeanwhile, /already running/);
  const put = await send(master.port, ["PUT", "k", "v"]);
  assert.ok(put instanceof RespErrorReply && put.code === "READONLY", text(put));
  await demoting;
  assert.equal(masterRole.changing, false);
});
