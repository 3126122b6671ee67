/**
 * Selective replication: replicas given key prefixes on the master receive only matching keys
 * (a BATCH cut to its matching pairs), are marked filtered in INFO, TOPOLOGY and metrics, never
 * count for sync acknowledgements, refuse PROMOTE, and are resynced when their filter changes;
 * a restart of either side keeps each holding exactly its keys.
 */
import assert from "node:assert/strict";
import { filterRecords, KeyFilter } from "../../src/replication/key_filter.ts";
import { recordLengthAt, recordLsnAt } from "../../src/replication/log_records.ts";
import { KVClient } from "../../mod.ts";
import { replicationExtension } from "../../src/replication/mod.ts";
import {
  encodeBatch,
  encodeDelete,
  encodeFlush,
  encodeMulti,
  encodePut,
  forEachKey,
  MultiKind,
  Op,
} from "../../src/storage/record.ts";
import {
  asText,
  callAt,
  CLUSTER_TEST,
  dump,
  dumpAt,
  FAST_FAILURE_FLAGS,
  KvNode,
  parseInfo,
  replicaFields,
  RespConn,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { kvstore } from "../helpers/cli.ts";
import { FAST_REPLICATION, startTestServer } from "../helpers/test_server.ts";

const encoder = new TextEncoder();
const FAST = ["--fsync", "no", ...FAST_FAILURE_FLAGS];

Deno.test("key filter: PUT and DELETE pass or become an empty BATCH at their LSN; a BATCH keeps its matching pairs", () => {
  const out = new Uint8Array(4096);
  const view = new DataView(out.buffer);
  let at = 0;
  at += encodePut(out, view, at, 1, 2, 0, "a:1", "x");
  at += encodePut(out, view, at, 2, 2, 0, "b:1", "y");
  at += encodeDelete(out, view, at, 3, 2, 0, "a:1");
  const pairs: [Uint8Array, Uint8Array][] = [["a:2", "1"], ["b:2", "2"], ["a:3", "3"]].map((
    [k, v],
  ) => [encoder.encode(k), encoder.encode(v)]);
  at += encodeBatch(out, view, at, 4, 2, 0, pairs);
  const records = out.subarray(0, at);
  const filter = new KeyFilter(["a:"]);
  const filtered = filterRecords(records, filter);
  const lsns: number[] = [];
  const lengths: number[] = [];
  for (let i = 0; i < filtered.length; i += recordLengthAt(filtered, i)) {
    lsns.push(recordLsnAt(filtered, i));
    lengths.push(recordLengthAt(filtered, i));
  }
  assert.deepEqual(lsns, [1, 2, 3, 4], "every LSN kept: the log stays gapless");
  assert.equal(lengths[1], 32, "b:1's PUT is an empty BATCH");
  assert.equal(lengths[3], 32 + (8 + 3 + 1) * 2, "the BATCH keeps a:2 and a:3");
  assert.equal(filterRecords(records, new KeyFilter(["a:", "b:"])), records, "nothing to cut");
  assert.throws(() => new KeyFilter([""]), /may not be empty/);
});

Deno.test("key filter: a MULTI keeps its matching entries in order, an expiring PUT is a PUT, a FLUSH passes", () => {
  const out = new Uint8Array(4096);
  const view = new DataView(out.buffer);
  let at = 0;
  at += encodeMulti(out, view, at, 1, 0, 0, [
    { kind: MultiKind.DELETE, key: "a:old" },
    { kind: MultiKind.PUT, key: "b:1", value: "x", expiresAtMs: 0 },
    { kind: MultiKind.PUT, key: "a:new", value: "y", expiresAtMs: 9_999_999_999_999 },
  ]);
  at += encodePut(out, view, at, 2, 0, 0, "b:2", "v", 9_999_999_999_999); // PUT_EXPIRING
  at += encodeFlush(out, view, at, 3, 0, 0);
  const filtered = filterRecords(out.subarray(0, at), new KeyFilter(["a:"]));
  const keys: string[] = [];
  const fview = new DataView(filtered.buffer, filtered.byteOffset, filtered.byteLength);
  const ops: number[] = [];
  for (let i = 0; i < filtered.length; i += recordLengthAt(filtered, i)) {
    ops.push(filtered[i + 20]);
    forEachKey(filtered, fview, i, (start, length, valueStart, _, expiresAtMs) => {
      const key = new TextDecoder().decode(filtered.subarray(start, start + length));
      keys.push(`${valueStart < 0 ? "del" : "put"} ${key} ${expiresAtMs}`);
    });
  }
  assert.deepEqual(ops, [Op.MULTI, Op.BATCH, Op.FLUSH]);
  assert.deepEqual(keys, ["del a:old 0", "put a:new 9999999999999"]);
  assert.throws(() => new KeyFilter(Array(65).fill("p")), /more than 64/);
});

/** Every `key=value` of `all` whose key starts with one of `prefixes`. */
function only(all: string[], prefixes: string[]): string[] {
  return all.filter((pair) => prefixes.some((p) => pair.startsWith(p)));
}

async function holdsExactly(master: KvNode, replica: KvNode, prefixes: string[]): Promise<void> {
  const expected = only(await dump(master), prefixes);
  await waitUntil(
    `${replica.name} holds exactly [${prefixes}]`,
    async () => JSON.stringify(await dump(replica)) === JSON.stringify(expected),
    20_000,
  );
}

/** A node's `/status.json` (started with `--metrics-port 0`). */
async function statusOf(node: KvNode) {
  const line = node.logs.find((l) => l.properties.event === "metrics_listening");
  const port = line?.properties.port as number;
  const reply = await fetch(`http://127.0.0.1:${port}/status.json`, {
    signal: AbortSignal.timeout(5000),
  });
  return await reply.json();
}

async function write(master: KvNode, round: string): Promise<void> {
  const ok = async (words: string[]) =>
    assert.equal(await master.send(words), "OK", words.join(" "));
  for (let i = 0; i < 30; i++) {
    await ok(["PUT", `a:${round}${i}`, `va${i}`]);
    await ok(["PUT", `b:${round}${i}`, `vb${i}`]);
    await ok(["PUT", `c:${round}${i}`, `neither ${i}`]);
  }
  // One atomic BATCHPUT spanning both filters and neither.
  await ok(["BATCHPUT", `a:${round}x`, "1", `b:${round}x`, "2", `c:${round}x`, "3"]);
  // Format 2 records: an expiring PUT, and a MULTI spanning both filters and neither.
  await ok(["SET", `a:${round}ttl`, "t", "EX", "100000"]);
  await ok(["SET", `c:${round}ttl`, "t", "EX", "100000"]);
  const conn = await master.connect();
  try {
    for (const words of [["MULTI"], ["SET", `a:${round}m`, "1"], ["SET", `b:${round}m`, "2"]]) {
      await conn.send(words);
    }
    await conn.send(["SET", `c:${round}m`, "3"]);
    await conn.send(["DEL", `b:${round}1`]);
    assert.ok(Array.isArray(await conn.send(["EXEC"])), "EXEC ran");
  } finally {
    conn.close();
  }
  assert.equal(await master.send(["DELETE", `a:${round}0`]), "1");
  assert.equal(await master.send(["DELETE", `c:${round}0`]), "1");
}

Deno.test({
  name: "selective: two replicas with disjoint prefixes hold exactly their keys through writes, " +
    "a filter change and restarts",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-selective-", async (dir) => {
      const ra = await KvNode.start("ra", `${dir}/ra`, [
        "--replica",
        "--metrics-port",
        "0",
        ...FAST,
      ]);
      let rb = await KvNode.start("rb", `${dir}/rb`, ["--replica", ...FAST]);
      const masterArgs = [
        "--replicas",
        `127.0.0.1:${ra.port}[a:],127.0.0.1:${rb.port}[b:]`,
        "--metrics-port",
        "0",
        ...FAST,
      ];
      let master = await KvNode.start("master", `${dir}/m`, masterArgs);
      await write(master, "1-");
      await holdsExactly(master, ra, ["a:"]);
      await holdsExactly(master, rb, ["b:"]);

      // Marked everywhere: the master's INFO line, the replica's INFO and TOPOLOGY, metrics.
      const info = await master.info();
      assert.equal(replicaFields(info, 0).get("filtered"), "yes");
      assert.equal(info.get("replica0_key_filter"), "[a:]");
      assert.equal(info.get("replica1_key_filter"), "[b:]");
      assert.equal((await ra.info()).get("key_filter"), "[a:]");
      // ... and the status page's data (/status.json) on both sides.
      assert.deepEqual((await statusOf(ra)).master.keyFilter, ["a:"]);
      assert.deepEqual(
        (await statusOf(master)).replicas.map((r: { keyFilter?: string[] }) => r.keyFilter),
        [["a:"], ["b:"]],
      );
      const topology = JSON.parse(await ra.send(["TOPOLOGY"]));
      assert.deepEqual(topology.node.key_filter, ["a:"]);
      const masterTopology = JSON.parse(await master.send(["TOPOLOGY"]));
      assert.deepEqual(masterTopology.replicas.map((r: { key_filter: string[] }) => r.key_filter), [
        ["a:"],
        ["b:"],
      ]);
      assert.equal(
        await master.send(["REPLICAS", "LIST"]),
        `127.0.0.1:${ra.port}[a:],127.0.0.1:${rb.port}[b:]`,
      );
      // A filtered replica is no master: PROMOTE is refused, and it keeps following.
      assert.match(
        await ra.send(["PROMOTE"]),
        /this replica is filtered: it holds only keys under \[a:\], not every write/,
      );
      assert.equal((await ra.info()).get("role"), "replica");

      // The filter of ra changes to c: while writes go on: it is resynced to exactly c: keys.
      assert.equal(
        await master.send(["REPLICAS", "FILTER", `127.0.0.1:${ra.port}[c:,b:1-1]`]),
        "OK",
      );
      await write(master, "2-");
      await holdsExactly(master, ra, ["c:", "b:1-1"]);
      assert.equal((await ra.info()).get("key_filter"), "[c:,b:1-1]");
      await holdsExactly(master, rb, ["b:"]);

      // rb killed and restarted; then the master restarted with its original settings: ra gets
      // [a:] again (a resync), rb keeps [b:] without a full sync.
      await rb.kill();
      rb = await KvNode.start("rb", `${dir}/rb`, ["--replica", ...FAST, "--port", String(rb.port)]);
      await write(master, "3-");
      await holdsExactly(master, rb, ["b:"]);
      await master.stop();
      master = await KvNode.start("master", `${dir}/m`, [
        ...masterArgs,
        "--port",
        String(master.port),
      ]);
      await write(master, "4-");
      await holdsExactly(master, ra, ["a:"]);
      await holdsExactly(master, rb, ["b:"]);
      // Its count is since its restart: neither restart cost it a full sync.
      assert.equal((await rb.info()).get("full_syncs"), "0", "rb resumed from its LSN");

      // A filter that matches nothing: the replica holds nothing and keeps up with every LSN.
      assert.equal(
        await master.send(["REPLICAS", "FILTER", `127.0.0.1:${ra.port}[zz-none:]`]),
        "OK",
      );
      await write(master, "5-");
      await holdsExactly(master, ra, ["zz-none:"]);
      await waitUntil(
        "ra is at the master's LSN",
        async () =>
          (await ra.info()).get("last_applied_lsn") === (await master.info()).get("master_lsn"),
      );
      // No filter at all again: ra gets every key and may be promoted again.
      assert.equal(await master.send(["REPLICAS", "FILTER", `127.0.0.1:${ra.port}`]), "OK");
      await holdsExactly(master, ra, [""]);
      assert.equal((await ra.info()).get("key_filter"), "");
    }),
});

