/**
 * The status page in a real browser: headless Chromium (Debian's `chromium`, installed by
 * .ci/run) driven by puppeteer-core against a running master with two replicas. It checks the
 * roles the page shows, that the lag chart rises while a replica is paused (SIGSTOP) and falls
 * back after SIGCONT, and that a replica's page shows its master. The screenshot is written to
 * `$KVSTORE_STATUS_SCREENSHOT` when set (the docs' picture: `docs/images/status-page.png`), else
 * to a temporary file.
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { KVClient } from "../../mod.ts";
import { CLUSTER_TEST, KvNode, waitUntil, withClusterDir } from "../helpers/cluster.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

/** The Chromium to drive: $CHROMIUM_PATH, or Debian's. */
function findChromium(): string | undefined {
  for (
    const path of [Deno.env.get("CHROMIUM_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser"]
  ) {
    if (path === undefined) continue;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

const chromium = findChromium();
if (chromium === undefined) {
  console.log("skipped: chromium is not installed (.ci/run installs Debian's), no browser test");
}

/** The page's chart data for the series whose label is `label` (null where it had no value). */
async function seriesValues(page: Page, chart: string, label: string): Promise<(number | null)[]> {
  return await page.evaluate(
    (chartId: string, seriesLabel: string) => {
      // What the page's script keeps on window: its uPlot charts, by element id.
      const status = (globalThis as unknown as {
        kvstoreStatus?: {
          charts: Record<string, { series: { label?: string }[]; data: (number | null)[][] }>;
        };
      }).kvstoreStatus;
      const plot = status?.charts[chartId];
      if (plot === undefined) return [];
      const index = plot.series.findIndex((s) => s.label === seriesLabel);
      return index < 0 ? [] : Array.from(plot.data[index]);
    },
    chart,
    label,
  );
}

function metricsPort(node: KvNode): number {
  const line = node.logs.find((l) => l.properties.event === "metrics_listening");
  assert.ok(line !== undefined, `${node.name} logged no metrics_listening line`);
  return line.properties.port as number;
}

async function cellTexts(page: Page): Promise<string[][]> {
  return await page.$$eval(
    "#cluster tbody tr",
    (rows) =>
      rows.map((row) =>
        Array.from(
          (row as unknown as { children: ArrayLike<{ textContent: string | null }> }).children,
          (cell) => cell.textContent ?? "",
        )
      ),
  );
}

Deno.test({
  name: "status page: roles, a lag chart that rises while a replica is paused and falls after",
  ignore: chromium === undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-status-page-", async (dir) => {
      const flags = ["--metrics-port", "0", "--status-sample-interval-ms", "200"];
      const r1 = await KvNode.start("r1", `${dir}/r1`, ["--replica", "--fsync", "no", ...flags]);
      const r2 = await KvNode.start("r2", `${dir}/r2`, ["--replica", "--fsync", "no", ...flags]);
      const a1 = `127.0.0.1:${r1.port}`;
      const a2 = `127.0.0.1:${r2.port}`;
      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `${a1},${a2}`,
        ...flags,
      ]);
      // The browser closes inside the block, before its profile directory is removed.
      await withTempDir(async (userDataDir) => {
        let browser: Browser | undefined;
        let writing = true;
        let writer: Promise<void> | undefined;
        try {
          browser = await puppeteer.launch({
            executablePath: chromium,
            userDataDir,
            // Root needs --no-sandbox; the rest keep a test browser from calling home.
            args: [
              "--no-sandbox",
              "--headless",
              "--disable-gpu",
              "--disable-background-networking",
              "--disable-component-update",
              "--disable-sync",
              "--no-first-run",
            ],
          });
          const page = await browser.newPage();
          await page.setViewport({ width: 1200, height: 1000 });
          const errors: string[] = [];
          page.on("pageerror", (error) => errors.push(String(error)));
          page.on("console", (message) => {
            if (message.type() === "error") errors.push(message.text());
          });
          await page.goto(`http://127.0.0.1:${metricsPort(master)}/`);
          await waitUntil("the master's page to list two replicas", async () =>
            (await cellTexts(page)).length === 2);
          assert.equal(
            await page.$eval("#role", (e) =>
              e.textContent),
            "master",
          );
          const rows = await cellTexts(page);
          assert.deepEqual(rows.map((row) => row[0]), ["replica", "replica"]);
          assert.deepEqual(rows.map((row) => row[1]).sort(), [a1, a2].sort());

          // Writes go on (bounded: at most 20,000, until the test says stop) while r1 is paused.
          await using client = new KVClient({ port: master.port, timeoutMs: 10_000 });
          writer = (async () => {
            for (let i = 0; writing && i < 20_000; i++) {
              await client.put(`k${i % 500}`, "v".repeat(100));
              if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
            }
          })();
          await waitUntil("writes on the ops chart", async () => {
            const writes = await seriesValues(page, "chart-ops", "writes/s");
            return writes.some((value) => (value ?? 0) > 0);
          });
          Deno.kill(r1.pid, "SIGSTOP");
          try {
            await waitUntil("r1's lag to rise on the chart", async () => {
              const lag = await seriesValues(page, "chart-lag", `${a1} records`);
              return Math.max(...lag.map((value) => value ?? 0)) >= 50;
            });
            const paused = await seriesValues(page, "chart-lag", `${a1} records`);
            const pausedMs = await seriesValues(page, "chart-lag", `${a1} ms`);
            assert.ok(Math.max(...pausedMs.map((value) => value ?? 0)) > 0, "lag in ms rose too");
            // The state on the page is live too.
            const row = (await cellTexts(page)).find((cells) => cells[1] === a1);
            assert.ok(Number(row?.[5]) > 0, `r1's row shows no lag: ${row}`);
            assert.ok(paused.length > 0);
          } finally {
            Deno.kill(r1.pid, "SIGCONT");
          }
          writing = false;
          await writer;
          await waitUntil("r1's lag to fall back to 0", async () => {
            const lag = await seriesValues(page, "chart-lag", `${a1} records`);
            return lag.length > 0 && lag[lag.length - 1] === 0;
          });
          assert.deepEqual(errors, [], "the page logged errors");
          // The picture shows the rise and the fall.
          const screenshot = Deno.env.get("KVSTORE_STATUS_SCREENSHOT") ?? `${dir}/status-page.png`;
          await page.screenshot({ path: screenshot, fullPage: true });
          const png = await Deno.readFile(screenshot);
          assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
          assert.ok(png.length > 20_000, `a ${png.length}-byte screenshot shows little`);

          // A replica's page: its role, and its master as it sees it.
          await page.goto(`http://127.0.0.1:${metricsPort(r2)}/`);
          await waitUntil(
            "the replica's page",
            async () => (await page.$eval("#role", (e) => e.textContent)) === "replica",
          );
          await waitUntil("the master row", async () => {
            const cells = (await cellTexts(page))[0] ?? [];
            return cells[0] === "master" && cells[2] === "up";
          });
        } finally {
          writing = false;
          await writer?.catch(() => {});
          await browser?.close();
        }
      }, "kvstore-chromium-");
    }),
});
