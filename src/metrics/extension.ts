/**
 * Metrics plugged into the server: counts and latency histograms per command (from the server's
 * `answered` hook: the latency is from the read that delivered a request to the write of its
 * reply, durability and sync replication included), fsync latency (the store's observer), and
 * gauges read at scrape time (keys, bytes, LSNs, epoch, connections). With `METRICS_ENABLED` the
 * registry is served over HTTP (`/metrics`, `/health`) on `METRICS_HOST:METRICS_PORT`, with the
 * status page (`/`, `/status.json`), whose history a timer samples every
 * `STATUS_SAMPLE_INTERVAL_MS`.
 *
 * @module
 */
import { getLog } from "../log.ts";
import type { ServerExtension, ServerHooks, ServerNode } from "../server/hooks.ts";
import { type HealthReport, type MetricsServer, startMetricsServer } from "./http.ts";
import { StatusRecorder, statusReport } from "./status.ts";
import {
  Counter,
  type CounterChild,
  Gauge,
  Histogram,
  type HistogramChild,
  Registry,
} from "./registry.ts";

const log = getLog("metrics");

/**
 * What `/health` says: 200 while the node serves (its log accepts writes); 503 once the store
 * failed or closed. A replica also reports its link to the master (`streaming` is true while it
 * is connected and applying the master's log).
 */
export function nodeHealth(node: ServerNode): HealthReport {
  const stats = node.store.stats();
  const details: Record<string, unknown> = {
    role: node.replica ? "replica" : "master",
    last_lsn: stats.lastLsn,
    epoch: stats.epoch,
    keys: stats.keys,
  };
  let healthy = !node.store.closed;
  if (stats.failure !== undefined) {
    healthy = false;
    details.failure = stats.failure;
  }
  if (node.store.closed) details.failure = "the store is closed (the node is stopping)";
  if (node.replica) {
    const link = node.replication().master?.linkStatus ?? "down";
    details.master_link_status = link;
    details.streaming = link === "up";
  }
  return { healthy, details };
}

/** The gauges read at scrape time: the store's figures, then the node's. */
function registerGauges(node: ServerNode, registry: Registry): void {
  const storeGauge = (
    name: string,
    help: string,
    read: (stats: ReturnType<ServerNode["store"]["stats"]>) => number,
  ) => registry.add(new Gauge(name, help, [], () => [{ value: read(node.store.stats()) }]));
  storeGauge("kvstore_keys", "Live keys.", (s) => s.keys);
  storeGauge(
    "kvstore_live_bytes",
    "Bytes of live records (keys, values, headers).",
    (s) => s.liveBytes,
  );
  storeGauge(
    "kvstore_garbage_bytes",
    "Bytes of superseded records awaiting compaction.",
    (s) => s.garbageBytes,
  );
  storeGauge("kvstore_disk_bytes", "Bytes of all log segment files.", (s) => s.diskBytes);
  storeGauge("kvstore_segments", "Log segment files.", (s) => s.segments);
  storeGauge(
    "kvstore_last_lsn",
    "Log sequence number of the last record appended.",
    (s) => s.lastLsn,
  );
  storeGauge(
    "kvstore_durable_lsn",
    "Log sequence number of the last durable record.",
    (s) => s.durableLsn,
  );
  storeGauge("kvstore_epoch", "Replication epoch (raised by each promotion).", (s) => s.epoch);
  registry.add(
    new Gauge(
      "kvstore_compactions_total",
      "Compaction runs finished since start.",
      [],
      () => [{ value: node.store.stats().compactions }],
      "counter",
    ),
  );
  registerNodeGauges(node, registry);
}

