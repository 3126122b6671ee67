/**
 * Replication with real processes on 127.0.0.1: the spec's setups, failures and modes, each
 * ending with complete dumps compared. Short timeouts and intervals come from flags.
 */
import assert from "node:assert/strict";
import {
  asText,
  CLUSTER_TEST,
  dump,
  FAST_FAILURE_FLAGS,
  freePort,
  KvNode,
  replicaFields,
  replicasCaughtUp,
  RespConn,
  textRequest,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { RespErrorReply } from "../../src/protocol/resp.ts";

async function put(conn: RespConn, key: string, value: string): Promise<void> {
  const reply = await conn.send(["PUT", key, value]);
  assert.equal(reply, "OK", `PUT ${key}: ${asText(reply)}`);
}

/** Starts one replica and a master replicating to it; resolves once the replica streams. */
async function pair(dir: string, masterFlags: string[] = [], replicaFlags: string[] = []) {
  const replica = await KvNode.start("replica", `${dir}/replica`, ["--replica", ...replicaFlags]);
  const master = await KvNode.start("master", `${dir}/master`, [
    "--replicas",
    `127.0.0.1:${replica.port}`,
    ...FAST_FAILURE_FLAGS,
    ...masterFlags,
  ]);
  await waitUntil("replica streaming", () => replicasCaughtUp(master));
  return { master, replica };
}

/** Starts the replica of {@link pair} again, on the port its master knows. */
function restartReplica(dir: string, port: number): Promise<KvNode> {
  return KvNode.start("replica", `${dir}/replica`, ["--replica", "--port", `${port}`]);
}

async function assertConverged(master: KvNode, replicas: KvNode[]): Promise<void> {
  await waitUntil("replicas caught up", () => replicasCaughtUp(master), 30_000);
  const expected = await dump(master);
  for (const replica of replicas) assert.deepEqual(await dump(replica), expected, replica.name);
}

/** Writes from `writers` connections until `durationMs` passed; returns acknowledged writes. */
async function load(
  master: KvNode,
  writers: number,
  durationMs: number,
  hotKeys = 20,
): Promise<number> {
  const deadline = Date.now() + durationMs;
  let acknowledged = 0;
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    const conn = await master.connect();
    try {
      for (let i = 0; Date.now() < deadline; i++) {
        const hot = `hot:${(i * 7 + w) % hotKeys}`;
        const r = (i * 31 + w * 17) % 10;
        const reply = r < 4
          ? await conn.send(["PUT", hot, `w${w}-${i}`])
          : r < 6
          ? await conn.send(["DELETE", hot])
          : r < 8
          ? await conn.send(["PUT", `w${w}:${i}`, `value ${i} of writer ${w}\nwith a newline`])
          : await conn.send(["BATCHPUT", `b${w}:${i}:a`, "1", hot, `batch-${w}-${i}`]);
        if (reply instanceof RespErrorReply) throw new Error(asText(reply));
        acknowledged++;
      }
    } catch {
      // the master was killed or stopped: the test checks what was acknowledged
    } finally {
      conn.close();
    }
  }));
  return acknowledged;
}

Deno.test({
  name: "spec basic setup: two replicas, then a master with --replicas; every op reaches both",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const [p1, p2] = [freePort(), freePort()];
      const r1 = await KvNode.start("replica1", `${dir}/replica1`, [
        "--port",
        `${p1}`,
        "--replica",
      ]);
      const r2 = await KvNode.start("replica2", `${dir}/replica2`, [
        "--port",
        `${p2}`,
        "--replica",
      ]);
      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `localhost:${p1},localhost:${p2}`,
      ]);
      assert.deepEqual(
        await textRequest(master.port, [
          "PUT mykey myvalue",
          "PUT spaced a value with spaces",
          "BATCHPUT k1||k2||k3 v1||v2||v3",
          "DELETE k2",
          "READ mykey",
        ]),
        ["OK", "OK", "OK", "OK", "myvalue"],
      );
      await assertConverged(master, [r1, r2]);
      for (const replica of [r1, r2]) {
        assert.deepEqual(
          await textRequest(replica.port, [
            "READ mykey",
            "READ spaced",
            "READ k2",
            "READRANGE k1 k3",
          ]),
          ["myvalue", "a value with spaces", "NOT_FOUND", "k1||v1||k3||v3"],
        );
      }
      const [writeOnReplica] = await textRequest(p1, ["PUT x y"]);
      assert.match(writeOnReplica, /^ERROR: /, "a replica refuses client writes");
      const [replicateOnMaster] = await textRequest(master.port, ["REPLICATE PUT a b"]);
      assert.match(replicateOnMaster, /^ERROR: REPLICATE commands only accepted on replica/);
      const info = await master.info();
      assert.equal(info.get("role"), "master");
      assert.equal(info.get("healthy_replicas"), "2");
      assert.equal(info.get("total_replicas"), "2");
      assert.equal(replicaFields(info, 0).get("lag_records"), "0");
      const replicaInfo = await r1.info();
      assert.equal(replicaInfo.get("role"), "replica");
      assert.equal(replicaInfo.get("master_link_status"), "up");
      assert.equal(replicaInfo.get("last_applied_lsn"), info.get("master_lsn"));
    }),
});

