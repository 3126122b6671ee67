import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "../../src/metrics/registry.ts";
import { startMetricsServer } from "../../src/metrics/http.ts";

Deno.test("counters render per label set, escaped", () => {
  const registry = new Registry();
  const counter = registry.add(new Counter("kv_ops_total", "Operations.", ["command"]));
  counter.labels("PUT").inc();
  counter.labels("PUT").inc(2);
  counter.labels('we"ird\\').inc();
  const text = registry.render();
  assert.match(text, /^# HELP kv_ops_total Operations\.\n# TYPE kv_ops_total counter\n/);
  assert.ok(text.includes('kv_ops_total{command="PUT"} 3\n'));
  assert.ok(text.includes('kv_ops_total{command="we\\"ird\\\\"} 1\n'));
  assert.throws(() => counter.labels(), /takes 1 labels, got 0/);
});

Deno.test("histograms are cumulative with +Inf, sum and count", () => {
  const registry = new Registry();
  const histogram = registry.add(new Histogram("kv_latency_seconds", "Latency.", [], [0.1, 1]));
  for (const value of [0.05, 0.1, 0.5, 5]) histogram.observe(value);
  const text = registry.render();
  assert.ok(text.includes('kv_latency_seconds_bucket{le="0.1"} 2\n'), text);
  assert.ok(text.includes('kv_latency_seconds_bucket{le="1"} 3\n'));
  assert.ok(text.includes('kv_latency_seconds_bucket{le="+Inf"} 4\n'));
  assert.ok(text.includes("kv_latency_seconds_sum 5.65\n"));
  assert.ok(text.includes("kv_latency_seconds_count 4\n"));
  assert.throws(() => new Histogram("bad", "x", [], [1, 1]), /buckets must increase/);
});

Deno.test("gauges are collected at scrape time", () => {
  let keys = 1;
  const registry = new Registry();
  registry.add(new Gauge("kv_keys", "Keys.", [], () => [{ value: keys }]));
  registry.add(
    new Gauge("kv_lag", "Lag.", ["replica"], () => [{ labels: ["a:1"], value: Infinity }]),
  );
  keys = 42;
  const text = registry.render();
  assert.ok(text.includes("kv_keys 42\n"));
  assert.ok(text.includes('kv_lag{replica="a:1"} +Inf\n'));
  assert.throws(() => registry.add(new Gauge("kv_keys", "again", [], () => [])), /already exists/);
  assert.throws(() => new Gauge("bad-name", "x", [], () => []), /not valid in Prometheus/);
});

Deno.test("the HTTP endpoint serves /metrics and /health on a real port", async () => {
  const registry = new Registry();
  registry.add(new Counter("kv_up_total", "Up.")).inc();
  let healthy = true;
  const server = await startMetricsServer({
    host: "127.0.0.1",
    port: 0,
    registry,
    health: () => ({ healthy, details: { role: "master" } }),
  });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /text\/plain; version=0\.0\.4/);
    assert.ok((await metrics.text()).includes("kv_up_total 1"));
    const ok = await fetch(`${base}/health`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { status: "ok", role: "master" });
    healthy = false;
    const down = await fetch(`${base}/health`);
    assert.equal(down.status, 503);
    assert.equal((await down.json()).status, "unavailable");
    const missing = await fetch(`${base}/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.close();
  }
});
