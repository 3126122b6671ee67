/**
 * `deno task bench client [--quick] [--only reads,put,failover] [--seconds N] [--rounds N]`:
 * what the cluster-aware `KVClient` costs and buys, on real node processes on 127.0.0.1 (free
 * ports, temporary directories, every process killed by PID at the end):
 *
 * - reads: reads/s through `KVClient({ nodes })` with `readPreference: "replica"` over two
 *   replicas vs `"primary"` only, same cluster, same run, rounds alternating;
 * - put: the cost of topology tracking on a plain PUT loop: `KVClient({ host, port })` vs
 *   `KVClient({ nodes })` against the same master, rounds alternating (A/B; target ≤ 3%);
 * - failover: how long a writer loop stalls when its master is killed (SIGKILL) and
 *   scripts/failover.sh promotes a replica: from the kill to the first acknowledged write on the
 *   new master (and the script's own time), per run.
 *
 * Figures taken while other work shares the machine's two cores are noisy: compare the sides of
 * one run, and re-measure on a quiet machine before quoting.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KVClient, type ReadPreference } from "../mod.ts";
import {
  FAST_FAILURE_FLAGS,
  replicasCaughtUp,
  startCluster,
  waitUntil,
} from "../tests/helpers/cluster.ts";
import { runFailoverScript } from "../tests/helpers/failover.ts";
import { cpuMeter, cpuSecondsOf } from "./process_cpu.ts";
import { median } from "./stats.ts";

const FLAGS = ["--fsync", "no"];

interface Options {
  only: Set<string> | undefined;
  seconds: number;
  rounds: number;
  keys: number;
  workers: number;
  failovers: number;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      seconds: { type: "string" },
      rounds: { type: "string" },
    },
  });
  const quick = values.quick;
  return {
    only: values.only === undefined ? undefined : new Set(values.only.split(",")),
    seconds: Number(values.seconds ?? (quick ? 1 : 3)),
    rounds: Number(values.rounds ?? (quick ? 2 : 4)),
    keys: 10_000,
    workers: 32,
    failovers: quick ? 1 : 3,
  };
}

function at(port: number): string {
  return `127.0.0.1:${port}`;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "kvstore-bench-client-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** A master with two replicas (fsync no), the replicas started first, all streaming. */
async function cluster(dir: string, masterFlags: readonly string[] = []) {
  const { master, replicas: [r1, r2] } = await startCluster(dir, 2, {
    replicaArgs: FLAGS,
    masterArgs: [...FLAGS, ...masterFlags],
  });
  const stop = async () => {
    await Promise.all([master, r1, r2].map((node) => node.kill().catch(() => {})));
  };
  return { master, r1, r2, stop };
}

/** Runs `workers` loops of `op` for `seconds`; resolves to operations per second. */
async function loadFor(
  seconds: number,
  workers: number,
  op: (worker: number, i: number) => Promise<unknown>,
): Promise<number> {
  let done = 0;
  const endMs = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(Array.from({ length: workers }, async (_, worker) => {
    for (let i = 0; performance.now() < endMs; i++) {
      await op(worker, i);
      done++;
    }
  }));
  return done / ((performance.now() - started) / 1000);
}