const extensions = { extensions: [replicationExtension] };
const FAST_CONFIG = FAST_REPLICATION;

Deno.test({
  name:
    "selective: a filtered replica never acknowledges a sync write, even one whose keys all match",
  ...CLUSTER_TEST,
  fn: async () => {
    await using filtered = await startTestServer({ ...FAST_CONFIG, REPLICA: true }, extensions);
    await using master = await startTestServer({
      ...FAST_CONFIG,
      REPLICATION_ENABLED: true,
      REPLICATION_MODE: "sync",
      REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: filtered.port, keyPrefixes: ["k"] }],
    }, extensions);
    // The default rule (every healthy replica) counts no filtered one: the master alone.
    assert.equal(await callAt(master.port, "PUT", "k1", "v"), "OK");
    await waitUntil(
      "the filtered replica has k1",
      async () => JSON.stringify(await dumpAt(filtered.port)) === JSON.stringify(["k1=v"]),
    );
    // WAIT counts replicas that hold every write: none here.
    assert.equal(await callAt(master.port, "WAIT", "1", "200"), "0");
    const info = parseInfo(await callAt(master.port, "INFO", "replication"));
    assert.equal(replicaFields(info, 0).get("filtered"), "yes");
    assert.match(await callAt(filtered.port, "PROMOTE"), /this replica is filtered/);
    // A client that reads from replicas never picks the filtered one, even when given it.
    assert.equal(await callAt(master.port, "PUT", "other", "v"), "OK");
    await using client = new KVClient({
      nodes: [`127.0.0.1:${master.port}`, `127.0.0.1:${filtered.port}`],
      readPreference: "replicaPreferred",
    });
    await client.refreshTopology();
    for (let i = 0; i < 5; i++) assert.equal(await client.read("other"), "v");
  },
});

