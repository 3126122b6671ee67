/**
 * `deno task bench server [--seconds N] [--rounds R] [--quick] [--no-redis] [--only S]
 * [--cpu-prof DIR]`:
 * kvstore's server next to `redis-server` (when it is on PATH), both on 127.0.0.1 free ports, same
 * run, same load, at matching durability (`--fsync always|everysec|no` vs `appendfsync
 * always|everysec|no`). `--only always:put` picks scenarios by substring, a whole name
 * (`always:put:50x1`) just that one; `--cpu-prof DIR` writes a V8 CPU profile of each kvstore
 * server into DIR (summarize with `scripts/cpuprofile_summary.ts`).
 *
 * The load generator is ours: N connections, each keeping a pipeline of D requests in flight,
 * 16-byte keys drawn from 100,000, 100-byte values, PUT (`SET`), READ (`GET`) or a 50/50 mix,
 * and Redis's string commands: `INCR`, `SET ... EX 3600`, `GET` of keys that all have a TTL;
 * it prints ops/s and p50/p99/p99.9 latency from a log-bucket histogram. `redis-benchmark -t
 * set,get` then runs against both servers as a second opinion. Last, on fresh servers, the Redis
 * command figures of `bench_redis_commands.ts` (MULTI/EXEC of 10 SETs, a whole SCAN over 1M keys;
 * `--only multi` or `--only scan` runs just those). Every process it starts is killed
 * by PID at the end; every temporary directory removed.
 *
 * Figures taken while other work shares the machine's two cores are noisy: read them as
 * direction, and re-measure on a quiet machine before quoting. `--rounds R` measures each
 * scenario R times on the same two servers, kvstore and Redis taking turns to go first, so a
 * change in the machine's load between the two measurements of a pair shows up as spread instead
 * of as a verdict; it prints every round and then the median of the rounds' ratios.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type ServerProcess, startServerProcess } from "../tests/helpers/server_process.ts";
import { Histogram } from "./histogram.ts";
import { median } from "./stats.ts";
import { cpuMeter } from "./process_cpu.ts";
import { runRedisBenchmark } from "./redis_benchmark.ts";
import { commandRows, measureScan, measureTransactionsBoth } from "./bench_redis_commands.ts";
import { writeAll } from "../src/write_all.ts";
import {
  type BarChart,
  benchRecord,
  COLORS,
  gitCommit,
  subtitleOf,
  writeBenchOutput,
} from "./bench_charts.ts";

const HOST = "127.0.0.1";
/** Most rounds `--rounds` takes: 20 × a scenario's seconds per side. */
const MAX_ROUNDS = 20;
const KEY_BYTES = 16;
const encoder = new TextEncoder();

/**
 * `put` SET, `read` GET, `mixed` half each; `incr` INCR (of `ctr:` keys, counters from the start),
 * `setex` SET with EX 3600, `getttl` GET of keys that all have a TTL (written first, untimed, by
 * {@link prefill}).
 */
type Workload = "put" | "read" | "mixed" | "incr" | "setex" | "getttl";
type Fsync = "always" | "everysec" | "no";

interface Scenario {
  fsync: Fsync;
  workload: Workload;
  connections: number;
  pipeline: number;
  /** What the issue asks of this scenario, for the table. */
  target?: { ratio?: number; opsPerSecond?: number; p50Ms?: number };
}

interface LoadResult {
  opsPerSecond: number;
  /** The server's CPU (user + system, all threads) per operation over the measured window. */
  cpuUsPerOp: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
}

interface Options {
  seconds: number;
  keys: number;
  valueBytes: number;
  redis: boolean;
  redisBenchmark: boolean;
}

// ------------------------------------------------------------------------------ load generator

function keyBytes(index: number, prefix = "key:"): Uint8Array {
  return encoder.encode(`${prefix}${String(index).padStart(KEY_BYTES - prefix.length, "0")}`);
}

