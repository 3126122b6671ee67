/**
 * `deno task bench replication [--quick] [--only lag,sync,throughput,catchup,fullsync]
 * [--cpu-prof DIR]`: replication figures of kvstore next to Redis, measured in the same run on
 * 127.0.0.1 (free ports, temp dirs, every process killed by PID at the end). `--cpu-prof DIR`
 * writes a V8 CPU profile of every kvstore node into DIR.
 *
 * - lag: a key written on the master (its OK received) until the first read of the replica that
 *   sees it returns, p50/p99, at light load and while `redis-benchmark` drives 50 clients of SETs;
 * - sync PUT latency p50/p99 with one and two replicas (Redis: SET then `WAIT n 100`);
 * - master SET throughput (`redis-benchmark`, 50 clients) with 0, 1 and 2 async replicas;
 * - catch-up speed: records/s for a replica that was down while records were written;
 * - full-sync speed: MB/s for a new, empty replica of a master holding data.
 *
 * Figures on a shared machine are noisy: read them as direction, not as a verdict.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { RespValue } from "../src/protocol/resp.ts";
import { KvNode, parseInfo, RespConn } from "../tests/helpers/cluster.ts";
import { cpuMeter } from "./process_cpu.ts";
import { runRedisBenchmark } from "./redis_benchmark.ts";
import {
  type BarChart,
  benchRecord,
  COLORS,
  gitCommit,
  subtitleOf,
  writeBenchOutput,
} from "./bench_charts.ts";

const HOST = "127.0.0.1";
/** Writes per second of the fixed-rate runs: below what every configuration sustains here. */
const FIXED_RATE = 15_000;
/** Untimed operations before each latency figure (JIT warm-up, both systems alike). */
const WARMUP = 3000;
/** A master that retries a restarted replica at once instead of after 30 s. */
const FAST_RECONNECT = [
  "--replication-health-check-interval",
  "0.1",
  "--replication-retry-backoff-ms",
  "10",
];
const decoder = new TextDecoder();

interface Options {
  /** Directory for V8 CPU profiles of every kvstore node (`--cpu-prof DIR`), or undefined. */
  cpuProfDir?: string;
  /** Sections to run (`--only lag,sync,throughput,catchup,fullsync`), or undefined for all. */
  only?: Set<string>;
  /** Probe writes per lag/latency figure. */
  samples: number;
  /** Records written while a replica is down (catch-up). */
  catchUpRecords: number;
  /** Keys of the full-sync dataset, and their value size. */
  fullSyncKeys: number;
  fullSyncValueBytes: number;
  /** SETs per throughput run. */
  throughputRequests: number;
  /** Seconds of the fixed-rate run (master CPU per write at {@link FIXED_RATE}). */
  rateSeconds: number;
  /** Directory for the JSON figures and SVG charts of the run (`--out`). */
  out?: string;
}

/** A latency figure: percentiles of one measurement. */
interface LatencyFigure {
  system: "kvstore" | "redis";
  p50Ms: number;
  p99Ms: number;
  samples: number;
}

/** The figures the run prints, kept for `--out`. */
interface ReplicationResults {
  lag: (LatencyFigure & { durability: string; load: "light" | "50 clients" })[];
  sync: (LatencyFigure & { replicas: number; durability: string })[];
  throughput: {
    system: "kvstore" | "redis";
    replicas: number;
    niced: boolean;
    setsPerSecond: number;
    masterCpuUsPerWrite: number;
  }[];
  catchUp?: { records: number; seconds: number; recordsPerSecond: number };
  fullSync?: { keys: number; megabytes: number; seconds: number; megabytesPerSecond: number };
}

let results: ReplicationResults = { lag: [], sync: [], throughput: [] };

function percentiles(samplesMs: number[]): { p50Ms: number; p99Ms: number; samples: number } {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return {
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    samples: sorted.length,
  };
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
      only: { type: "string" },
      out: { type: "string" },
    },
  });
  const quick = values.quick;
  return {
    out: values.out,
    cpuProfDir: values["cpu-prof"],
    only: values.only === undefined ? undefined : new Set(values.only.split(",")),
    samples: quick ? 300 : 2000,
    catchUpRecords: quick ? 20_000 : 200_000,
    fullSyncKeys: quick ? 5_000 : 50_000,
    fullSyncValueBytes: 1000,
    throughputRequests: quick ? 20_000 : 200_000,
    rateSeconds: quick ? 1 : 4,
  };
}