Deno.test({
  name: "selective: a filtered replica's own replicas get its filter: they hold only its keys",
  ...CLUSTER_TEST,
  fn: async () => {
    await using sub = await startTestServer({ ...FAST_CONFIG, REPLICA: true }, extensions);
    await using filtered = await startTestServer({
      ...FAST_CONFIG,
      REPLICA: true,
      REPLICATION_ENABLED: true,
      REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: sub.port }],
    }, extensions);
    await using master = await startTestServer({
      ...FAST_CONFIG,
      REPLICATION_ENABLED: true,
      REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: filtered.port, keyPrefixes: ["a:"] }],
    }, extensions);
    for (const key of ["a:1", "b:1", "a:2"]) {
      assert.equal(await callAt(master.port, "PUT", key, "v"), "OK");
    }
    assert.equal(await callAt(master.port, "BATCHPUT", "a:3", "v", "b:3", "v"), "OK");
    const expected = JSON.stringify(["a:1=v", "a:2=v", "a:3=v"]);
    await waitUntil(
      "the sub-replica holds only a: keys",
      async () =>
        JSON.stringify(await dumpAt(sub.port)) === expected &&
        JSON.stringify(await dumpAt(filtered.port)) === expected,
    );
    await waitUntil(
      "the sub-replica is marked filtered",
      async () =>
        parseInfo(await callAt(sub.port, "INFO", "replication")).get("key_filter") === "[a:]",
    );
    assert.match(await callAt(sub.port, "PROMOTE"), /this replica is filtered/);
  },
});