async function readsSection(options: Options, out: (line: string) => void): Promise<void> {
  await withTempDir(async (dir) => {
    const { master, r1, r2, stop } = await cluster(dir);
    try {
      const nodes = [at(master.port), at(r1.port), at(r2.port)];
      await using client = new KVClient({ nodes, maxPendingCalls: 1_000_000 });
      const value = "x".repeat(100);
      for (let i = 0; i < options.keys; i += 500) {
        const pairs: [string, string][] = [];
        for (let k = i; k < Math.min(options.keys, i + 500); k++) pairs.push([`key${k}`, value]);
        await client.batchPut(pairs);
      }
      await waitUntil("replicas caught up", () => replicasCaughtUp(master), 60_000);
      await client.refreshTopology();
      const results: Record<string, number[]> = { primary: [], replica: [] };
      // Server CPU seconds (master, replicas) and reads, summed over the rounds of each side.
      const cpu: Record<string, { master: number; replicas: number; reads: number }> = {
        primary: { master: 0, replicas: 0, reads: 0 },
        replica: { master: 0, replicas: 0, reads: 0 },
      };
      const read = (preference: ReadPreference) => (worker: number, i: number) =>
        client.read(`key${(worker * 7919 + i * 104_729) % options.keys}`, {
          readPreference: preference,
        });
      // Warm-up of both paths, untimed.
      await loadFor(0.5, options.workers, read("primary"));
      await loadFor(0.5, options.workers, read("replica"));
      for (let round = 0; round < options.rounds; round++) {
        for (const preference of ["primary", "replica"] as const) {
          const done = cpuMeter([master.pid, r1.pid, r2.pid]);
          const started = performance.now();
          const rate = await loadFor(options.seconds, options.workers, read(preference));
          const [masterCpu, r1Cpu, r2Cpu] = done();
          results[preference].push(rate);
          cpu[preference].master += masterCpu;
          cpu[preference].replicas += r1Cpu + r2Cpu;
          cpu[preference].reads += rate * (performance.now() - started) / 1000;
        }
      }
      const primary = median(results.primary);
      const replica = median(results.replica);
      out(
        `reads/s, ${options.workers} concurrent reads of 100-byte values, median of ` +
          `${options.rounds} alternating rounds of ${options.seconds} s:`,
      );
      out(
        `  readPreference primary (the master):   ${fmt(primary)}  ` +
          `(rounds ${results.primary.map(fmt).join(", ")})`,
      );
      out(
        `  readPreference replica (two replicas): ${fmt(replica)}  ` +
          `(rounds ${results.replica.map(fmt).join(", ")})`,
      );
      out(`  replica / primary: ${(replica / primary).toFixed(2)}x`);
      const perRead = (seconds: number, reads: number) => ((seconds / reads) * 1e6).toFixed(1);
      for (const preference of ["primary", "replica"] as const) {
        const c = cpu[preference];
        out(
          `  server CPU per read with ${preference}: master ${perRead(c.master, c.reads)} µs, ` +
            `replicas ${perRead(c.replicas, c.reads)} µs`,
        );
      }
      out(
        `  (one client process drives the load: on two shared cores it is the limit, so the ` +
          `gain shows as CPU taken off the master rather than as more reads/s)`,
      );
    } finally {
      await stop();
    }
  });
}