function text(value: RespValue): string {
  if (value instanceof Uint8Array) return decoder.decode(value);
  return String(value);
}

// ------------------------------------------------------------------ processes

/** A process the bench started (kvstore node or redis-server); killed by PID at the end. */
interface Proc {
  name: string;
  child?: Deno.ChildProcess;
  node?: KvNode;
  port: number;
  dir: string;
}

const running = new Set<Proc>();

function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function stop(proc: Proc, signal: Deno.Signal = "SIGKILL"): Promise<void> {
  if (!running.delete(proc)) return;
  if (proc.node !== undefined) {
    // A profiled node must exit normally to write its profile.
    const graceful = signal !== "SIGKILL" || cpuProfDir !== undefined;
    await (graceful ? proc.node.stop() : proc.node.kill());
    return;
  }
  try {
    proc.child?.kill(signal);
  } catch {
    // already gone
  }
  await proc.child?.status;
}

async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => stop(p)));
}

/** `--cpu-prof DIR` of the bench: every kvstore node writes a V8 CPU profile there. */
let cpuProfDir: string | undefined;

async function startKvstore(name: string, dir: string, flags: string[]): Promise<Proc> {
  const denoArgs = cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`];
  const node = await KvNode.start(name, dir, flags, denoArgs);
  const proc: Proc = { name, node, port: node.port, dir };
  running.add(proc);
  return proc;
}

async function startRedis(name: string, dir: string, extra: string[]): Promise<Proc> {
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      HOST,
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--logfile",
      "",
      ...extra,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const proc: Proc = { name, child, port, dir };
  running.add(proc);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      const conn = await RespConn.open(port);
      const pong = await conn.send(["PING"]);
      conn.close();
      if (pong === "PONG") return proc;
    } catch {
      await sleep(20);
    }
  }
  throw new Error(`${name} did not answer PING`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function info(port: number, section: string): Promise<Map<string, string>> {
  const conn = await RespConn.open(port);
  try {
    return parseInfo(text(await conn.send(["INFO", section])));
  } finally {
    conn.close();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** True when every replica listed in the master's INFO has acknowledged the master's LSN. */
async function kvstoreCaughtUp(masterPort: number): Promise<boolean> {
  const fields = await info(masterPort, "replication");
  const masterLsn = fields.get("master_lsn");
  const replicas = [...fields.entries()].filter(([k]) => /^replica\d+$/.test(k));
  return replicas.length > 0 &&
    replicas.every(([, v]) =>
      v.includes(`acked_lsn=${masterLsn},`) && v.includes("state=streaming")
    );
}

async function redisReplicaReady(replicaPort: number): Promise<boolean> {
  return (await info(replicaPort, "replication")).get("master_link_status") === "up";
}

// ------------------------------------------------------------------ measurements

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(samplesMs: number[]): string {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 50).toFixed(3)} ms, p99 ${
    percentile(sorted, 99).toFixed(3)
  } ms ` +
    `(n=${sorted.length})`;
}

/**
 * Lag: master OK → the first replica read that sees the value returns. The first `warmup`
 * samples are not kept: a Deno process runs its hot paths interpreted until the JIT compiles
 * them (a few thousand requests), and the figures are for a node that has been running.
 */
async function measureLag(
  masterPort: number,
  replicaPort: number,
  samples: number,
  warmup = WARMUP,
) {
  const master = await RespConn.open(masterPort);
  const replica = await RespConn.open(replicaPort);
  const lags: number[] = [];
  const deadline = Date.now() + 30_000;
  try {
    for (let i = 0; i < samples + warmup && Date.now() < deadline; i++) {
      const key = `lag:${i % 100}`;
      const value = `v${i}-${Date.now()}`;
      await master.send(["SET", key, value]);
      const okAt = performance.now();
      for (let polls = 0; polls < 100_000; polls++) {
        const seen = await replica.send(["GET", key]);
        if (seen instanceof Uint8Array && decoder.decode(seen) === value) break;
      }
      if (i >= warmup) lags.push(performance.now() - okAt);
    }
  } finally {
    master.close();
    replica.close();
  }
  return lags;
}

