/**
 * Benchmark results as files: `deno task bench server|replication --out DIR` writes the figures
 * of the run that printed the tables as `DIR/<bench>.json` and draws them as SVG bar charts
 * (throughput, latency percentiles), kvstore and Redis side by side. The charts are plain SVG
 * written here (no library, no fonts to fetch), so the docs show them as images.
 *
 * @module
 */

/** One series of bars: a system and figure, with a value per category (undefined: not run). */
export interface BarSeries {
  name: string;
  color: string;
  values: (number | undefined)[];
}

/** A grouped horizontal bar chart. */
export interface BarChart {
  title: string;
  /** A line under the title: the command, the commit, the machine. */
  subtitle?: string;
  /** What the values are, for the axis (`ops/s`, `ms`). */
  unit: string;
  /** One group of bars per category (a scenario). */
  categories: string[];
  series: BarSeries[];
  /** Logarithmic axis (latencies that span orders of magnitude). */
  log?: boolean;
}

/** What a benchmark run writes as JSON. */
export interface BenchRecord {
  benchmark: string;
  command: string;
  startedAt: string;
  /** `git rev-parse --short HEAD` of the tree that ran, or "unknown". */
  commit: string;
  machine: { os: string; arch: string; deno: string; cpus: number; loadAverage: number[] };
  /** The benchmark's own figures (its tables' numbers). */
  results: unknown;
}

