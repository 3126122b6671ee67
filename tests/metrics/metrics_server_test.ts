import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import { nodeOptions } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { startTestServer } from "../helpers/test_server.ts";

/** The value of the sample `series` (name with labels) in a Prometheus text exposition. */
function sample(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  throw new Error(`no sample ${series} in:\n${text}`);
}

async function scrape(port: number, path: string): Promise<Response> {
  return await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
}

Deno.test("metrics: --metrics-port serves per-command counts and latency, fsync, keys, clients", async () => {
  await using server = await startServerProcess({ args: ["--metrics-port", "0"] });
  const listening = await server.waitForLog((line) =>
    line.properties.event === "metrics_listening"
  );
  const metricsPort = listening.properties.port as number;
  assert.equal(listening.properties.host, "127.0.0.1");
  await using client = new KVClient({ port: server.port, timeoutMs: 5000 });
  for (let i = 0; i < 20; i++) await client.put(`key${i}`, "x".repeat(100));
  for (let i = 0; i < 5; i++) await client.read(`key${i}`);
  await client.delete("key0");

  const response = await scrape(metricsPort, "/metrics");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  assert.equal(sample(text, 'kvstore_commands_total{command="PUT"}'), 20);
  assert.equal(sample(text, 'kvstore_commands_total{command="READ"}'), 5);
  assert.equal(sample(text, 'kvstore_commands_total{command="DELETE"}'), 1);
  assert.equal(sample(text, 'kvstore_command_duration_seconds_count{command="PUT"}'), 20);
  assert.equal(
    sample(text, 'kvstore_command_duration_seconds_bucket{command="PUT",le="+Inf"}'),
    20,
  );
  const putSeconds = sample(text, 'kvstore_command_duration_seconds_sum{command="PUT"}');
  assert.ok(putSeconds > 0 && putSeconds < 20, `PUT latency sum ${putSeconds}`);
  // fsync=always (the default): every acknowledged PUT waited for at least one fsync.
  const fsyncs = sample(text, "kvstore_fsync_duration_seconds_count");
  assert.ok(fsyncs >= 20, `only ${fsyncs} fsyncs for 20 sequential durable writes`);
  assert.equal(sample(text, "kvstore_keys"), 19);
  assert.equal(sample(text, "kvstore_last_lsn"), 21);
  assert.ok(sample(text, "kvstore_live_bytes") > 19 * 100);
  assert.ok(sample(text, "kvstore_disk_bytes") > 20 * 100);
  assert.equal(sample(text, "kvstore_connected_clients"), 1);
  assert.equal(sample(text, 'kvstore_role{role="master"}'), 1);
  assert.match(text, /# TYPE kvstore_connections_total counter/);

  const health = await scrape(metricsPort, "/health");
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), {
    status: "ok",
    role: "master",
    last_lsn: 21,
    epoch: 0,
    keys: 19,
  });
  const missing = await scrape(metricsPort, "/nothing");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("metrics: off unless asked; a replica's /health says whether it streams", async () => {
  await using master = await startServerProcess({ args: ["--fsync", "no"] });
  assert.ok(!master.logs.some((line) => line.properties.event === "metrics_listening"));
  await using replica = await startServerProcess({
    args: ["--replica", "--metrics-enabled", "--metrics-port", "0"],
  });
  const listening = await replica.waitForLog((l) => l.properties.event === "metrics_listening");
  const health = await scrape(listening.properties.port as number, "/health");
  assert.equal(health.status, 200);
  const body = await health.json();
  assert.equal(body.role, "replica");
  assert.equal(body.streaming, false);
  assert.equal(typeof body.master_link_status, "string");
});

Deno.test({
  name: "metrics: replication lag, position and buffer per replica; a replica's link and /health",
  // Real processes: their pipes and timers outlive a test's own ops by design.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fast = ["--fsync", "no", "--replication-health-check-interval", "0.3"];
    await using replica = await startServerProcess({
      args: ["--replica", "--metrics-port", "0", ...fast],
    });
    await using master = await startServerProcess({
      args: ["--replicas", `127.0.0.1:${replica.port}`, "--metrics-port", "0", ...fast],
    });
    const portOf = async (node: typeof master) =>
      (await node.waitForLog((l) => l.properties.event === "metrics_listening")).properties
        .port as number;
    const masterMetrics = await portOf(master);
    const replicaMetrics = await portOf(replica);
    await using client = new KVClient({ port: master.port, timeoutMs: 5000 });
    for (let i = 0; i < 10; i++) await client.put(`k${i}`, "v");
    const address = `127.0.0.1:${replica.port}`;
    let text = "";
    // Bounded: 200 scrapes, 20 ms apart.
    for (let i = 0; i < 200; i++) {
      text = await (await scrape(masterMetrics, "/metrics")).text();
      if (text.includes(`kvstore_replication_acked_lsn{replica="${address}"} 10\n`)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(sample(text, `kvstore_replication_acked_lsn{replica="${address}"}`), 10);
    assert.equal(sample(text, `kvstore_replication_lag_records{replica="${address}"}`), 0);
    assert.equal(sample(text, `kvstore_replication_lag_seconds{replica="${address}"}`), 0);
    assert.equal(sample(text, `kvstore_replication_queued_records{replica="${address}"}`), 0);
    assert.equal(sample(text, `kvstore_replication_streaming{replica="${address}"}`), 1);
    assert.equal(sample(text, `kvstore_replication_healthy{replica="${address}"}`), 1);
    assert.equal(sample(text, "kvstore_replication_sync_writes_waiting"), 0);

    const replicaText = await (await scrape(replicaMetrics, "/metrics")).text();
    assert.equal(sample(replicaText, "kvstore_replica_link_up"), 1);
    assert.equal(sample(replicaText, "kvstore_replica_staleness_seconds"), 0);
    assert.equal(sample(replicaText, "kvstore_replica_stale_reads_refused_total"), 0);
    assert.equal(sample(replicaText, "kvstore_last_lsn"), 10);
    assert.equal(sample(replicaText, 'kvstore_role{role="replica"}'), 1);
    const health = await (await scrape(replicaMetrics, "/health")).json();
    assert.deepEqual([health.status, health.streaming, health.last_lsn], ["ok", true, 10]);

    // The replica goes away: lag grows on the master.
    await replica.kill();
    for (let i = 10; i < 15; i++) await client.put(`k${i}`, "v");
    text = await (await scrape(masterMetrics, "/metrics")).text();
    assert.equal(sample(text, `kvstore_replication_lag_records{replica="${address}"}`), 5);
    assert.ok(sample(text, `kvstore_replication_lag_seconds{replica="${address}"}`) >= 0);
  },
});

Deno.test("metrics: off, nothing is measured on the request path", async () => {
  const { config } = loadConfig({ overrides: { FSYNC: "no" } });
  await using server = await startTestServer({ FSYNC: "no" }, await nodeOptions(config));
  assert.equal(server.node.store.fsyncObserver, undefined);
});