const HAS_NC = new Deno.Command("sh", { args: ["-c", "command -v nc"], stdout: "null" })
  .outputSync().success;

Deno.test({
  name: 'the spec\'s troubleshooting step: echo "REPLICATE PUT testkey testvalue" | nc answers OK',
  ignore: !HAS_NC, // .ci/run installs netcat-openbsd; without it this test reports itself ignored
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const replica = await KvNode.start("replica", `${dir}/replica`, ["--replica"]);
      const nc = await new Deno.Command("sh", {
        args: ["-c", `echo "REPLICATE PUT testkey testvalue" | nc -q 1 localhost ${replica.port}`],
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(nc.stdout).trim(), "OK");
      assert.deepEqual(await textRequest(replica.port, ["READ testkey"]), ["testvalue"]);
      assert.deepEqual(
        await textRequest(replica.port, [
          "REPLICATE BATCHPUT t1||t2 one||two",
          "REPLICATE DELETE t1",
          "READ t1",
          "READ t2",
        ]),
        ["OK", "OK", "NOT_FOUND", "two"],
      );
    }),
});

Deno.test({
  name: "convergence: 16 writers for 10 s with hot keys overwritten and deleted",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const r1 = await KvNode.start("replica1", `${dir}/r1`, ["--replica"]);
      const r2 = await KvNode.start("replica2", `${dir}/r2`, ["--replica"]);
      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${r1.port},127.0.0.1:${r2.port}`,
      ]);
      // Default timeouts: with FAST_FAILURE_FLAGS' 0.5 s a loaded machine stalled a link that long
      // and counted failed replications; convergence, not failure detection, is tested here.
      const writes = await load(master, 16, 10_000);
      assert.ok(writes > 1000, `only ${writes} writes in 10 s`);
      await assertConverged(master, [r1, r2]);
      const info = await master.info();
      assert.equal(info.get("failed_replications"), "0");
    }),
});

Deno.test({
  name: "a replica killed with SIGKILL mid-load and restarted catches up",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir);
      const port = replica.port;
      const writing = load(master, 4, 2500);
      await new Promise((r) => setTimeout(r, 700));
      await replica.kill();
      await new Promise((r) => setTimeout(r, 700));
      const restarted = await restartReplica(dir, port);
      await writing;
      await assertConverged(master, [restarted]);
    }),
});

Deno.test({
  name:
    "a replica down while more than REPLICATION_QUEUE_SIZE writes happen: Queue full once, caught up from the log",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir, ["--replication-queue-size", "50"]);
      const port = replica.port;
      await replica.stop();
      const conn = await master.connect();
      for (let i = 0; i < 400; i++) await put(conn, `q:${i}`, `v${i}`);
      conn.close();
      const full = master.logsMatching(/Queue full/);
      assert.equal(full.length, 1, master.logText());
      assert.ok(Number(full[0].properties?.records) > 50);
      const restarted = await restartReplica(dir, port);
      await assertConverged(master, [restarted]);
      assert.equal(
        master.logsMatching(/full sync of replica .* done/).length,
        0,
        "catch-up, not a full sync",
      );
    }),
});

Deno.test({
  name: "a wiped replica is rebuilt automatically",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir, [], []);
      const port = replica.port;
      const conn = await master.connect();
      for (let i = 0; i < 300; i++) await put(conn, `w:${i}`, `value-${i}`);
      await waitUntil("caught up", () => replicasCaughtUp(master));
      await replica.kill();
      await Deno.remove(`${dir}/replica`, { recursive: true });
      for (let i = 300; i < 400; i++) await put(conn, `w:${i}`, `value-${i}`);
      conn.close();
      const restarted = await restartReplica(dir, port);
      await assertConverged(master, [restarted]);
      assert.ok(master.logsMatching(/connected at LSN 0/).length >= 2, master.logText());
    }),
});

Deno.test({
  name: "a master compacted past the replica's LSN sends a full sync, then the log after it",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir, [
        "--segment-size-bytes",
        "4096",
        "--compaction-threshold",
        "0.1",
        "--compaction-min-bytes",
        "0",
      ]);
      const port = replica.port;
      const conn = await master.connect();
      for (let i = 0; i < 20; i++) await put(conn, `c:${i}`, `first-${i}`);
      await waitUntil("caught up", () => replicasCaughtUp(master));
      const replicaLsn = Number((await replica.info()).get("last_applied_lsn"));
      await replica.stop();
      for (let round = 0; round < 60; round++) {
        for (let i = 0; i < 20; i++) await put(conn, `c:${i}`, `round-${round}-${"x".repeat(40)}`);
      }
      await waitUntil(
        "compaction past the replica's LSN",
        async () => Number((await master.info("storage")).get("oldest_complete_lsn")) > replicaLsn,
      );
      const restarted = await restartReplica(dir, port);
      for (let i = 0; i < 5; i++) await put(conn, `c:after:${i}`, "y");
      conn.close();
      await assertConverged(master, [restarted]);
      assert.ok(master.logsMatching(/full sync of replica .* done/).length >= 1, master.logText());
      const progress = master.logsMatching(/full sync of replica .*records.*bytes.*%/);
      assert.ok(progress.length >= 1, "progress is logged with records, bytes and percent");
      assert.equal(progress[0].properties.percent, 100);
      assert.ok(Number((await restarted.info()).get("full_syncs")) >= 1);
      // The replica logs its side as the master does: the start with the keys (and the bytes
      // the master estimates, never "0 bytes"), progress with records, bytes and percent, and
      // the end with its speed.
      const began = restarted.logsMatching(/full sync from the master began/);
      assert.ok(began.length >= 1, restarted.logText());
      assert.match(began[0].message, /began: \d+ keys \(about [\d.]+ MB\) as of LSN \d+$/);
      assert.doesNotMatch(began[0].message, / 0 bytes/);
      const received = restarted.logsMatching(/full sync from the master: .*records.*bytes.*%/);
      assert.ok(received.length >= 1, restarted.logText());
      assert.equal(received.at(-1)?.properties.percent, 100);
      assert.ok((received.at(-1)?.properties.bytes as number) > 0);
      assert.ok(restarted.logsMatching(/full sync from the master done: .* MB\/s/).length >= 1);
    }),
});

Deno.test({
  name:
    "a master whose data was wiped and grew past the replica's LSN: divergence found, full sync",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir);
      const port = replica.port;
      const conn = await master.connect();
      for (let i = 0; i < 50; i++) await put(conn, `old:${i}`, `old-${i}`);
      conn.close();
      await waitUntil("caught up", () => replicasCaughtUp(master));
      await replica.stop();
      await master.kill();
      await Deno.remove(`${dir}/master`, { recursive: true });
      const fresh = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${port}`,
        ...FAST_FAILURE_FLAGS,
      ]);
      const conn2 = await fresh.connect();
      for (let i = 0; i < 80; i++) await put(conn2, `new:${i}`, `new-${i}`);
      conn2.close();
      const restarted = await restartReplica(dir, port);
      await assertConverged(fresh, [restarted]);
      assert.ok(fresh.logsMatching(/full sync \(.*diverged/).length >= 1, fresh.logText());
    }),
});