/** Colors: kvstore blues, Redis reds; darker for the middle, lighter for the tail. */
export const COLORS = {
  kvstore: ["#1d4ed8", "#3b82f6", "#93c5fd"],
  redis: ["#b91c1c", "#ef4444", "#fca5a5"],
} as const;

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** A short label for a value: 1.2M, 345k, 12.3, 0.042. */
export function formatValue(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(value >= 1e7 ? 0 : 1)}M`;
  if (value >= 1e4) return `${Math.round(value / 1e3)}k`;
  if (value >= 100) return value.toFixed(0);
  if (value >= 1) return value.toFixed(value >= 10 ? 1 : 2);
  return String(Number(value.toPrecision(2)));
}

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

const WIDTH = 900;
const BAR_HEIGHT = 11;
const GROUP_GAP = 12;
const CHAR_WIDTH = 6.6;

/** The chart as an SVG document. */
export function barChartSvg(chart: BarChart): string {
  const values = chart.series.flatMap((s) => s.values).filter((v): v is number =>
    v !== undefined && Number.isFinite(v) && (chart.log ? v > 0 : v >= 0)
  );
  const labelWidth = Math.ceil(
    Math.max(60, ...chart.categories.map((c) => c.length * CHAR_WIDTH)) + 16,
  );
  const plotLeft = labelWidth;
  const plotRight = WIDTH - 60;
  // Pairs (kvstore, Redis) share a legend row.
  const legendColumns = chart.series.length % 2 === 0 ? 2 : 3;
  const legendRows = Math.ceil(chart.series.length / legendColumns);
  const top = 48 + legendRows * 18 + (chart.subtitle === undefined ? 0 : 14);
  const groupHeight = chart.series.length * BAR_HEIGHT + GROUP_GAP;
  const plotHeight = Math.max(1, chart.categories.length) * groupHeight;
  const height = top + plotHeight + 40;
  let low = 0;
  let high = niceMax(Math.max(0, ...values));
  if (chart.log) {
    low = 10 ** Math.floor(Math.log10(Math.min(...values, 1)));
    high = 10 ** Math.ceil(Math.log10(Math.max(...values, low * 10)));
  }
  const x = (value: number): number => {
    const fraction = chart.log
      ? (Math.log10(value) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))
      : (value - low) / (high - low);
    return plotLeft + Math.max(0, Math.min(1, fraction)) * (plotRight - plotLeft);
  };
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
      `viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', ` +
      `Roboto, sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="600" fill="#111827">${
      escapeXml(chart.title)
    }</text>`,
  );
  if (chart.subtitle !== undefined) {
    parts.push(`<text x="12" y="38" fill="#6b7280">${escapeXml(chart.subtitle)}</text>`);
  }
  const legendTop = chart.subtitle === undefined ? 40 : 54;
  chart.series.forEach((series, i) => {
    const lx = 12 + (i % legendColumns) * 200;
    const ly = legendTop + Math.floor(i / legendColumns) * 18;
    parts.push(
      `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${series.color}"/>`,
      `<text x="${lx + 18}" y="${ly + 10}" fill="#374151">${escapeXml(series.name)}</text>`,
    );
  });
  // Grid and axis ticks.
  const ticks: number[] = [];
  if (chart.log) {
    for (let t = low; t <= high * 1.0001; t *= 10) ticks.push(t);
  } else {
    for (let i = 0; i <= 5; i++) ticks.push(low + (high - low) * i / 5);
  }
  for (const tick of ticks) {
    const tx = x(tick).toFixed(1);
    parts.push(
      `<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${top + plotHeight}" stroke="#e5e7eb"/>`,
      `<text x="${tx}" y="${top + plotHeight + 14}" text-anchor="middle" fill="#6b7280">${
        formatValue(tick)
      }</text>`,
    );
  }
  parts.push(
    `<text x="${(plotLeft + plotRight) / 2}" y="${top + plotHeight + 30}" text-anchor="middle" ` +
      `fill="#374151">${escapeXml(chart.unit)}${chart.log ? " (log scale)" : ""}</text>`,
  );
  chart.categories.forEach((category, c) => {
    const gy = top + c * groupHeight;
    parts.push(
      `<text x="${plotLeft - 8}" y="${gy + (chart.series.length * BAR_HEIGHT) / 2 + 4}" ` +
        `text-anchor="end" fill="#111827">${escapeXml(category)}</text>`,
    );
    chart.series.forEach((series, s) => {
      const value = series.values[c];
      const by = gy + s * BAR_HEIGHT;
      if (value === undefined || !Number.isFinite(value) || (chart.log && value <= 0)) return;
      const width = Math.max(1, x(value) - plotLeft);
      parts.push(
        `<rect class="bar" x="${plotLeft}" y="${by}" width="${width.toFixed(1)}" ` +
          `height="${BAR_HEIGHT - 2}" fill="${series.color}"><title>${
            escapeXml(`${series.name}, ${category}: ${value}`)
          }</title></rect>`,
        `<text x="${(plotLeft + width + 4).toFixed(1)}" y="${by + BAR_HEIGHT - 3}" ` +
          `font-size="9" fill="#374151">${formatValue(value)}</text>`,
      );
    });
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/**
 * The short commit of the code about to run, with "+changes" when its code (not its docs) differs
 * from that commit, or "unknown" (no git, not a checkout). Take it when the run starts: a commit
 * made while it runs is not what ran.
 */
export async function gitCommit(): Promise<string> {
  const git = async (args: string[]) => {
    const output = await new Deno.Command("git", {
      args,
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!output.success) throw new Error(`git ${args[0]} failed`);
    return new TextDecoder().decode(output.stdout).trim();
  };
  try {
    const commit = await git(["rev-parse", "--short", "HEAD"]);
    const changed = await git([
      "status",
      "--porcelain",
      "--untracked-files=no",
      "--",
      "src",
      "scripts",
      "cli.ts",
      "mod.ts",
      "deno.json",
    ]);
    return changed === "" ? commit : `${commit}+changes`;
  } catch {
    return "unknown";
  }
}

/** A record of this run, ready for {@link writeBenchOutput}. */
export function benchRecord(
  benchmark: string,
  args: string[],
  started: { at: Date; commit: string },
  results: unknown,
): BenchRecord {
  return {
    benchmark,
    command: `deno task bench ${benchmark} ${args.join(" ")}`.trimEnd(),
    startedAt: started.at.toISOString(),
    commit: started.commit,
    machine: {
      os: Deno.build.os,
      arch: Deno.build.arch,
      deno: Deno.version.deno,
      cpus: navigator.hardwareConcurrency,
      loadAverage: Deno.loadavg(),
    },
    results,
  };
}

/** "deno task bench server --quick at 1a2b3c4, 2 CPUs, load 1.2": a chart's subtitle. */
export function subtitleOf(record: BenchRecord): string {
  const command = record.command.replace(/ --out(=| )\S+/, "");
  return `${command} at ${record.commit}, ${record.startedAt.slice(0, 16)}Z, ` +
    `${record.machine.cpus} CPUs, deno ${record.machine.deno}`;
}

/**
 * Writes `<dir>/<benchmark>.json` and each chart as `<dir>/<benchmark>-<name>.svg`; returns the
 * paths written.
 */
export async function writeBenchOutput(
  dir: string,
  record: BenchRecord,
  charts: Record<string, BarChart>,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const paths = [`${dir}/${record.benchmark}.json`];
  await Deno.writeTextFile(paths[0], JSON.stringify(record, null, 2) + "\n");
  for (const [name, chart] of Object.entries(charts)) {
    const path = `${dir}/${record.benchmark}-${name}.svg`;
    await Deno.writeTextFile(path, barChartSvg(chart));
    paths.push(path);
  }
  return paths;
}