/** RESP request `words` (the key is `key`'s bytes where a word is null). */
function command(words: (string | null)[], key: Uint8Array, value: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [encoder.encode(`*${words.length}\r\n`)];
  for (const word of words) {
    const bytes = word === null ? key : word === "VALUE" ? value : encoder.encode(word);
    parts.push(encoder.encode(`$${bytes.length}\r\n`), bytes, encoder.encode("\r\n"));
  }
  return parts;
}

/** The requests of the workloads Redis's strings added (INCR, SET EX, GET of TTL keys). */
function stringCommand(workload: Workload, key: Uint8Array, value: Uint8Array): Uint8Array[] {
  if (workload === "incr") return command(["INCR", null], key, value);
  if (workload === "setex") return command(["SET", null, "VALUE", "EX", "3600"], key, value);
  return command(["GET", null], key, value);
}

/** Builds `count` requests of `workload` into one buffer (SET/GET: both servers know them). */
function requests(workload: Workload, count: number, options: Options): Uint8Array {
  const value = new Uint8Array(options.valueBytes).fill(0x78);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    // INCR's keys are counters of their own: on the keys the SET loads left (100-byte values)
    // every INCR would be Redis's not-an-integer error, on both servers.
    const key = keyBytes(
      Math.floor(Math.random() * options.keys),
      workload === "incr" ? "ctr:" : "key:",
    );
    if (workload === "incr" || workload === "setex" || workload === "getttl") {
      parts.push(...stringCommand(workload, key, value));
      continue;
    }
    const put = workload === "put" || (workload === "mixed" && Math.random() < 0.5);
    parts.push(
      put
        ? encoder.encode(`*3\r\n$3\r\nSET\r\n$${KEY_BYTES}\r\n`)
        : encoder.encode(`*2\r\n$3\r\nGET\r\n$${KEY_BYTES}\r\n`),
      key,
      put ? encoder.encode(`\r\n$${options.valueBytes}\r\n`) : encoder.encode("\r\n"),
    );
    if (put) parts.push(value, encoder.encode("\r\n"));
  }
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A buffer of requests and where each one starts (plus the end, as a last entry). */
interface RequestPool {
  bytes: Uint8Array;
  offsets: number[];
}

/** Finds where each request of `bytes` starts, so runs of them can be sent without copying. */
function requestPool(bytes: Uint8Array): RequestPool {
  const decoder = new TextDecoder();
  const offsets: number[] = [];
  let start = 0;
  while (start < bytes.length) {
    offsets.push(start);
    let at = bytes.indexOf(0x0a, start) + 1;
    const count = Number(decoder.decode(bytes.subarray(start + 1, at - 2)));
    for (let i = 0; i < count; i++) {
      const lineEnd = bytes.indexOf(0x0a, at) + 1;
      const length = Number(decoder.decode(bytes.subarray(at + 1, lineEnd - 2)));
      at = lineEnd + length + 2;
    }
    start = at;
  }
  offsets.push(bytes.length);
  return { bytes, offsets };
}

/** Offset just past the reply starting at `at`, or -1 if it is not complete yet. */
function replyEnd(data: Uint8Array, at: number, end: number): number {
  if (at >= end) return -1;
  const lineEnd = data.indexOf(0x0a, at);
  if (lineEnd === -1 || lineEnd >= end) return -1;
  if (data[at] !== 0x24) return lineEnd + 1; // + - : are one line
  let length = 0;
  let negative = false;
  for (let i = at + 1; i < lineEnd - 1; i++) {
    if (data[i] === 0x2d) negative = true;
    else length = length * 10 + data[i] - 0x30;
  }
  if (negative) return lineEnd + 1;
  const next = lineEnd + 1 + length + 2;
  return next <= end ? next : -1;
}

