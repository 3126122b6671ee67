/**
 * The status page a node serves at `GET /` on its metrics port: the node and its cluster at a
 * glance, and live charts (uPlot, embedded) of requests per second, replication lag and fsync
 * latency. Three static texts, no build step: the HTML, its stylesheet and its script; the script
 * polls `/status.json` at the node's sampling interval and redraws. Everything comes from the
 * node itself, so the page works offline. Text from the node is set with `textContent` only, so a
 * replica's error message can never become markup.
 *
 * @module
 */
import { UPLOT_VERSION } from "./uplot_bundle.ts";

/** Paths of the page's assets; uPlot's carry its version, so they may be cached for good. */
export const STATUS_ASSETS = {
  script: "/assets/status.js",
  style: "/assets/status.css",
  uplotScript: `/assets/uplot-${UPLOT_VERSION}.min.js`,
  uplotStyle: `/assets/uplot-${UPLOT_VERSION}.min.css`,
} as const;

/** The page. */
export const STATUS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kvstore status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${STATUS_ASSETS.uplotStyle}">
<link rel="stylesheet" href="${STATUS_ASSETS.style}">
</head>
<body>
<header>
  <h1>kvstore</h1>
  <span id="role" class="role">…</span>
  <span id="address"></span>
  <span id="health" class="health"></span>
  <span id="updated" class="muted"></span>
</header>
<main>
  <section class="facts" id="facts"></section>
  <section>
    <h2 id="cluster-title">Cluster</h2>
    <table id="cluster"><thead></thead><tbody></tbody></table>
    <p id="cluster-empty" class="muted" hidden></p>
  </section>
  <section class="charts">
    <figure><figcaption>Requests per second</figcaption><div id="chart-ops"></div></figure>
    <figure><figcaption id="lag-caption">Replication lag</figcaption><div id="chart-lag"></div></figure>
    <figure><figcaption>fsync latency (ms, per sample)</figcaption><div id="chart-fsync"></div></figure>
  </section>
  <p id="error" class="error" hidden></p>
</main>
<script src="${STATUS_ASSETS.uplotScript}"></script>
<script src="${STATUS_ASSETS.script}"></script>
</body>
</html>
`;

/** The page's stylesheet. */
export const STATUS_CSS = `
:root { color-scheme: light; --fg: #1d2330; --muted: #6b7280; --line: #e5e7eb; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; gap: 14px; align-items: baseline; padding: 12px 20px; background: #fff;
  border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 18px 0 8px; }
