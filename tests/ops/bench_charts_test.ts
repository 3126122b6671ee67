/**
 * `deno task bench ... --out DIR`: the run's figures as JSON and SVG charts, kvstore and Redis
 * side by side, from the same run that printed the table.
 */
import assert from "node:assert/strict";
import { barChartSvg, formatValue } from "../../scripts/bench_charts.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const ROOT = new URL("../../", import.meta.url);

Deno.test("bench charts: one bar per figure, log axes, labels escaped", () => {
  const svg = barChartSvg({
    title: "a <title> & more",
    unit: "ms",
    log: true,
    categories: ["PUT 50×1", "READ"],
    series: [
      { name: "kvstore p50", color: "#00f", values: [0.05, 12] },
      { name: "Redis p50", color: "#f00", values: [0.04, undefined] },
    ],
  });
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" /);
  assert.match(svg, /<\/svg>\n$/);
  assert.equal(svg.match(/<rect class="bar"/g)?.length, 3); // Redis did not run READ
  assert.ok(svg.includes("a &lt;title&gt; &amp; more"));
  assert.ok(svg.includes("ms (log scale)"));
  // Log ticks from 0.01 to 100 cover both values.
  assert.ok(svg.includes(">0.01<") && svg.includes(">100<"), svg);
  assert.deepEqual([formatValue(1_234_567), formatValue(45_678), formatValue(0.0421)], [
    "1.2M",
    "46k",
    "0.042",
  ]);
});

Deno.test("bench charts: deno task bench server --out writes the table's figures as JSON and SVG", async () => {
  await withTempDir(async (dir) => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "bench",
        "server",
        "--only",
        "no:put:1x1",
        "--seconds",
        "0.2",
        "--no-redis-benchmark",
        "--out",
        dir,
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, stdout + new TextDecoder().decode(output.stderr));
    const record = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
    assert.equal(record.benchmark, "server");
    assert.match(record.command, /^deno task bench server --only no:put:1x1 /);
    const [scenario] = record.results.scenarios;
    assert.equal(scenario.name, "no:put:1x1");
    // The same run as the table: the printed ops/s is the JSON's, rounded.
    const row = stdout.split("\n").find((line) => /^no\s+put 1x1/.test(line)) ?? "";
    const printed = Number(row.trim().split(/\s+/)[3].replaceAll(",", ""));
    assert.equal(printed, Math.round(scenario.kvstore.opsPerSecond));
    assert.ok(scenario.kvstore.p50Ms > 0 && scenario.kvstore.p99Ms >= scenario.kvstore.p50Ms);
    for (const chart of ["throughput", "latency"]) {
      const svg = await Deno.readTextFile(`${dir}/server-${chart}.svg`);
      const bars = svg.match(/<rect class="bar"/g)?.length ?? 0;
      // kvstore always; Redis too when redis-server is installed.
      const perSystem = chart === "throughput" ? 1 : 3;
      assert.equal(bars, scenario.redis === undefined ? perSystem : 2 * perSystem, chart);
    }
    assert.match(stdout, new RegExp(`wrote ${dir}/server\\.json, `));
  }, "kvstore-bench-out-");
});