Deno.test({
  name: "a restarted master resumes streaming from the replica's LSN",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir);
      const conn = await master.connect();
      for (let i = 0; i < 100; i++) await put(conn, `m:${i}`, `a${i}`);
      conn.close();
      await master.kill();
      const again = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
        ...FAST_FAILURE_FLAGS,
      ]);
      const conn2 = await again.connect();
      for (let i = 50; i < 150; i++) await put(conn2, `m:${i}`, `b${i}`);
      conn2.close();
      await assertConverged(again, [replica]);
      assert.equal(again.logsMatching(/full sync of replica/).length, 0, again.logText());
    }),
});

Deno.test({
  name: "a graceful master stop drains acknowledged writes to its replicas",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir);
      const acknowledged: string[] = [];
      const deadline = Date.now() + 500;
      await Promise.all(Array.from({ length: 8 }, async (_, w) => {
        const conn = await master.connect();
        for (let i = 0; Date.now() < deadline; i++) {
          const key = `d:${w}:${i}`;
          if ((await conn.send(["PUT", key, `v${i}`])) === "OK") acknowledged.push(key);
        }
        conn.close();
      }));
      const exit = await master.stop();
      assert.equal(exit.code, 0);
      assert.equal((await replica.info()).get("master_link_status"), "down");
      assert.equal(master.logsMatching(/not fully drained/).length, 0, master.logText());
      const reader = await replica.connect();
      const missing: string[] = [];
      for (const key of acknowledged) {
        if ((await reader.send(["READ", key])) === null) missing.push(key);
      }
      reader.close();
      assert.deepEqual(missing, []);
    }),
});