/** Latency of a sync write: kvstore SET in sync mode, or Redis SET + WAIT n 100 (after warmup). */
async function measureSyncLatency(port: number, samples: number, waitReplicas?: number) {
  const conn = await RespConn.open(port);
  const latencies: number[] = [];
  try {
    for (let i = 0; i < samples + WARMUP; i++) {
      const start = performance.now();
      const set = conn.send(["SET", `sync:${i % 1000}`, "x".repeat(100)]);
      if (waitReplicas !== undefined) {
        const acked = await conn.send(["WAIT", String(waitReplicas), "100"]);
        if (acked !== waitReplicas) throw new Error(`WAIT acknowledged ${text(acked)}`);
      }
      const reply = await set;
      if (reply !== "OK") throw new Error(`SET answered ${text(reply)}`);
      if (i >= WARMUP) latencies.push(performance.now() - start);
    }
  } finally {
    conn.close();
  }
  return latencies;
}

/** Runs redis-benchmark SETs (50 clients) and returns requests per second. */
async function redisBenchmarkSet(port: number, requests: number, clients = 50): Promise<number> {
  const [set] = await runRedisBenchmark({ port, commands: ["set"], requests, clients });
  return set.requestsPerSecond;
}

/**
 * SETs at a fixed rate from 50 connections (each with at most one in flight) for `seconds`;
 * returns the writes acknowledged. At full speed, configurations run at different rates and so
 * batch differently (the CPU per write falls as batches grow); at one rate that every
 * configuration sustains, their CPU per write compares like for like.
 */
async function fixedRateLoad(
  port: number,
  writesPerSecond: number,
  seconds: number,
): Promise<number> {
  const conns = await Promise.all(Array.from({ length: 50 }, () => RespConn.open(port)));
  const busy = conns.map(() => false);
  const value = "x".repeat(100);
  let issued = 0;
  let acknowledged = 0;
  let next = 0;
  const startedAt = performance.now();
  const endAt = startedAt + seconds * 1000;
  try {
    // Bounded by the deadline; each pass issues what is due, on idle connections.
    while (performance.now() < endAt) {
      const due = Math.floor((performance.now() - startedAt) / 1000 * writesPerSecond);
      for (let idle = conns.length; issued < due && idle > 0;) {
        if (busy[next]) {
          idle--;
        } else {
          const i = next;
          busy[i] = true;
          issued++;
          conns[i].send(["SET", `rate:${issued % 100_000}`, value]).then(() => {
            busy[i] = false;
            acknowledged++;
          });
          idle = conns.length;
        }
        next = (next + 1) % conns.length;
      }
      await sleep(1);
    }
    for (let waits = 0; busy.some((b) => b) && waits < 10_000; waits++) await sleep(1);
  } finally {
    for (const conn of conns) conn.close();
  }
  return acknowledged;
}

/** Lowest CPU priority for a process (`renice -n 19`). */
async function renice(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  await new Deno.Command("renice", { args: ["-n", "19", "-p", String(pid)], stdout: "null" })
    .output();
}

