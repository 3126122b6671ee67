/**
 * `deno task bench topology [--only chain,compression] [--records N] [--samples N]
 * [--rate-mb N]`: figures of the replication topologies, measured in one run on 127.0.0.1
 * (kvstore processes on free ports in temporary directories, each killed by PID at the end).
 *
 * - chain: lag p50/p99 at the end of a 3-hop chain (master → r1 → r2 → r3) and at a direct
 *   replica of the same master, for the same writes: the master's OK until the first read that
 *   sees the value returns, polled on both at once.
 * - compression: a replica `--records` records behind (1,000,000 by default) catches up from the
 *   master's log, for JSON and for random values, with `REPLICATION_COMPRESSION` zstd and off, on
 *   loopback and through the fault proxy limited to `--rate-mb` MB/s (10): catch-up time, records
 *   and MB (uncompressed) per second, bytes on the wire and the ratio, and the master's CPU per MB
 *   sent (user + system of its process while it catches the replica up).
 *
 * Figures on a shared machine are noisy: read them as direction, not as a verdict.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  asText,
  freePort,
  KvNode,
  parseInfo,
  replicaFields,
  RespConn,
  waitUntil,
} from "../tests/helpers/cluster.ts";
import { FaultProxy } from "../tests/helpers/fault_proxy.ts";
import { cpuMeter } from "./process_cpu.ts";

const HOST = "127.0.0.1";
const WARMUP = 2000;
const FAST = ["--fsync", "no", "--replication-health-check-interval", "0.1"];
const decoder = new TextDecoder();

interface Options {
  only: Set<string> | undefined;
  records: number;
  samples: number;
  rateMb: number;
}

function parseOptions(args: string[]): Options {
  const parsed = parseArgs({
    args,
    options: {
      only: { type: "string" },
      records: { type: "string", default: "1000000" },
      samples: { type: "string", default: "2000" },
      "rate-mb": { type: "string", default: "10" },
    },
  });
  const v = parsed.values;
  return {
    only: v.only === undefined ? undefined : new Set(v.only.split(",")),
    records: Number(v.records),
    samples: Number(v.samples),
    rateMb: Number(v["rate-mb"]),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function summary(samplesMs: number[]): string {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 50).toFixed(3)} ms, p99 ${percentile(sorted, 99).toFixed(3)} ` +
    `ms (n=${sorted.length})`;
}

/** Polls `replica` until `key` reads `value`; the ms from `sinceMs` to the read that saw it. */
async function seenAfter(replica: RespConn, key: string, value: string, sinceMs: number) {
  for (let polls = 0; polls < 1_000_000; polls++) {
    const seen = await replica.send(["GET", key]);
    if (seen instanceof Uint8Array && decoder.decode(seen) === value) break;
  }
  return performance.now() - sinceMs;
}

async function chainLag(dir: string, samples: number): Promise<void> {
  const r3 = await KvNode.start("r3", `${dir}/r3`, ["--replica", ...FAST]);
  const r2 = await KvNode.start("r2", `${dir}/r2`, [
    "--replica",
    "--replicas",
    `${HOST}:${r3.port}`,
    ...FAST,
  ]);
  const r1 = await KvNode.start("r1", `${dir}/r1`, [
    "--replica",
    "--replicas",
    `${HOST}:${r2.port}`,
    ...FAST,
  ]);
  const direct = await KvNode.start("direct", `${dir}/d`, ["--replica", ...FAST]);
  const master = await KvNode.start("master", `${dir}/m`, [
    "--replicas",
    `${HOST}:${r1.port},${HOST}:${direct.port}`,
    ...FAST,
  ]);
  const m = await master.connect();
  const end = await r3.connect();
  const near = await direct.connect();
  const chain: number[] = [];
  const star: number[] = [];
  try {
    for (let i = 0; i < samples + WARMUP; i++) {
      const key = `lag:${i % 100}`;
      const value = `v${i}`;
      await m.send(["SET", key, value]);
      const okAt = performance.now();
      const [atEnd, atDirect] = await Promise.all([
        seenAfter(end, key, value, okAt),
        seenAfter(near, key, value, okAt),
      ]);
      if (i < WARMUP) continue;
      chain.push(atEnd);
      star.push(atDirect);
    }
  } finally {
    for (const conn of [m, end, near]) conn.close();
  }
  console.log(`chain lag, end of master → r1 → r2 → r3: ${summary(chain)}`);
  console.log(`chain lag, direct replica (same writes):  ${summary(star)}`);
  const depth = (await r3.info()).get("chain_depth");
  console.log(`  (r3 reports chain_depth ${depth}; fsync no; ${WARMUP} warm-up writes)`);
  for (const node of [master, r1, r2, r3, direct]) await node.kill();
}

const KINDS = {
  json: (i: number) =>
    JSON.stringify({
      id: i,
      user: `user${(i * 7919) % 100000}`,
      email: `user${(i * 7919) % 100000}@example.com`,
      status: ["pending", "shipped", "delivered"][i % 3],
      total: ((i * 37) % 100000) / 100,
      items: [{ sku: `SKU-${i % 9999}`, qty: 1 + (i % 5) }],
      createdAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    }),
  random: () => crypto.getRandomValues(new Uint8Array(200)), // bytes no codec can shrink
};