/**
 * A replica behind a {@link FaultProxy} and a master replicating to it through the proxy (with
 * FAST_FAILURE_FLAGS and `masterFlags`); the proxy is closed afterwards.
 */
async function withProxiedReplica(
  dir: string,
  masterFlags: string[],
  body: (cluster: { master: KvNode; replica: KvNode; proxy: FaultProxy }) => Promise<void>,
): Promise<void> {
  const replica = await KvNode.start("replica", `${dir}/replica`, ["--replica"]);
  const proxy = FaultProxy.start(replica.port);
  try {
    const master = await KvNode.start("master", `${dir}/master`, [
      "--replicas",
      `127.0.0.1:${proxy.port}`,
      ...FAST_FAILURE_FLAGS,
      ...masterFlags,
    ]);
    await body({ master, replica, proxy });
  } finally {
    await proxy.close();
  }
}

Deno.test({
  name:
    "partition (silently dropping): unhealthy after the configured failures, healthy and converged after healing",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      await withProxiedReplica(dir, [
        "--replication-max-failures",
        "2",
        "--replication-max-retries",
        "1",
      ], async ({ master, replica, proxy }) => {
        const conn = await master.connect();
        for (let i = 0; i < 50; i++) await put(conn, `p:${i}`, `before-${i}`);
        await waitUntil("caught up", () => replicasCaughtUp(master));
        proxy.setMode("blackhole");
        const cutAt = Date.now();
        for (let i = 0; i < 50; i++) await put(conn, `p:${i}`, `during-${i}`);
        await waitUntil("replica unhealthy", async () => {
          const info = await master.info();
          return info.get("healthy_replicas") === "0";
        }, 10_000);
        const detectedMs = Date.now() - cutAt;
        const r = replicaFields(await master.info(), 0);
        assert.equal(r.get("healthy"), "no");
        assert.ok(Number(r.get("consecutive_failures")) >= 2);
        assert.ok(Number(r.get("lag_records")) > 0);
        assert.ok(Number(r.get("lag_ms")) > 0, "lag is measured in ms too");
        assert.ok(detectedMs < 5000, `detected after ${detectedMs} ms`);
        assert.equal(proxy.stats.open > 0 || proxy.stats.droppedBytes > 0, true);
        proxy.setMode("pass");
        for (let i = 0; i < 10; i++) await put(conn, `p:after:${i}`, "x");
        conn.close();
        await waitUntil("replica healthy", async () =>
          (await master.info()).get("healthy_replicas") === "1");
        await assertConverged(master, [replica]);
        assert.ok(master.logsMatching(/is healthy again/).length >= 1);
      });
    }),
});

Deno.test({
  name: "an idle link is pinged: a silent partition without writes is noticed within the timeout",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      await withProxiedReplica(dir, [], async ({ master, proxy }) => {
        const conn = await master.connect();
        await put(conn, "idle", "1");
        await waitUntil("caught up", () => replicasCaughtUp(master));
        // No write from here on: only the idle link's pings (every 0.3 s, 0.5 s timeout) can
        // find the partition.
        proxy.setMode("blackhole");
        const cutAt = Date.now();
        await waitUntil("the link failed", async () => {
          const r = replicaFields(await master.info(), 0);
          return Number(r.get("consecutive_failures")) >= 1;
        }, 10_000);
        const detectedMs = Date.now() - cutAt;
        assert.ok(detectedMs < 3000, `detected after ${detectedMs} ms`);
        proxy.setMode("pass");
        await waitUntil("streaming again", () => replicasCaughtUp(master), 10_000);
        conn.close();
      });
    }),
});

Deno.test({
  name: "sync mode: after OK the replica already has the value",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir, ["--replication-mode", "sync"]);
      const conn = await master.connect();
      const reader = await replica.connect();
      for (let i = 0; i < 200; i++) {
        await put(conn, `s:${i % 10}`, `v${i}`);
        assert.equal(asText(await reader.send(["READ", `s:${i % 10}`])), `v${i}`);
      }
      conn.close();
      reader.close();
    }),
});