/** Starts redis-benchmark as background load; returns a stop function. */
function backgroundLoad(port: number): () => Promise<void> {
  const child = new Deno.Command("redis-benchmark", {
    args: [
      "-h",
      HOST,
      "-p",
      String(port),
      "-c",
      "50",
      "-n",
      "100000000",
      "-t",
      "set",
      "-d",
      "100",
      "-r",
      "100000",
      "-q",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    await child.status;
  };
}

/** A process's PID (kvstore node or redis-server). */
function pidOf(proc: Proc): number | undefined {
  return proc.node?.pid ?? proc.child?.pid;
}

/** Writes the master has taken so far: its last LSN (kvstore) or its SET calls (Redis). */
async function writesSoFar(system: "kvstore" | "redis", port: number): Promise<number> {
  if (system === "kvstore") return Number((await info(port, "replication")).get("master_lsn"));
  const calls = (await info(port, "commandstats")).get("cmdstat_set") ?? "";
  return Number(/calls=(\d+)/.exec(calls)?.[1] ?? NaN);
}

/**
 * Lag at light load, then while redis-benchmark drives 50 clients of SETs on the master; under
 * load it also prints the write rate the master sustained and the CPU the master and the replica
 * spent per write (a 2-core machine hosts all three processes and the load generator).
 */
async function lagFigures(
  system: "kvstore" | "redis",
  label: string,
  master: Proc,
  replica: Proc,
  samples: number,
  out: (line: string) => void,
): Promise<void> {
  const light = await measureLag(master.port, replica.port, samples);
  out(`${system} lag, light load, ${label}:`.padEnd(50) + summary(light));
  results.lag.push({ system, durability: label, load: "light", ...percentiles(light) });
  const stopLoad = backgroundLoad(master.port);
  await sleep(300);
  const writesBefore = await writesSoFar(system, master.port);
  const startedAt = performance.now();
  const meter = cpuMeter([pidOf(master), pidOf(replica)]);
  // The light run just before warmed this cluster up.
  const loaded = await measureLag(master.port, replica.port, Math.ceil(samples / 4), 100);
  const [masterCpu, replicaCpu] = meter();
  const writes = await writesSoFar(system, master.port) - writesBefore;
  const seconds = (performance.now() - startedAt) / 1000;
  await stopLoad();
  results.lag.push({ system, durability: label, load: "50 clients", ...percentiles(loaded) });
  out(
    `${system} lag, 50-client load, ${label}:`.padEnd(50) + summary(loaded) +
      `; ${Math.round(writes / seconds)} writes/s, CPU per write: master ` +
      `${(masterCpu * 1e6 / writes).toFixed(1)} µs, replica ${
        (replicaCpu * 1e6 / writes).toFixed(1)
      } µs`,
  );
}

// ------------------------------------------------------------------ scenarios

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "kvstore-bench-repl-" });
  try {
    return await fn(dir);
  } finally {
    await stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function kvstoreCluster(
  dir: string,
  replicas: number,
  masterFlags: string[] = [],
  replicaFlags: string[] = [],
) {
  const nodes: Proc[] = [];
  for (let i = 0; i < replicas; i++) {
    await Deno.mkdir(`${dir}/r${i}`, { recursive: true });
    nodes.push(await startKvstore(`replica${i}`, `${dir}/r${i}`, ["--replica", ...replicaFlags]));
  }
  await Deno.mkdir(`${dir}/m`, { recursive: true });
  const replicaList = nodes.map((n) => `${HOST}:${n.port}`).join(",");
  const master = await startKvstore(
    "master",
    `${dir}/m`,
    replicas > 0 ? ["--replicas", replicaList, ...masterFlags] : masterFlags,
  );
  if (replicas > 0) await waitFor("replicas streaming", () => kvstoreCaughtUp(master.port));
  return { master, replicas: nodes };
}

/** Redis persistence matching a kvstore fsync policy (`no`: no AOF at all, as Redis defaults). */
function redisDurability(fsync: "always" | "everysec" | "no"): string[] {
  return fsync === "no" ? [] : ["--appendonly", "yes", "--appendfsync", fsync];
}

async function redisCluster(dir: string, replicas: number, durability: string[] = []) {
  const nodeDir = async (name: string) => {
    await Deno.mkdir(`${dir}/${name}`, { recursive: true });
    return `${dir}/${name}`;
  };
  const master = await startRedis("redis-master", await nodeDir("redis-master"), durability);
  const nodes: Proc[] = [];
  for (let i = 0; i < replicas; i++) {
    const name = `redis-replica${i}`;
    nodes.push(
      await startRedis(name, await nodeDir(name), [
        ...durability,
        "--replicaof",
        HOST,
        String(master.port),
      ]),
    );
  }
  for (const node of nodes) {
    await waitFor("redis replica link up", () => redisReplicaReady(node.port));
  }
  return { master, replicas: nodes };
}

/** Entry point of `deno task bench replication`. */
/** Lag and sync latency, and throughput with 0/1/2 replicas: kvstore and Redis side by side. */
function replicationCharts(
  figures: ReplicationResults,
  record: ReturnType<typeof benchRecord>,
): Record<string, BarChart> {
  const subtitle = subtitleOf(record);
  const latencyRows: { category: string; kvstore?: LatencyFigure; redis?: LatencyFigure }[] = [];
  for (const figure of figures.lag) {
    const category = `lag, ${figure.load}, ${figure.durability}`;
    let row = latencyRows.find((r) => r.category === category);
    if (row === undefined) latencyRows.push(row = { category });
    row[figure.system] = figure;
  }
  for (const count of [1, 2]) {
    const kvstore = figures.sync.find((f) =>
      f.system === "kvstore" && f.replicas === count && f.durability === "fsync no"
    );
    const redis = figures.sync.find((f) => f.system === "redis" && f.replicas === count);
    if (kvstore !== undefined || redis !== undefined) {
      latencyRows.push({
        category: `sync write, ${count} replica${count > 1 ? "s" : ""} (Redis SET+WAIT)`,
        kvstore,
        redis,
      });
    }
  }
  const charts: Record<string, BarChart> = {};
  if (latencyRows.length > 0) {
    charts.latency = {
      title: "Replication: lag and sync-write latency, kvstore vs Redis (lower is better)",
      subtitle,
      unit: "ms",
      log: true,
      categories: latencyRows.map((r) => r.category),
      series: (["p50Ms", "p99Ms"] as const).flatMap((field, i) => [
        {
          name: `kvstore ${field.slice(0, 3)}`,
          color: COLORS.kvstore[i],
          values: latencyRows.map((r) => r.kvstore?.[field]),
        },
        {
          name: `Redis ${field.slice(0, 3)}`,
          color: COLORS.redis[i],
          values: latencyRows.map((r) => r.redis?.[field]),
        },
      ]),
    };
  }
  const plain = figures.throughput.filter((f) => !f.niced);
  if (plain.length > 0) {
    const counts = [...new Set(plain.map((f) => f.replicas))].sort();
    const of = (system: string, count: number) =>
      plain.find((f) => f.system === system && f.replicas === count)?.setsPerSecond;
    charts.throughput = {
      title:
        "Replication: master SET/s with 0, 1 and 2 async replicas (fsync always), kvstore vs Redis",
      subtitle,
      unit: "SET per second (redis-benchmark, 50 clients)",
      categories: counts.map((count) => `${count} replica${count === 1 ? "" : "s"}`),
      series: [
        { name: "kvstore", color: COLORS.kvstore[0], values: counts.map((c) => of("kvstore", c)) },
        { name: "Redis", color: COLORS.redis[0], values: counts.map((c) => of("redis", c)) },
      ],
    };
  }
  return charts;
}

export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const started = { at: new Date(), commit: await gitCommit() };
  results = { lag: [], sync: [], throughput: [] };
  cpuProfDir = options.cpuProfDir;
  const runs = (section: string) => options.only === undefined || options.only.has(section);
  const out = (line: string) => console.log(line);
  const loadAverage = () => Deno.loadavg().map((load) => load.toFixed(2)).join(" ");
  out(`# replication benchmark (noisy: shared 2-core machine), ${new Date().toISOString()}`);
  out(`# command: deno task bench replication ${args.join(" ")}`.trimEnd());
  out(`# load average at start: ${loadAverage()}`);
  const hasRedis = (await new Deno.Command("which", { args: ["redis-server"], stdout: "null" })
    .output()).success;

  try {
    // --- lag, light and under load, at matching durability: fsync no vs Redis without AOF (the
    // Redis default), fsync always vs appendfsync always (on master and replica alike) ---
    if (runs("lag")) {
      for (const fsync of ["no", "always"] as const) {
        const flags = ["--fsync", fsync];
        const label = fsync === "no" ? "fsync no / no AOF" : "fsync always";
        await withTempDir(async (dir) => {
          const { master, replicas } = await kvstoreCluster(dir, 1, flags, flags);
          await lagFigures("kvstore", label, master, replicas[0], options.samples, out);
        });
        if (hasRedis) {
          await withTempDir(async (dir) => {
            const { master, replicas } = await redisCluster(dir, 1, redisDurability(fsync));
            await lagFigures("redis", label, master, replicas[0], options.samples, out);
          });
        }
      }
    }

    // --- sync latency. Redis's WAIT counts a replica that received the write, fsynced or not:
    // the like-for-like kvstore figure is the fsync-no one (the default fsync always also waits
    // for the fsync on master and replica) ---
    if (runs("sync")) {
      for (const count of [1, 2]) {
        for (const fsync of ["always", "no"] as const) {
          await withTempDir(async (dir) => {
            const flags = ["--fsync", fsync];
            const { master } = await kvstoreCluster(dir, count, [
              "--replication-mode",
              "sync",
              ...flags,
            ], flags);
            const latencies = await measureSyncLatency(master.port, options.samples);
            results.sync.push({
              system: "kvstore",
              replicas: count,
              durability: `fsync ${fsync}`,
              ...percentiles(latencies),
            });
            out(
              `kvstore sync PUT, ${count} replica(s), fsync ${fsync}:`.padEnd(50) +
                summary(latencies),
            );
          });
        }
        if (hasRedis) {
          await withTempDir(async (dir) => {
            const { master } = await redisCluster(dir, count);
            const latencies = await measureSyncLatency(master.port, options.samples, count);
            results.sync.push({
              system: "redis",
              replicas: count,
              durability: "no AOF",
              ...percentiles(latencies),
            });
            out(
              `redis SET+WAIT ${count}, ${count} replica(s), no AOF:`.padEnd(50) +
                summary(latencies),
            );
          });
        }
      }
    }

    // --- master throughput with 0, 1, 2 async replicas (50 clients, redis-benchmark), kvstore
    // at its default fsync always and Redis at appendfsync always, on every node. Replicas
    // normally run on their own machines; here they share the master's two cores with the load
    // generator, so throughput mixes replication's own cost with the CPU the replicas take. The
    // master's CPU per write isolates its own cost; the niced rows lower the replicas' priority.
    if (runs("throughput")) {
      for (const system of hasRedis ? ["kvstore", "redis"] as const : ["kvstore"] as const) {
        const rows: [number, boolean][] = system === "kvstore"
          ? [[0, false], [1, false], [2, false], [1, true], [2, true]]
          : [[0, false], [1, false], [2, false]];
        let baseline = 0;
        let baselineCpuUs = 0;
        let baselineRateCpuUs = 0;
        for (const [count, niced] of rows) {
          await withTempDir(async (dir) => {
            const { master, replicas } = system === "kvstore"
              ? await kvstoreCluster(dir, count)
              : await redisCluster(dir, count, redisDurability("always"));
            if (niced) {
              for (const replica of replicas) await renice(pidOf(replica));
            }
            const requests = options.throughputRequests;
            const meter = cpuMeter([master, ...replicas].map(pidOf));
            const rps = await redisBenchmarkSet(master.port, requests);
            const [masterCpu, ...replicaCpu] = meter();
            const masterCpuUs = masterCpu * 1e6 / requests;
            if (count === 0) {
              baseline = rps;
              baselineCpuUs = masterCpuUs;
            }
            const replicaCpuUs = replicaCpu.reduce((sum, cpu) => sum + cpu, 0) * 1e6 /
              requests / Math.max(1, count);
            const cost = count === 0
              ? ""
              : ` (${((1 - rps / baseline) * 100).toFixed(1)}% below 0)`;
            const cpuCost = count === 0
              ? ""
              : ` (+${((masterCpuUs / baselineCpuUs - 1) * 100).toFixed(1)}%)`;
            const label = `${count} async replica(s)${niced ? ", niced" : ""}`;
            results.throughput.push({
              system,
              replicas: count,
              niced,
              setsPerSecond: rps,
              masterCpuUsPerWrite: masterCpuUs,
            });
            out(
              `${system} SET throughput, fsync always, ${label}:`.padEnd(58) +
                `${rps.toFixed(0)}/s${cost}; master CPU ${masterCpuUs.toFixed(1)} µs/write` +
                `${cpuCost}` +
                (count === 0 ? "" : `; each replica ${replicaCpuUs.toFixed(1)} µs/write`),
            );
            if (niced) return;
            const rateMeter = cpuMeter([master, ...replicas].map(pidOf));
            const rateWrites = await fixedRateLoad(master.port, FIXED_RATE, options.rateSeconds);
            const [rateMasterCpu, ...rateReplicaCpu] = rateMeter();
            const rateMasterUs = rateMasterCpu * 1e6 / rateWrites;
            if (count === 0) baselineRateCpuUs = rateMasterUs;
            const rateReplicaUs = rateReplicaCpu.reduce((sum, cpu) => sum + cpu, 0) * 1e6 /
              rateWrites / Math.max(1, count);
            out(
              `${system} at ${FIXED_RATE} SET/s, fsync always, ${label}:`.padEnd(58) +
                `${(rateWrites / options.rateSeconds).toFixed(0)}/s done; master CPU ` +
                `${rateMasterUs.toFixed(1)} µs/write` +
                (count === 0
                  ? ""
                  : ` (+${((rateMasterUs / baselineRateCpuUs - 1) * 100).toFixed(1)}%); ` +
                    `each replica ${rateReplicaUs.toFixed(1)} µs/write`),
            );
          });
        }
      }
    }

    // --- catch-up speed ---
    if (runs("catchup")) {
      await withTempDir(async (dir) => {
        const { master, replicas } = await kvstoreCluster(dir, 1, FAST_RECONNECT);
        const replicaPort = replicas[0].port;
        await stop(replicas[0], "SIGTERM");
        await redisBenchmarkSet(master.port, options.catchUpRecords);
        const masterLsn = Number((await info(master.port, "replication")).get("master_lsn"));
        // The master reconnects to the same port: restart the replica there.
        const restarted = await startKvstore("replica0", `${dir}/r0`, [
          "--replica",
          "--port",
          String(replicaPort),
        ])
          .catch(async () => await startKvstore("replica0", `${dir}/r0`, ["--replica"]));
        const startedAt = performance.now();
        await waitFor("catch-up", () => kvstoreCaughtUp(master.port), 120_000);
        // includes the replica's start (about 0.1-0.3 s here)
        const seconds = (performance.now() - startedAt) / 1000;
        results.catchUp = {
          records: options.catchUpRecords,
          seconds,
          recordsPerSecond: options.catchUpRecords / seconds,
        };
        out(
          `kvstore catch-up: ${options.catchUpRecords} records (master LSN ${masterLsn}) in ` +
            `${seconds.toFixed(2)} s = ${
              (options.catchUpRecords / seconds).toFixed(0)
            } records/s ` +
            `(replica on port ${restarted.port})`,
        );
      });
    }

    // --- full-sync speed ---
    if (runs("fullsync")) {
      await withTempDir(async (dir) => {
        await Deno.mkdir(`${dir}/m`, { recursive: true });
        await Deno.mkdir(`${dir}/r0`, { recursive: true });
        const replicaPort = freePort();
        // Small segments and eager compaction: writing the dataset twice compacts the log, so the
        // new replica cannot be caught up from it and gets a full sync.
        const master = await startKvstore("master", `${dir}/m`, [
          "--replicas",
          `${HOST}:${replicaPort}`,
          ...FAST_RECONNECT,
          "--segment-size-bytes",
          String(4 * 1024 * 1024),
          "--compaction-threshold",
          "0.1",
          "--compaction-min-bytes",
          "0",
        ]);
        const conn = await RespConn.open(master.port);
        const value = "v".repeat(options.fullSyncValueBytes);
        for (let pass = 0; pass < 2; pass++) {
          const writes: Promise<RespValue>[] = [];
          for (let i = 0; i < options.fullSyncKeys; i++) {
            writes.push(conn.send(["SET", `full:${String(i).padStart(8, "0")}`, value]));
            if (writes.length >= 256) await Promise.all(writes.splice(0));
          }
          await Promise.all(writes);
        }
        conn.close();
        await waitFor(
          "compaction",
          async () => Number((await info(master.port, "storage")).get("oldest_complete_lsn")) > 0,
        );
        const bytes = options.fullSyncKeys * (options.fullSyncValueBytes + 14);
        await startKvstore("replica0", `${dir}/r0`, ["--replica", "--port", String(replicaPort)]);
        const startedAt = performance.now();
        await waitFor("full sync", () => kvstoreCaughtUp(master.port), 120_000);
        const seconds = (performance.now() - startedAt) / 1000;
        const fullSyncs = (await info(master.port, "replication")).get("replica0") ?? "";
        results.fullSync = {
          keys: options.fullSyncKeys,
          megabytes: bytes / 1e6,
          seconds,
          megabytesPerSecond: bytes / 1e6 / seconds,
        };
        out(
          `kvstore full sync: ${options.fullSyncKeys} keys, ${(bytes / 1e6).toFixed(1)} MB in ` +
            `${seconds.toFixed(2)} s = ${(bytes / 1e6 / seconds).toFixed(1)} MB/s ` +
            `(${
              /full_syncs=(\d+)/.exec(fullSyncs)?.[0] ?? "full_syncs=?"
            }; includes replica start)`,
        );
      });
    }
    out(`# load average at end: ${loadAverage()}`);
    if (options.out !== undefined) {
      const record = benchRecord("replication", args, started, results);
      const paths = await writeBenchOutput(options.out, record, replicationCharts(results, record));
      out(`# wrote ${paths.join(", ")}`);
    }
  } finally {
    await stopAll();
  }
}