/** Writes `records` keys of `kind` values to a master (BATCHPUTs of 100, 8 in flight). */
async function fill(port: number, kind: keyof typeof KINDS, records: number): Promise<void> {
  const conns = await Promise.all(Array.from({ length: 8 }, () => RespConn.open(port)));
  let next = 0;
  await Promise.all(conns.map(async (conn) => {
    while (next < records) {
      const first = next;
      next += 100;
      const words: (string | Uint8Array)[] = ["BATCHPUT"];
      for (let i = first; i < Math.min(first + 100, records); i++) {
        words.push(`order:${i}`, KINDS[kind](i));
      }
      const reply = await conn.send(words);
      if (asText(reply) !== "OK") throw new Error(`BATCHPUT: ${asText(reply)}`);
    }
  }));
  for (const conn of conns) conn.close();
}

interface CatchUp {
  seconds: number;
  rawBytes: number;
  wireBytes: number;
  masterCpuSeconds: number;
  compression: string;
}

/** A new replica of the master in `masterDir` catches up its whole log; the figures. */
async function catchUp(
  dir: string,
  masterDir: string,
  compression: "zstd" | "off",
  rateBytesPerSecond: number,
): Promise<CatchUp> {
  const replicaDir = await Deno.makeTempDir({ dir, prefix: "replica-" });
  const replica = await KvNode.start("replica", replicaDir, ["--replica", ...FAST]);
  const master = await KvNode.start("master", masterDir, [
    ...FAST,
    "--replication-compression",
    compression,
    "--port",
    String(freePort()),
  ]);
  const proxy = FaultProxy.start(replica.port);
  proxy.setRateLimit(rateBytesPerSecond);
  try {
    const cpu = cpuMeter([master.pid]);
    const start = performance.now();
    const added = await master.send(["REPLICAS", "ADD", `${HOST}:${proxy.port}`]);
    if (added !== "OK") throw new Error(`REPLICAS ADD: ${added}`);
    // A master without replicas shows no master_lsn: read it once replicating (nothing is
    // written meanwhile).
    const masterLsn = (await master.info()).get("master_lsn");
    await waitUntil("the replica caught up", async () => {
      const fields = replicaFields(await master.info(), 0);
      return fields.get("acked_lsn") === masterLsn;
    }, 600_000);
    const seconds = (performance.now() - start) / 1000;
    const [masterCpuSeconds] = cpu();
    const fields = replicaFields(parseInfo(await master.send(["INFO", "replication"])), 0);
    return {
      seconds,
      rawBytes: Number(fields.get("sent_bytes")),
      wireBytes: Number(fields.get("wire_bytes")),
      masterCpuSeconds,
      compression: fields.get("compression") ?? "?",
    };
  } finally {
    await proxy.close();
    await master.kill();
    await replica.kill();
    await Deno.remove(replicaDir, { recursive: true });
  }
}

async function compressionFigures(dir: string, options: Options): Promise<void> {
  const rate = options.rateMb * 1e6;
  console.log(
    `catch-up of a replica ${options.records.toLocaleString("en")} records behind ` +
      `(from the master's log; MB are uncompressed record bytes, 1 MB = 10^6 bytes):`,
  );
  console.log(
    "values  link        codec  seconds  records/s   MB/s   wire MB  ratio  master CPU ms/MB",
  );
  for (const kind of ["json", "random"] as const) {
    const masterDir = `${dir}/master-${kind}`;
    const filling = await KvNode.start("fill", masterDir, FAST);
    await fill(filling.port, kind, options.records);
    await filling.stop();
    for (
      const [link, limit] of [["loopback", Infinity], [`${options.rateMb} MB/s`, rate]] as const
    ) {
      for (const codec of ["zstd", "off"] as const) {
        const r = await catchUp(dir, masterDir, codec, limit);
        const mb = r.rawBytes / 1e6;
        console.log(
          `${kind.padEnd(7)} ${link.padEnd(11)} ${codec.padEnd(6)} ${
            r.seconds.toFixed(2).padStart(7)
          } ` +
            `${Math.round(options.records / r.seconds).toLocaleString("en").padStart(10)} ` +
            `${(mb / r.seconds).toFixed(1).padStart(6)} ${
              (r.wireBytes / 1e6).toFixed(1).padStart(9)
            } ` +
            `${(r.rawBytes / r.wireBytes).toFixed(2).padStart(6)} ` +
            `${((r.masterCpuSeconds * 1000) / mb).toFixed(2).padStart(17)}` +
            (r.compression === codec ? "" : `  (link said compression=${r.compression})`),
        );
      }
    }
  }
}

/** Runs the sections; prints the figures and the command. */
export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const run = (section: string) => options.only === undefined || options.only.has(section);
  const loadavg = Deno.loadavg().join(" ");
  console.log(`# topology benchmark (noisy: shared machine), ${new Date().toISOString()}`);
  console.log(`# command: deno task bench topology ${args.join(" ")}`.trimEnd());
  console.log(`# load average at start: ${loadavg}`);
  const dir = await Deno.makeTempDir({ prefix: "kvstore-bench-topology-" });
  try {
    if (run("chain")) await chainLag(dir, options.samples);
    if (run("compression")) await compressionFigures(dir, options);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  console.log(`# load average at end: ${Deno.loadavg().join(" ")}`);
}