Deno.test({
  name: "sync mode with the replica down and --sync-replicas 1: ERROR within the timeout",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir, [
        "--replication-mode",
        "sync",
        "--sync-replicas",
        "1",
      ]);
      const conn = await master.connect();
      // An acknowledged write leaves the master's timeout timer armed for its deadline, which
      // falls inside the next write's wait: that write must neither fail early nor late.
      assert.equal(await conn.send(["PUT", "before", "v"]), "OK");
      await new Promise((resolve) => setTimeout(resolve, 250));
      await replica.kill();
      const start = Date.now();
      const reply = await conn.send(["PUT", "k", "v"]);
      const elapsedMs = Date.now() - start;
      conn.close();
      assert.match(
        asText(reply),
        /write applied on the master \(LSN \d+\) but acknowledged by only 0 of 1 required replicas within REPLICATION_TIMEOUT 0.5 s/,
      );
      assert.ok(elapsedMs >= 400 && elapsedMs < 3000, `answered after ${elapsedMs} ms`);
      // Applied on the master but not committed: a read must not show it (a failover to the
      // replica would take it back), and it says so at once rather than after another timeout.
      const readStart = Date.now();
      const [read] = await textRequest(master.port, ["READ k"]);
      assert.match(
        read,
        /^ERROR: the newest write this read depends on \(LSN \d+\) is not committed, so its value cannot be shown: .*acknowledged by only 0 of 1/,
      );
      assert.ok(Date.now() - readStart < 400, `read refused after ${Date.now() - readStart} ms`);
      assert.deepEqual(await textRequest(master.port, ["READ before"]), ["v"], "committed");
    }),
});

Deno.test({
  name:
    "sync mode: the master killed right after a burst of OKs; every acknowledged key is on the replica",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir, [
        "--replication-mode",
        "sync",
        "--sync-replicas",
        "1",
      ]);
      const acknowledged: string[] = [];
      const deadline = Date.now() + 1000;
      await Promise.all(Array.from({ length: 8 }, async (_, w) => {
        const conn = await master.connect();
        for (let i = 0; Date.now() < deadline; i++) {
          const key = `k:${w}:${i}`;
          if ((await conn.send(["PUT", key, `v${i}`])) === "OK") acknowledged.push(key);
        }
        conn.close();
      }));
      await master.kill();
      assert.ok(acknowledged.length > 50, `${acknowledged.length} acknowledged`);
      const reader = await replica.connect();
      const missing: string[] = [];
      for (const key of acknowledged) {
        if ((await reader.send(["READ", key])) === null) missing.push(key);
      }
      reader.close();
      assert.deepEqual(missing, []);
    }),
});

Deno.test({
  name: "PUT then DELETE of one key, repeated, never arrives reordered",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir);
      const conn = await master.connect();
      const reader = await replica.connect();
      for (let round = 0; round < 100; round++) {
        const sent = [
          conn.send(["PUT", "flip", `v${round}`]),
          conn.send(["DELETE", "flip"]),
          conn.send(["PUT", "flop", `v${round}`]),
        ];
        await Promise.all(sent);
        await waitUntil("caught up", () => replicasCaughtUp(master));
        assert.equal(await reader.send(["READ", "flip"]), null, `round ${round}`);
        assert.equal(asText(await reader.send(["READ", "flop"])), `v${round}`);
      }
      conn.close();
      reader.close();
    }),
});

Deno.test({
  name: "a replica that is down is retried REPLICATION_MAX_RETRIES times, not once per write",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-test-", async (dir) => {
      const { master, replica } = await pair(dir, [
        "--replication-health-check-interval",
        "30",
        "--replication-max-retries",
        "3",
      ]);
      await replica.stop();
      const conn = await master.connect();
      for (let i = 0; i < 300; i++) await put(conn, `down:${i}`, `v${i}`);
      conn.close();
      await waitUntil(
        "the master gave up retrying",
        () => Promise.resolve(master.logsMatching(/marked unhealthy/).length === 1),
      );
      // One failed session, then 3 retries with backoff; the next try is 30 s away, so the 300
      // writes made meanwhile must not each start an attempt.
      const attempts = master.logsMatching(/replica .* failed: /).length;
      assert.ok(attempts <= 4, `${attempts} attempts:\n${master.logText()}`);
    }),
});