/** The node's own gauges: connections, role, start time. */
function registerNodeGauges(node: ServerNode, registry: Registry): void {
  registry.add(
    new Gauge(
      "kvstore_connected_clients",
      "Connections open now.",
      [],
      () => [{ value: node.stats.connectedClients }],
    ),
  );
  registry.add(
    new Gauge(
      "kvstore_connections_total",
      "Connections accepted since start.",
      [],
      () => [{ value: node.stats.totalConnections }],
      "counter",
    ),
  );
  registry.add(
    new Gauge(
      "kvstore_rejected_connections_total",
      "Connections refused because of MAX_CONNECTIONS.",
      [],
      () => [{ value: node.stats.rejectedConnections }],
      "counter",
    ),
  );
  registry.add(
    new Gauge(
      "kvstore_role",
      "1 for the node's current role.",
      ["role"],
      () => [{ labels: [node.replica ? "replica" : "master"], value: 1 }],
    ),
  );
  registry.add(
    new Gauge(
      "kvstore_start_time_seconds",
      "Unix time the node started.",
      [],
      () => [{ value: node.startedAtMs / 1000 }],
    ),
  );
}

/**
 * Registers the node's own metrics in `registry`; returns the hooks that feed them (and
 * `recorder`, the status page's history, when given).
 */
export function registerNodeMetrics(
  node: ServerNode,
  registry: Registry,
  recorder?: StatusRecorder,
): ServerHooks {
  const commands = registry.add(
    new Counter("kvstore_commands_total", "Requests answered, by command.", ["command"]),
  );
  const latency = registry.add(
    new Histogram(
      "kvstore_command_duration_seconds",
      "Seconds from the read that delivered a request to the write of its reply, by command.",
      ["command"],
    ),
  );
  const perCommand = new Map<string, { count: CounterChild; latency: HistogramChild }>();
  const seriesOf = (name: string) => {
    let series = perCommand.get(name);
    if (series === undefined) {
      const label = name === "?" ? "unknown" : name;
      series = { count: commands.labels(label), latency: latency.labels(label) };
      perCommand.set(name, series);
    }
    return series;
  };
  const fsync = registry.add(
    new Histogram("kvstore_fsync_duration_seconds", "Seconds each group-commit fsync took."),
  );
  node.store.fsyncObserver = recorder === undefined
    ? (seconds) => fsync.observe(seconds)
    : (seconds) => {
      fsync.observe(seconds);
      recorder.observeFsync(seconds);
    };
  registerGauges(node, registry);
  return {
    answered(names, elapsedSeconds) {
      for (const name of names) {
        const series = seriesOf(name);
        series.count.inc();
        series.latency.observe(elapsedSeconds);
      }
      recorder?.countAnswered(names);
    },
  };
}

/**
 * The metrics extension: with `METRICS_ENABLED`, registers the node's metrics in `registry`
 * (which other extensions add to) and serves them; logs `event: "metrics_listening"` with the
 * bound port. Without it, nothing is measured on the request path.
 */
export function metricsExtension(registry: Registry = new Registry()): ServerExtension {
  return async (node) => {
    const config = node.config;
    // Off, nothing is measured: the server then collects no per-batch command names.
    if (!config.METRICS_ENABLED) return {};
    const recorder = new StatusRecorder(
      config.STATUS_HISTORY_SAMPLES,
      config.STATUS_SAMPLE_INTERVAL_MS,
    );
    const hooks = registerNodeMetrics(node, registry, recorder);
    let server: MetricsServer;
    try {
      server = await startMetricsServer({
        host: config.METRICS_HOST,
        port: config.METRICS_PORT,
        registry,
        health: () => nodeHealth(node),
        status: () => statusReport(node, recorder),
      });
    } catch (error) {
      throw new Error(
        `cannot serve metrics on ${config.METRICS_HOST}:${config.METRICS_PORT}: ${String(error)}`,
      );
    }
    log.info("status page on http://{host}:{port}/ (metrics: /metrics, health: /health)", {
      event: "metrics_listening",
      host: server.host,
      port: server.port,
    });
    recorder.sample(node);
    const sampler = setInterval(() => recorder.sample(node), config.STATUS_SAMPLE_INTERVAL_MS);
    // The sampler alone must not keep a stopping process alive.
    Deno.unrefTimer(sampler);
    return {
      ...hooks,
      close: () => {
        clearInterval(sampler);
        return server.close();
      },
    };
  };
}