async function putSection(options: Options, out: (line: string) => void): Promise<void> {
  await withTempDir(async (dir) => {
    const { master, r1, r2, stop } = await cluster(dir);
    try {
      const direct = new KVClient({ host: "127.0.0.1", port: master.port });
      const tracked = new KVClient({
        nodes: [at(master.port), at(r1.port), at(r2.port)],
      });
      try {
        await tracked.refreshTopology();
        const value = "x".repeat(100);
        const put = (client: KVClient) => (worker: number, i: number) =>
          client.put(`key${(worker * 7919 + i) % options.keys}`, value);
        await loadFor(0.5, options.workers, put(direct));
        await loadFor(0.5, options.workers, put(tracked));
        const a: number[] = [];
        const b: number[] = [];
        // The client's own CPU per put (this process: the load generator is the client), the
        // figure the tracking adds to; throughput moves with whatever else the machine runs.
        const cpuA: number[] = [];
        const cpuB: number[] = [];
        const measured = async (client: KVClient, rates: number[], cpus: number[]) => {
          const before = cpuSecondsOf(Deno.pid);
          const started = performance.now();
          const rate = await loadFor(1, options.workers, put(client));
          const puts = rate * (performance.now() - started) / 1000;
          rates.push(rate);
          cpus.push(((cpuSecondsOf(Deno.pid) - before) / puts) * 1e6);
        };
        // Many short rounds in ABBA order: the machine's load drifts, and both sides see it.
        const rounds = options.rounds * 3;
        for (let round = 0; round < rounds; round++) {
          if (round % 2 === 0) {
            await measured(direct, a, cpuA);
            await measured(tracked, b, cpuB);
          } else {
            await measured(tracked, b, cpuB);
            await measured(direct, a, cpuA);
          }
        }
        const ma = median(a);
        const mb = median(b);
        const range = (values: number[], digits = 0) =>
          `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
        out(
          `PUT loop, ${options.workers} concurrent writers, 100-byte values, fsync no, median of ` +
            `${rounds} rounds of 1 s in ABBA order:`,
        );
        out(`  A KVClient({ host, port }): ${fmt(ma)} puts/s (${range(a)})`);
        out(`  B KVClient({ nodes }), 3 nodes: ${fmt(mb)} puts/s (${range(b)})`);
        const ca = median(cpuA);
        const cb = median(cpuB);
        out(
          `  client CPU per put: A ${ca.toFixed(2)} µs (${range(cpuA, 2)}), B ${
            cb.toFixed(2)
          } µs ` +
            `(${range(cpuB, 2)})`,
        );
        out(
          `  cost of topology tracking: ${(((ma - mb) / ma) * 100).toFixed(1)}% of puts/s, ` +
            `${(((cb - ca) / ca) * 100).toFixed(1)}% of client CPU per put (target ≤ 3%)`,
        );
      } finally {
        await direct.close();
        await tracked.close();
      }
    } finally {
      await stop();
    }
  });
}

async function failoverSection(options: Options, out: (line: string) => void): Promise<void> {
  const resumes: number[] = [];
  const scripts: number[] = [];
  const afterScripts: number[] = [];
  for (let run = 0; run < options.failovers; run++) {
    await withTempDir(async (dir) => {
      const { master, r1, r2, stop } = await cluster(dir, FAST_FAILURE_FLAGS);
      try {
        await using client = new KVClient({
          nodes: [at(master.port), at(r1.port), at(r2.port)],
          timeoutMs: 2000,
          retryTimeoutMs: 60_000,
          maxRetries: 1000,
        });
        let stopLoop = false;
        let killedAtMs = 0;
        let resumedAtMs = 0;
        let acked = 0;
        const loop = (async () => {
          for (let i = 0; !stopLoop; i++) {
            await client.put(`k${i}`, "v");
            acked++;
            if (killedAtMs > 0 && resumedAtMs === 0) resumedAtMs = performance.now();
          }
        })();
        await waitUntil("writes flowing", () => acked >= 200);
        await master.kill();
        killedAtMs = performance.now();
        const script = await runFailoverScript([
          "--old-master",
          at(master.port),
          "--replicas",
          `${at(r1.port)},${at(r2.port)}`,
        ]);
        if (script.code !== 0) {
          throw new Error(`failover.sh failed:\n${script.stdout}${script.stderr}`);
        }
        const scriptEndMs = killedAtMs + script.elapsedMs;
        await waitUntil("the writer resumed", () => resumedAtMs > 0, 60_000);
        stopLoop = true;
        await loop;
        resumes.push(resumedAtMs - killedAtMs);
        scripts.push(script.elapsedMs);
        afterScripts.push(resumedAtMs - scriptEndMs);
      } finally {
        await stop();
      }
    });
  }
  out(`writer loop across a master kill + scripts/failover.sh (${options.failovers} runs):`);
  out(
    `  kill → first acknowledged write on the new master: median ${fmt(median(resumes))} ms ` +
      `(runs ${resumes.map(fmt).join(", ")} ms)`,
  );
  out(
    `  of which failover.sh ran: median ${fmt(median(scripts))} ms (its last step waits for the ` +
      `other replica to catch up, so writes may resume before it ends); first write relative ` +
      `to the script's end: median ${fmt(median(afterScripts))} ms`,
  );
}

/** Entry point of `deno task bench client`. */
export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const runs = (section: string) => options.only === undefined || options.only.has(section);
  const out = (line: string) => console.log(line);
  out(`# client benchmark (noisy: shared 2-core machine), ${new Date().toISOString()}`);
  out(`# command: deno task bench client ${args.join(" ")}`.trimEnd());
  out(`# load average at start: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  if (runs("reads")) await readsSection(options, out);
  if (runs("put")) await putSection(options, out);
  if (runs("failover")) await failoverSection(options, out);
}