/** One connection keeping `pipeline` requests in flight until `stopAt`. */
async function drive(
  port: number,
  pool: RequestPool,
  pipeline: number,
  recordFrom: number,
  stopAt: number,
  histogram: Histogram,
): Promise<number> {
  const conn = await Deno.connect({ hostname: HOST, port });
  conn.setNoDelay(true);
  const poolSize = pool.offsets.length - 1;
  const sentAt = new Float64Array(pipeline);
  let head = 0;
  let inFlight = 0;
  let next = Math.floor(Math.random() * poolSize);
  let completed = 0;
  const buffer = new Uint8Array(1 << 20);
  let start = 0;
  let end = 0;
  /** Sends the next `count` requests of the pool: one write of a slice, two when it wraps. */
  const send = async (count: number) => {
    const now = performance.now();
    for (let i = 0; i < count; i++) sentAt[(head + inFlight + i) % pipeline] = now;
    inFlight += count;
    while (count > 0) {
      const run = Math.min(count, poolSize - next);
      const bytes = pool.bytes.subarray(pool.offsets[next], pool.offsets[next + run]);
      await writeAll(conn, bytes);
      next = (next + run) % poolSize;
      count -= run;
    }
  };
  try {
    await send(pipeline);
    while (inFlight > 0) {
      if (start === end) start = end = 0;
      else if (end === buffer.length) {
        buffer.copyWithin(0, start, end);
        end -= start;
        start = 0;
      }
      const count = await conn.read(buffer.subarray(end));
      if (count === null) throw new Error("the server closed a benchmark connection");
      end += count;
      const now = performance.now();
      let replies = 0;
      for (;;) {
        const after = replyEnd(buffer, start, end);
        if (after === -1) break;
        start = after;
        if (now >= recordFrom && now < stopAt) {
          histogram.record((now - sentAt[head]) * 1000);
          completed++;
        }
        head = (head + 1) % pipeline;
        inFlight--;
        replies++;
      }
      if (now < stopAt && replies > 0) await send(replies);
    }
  } finally {
    conn.close();
  }
  return completed;
}

/**
 * Before a `getttl` load: every key of the key space set with a TTL (an hour), pipelined on one
 * connection, untimed.
 */
async function prefill(server: Server, options: Options): Promise<void> {
  const value = new Uint8Array(options.valueBytes).fill(0x78);
  const conn = await Deno.connect({ hostname: HOST, port: server.port });
  try {
    const batch = 1000;
    const reply = new Uint8Array(64 * 1024);
    for (let first = 0; first < options.keys; first += batch) {
      const parts: Uint8Array[] = [];
      const last = Math.min(options.keys, first + batch);
      for (let i = first; i < last; i++) {
        parts.push(...command(["SET", null, "VALUE", "EX", "3600"], keyBytes(i), value));
      }
      const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
      let at = 0;
      for (const part of parts) {
        bytes.set(part, at);
        at += part.length;
      }
      await writeAll(conn, bytes);
      let oks = 0;
      while (oks < last - first) {
        const count = await conn.read(reply);
        if (count === null) throw new Error("the server closed the prefill connection");
        for (let i = 0; i < count; i++) if (reply[i] === 0x0a) oks++;
      }
    }
  } finally {
    conn.close();
  }
}

/**
 * Runs one load against `server` for `options.seconds` (after a warm-up of a fifth of that),
 * and meters the server's CPU over the same window.
 */
async function runLoad(
  server: Server,
  scenario: Scenario,
  options: Options,
): Promise<LoadResult> {
  if (scenario.workload === "getttl") await prefill(server, options);
  const pool = requestPool(requests(scenario.workload, 20_000, options));
  const warmUpMs = Math.max(300, options.seconds * 200);
  const recordFrom = performance.now() + warmUpMs;
  const stopAt = recordFrom + options.seconds * 1000;
  const metered = new Promise<number>((resolve) =>
    setTimeout(() => {
      const done = cpuMeter([server.pid]);
      setTimeout(() => resolve(done()[0]), stopAt - performance.now());
    }, recordFrom - performance.now())
  );
  const histograms = Array.from({ length: scenario.connections }, () => new Histogram());
  const counts = await Promise.all(
    histograms.map((histogram) =>
      drive(server.port, pool, scenario.pipeline, recordFrom, stopAt, histogram)
    ),
  );
  const cpuSeconds = await metered;
  const all = new Histogram();
  for (const histogram of histograms) all.add(histogram);
  const total = counts.reduce((sum, count) => sum + count, 0);
  return {
    opsPerSecond: total / options.seconds,
    cpuUsPerOp: cpuSeconds * 1e6 / total,
    p50Ms: all.percentileUs(50) / 1000,
    p99Ms: all.percentileUs(99) / 1000,
    p999Ms: all.percentileUs(99.9) / 1000,
  };
}

