/**
 * The status page's data: `/status.json` from a real node, and the recorder's bounded history of
 * what replication reports (a master's replicas, a replica's master).
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import { StatusRecorder } from "../../src/metrics/status.ts";
import { STATUS_ASSETS } from "../../src/metrics/status_page.ts";
import type { ReplicationStatus, ServerNode } from "../../src/server/hooks.ts";
import { startServerProcess } from "../helpers/server_process.ts";

Deno.test("status: /status.json and the page's files come from the node, with a CSP", async () => {
  await using server = await startServerProcess({
    args: ["--metrics-port", "0", "--status-sample-interval-ms", "50", "--fsync", "always"],
  });
  const port = (await server.waitForLog((l) => l.properties.event === "metrics_listening"))
    .properties.port as number;
  const get = (path: string) =>
    fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  await using client = new KVClient({ port: server.port });
  for (let i = 0; i < 20; i++) await client.put(`k${i}`, "v");
  let report;
  // Bounded: 100 polls, 50 ms apart, until a sample saw the writes and their fsyncs.
  for (let i = 0; i < 100; i++) {
    report = await (await get("/status.json")).json();
    const h = report.history;
    if (h.writesPerSecond.some((v: number) => v > 0) && h.fsyncMeanMs.some((v: number) => v)) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(report.node.role, "master");
  assert.equal(report.node.address, `127.0.0.1:${server.port}`);
  assert.equal(report.node.lastLsn, 20);
  assert.equal(report.node.keys, 20);
  assert.equal(report.node.healthy, true);
  assert.match(report.node.runId, /^[0-9a-f]{40}$/);
  assert.deepEqual(report.replicas, []);
  assert.equal(report.history.intervalMs, 50);
  assert.ok(report.history.writesPerSecond.some((v: number) => v > 0));
  assert.ok(report.history.fsyncMaxMs.some((v: number | null) => v !== null && v > 0));
  assert.equal(report.history.t.length, report.history.opsPerSecond.length);

  const page = await get("/");
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
  const html = await page.text();
  for (const asset of Object.values(STATUS_ASSETS)) {
    assert.ok(html.includes(asset), asset);
    const response = await get(asset);
    assert.equal(response.status, 200, asset);
    assert.ok((await response.text()).length > 100, asset);
  }
  // Nothing on the page comes from elsewhere: it works offline.
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
  const missing = await get("/nope");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("status: the recorder keeps the last N samples; a replica that left ages out", () => {
  let replication: ReplicationStatus = {
    replicas: [{
      address: "a:1",
      state: "down",
      healthy: false,
      ackedLsn: 3,
      lagRecords: 7,
      lagMs: 900,
      queuedRecords: 7,
      fullSyncs: 1,
      lastError: "refused",
    }],
  };
  const node = {
    replica: false,
    stats: { totalCommands: 0 },
    replication: () => replication,
  } as unknown as ServerNode;
  const recorder = new StatusRecorder(3, 1000);
  recorder.sample(node, 0);
  (node.stats as { totalCommands: number }).totalCommands = 500;
  recorder.countAnswered(["PUT", "READ", "SET"]);
  recorder.observeFsync(0.002);
  recorder.observeFsync(0.004);
  const sample = recorder.sample(node, 500);
  assert.equal(sample.opsPerSecond, 1000);
  assert.equal(sample.writesPerSecond, 4);
  assert.equal(sample.fsyncMeanMs, 3);
  assert.equal(sample.fsyncMaxMs, 4);
  assert.deepEqual(sample.lagRecords, { "a:1": 7 });
  assert.deepEqual(sample.lagMs, { "a:1": 900 });
  replication = { replicas: [] };
  for (let t = 1000; t <= 4000; t += 1000) recorder.sample(node, t);
  const h = recorder.history;
  assert.equal(h.t.length, 3);
  assert.deepEqual(h.lagRecords, {}); // a:1 was last seen 4 samples ago
  assert.deepEqual(h.fsyncMeanMs, [null, null, null]);
  // A replica's series is its master's silence.
  replication = {
    master: {
      address: "m:1",
      linkStatus: "up",
      lastContactSeconds: 2,
      lastAppliedLsn: 9,
      fullSyncInProgress: false,
    },
    replicas: [],
  };
  assert.deepEqual(recorder.sample(node, 5000).lagMs, { master: 2000 });
});
