/**
 * Cascading replication with real processes on 127.0.0.1: a chain master → r1 → r2 under
 * writers; r1 killed (SIGKILL) and restarted; r2 re-pointed to the master and back without a
 * full sync; r1 promoted in the middle of the chain. Every step ends with identical dumps.
 */
import assert from "node:assert/strict";
import type { Config } from "../../src/config.ts";
import { RespErrorReply } from "../../src/protocol/resp.ts";
import { replicationExtension } from "../../src/replication/mod.ts";
import {
  asText,
  callAt,
  CLUSTER_TEST,
  dump,
  FAST_FAILURE_FLAGS,
  KvNode,
  parseInfo,
  replicaFields,
  RespConn,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { startTestServer, type TestServer } from "../helpers/test_server.ts";

const FAST = ["--fsync", "no", ...FAST_FAILURE_FLAGS];

/** Writes from `writers` connections until `stop()` is called; counts acknowledged writes. */
function writers(node: KvNode, count: number, prefix: string) {
  let stopped = false;
  let acknowledged = 0;
  const running = Promise.all(Array.from({ length: count }, async (_, w) => {
    const conn = await node.connect();
    try {
      for (let i = 0; !stopped; i++) {
        const r = i % 5;
        const reply = r === 4
          ? await conn.send([
            "BATCHPUT",
            `${prefix}b${w}:${i}`,
            "1",
            `${prefix}hot:${i % 7}`,
            `${i}`,
          ])
          : r === 3
          ? await conn.send(["DELETE", `${prefix}hot:${(i + w) % 7}`])
          : await conn.send(["PUT", `${prefix}w${w}:${i}`, `value ${i} of ${w}`]);
        if (reply instanceof RespErrorReply) throw new Error(asText(reply));
        acknowledged++;
      }
    } catch {
      // the node was killed or stopped under the writers: the test checks what converged
    } finally {
      conn.close();
    }
  }));
  return {
    get acknowledged() {
      return acknowledged;
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}

/** `node`'s last applied LSN (a replica) or its master LSN (a master). */
async function lsnOf(node: KvNode): Promise<number> {
  const info = await node.info();
  return Number(info.get("last_applied_lsn") ?? info.get("master_lsn") ?? -1);
}

/** Every node at the same LSN as `head`, and each of their replicas streaming. */
async function converged(head: KvNode, others: KvNode[]): Promise<boolean> {
  const target = await lsnOf(head);
  for (const node of others) if (await lsnOf(node) !== target) return false;
  for (const node of [head, ...others]) {
    const info = await node.info();
    const total = Number(info.get("total_replicas") ?? 0);
    for (let i = 0; i < total; i++) {
      if (replicaFields(info, i).get("state") !== "streaming") return false;
    }
  }
  return true;
}

async function assertSameData(head: KvNode, others: KvNode[]): Promise<void> {
  await waitUntil("the chain converged", () => converged(head, others), 30_000);
  const expected = await dump(head);
  assert.ok(expected.length > 0);
  for (const node of others) assert.deepEqual(await dump(node), expected, node.name);
}

/** Full syncs the nodes received so far (their own INFO count). */
async function fullSyncsOf(node: KvNode): Promise<number> {
  return Number((await node.info()).get("full_syncs"));
}

Deno.test({
  name: "cascading: master → r1 → r2 under writers; r1 killed and restarted; r2 re-pointed; " +
    "r1 promoted in the middle",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-chain-", async (dir) => {
      const r2 = await KvNode.start("r2", `${dir}/r2`, ["--replica", ...FAST]);
      const r1Args = ["--replica", "--replicas", `127.0.0.1:${r2.port}`, ...FAST];
      let r1 = await KvNode.start("r1", `${dir}/r1`, r1Args);
      const master = await KvNode.start("master", `${dir}/m`, [
        "--replicas",
        `127.0.0.1:${r1.port}`,
        ...FAST,
      ]);
      const load = writers(master, 3, "a:");
      await waitUntil("r2 has records through r1", async () => await lsnOf(r2) > 50, 20_000);

      // r2 streams from r1 and knows the master at the chain's head (r1 reports it every second).
      await waitUntil(
        "r2 knows the chain's head",
        async () => (await r2.info()).get("origin_address") === `127.0.0.1:${master.port}`,
      );
      const info = await r2.info();
      assert.equal(info.get("master_port"), String(r1.port), "ROLE/INFO name the upstream");
      assert.equal(info.get("chain_depth"), "2");
      assert.equal(info.get("origin_address"), `127.0.0.1:${master.port}`);
      const topology = JSON.parse(await r2.send(["TOPOLOGY"]));
      assert.equal(topology.node.chain_depth, 2);
      assert.equal(topology.master.address, `127.0.0.1:${master.port}`, "the chain's head");
      assert.equal(topology.upstream.address, `127.0.0.1:${r1.port}`);
      const r1Topology = JSON.parse(await r1.send(["TOPOLOGY"]));
      assert.deepEqual(r1Topology.replicas.map((r: { address: string }) => r.address), [
        `127.0.0.1:${r2.port}`,
      ]);

      // r1 killed under the writers and restarted on its port: both catch up, no full sync.
      await r1.kill();
      await new Promise((resolve) => setTimeout(resolve, 200));
      r1 = await KvNode.start("r1", `${dir}/r1`, [...r1Args, "--port", String(r1.port)]);
      await waitUntil("r1 streams again", async () => await lsnOf(r1) > 0, 20_000);
      await load.stop();
      assert.ok(load.acknowledged > 100, `only ${load.acknowledged} writes`);
      await assertSameData(master, [r1, r2]);
      assert.equal(await fullSyncsOf(r1), 0, "r1 resumed from its LSN");
      assert.equal(await fullSyncsOf(r2), 0, "r2 resumed from its LSN");

      // r2 re-pointed to the master, and back under r1: its LSN means the same everywhere.
      assert.equal(await r1.send(["REPLICAS", "REMOVE", `127.0.0.1:${r2.port}`]), "OK");
      assert.equal(await master.send(["REPLICAS", "ADD", `127.0.0.1:${r2.port}`]), "OK");
      const direct = writers(master, 2, "b:");
      await waitUntil("r2 streams from the master", async () => {
        const r2Info = await r2.info();
        return r2Info.get("master_port") === String(master.port) &&
          r2Info.get("chain_depth") === "1";
      });
      await direct.stop();
      await assertSameData(master, [r1, r2]);
      assert.equal(await fullSyncsOf(r2), 0, "re-pointed to the master without a full sync");
      // r1 down while r2, fed by the master, moves ahead of it; then r2 goes back under r1:
      // r1 waits until its own log reaches r2's LSN, checks the record there, and streams on.
      await r1.kill();
      const ahead = writers(master, 2, "c:");
      await waitUntil("r1 seen down", async () => {
        const masterInfo = await master.info();
        for (let i = 0; i < 2; i++) {
          const fields = replicaFields(masterInfo, i);
          if (fields.get("address") === `127.0.0.1:${r1.port}`) {
            return fields.get("state") === "down";
          }
        }
        return false;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await ahead.stop();
      assert.equal(await master.send(["REPLICAS", "REMOVE", `127.0.0.1:${r2.port}`]), "OK");
      // The master feeds r1 only once r1 met r2 ahead of it: else a quick catch-up (a compressed
      // stream takes well under a second) could bring r1 past r2 before its link reaches r2.
      assert.equal(await master.send(["REPLICAS", "REMOVE", `127.0.0.1:${r1.port}`]), "OK");
      r1 = await KvNode.start("r1", `${dir}/r1`, [...r1Args, "--port", String(r1.port)]);
      await waitUntil("r1 met r2 ahead of it", () =>
        r1.logsMatching(/ahead: it holds LSN/).length > 0);
      assert.equal(await master.send(["REPLICAS", "ADD", `127.0.0.1:${r1.port}`]), "OK");
      await assertSameData(master, [r1, r2]);
      assert.equal((await r2.info()).get("chain_depth"), "2");
      assert.equal(await fullSyncsOf(r2), 0, "back under r1 without a full sync");
      assert.ok(
        r1.logsMatching(/ahead: it holds LSN/).length > 0,
        "r1 found r2 ahead of it at the handshake",
      );

      // The master dies; r1, in the middle, is promoted: r2 becomes its direct replica.
      await master.kill();
      const promoted = await r1.send(["PROMOTE"]);
      assert.match(promoted, /^PROMOTED epoch 1 /);
      const after = writers(r1, 2, "d:");
      await waitUntil("r2 follows the promoted r1", async () => {
        const r2Info = await r2.info();
        return r2Info.get("chain_depth") === "1" && r2Info.get("master_epoch") === "1";
      });
      await after.stop();
      assert.ok(after.acknowledged > 0);
      await assertSameData(r1, [r2]);
      assert.equal(await fullSyncsOf(r2), 0, "r2 kept its data through the promotion");
    }),
});

/** In-process nodes for the fencing test (faster than processes; nothing here is killed). */
const extensions = { extensions: [replicationExtension] };
const FAST_CONFIG: Partial<Config> = {
  FSYNC: "no",
  REPLICATION_TIMEOUT: 0.5,
  REPLICATION_HEALTH_CHECK_INTERVAL: 0.2,
  REPLICATION_RETRY_BACKOFF_MS: 20,
};

function replicaOf(...replicas: TestServer[]): Partial<Config> {
  return replicas.length === 0 ? { ...FAST_CONFIG, REPLICA: true } : {
    ...FAST_CONFIG,
    REPLICA: true,
    REPLICATION_ENABLED: true,
    REPLICA_ADDRESSES: replicas.map((r) => ({ host: "127.0.0.1", port: r.port })),
  };
}

function call(server: TestServer, ...words: string[]): Promise<string> {
  return callAt(server.port, ...words);
}

async function keysOf(server: TestServer): Promise<string[]> {
  const conn = await RespConn.open(server.port);
  try {
    const reply = await conn.send(["READRANGE", "\u0000", "\u00ff"]);
    if (!Array.isArray(reply)) return [];
    return reply.filter((_, i) => i % 2 === 0).map(asText);
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "cascading: a deposed master's records never reach a sub-replica through the chain",
  ...CLUSTER_TEST,
  fn: async () => {
    await using r2 = await startTestServer(replicaOf(), extensions);
    await using r1 = await startTestServer(replicaOf(r2), extensions);
    await using next = await startTestServer(replicaOf(), extensions);
    await using old = await startTestServer({
      ...FAST_CONFIG,
      REPLICATION_ENABLED: true,
      REPLICA_ADDRESSES: [r1, next].map((r) => ({ host: "127.0.0.1", port: r.port })),
    }, extensions);
    for (let i = 0; i < 20; i++) assert.equal(await call(old, "PUT", `before:${i}`, "v"), "OK");
    await waitUntil("r2 has every record", async () => (await keysOf(r2)).length === 20);

    // `next` is promoted while `old` still runs, unaware (it no longer streams to `next`).
    assert.equal(await call(old, "REPLICAS", "REMOVE", `127.0.0.1:${next.port}`), "OK");
    assert.match(await call(next, "PROMOTE"), /^PROMOTED epoch 1 /);
    // r2 is told of the new master: from now on it takes only streams of epoch 1 or newer.
    assert.equal(await call(r2, "REPLICAOF", "127.0.0.1", String(next.port), "EPOCH", "1"), "OK");
    const acknowledged: string[] = [];
    for (let i = 0; i < 50; i++) {
      if (await call(old, "PUT", `after:${i}`, "v") === "OK") acknowledged.push(`after:${i}`);
    }
    // r2 refused r1's epoch-0 stream; r1 learned epoch 1 from it, refused the old master, which
    // is deposed; r1 forwards nothing until the new master's stream reached it.
    await waitUntil("the old master is deposed", async () => {
      const info = parseInfo(await call(old, "INFO", "replication"));
      return info.has("deposed");
    });
    const r1Info = parseInfo(await call(r1, "INFO", "replication"));
    assert.equal(r1Info.get("epoch"), "0", "r1's log is still epoch 0");
    assert.match(r1Info.get("replica0_last_error") ?? "", /knows of a master of epoch 1/);
    assert.deepEqual((await keysOf(r2)).filter((k) => k.startsWith("after:")), []);
    assert.ok(acknowledged.length < 50, "the old master stopped acknowledging");

    // The new master takes r1 (its log diverged: a full sync) and r1 forwards again to r2.
    for (let i = 0; i < 5; i++) assert.equal(await call(next, "PUT", `new:${i}`, "v"), "OK");
    assert.equal(await call(next, "REPLICAS", "ADD", `127.0.0.1:${r1.port}`), "OK");
    const expected = await keysOf(next);
    await waitUntil("r1 and r2 hold the new master's data", async () => {
      return JSON.stringify(await keysOf(r1)) === JSON.stringify(expected) &&
        JSON.stringify(await keysOf(r2)) === JSON.stringify(expected);
    });
    assert.deepEqual(expected.filter((k) => k.startsWith("after:")), []);
    assert.equal(expected.length, 25);
  },
});