Deno.test("selective: a bad filter is refused before anything changes", async () => {
  await using master = await startTestServer(FAST_CONFIG, extensions);
  assert.match(
    await callAt(master.port, "REPLICAS", "ADD", "127.0.0.1:1[a:,]"),
    /empty key prefix/,
  );
  assert.match(
    await callAt(master.port, "REPLICAS", "ADD", `127.0.0.1:1[${"p".repeat(300)}]`),
    /more than 256/,
  );
  assert.match(
    await callAt(master.port, "REPLICAS", "FILTER", "127.0.0.1:1[a:]"),
    /no replica 127.0.0.1:1/,
  );
  assert.equal(await callAt(master.port, "REPLICAS", "LIST"), "");
});

Deno.test("selective: a hostile master's FILTER past the bounds is refused and changes nothing", async () => {
  await using replica = await startTestServer({ ...FAST_CONFIG, REPLICA: true }, extensions);
  const conn = await RespConn.open(replica.port);
  try {
    const send = async (...words: string[]) => asText(await conn.send(words));
    assert.match(await send("REPLICATE", "FORMAT", "2"), /^2$/);
    assert.match(await send("REPLICATE", "HELLO", "0", "0", "1000", "5000"), /^0 0 0$/);
    assert.match(
      await send("REPLICATE", "FILTER", ...Array.from({ length: 65 }, (_, i) => `p${i}:`)),
      /65 prefixes, more than 64/,
    );
    assert.match(await send("REPLICATE", "FILTER", "a:", ""), /may not be empty/);
    assert.match(await send("REPLICATE", "FILTER", "x".repeat(257)), /more than 256/);
    assert.equal(await send("REPLICATE", "FILTER"), "same", "its data is still every key's");
  } finally {
    conn.close();
  }
  const info = parseInfo(await callAt(replica.port, "INFO", "replication"));
  assert.equal(info.get("key_filter"), "");
});

Deno.test({
  name: "selective: kvstore replicas add and filter take host:port[prefixes]",
  ...CLUSTER_TEST,
  fn: async () => {
    await using replica = await startTestServer({ ...FAST_CONFIG, REPLICA: true }, extensions);
    await using master = await startTestServer(FAST_CONFIG, extensions);
    const port = String(master.port);
    const target = `127.0.0.1:${replica.port}`;
    const added = await kvstore(["replicas", "add", `${target}[a:,b:]`, "--port", port]);
    assert.deepEqual([added.code, added.stdout], [0, "OK\n"], added.stderr);
    assert.equal((await kvstore(["replicas", "--port", port])).stdout, `${target}[a:,b:]\n`);
    const changed = await kvstore(["replicas", "filter", `${target}[c:]`, "--port", port]);
    assert.deepEqual([changed.code, changed.stdout], [0, "OK\n"], changed.stderr);
    assert.equal((await kvstore(["replicas", "--port", port])).stdout, `${target}[c:]\n`);
  },
});