main { padding: 8px 20px 20px; max-width: 1200px; }
.role { padding: 2px 10px; border-radius: 10px; font-weight: 600; color: #fff; background: #6b7280; }
.role.master { background: #1d4ed8; }
.role.replica { background: #047857; }
.health.ok { color: #047857; } .health.bad { color: #b91c1c; font-weight: 600; }
.muted { color: var(--muted); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px;
  margin-top: 12px; }
.fact { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.fact b { display: block; font-size: 17px; }
.fact span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num { font-variant-numeric: tabular-nums; }
.state-streaming, .state-up { color: #047857; font-weight: 600; }
.state-down { color: #b91c1c; font-weight: 600; }
.state-catching_up, .state-full_sync { color: #b45309; font-weight: 600; }
.charts { display: grid; grid-template-columns: 1fr; gap: 12px; margin-top: 16px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px;
  padding: 8px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
.error { color: #b91c1c; }
`;

/** The page's script: poll `/status.json`, fill the facts and the table, redraw the charts. */
export const STATUS_JS = `"use strict";
(() => {
  const byId = (id) => document.getElementById(id);
  const el = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  };
  const palette = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490"];
  const state = { charts: {}, last: undefined, polls: 0 };
  window.kvstoreStatus = state;

  function width() {
    return Math.max(320, byId("chart-ops").parentElement.clientWidth - 16);
  }

  function makeChart(id, series, data, axes) {
    const old = state.charts[id];
    if (old) old.destroy();
    const opts = {
      width: width(),
      height: 180,
      series: [{}, ...series],
      axes: axes ?? [{}, { size: 60 }],
      scales: { x: { time: true } },
      legend: { live: false },
    };
    const chart = new uPlot(opts, data, byId(id));
    chart.seriesNames = series.map((s) => s.label).join("\\u0000");
    state.charts[id] = chart;
    return chart;
  }

  function draw(id, series, data, axes) {
    const chart = state.charts[id];
    const names = series.map((s) => s.label).join("\\u0000");
    if (!chart || chart.seriesNames !== names) makeChart(id, series, data, axes);
    else chart.setData(data);
  }

  function fact(label, value) {
    const box = el("div", undefined, "fact");
    box.append(el("b", value), el("span", label));
    return box;
  }

  function renderNode(report) {
    const node = report.node;
    const role = byId("role");
    role.textContent = node.role;
    role.className = "role " + node.role;
    byId("address").textContent = node.address;
    const health = byId("health");
    health.textContent = node.healthy ? "healthy" : "FAILED: " + (node.failure ?? "unknown");
    health.className = "health " + (node.healthy ? "ok" : "bad");
    byId("updated").textContent = "updated " + new Date().toLocaleTimeString();
    byId("facts").replaceChildren(
      fact("epoch", node.epoch),
      fact("last LSN", node.lastLsn),
      fact("durable LSN", node.durableLsn),
      fact("keys", node.keys),
      fact("fsync", node.fsync),
      fact("uptime", formatDuration(node.uptimeSeconds)),
      fact("version", node.version),
      fact("pid", node.pid),
    );
  }

  function formatDuration(seconds) {
    if (seconds < 120) return seconds + " s";
    if (seconds < 7200) return Math.floor(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function renderCluster(report) {
    const table = byId("cluster");
    const head = table.tHead;
    const body = table.tBodies[0];
    const empty = byId("cluster-empty");
    let columns;
    let rows;
    if (report.node.role === "replica") {
      byId("cluster-title").textContent = (report.master && report.master.keyFilter)
        ? "Master (as this replica sees it; this replica holds only keys under " +
          report.master.keyFilter.join(", ") + ")"
        : "Master (as this replica sees it)";
      const m = report.master ?? {};
      columns = ["role", "address", "link", "last contact", "applied LSN", "lag records", "lag ms", "full sync"];
      rows = [[
        ["master"],
        [m.address || "(not yet known)"],
        [m.linkStatus, "state-" + m.linkStatus],
        [m.lastContactSeconds === undefined ? "never" : m.lastContactSeconds + " s ago"],
        [m.lastAppliedLsn, "num"],
        [m.lagRecords ?? "", "num"],
        [m.lagMs ?? "", "num"],
        [m.fullSyncInProgress ? "in progress" : "no"],
      ]];
    } else {
      byId("cluster-title").textContent = "Replicas";
      columns = ["role", "address", "state", "healthy", "acked LSN", "lag records", "lag ms", "queued", "full syncs", "last error"];
      rows = report.replicas.map((r) => [
        [r.keyFilter ? "replica (only " + r.keyFilter.join(", ") + ")" : "replica"],
        [r.address],
        [r.state, "state-" + r.state],
        [r.healthy ? "yes" : "no"],
        [r.ackedLsn, "num"],
        [r.lagRecords, "num"],
        [r.lagMs, "num"],
        [r.queuedRecords, "num"],
        [r.fullSyncs, "num"],
        [r.lastError ?? ""],
      ]);
    }
    const headRow = el("tr");
    for (const column of columns) headRow.append(el("th", column));
    head.replaceChildren(headRow);
    body.replaceChildren(...rows.map((cells) => {
      const row = el("tr");
      for (const [text, className] of cells) row.append(el("td", text, className));
      return row;
    }));
    empty.hidden = rows.length > 0;
    empty.textContent = "This master has no replicas.";
  }

  function renderCharts(report) {
    const h = report.history;
    draw("chart-ops", [
      { label: "requests/s", stroke: palette[0], width: 2 },
      { label: "writes/s", stroke: palette[1], width: 2 },
    ], [h.t, h.opsPerSecond, h.writesPerSecond]);
    const names = Object.keys(h.lagRecords).concat(
      Object.keys(h.lagMs).filter((name) => !(name in h.lagRecords)),
    ).sort();
    const lagSeries = [];
    const lagData = [h.t];
    names.forEach((name, i) => {
      const color = palette[i % palette.length];
      if (name in h.lagRecords) {
        lagSeries.push({ label: name + " records", stroke: color, width: 2, scale: "records" });
        lagData.push(h.lagRecords[name]);
      }
      if (name in h.lagMs) {
        lagSeries.push({ label: name + " ms", stroke: color, width: 1, dash: [6, 4], scale: "ms" });
        lagData.push(h.lagMs[name]);
      }
    });
    byId("lag-caption").textContent = report.node.role === "replica"
      ? "Replication lag behind the master (records; ms dashed, or seconds since last contact)"
      : "Replication lag per replica (records, solid; ms, dashed)";
    draw("chart-lag", lagSeries, lagData, [
      {},
      { scale: "records", size: 60 },
      { scale: "ms", side: 1, size: 60, grid: { show: false } },
    ]);
    draw("chart-fsync", [
      { label: "mean ms", stroke: palette[2], width: 2 },
      { label: "max ms", stroke: palette[4], width: 1 },
    ], [h.t, h.fsyncMeanMs, h.fsyncMaxMs]);
  }

  async function poll() {
    let interval = 1000;
    try {
      const response = await fetch("/status.json", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const report = await response.json();
      interval = report.history.intervalMs;
      state.last = report;
      renderNode(report);
      renderCluster(report);
      renderCharts(report);
      byId("error").hidden = true;
    } catch (error) {
      const box = byId("error");
      box.hidden = false;
      box.textContent = "cannot reach the node: " + error.message + " (retrying)";
    }
    state.polls++;
    setTimeout(poll, Math.max(200, interval));
  }

  window.addEventListener("resize", () => {
    for (const chart of Object.values(state.charts)) chart.setSize({ width: width(), height: 180 });
  });
  poll();
})();
`;