// ---------------------------------------------------------------------------------- servers

interface Server {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startKvstore(fsync: Fsync, dir: string, cpuProfDir?: string): Promise<Server> {
  const process: ServerProcess = await startServerProcess({
    dataDir: `${dir}/kvstore`,
    args: ["--fsync", fsync],
    denoArgs: cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`],
  });
  return {
    name: "kvstore",
    port: process.port,
    pid: process.pid,
    stop: async () => {
      await process.stop();
    },
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startRedis(fsync: Fsync, dir: string): Promise<Server> {
  await Deno.mkdir(`${dir}/redis`, { recursive: true });
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: [
      "--bind",
      HOST,
      "--port",
      String(port),
      "--dir",
      `${dir}/redis`,
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      fsync,
      "--daemonize",
      "no",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
  };
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      const conn = await Deno.connect({ hostname: HOST, port });
      await conn.write(encoder.encode("*1\r\n$4\r\nPING\r\n"));
      const reply = new Uint8Array(16);
      const count = await conn.read(reply);
      conn.close();
      if (count !== null && new TextDecoder().decode(reply.subarray(0, count)) === "+PONG\r\n") {
        return { name: "redis", port, pid: child.pid, stop };
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error("redis-server did not start");
}

async function hasCommand(name: string): Promise<boolean> {
  try {
    return (await new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

/** `redis-benchmark -t set,get` against `port`; returns requests/s of SET and GET. */
async function redisBenchmark(
  port: number,
  pipeline: number,
  requests: number,
): Promise<{ set: number; get: number; setP50Ms: number; getP50Ms: number }> {
  const [set, get] = await runRedisBenchmark({
    port,
    commands: ["set", "get"],
    requests,
    pipeline,
  });
  return {
    set: set.requestsPerSecond,
    get: get.requestsPerSecond,
    setP50Ms: set.p50Ms,
    getP50Ms: get.p50Ms,
  };
}

// ------------------------------------------------------------------------------------ report

function scenarios(quick: boolean): Scenario[] {
  const list: Scenario[] = [
    { fsync: "always", workload: "put", connections: 50, pipeline: 1, target: { ratio: 1.0 } },
    { fsync: "always", workload: "put", connections: 50, pipeline: 16, target: { ratio: 1.0 } },
    { fsync: "everysec", workload: "put", connections: 50, pipeline: 1, target: { ratio: 0.6 } },
    {
      fsync: "everysec",
      workload: "put",
      connections: 50,
      pipeline: 16,
      target: { ratio: 0.6, opsPerSecond: 300_000 },
    },
    { fsync: "everysec", workload: "read", connections: 50, pipeline: 1 },
    { fsync: "everysec", workload: "read", connections: 50, pipeline: 16 },
    { fsync: "everysec", workload: "mixed", connections: 50, pipeline: 16 },
    { fsync: "no", workload: "put", connections: 1, pipeline: 1, target: { p50Ms: 0.1 } },
    { fsync: "no", workload: "read", connections: 1, pipeline: 1, target: { p50Ms: 0.1 } },
    {
      fsync: "no",
      workload: "put",
      connections: 50,
      pipeline: 16,
      target: { opsPerSecond: 300_000 },
    },
    // Redis's strings (issue 13): each at least 0.8x Redis in the same run.
    { fsync: "everysec", workload: "incr", connections: 50, pipeline: 16, target: { ratio: 0.8 } },
    { fsync: "everysec", workload: "setex", connections: 50, pipeline: 16, target: { ratio: 0.8 } },
    {
      fsync: "everysec",
      workload: "getttl",
      connections: 50,
      pipeline: 16,
      target: { ratio: 0.8 },
    },
  ];
  return quick ? list.filter((s) => s.connections === 1 || s.pipeline === 16) : list;
}

function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(3) : "-";
}

function loadAverage(): string {
  return Deno.loadavg().map((load) => load.toFixed(2)).join(" ");
}

function micros(value: number): string {
  return Number.isFinite(value) ? value.toFixed(1) : "-";
}

function thousands(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "-";
}

function describeTarget(scenario: Scenario, kv: LoadResult, redis?: LoadResult): string {
  const target = scenario.target;
  if (target === undefined) return "";
  const verdicts: string[] = [];
  if (target.ratio !== undefined && redis !== undefined) {
    const ratio = kv.opsPerSecond / redis.opsPerSecond;
    verdicts.push(`${ratio.toFixed(2)}x (target ≥ ${target.ratio}x)`);
  }
  if (target.opsPerSecond !== undefined) {
    verdicts.push(`target ≥ ${thousands(target.opsPerSecond)}/s`);
  }
  if (target.p50Ms !== undefined) verdicts.push(`target p50 ≤ ${target.p50Ms} ms`);
  return verdicts.join("; ");
}

/** One scenario's figures for kvstore and (when it ran) Redis. */
interface ScenarioResult extends Scenario {
  name: string;
  kvstore: LoadResult;
  redis?: LoadResult;
}

/** One redis-benchmark run against both servers. */
interface RedisBenchmarkResult {
  fsync: Fsync;
  pipeline: number;
  kvstore: { set: number; get: number; setP50Ms: number; getP50Ms: number };
  redis?: { set: number; get: number; setP50Ms: number; getP50Ms: number };
}

/** Throughput and latency percentiles per scenario, kvstore and Redis side by side. */
function serverCharts(
  results: ScenarioResult[],
  record: ReturnType<typeof benchRecord>,
): Record<string, BarChart> {
  const categories = results.map((r) =>
    `${r.fsync} ${r.workload.toUpperCase()} ${r.connections}×${r.pipeline}`
  );
  const subtitle = subtitleOf(record);
  const percentiles = [["p50", "p50Ms"], ["p99", "p99Ms"], ["p99.9", "p999Ms"]] as const;
  return {
    throughput: {
      title: "kvstore vs Redis: operations per second (fsync policy, command, clients × pipeline)",
      subtitle,
      unit: "operations per second",
      categories,
      series: [
        {
          name: "kvstore",
          color: COLORS.kvstore[0],
          values: results.map((r) => r.kvstore.opsPerSecond),
        },
        {
          name: "Redis",
          color: COLORS.redis[0],
          values: results.map((r) => r.redis?.opsPerSecond),
        },
      ],
    },
    latency: {
      title: "kvstore vs Redis: latency percentiles (lower is better)",
      subtitle,
      unit: "ms from request to reply",
      log: true,
      categories,
      series: percentiles.flatMap(([label, field], i) => [
        {
          name: `kvstore ${label}`,
          color: COLORS.kvstore[i],
          values: results.map((r) => r.kvstore[field]),
        },
        {
          name: `Redis ${label}`,
          color: COLORS.redis[i],
          values: results.map((r) => r.redis?.[field]),
        },
      ]),
    },
  };
}

/** Runs the benchmark; prints a table of figures (and with --out DIR, writes them and charts). */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string", default: "3" },
      rounds: { type: "string", default: "1" },
      quick: { type: "boolean", default: false },
      "no-redis": { type: "boolean", default: false },
      "no-redis-benchmark": { type: "boolean", default: false },
      only: { type: "string" },
      "cpu-prof": { type: "string" },
      out: { type: "string" },
    },
  });
  const started = { at: new Date(), commit: await gitCommit() };
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error("--seconds must be positive");
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_ROUNDS) {
    throw new Error(`--rounds must be a whole number from 1 to ${MAX_ROUNDS}`);
  }
  if (rounds > 1 && values.out !== undefined) {
    throw new Error("--out draws one figure per scenario: use it with --rounds 1");
  }
  const options: Options = {
    seconds: values.quick ? Math.min(seconds, 1) : seconds,
    keys: 100_000,
    valueBytes: 100,
    redis: !values["no-redis"] && await hasCommand("redis-server"),
    redisBenchmark: !values["no-redis-benchmark"] && await hasCommand("redis-benchmark"),
  };
  console.log(
    `deno task bench server ${args.join(" ")}`.trimEnd() +
      `\n${options.seconds} s per figure after warm-up; 16-byte keys from ${options.keys}, ` +
      `${options.valueBytes}-byte values; ${
        options.redis ? "redis-server in the same run" : "no redis-server on PATH"
      }; ${Deno.build.os} ${Deno.build.arch}, deno ${Deno.version.deno}, ` +
      `${navigator.hardwareConcurrency} CPUs (noisy if the machine is shared); load average ` +
      `${loadAverage()}\ncpu µs: the server's CPU (user + system, all threads) per operation\n`,
  );
  const header = [
    "fsync".padEnd(9),
    "load".padEnd(17),
    "kvstore ops/s".padStart(14),
    "p50 ms".padStart(8),
    "p99 ms".padStart(8),
    "p99.9".padStart(8),
    "cpu µs".padStart(7),
    "redis ops/s".padStart(12),
    "p50 ms".padStart(8),
    "p99 ms".padStart(8),
    "p99.9".padStart(8),
    "cpu µs".padStart(7),
    "  vs target",
  ].join(" ");
  console.log(header);
  const dir = await Deno.makeTempDir({ prefix: "kvstore-bench-" });
  const byFsync = new Map<Fsync, Scenario[]>();
  const named = scenarios(values.quick).map((scenario) => ({
    scenario,
    name: `${scenario.fsync}:${scenario.workload}:${scenario.connections}x${scenario.pipeline}`,
  }));
  // A whole name picks just that scenario (always:put:50x1 is not also always:put:50x16).
  const exact = named.some(({ name }) => name === values.only);
  const chosen = named.filter(({ name }) =>
    values.only === undefined || (exact ? name === values.only : name.includes(values.only))
  ).map(({ scenario }) => scenario);
  for (const scenario of chosen) {
    byFsync.set(scenario.fsync, [...(byFsync.get(scenario.fsync) ?? []), scenario]);
  }
  const benchmarkRows: string[] = [];
  // The figures the tables print, kept for --out (JSON and charts from this same run).
  const measured: ScenarioResult[] = [];
  const redisBenchmarkResults: RedisBenchmarkResult[] = [];
  try {
    for (const [fsync, list] of byFsync) {
      const runDir = `${dir}/${fsync}`;
      const kvstore = await startKvstore(fsync, runDir, values["cpu-prof"]);
      const redis = options.redis ? await startRedis(fsync, runDir) : undefined;
      try {
        for (const scenario of list) {
          const ratios: number[] = [];
          for (let round = 0; round < rounds; round++) {
            // Every other round Redis goes first, so neither side always meets the later load.
            const redisFirst = redis !== undefined && round % 2 === 1;
            const rdBefore = redisFirst ? await runLoad(redis, scenario, options) : undefined;
            const kv = await runLoad(kvstore, scenario, options);
            const rd = redisFirst || redis === undefined
              ? rdBefore
              : await runLoad(redis, scenario, options);
            if (rd !== undefined) ratios.push(kv.opsPerSecond / rd.opsPerSecond);
            const { fsync: policy, workload, connections, pipeline } = scenario;
            measured.push({
              name: `${policy}:${workload}:${connections}x${pipeline}`,
              ...scenario,
              kvstore: kv,
              redis: rd,
            });
            console.log([
              fsync.padEnd(9),
              `${scenario.workload} ${scenario.connections}x${scenario.pipeline}`.padEnd(17),
              thousands(kv.opsPerSecond).padStart(14),
              ms(kv.p50Ms).padStart(8),
              ms(kv.p99Ms).padStart(8),
              ms(kv.p999Ms).padStart(8),
              micros(kv.cpuUsPerOp).padStart(7),
              thousands(rd?.opsPerSecond ?? NaN).padStart(12),
              ms(rd?.p50Ms ?? NaN).padStart(8),
              ms(rd?.p99Ms ?? NaN).padStart(8),
              ms(rd?.p999Ms ?? NaN).padStart(8),
              micros(rd?.cpuUsPerOp ?? NaN).padStart(7),
              `  ${describeTarget(scenario, kv, rd)}`,
            ].join(" "));
          }
          if (rounds > 1 && ratios.length > 0) {
            console.log(
              `${fsync.padEnd(9)} ${scenario.workload} ${scenario.connections}x` +
                `${scenario.pipeline}: median ratio of ${ratios.length} rounds ` +
                `${median(ratios).toFixed(2)}x (${ratios.map((r) => r.toFixed(2)).join(" ")})`,
            );
          }
        }
        if (options.redisBenchmark && fsync !== "no") {
          for (const pipeline of [1, 16]) {
            const count = Math.round((pipeline === 1 ? 50_000 : 300_000) * options.seconds / 3);
            const kv = await redisBenchmark(kvstore.port, pipeline, count);
            const rd = redis === undefined
              ? undefined
              : await redisBenchmark(redis.port, pipeline, count);
            redisBenchmarkResults.push({ fsync, pipeline, kvstore: kv, redis: rd });
            benchmarkRows.push(
              `${fsync.padEnd(9)} -P ${String(pipeline).padEnd(3)} kvstore SET ${
                thousands(kv.set).padStart(9)
              }/s GET ${thousands(kv.get).padStart(9)}/s` +
                (rd === undefined
                  ? ""
                  : `   redis SET ${thousands(rd.set).padStart(9)}/s GET ${
                    thousands(rd.get).padStart(9)
                  }/s   SET ratio ${(kv.set / rd.set).toFixed(2)}x`),
            );
          }
        }
      } finally {
        await kvstore.stop();
        await redis?.stop();
      }
    }
    const only = values.only;
    if (only === undefined || ["multi", "scan", "commands"].some((word) => only.includes(word))) {
      // Fresh servers: the transactions first, then a million keys for the SCAN.
      const runDir = `${dir}/commands`;
      const kvstore = await startKvstore("everysec", runDir, values["cpu-prof"]);
      const redis = options.redis ? await startRedis("everysec", runDir) : undefined;
      try {
        const scanKeys = values.quick ? 100_000 : 1_000_000;
        const [kvTransactions, redisTransactions] = await measureTransactionsBoth(
          kvstore,
          redis,
          options.seconds,
        );
        const kv = await measureScan(kvstore.port, scanKeys, kvTransactions);
        const rd = redis === undefined || redisTransactions === undefined
          ? undefined
          : await measureScan(redis.port, scanKeys, redisTransactions);
        console.log(`\nRedis commands (fsync everysec, fresh servers, same run):`);
        for (const row of commandRows(kv, rd)) console.log(row);
      } finally {
        await kvstore.stop();
        await redis?.stop();
      }
    }
    console.log(`load average after: ${loadAverage()}`);
    if (benchmarkRows.length > 0) {
      console.log(
        `\nredis-benchmark -t set,get -c 50 -d 100 -r 100000 (-P 1 and -P 16), against both:`,
      );
      for (const row of benchmarkRows) console.log(row);
    }
    if (values.out !== undefined) {
      const record = benchRecord("server", args, started, {
        options,
        scenarios: measured,
        redisBenchmark: redisBenchmarkResults,
      });
      const paths = await writeBenchOutput(values.out, record, serverCharts(measured, record));
      console.log(`\nwrote ${paths.join(", ")}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
