/**
 * `deno task bench failover [--kills N] [--ttl-seconds S] [--rate W] [--writers N]
 * [--only sentinel,async,sync] [--out DIR]`: kill the master N times under a steady write load
 * and report, per kill, the seconds from the kill to the first write acknowledged by the new
 * master, and the writes acknowledged and then lost. The same run measures Redis Sentinel
 * (`bench_failover_sentinel.ts`: 3 sentinels, `down-after-milliseconds` = the TTL, a master and
 * two replicas) and kvstore on etcd (`bench_failover_kvstore.ts`: 3 nodes,
 * `--failover-ttl-seconds` = the TTL), async and sync.
 *
 * The writers are the same for every system: `--writers` connections (8) at `--rate` writes/s
 * (400) in all, each `SET w<i>:<n> w<i>:<n>` with a new key per acknowledged write. After an error
 * a writer asks where the master is (Sentinel: `SENTINEL get-master-addr-by-name`; kvstore: each
 * node's `INFO replication`) every 20 ms. Each round: wait until the cluster is whole (every replica streaming), write
 * for a second, SIGKILL the master by PID, wait for the first write a new master acknowledges,
 * restart the killed node on its port (it rejoins as a replica), wait until the cluster is whole
 * again, then read every key acknowledged in the round back from the master: one missing is a
 * write acknowledged and lost.
 *
 * Everything runs on 127.0.0.1 (free ports, temp dirs); every process is killed by PID at the end.
 * Figures on a shared 2-core machine are noisy: read them as direction.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { RespConn } from "../tests/helpers/cluster.ts";
import { benchRecord, gitCommit, writeBenchOutput } from "./bench_charts.ts";
import { kvstoreFailoverCluster } from "./bench_failover_kvstore.ts";
import { sentinelFailoverCluster } from "./bench_failover_sentinel.ts";
import { type FailoverCluster, sleep, text, waitFor, withTimeout } from "./failover_cluster.ts";

const decoder = new TextDecoder();
/** Keys per MGET when the acknowledged keys are read back. */
const CHECK_BATCH = 500;

interface Options {
  kills: number;
  ttlSeconds: number;
  rate: number;
  writers: number;
  only: Set<string>;
  out?: string;
}

/** One round's figures. */
interface KillResult {
  /** Seconds from the SIGKILL to the first write acknowledged by another node (NaN: none). */
  failoverSeconds: number;
  acked: number;
  lost: number;
}

interface SystemResult {
  label: string;
  kills: KillResult[];
}

// ------------------------------------------------------------------ the writers

interface Ack {
  key: string;
  port: number;
  atMs: number;
}

/** `--writers` loops writing new keys at `--rate` in all, following the master on errors. */
class WriteLoad {
  readonly acks: Ack[] = [];
  #stopped = false;
  readonly #loops: Promise<void>[] = [];

  constructor(readonly cluster: FailoverCluster, writers: number, rate: number) {
    const intervalMs = (1000 * writers) / rate;
    for (let i = 0; i < writers; i++) this.#loops.push(this.#writer(i, intervalMs));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }

  async #writer(id: number, intervalMs: number): Promise<void> {
    let conn: RespConn | undefined;
    let port = 0;
    let seq = 0;
    let nextAtMs = performance.now();
    // Bounded by stop(): every pass waits for its pace, a reply, or 20 ms after an error.
    while (!this.#stopped) {
      const waitMs = nextAtMs - performance.now();
      if (waitMs > 0) await sleep(waitMs);
      nextAtMs = Math.max(nextAtMs + intervalMs, performance.now() - 10 * intervalMs);
      const key = `w${id}:${seq}`;
      try {
        if (conn === undefined) {
          const master = await this.cluster.master();
          if (master === undefined) throw new Error("no master known");
          port = master;
          conn = await withTimeout(RespConn.open(port), 1000, "connect");
        }
        const reply = await withTimeout(conn.send(["SET", key, key]), 10_000, "SET");
        if (reply !== "OK") throw new Error(text(reply));
        this.acks.push({ key, port, atMs: performance.now() });
        seq++;
      } catch {
        conn?.close();
        conn = undefined;
        await sleep(20);
      }
    }
    conn?.close();
  }
}

/** Keys of `acks` the master at `port` does not hold with their value. */
async function lostKeys(port: number, acks: readonly Ack[]): Promise<number> {
  const conn = await RespConn.open(port);
  let lost = 0;
  try {
    for (let i = 0; i < acks.length; i += CHECK_BATCH) {
      const keys = acks.slice(i, i + CHECK_BATCH).map((a) => a.key);
      const reply = await withTimeout(conn.send(["MGET", ...keys]), 10_000, "MGET");
      if (!Array.isArray(reply)) throw new Error(`MGET: ${text(reply)}`);
      reply.forEach((value, j) => {
        if (!(value instanceof Uint8Array) || decoder.decode(value) !== keys[j]) lost++;
      });
    }
  } finally {
    conn.close();
  }
  return lost;
}

// ------------------------------------------------------------------ rounds

async function runKills(
  cluster: FailoverCluster,
  options: Options,
  out: (line: string) => void,
): Promise<KillResult[]> {
  const results: KillResult[] = [];
  await waitFor(`${cluster.label}: the cluster whole`, () => cluster.whole());
  const load = new WriteLoad(cluster, options.writers, options.rate);
  let checkedUpTo = 0;
  try {
    for (let round = 1; round <= options.kills; round++) {
      await sleep(1000);
      const masterPort = await cluster.master();
      const victim = cluster.members.find((m) => m.port === masterPort);
      if (victim === undefined) throw new Error(`${cluster.label}: no master to kill`);
      const killedAt = performance.now();
      await victim.kill();
      let failoverSeconds = NaN;
      await waitFor(`${cluster.label}: a write acknowledged by a new master`, () => {
        const ack = load.acks.findLast((a) => a.atMs > killedAt && a.port !== victim.port);
        if (ack === undefined) return Promise.resolve(false);
        const first = load.acks.find((a) => a.atMs > killedAt && a.port !== victim.port);
        failoverSeconds = ((first ?? ack).atMs - killedAt) / 1000;
        return Promise.resolve(true);
      });
      await victim.restart();
      await waitFor(`${cluster.label}: the cluster whole again`, () => cluster.whole());
      const end = load.acks.length;
      const master = await cluster.master();
      if (master === undefined) throw new Error(`${cluster.label}: no master after the round`);
      const round_acks = load.acks.slice(checkedUpTo, end);
      const lost = await lostKeys(master, round_acks);
      checkedUpTo = end;
      results.push({ failoverSeconds, acked: round_acks.length, lost });
      out(
        `  ${cluster.label} kill ${round}: ${victim.name} (port ${victim.port}); first write on ` +
          `the new master after ${failoverSeconds.toFixed(2)} s; ${round_acks.length} acked, ` +
          `${lost} lost`,
      );
    }
  } finally {
    await load.stop();
  }
  return results;
}

// ------------------------------------------------------------------ report

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function table(results: SystemResult[], out: (line: string) => void): void {
  out("");
  out(
    "| system | kills | failover p50 | failover max | writes acked | acked then lost |",
  );
  out("|---|---|---|---|---|---|");
  for (const { label, kills } of results) {
    const seconds = kills.map((k) => k.failoverSeconds).filter(Number.isFinite).sort((a, b) =>
      a - b
    );
    const acked = kills.reduce((sum, k) => sum + k.acked, 0);
    const lost = kills.reduce((sum, k) => sum + k.lost, 0);
    const lostKills = kills.filter((k) => k.lost > 0).length;
    out(
      `| ${label} | ${kills.length} | ${percentile(seconds, 50).toFixed(2)} s | ` +
        `${(seconds.at(-1) ?? NaN).toFixed(2)} s | ${acked} | ${lost} (in ${lostKills} kills) |`,
    );
  }
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      kills: { type: "string", default: "10" },
      "ttl-seconds": { type: "string", default: "3" },
      rate: { type: "string", default: "400" },
      writers: { type: "string", default: "8" },
      only: { type: "string" },
      out: { type: "string" },
    },
  });
  const number = (name: string, raw: string, min: number) => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`--${name} must be a whole number of at least ${min}, not ${raw}`);
    }
    return value;
  };
  return {
    kills: number("kills", values.kills, 1),
    ttlSeconds: number("ttl-seconds", values["ttl-seconds"], 2),
    rate: number("rate", values.rate, 1),
    writers: number("writers", values.writers, 1),
    only: new Set((values.only ?? "sentinel,async,sync").split(",")),
    out: values.out,
  };
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "kvstore-bench-failover-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function measure(
  start: (dir: string) => Promise<FailoverCluster>,
  options: Options,
  out: (line: string) => void,
): Promise<SystemResult> {
  return await withTempDir(async (dir) => {
    const cluster = await start(dir);
    try {
      out(`${cluster.label}:`);
      return { label: cluster.label, kills: await runKills(cluster, options, out) };
    } finally {
      await cluster.close();
    }
  });
}

export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const started = { at: new Date(), commit: await gitCommit() };
  const out = (line: string) => console.log(line);
  out(`# failover benchmark (noisy: shared 2-core machine), ${started.at.toISOString()}`);
  out(`# command: deno task bench failover ${args.join(" ")}`.trimEnd());
  out(
    `# ${options.kills} kills each; detection timeout ${options.ttlSeconds} s (Sentinel's ` +
      `down-after-milliseconds, kvstore's --failover-ttl-seconds); ${options.writers} writers, ` +
      `${options.rate} writes/s in all`,
  );
  const results: SystemResult[] = [];
  if (options.only.has("sentinel")) {
    results.push(
      await measure((dir) => sentinelFailoverCluster(dir, options.ttlSeconds), options, out),
    );
  }
  for (const mode of ["async", "sync"] as const) {
    if (!options.only.has(mode)) continue;
    results.push(
      await measure(
        (dir) => kvstoreFailoverCluster(dir, options.ttlSeconds, mode),
        options,
        out,
      ),
    );
  }
  table(results, out);
  if (options.out !== undefined) {
    const record = benchRecord("failover", args, started, results);
    for (const path of await writeBenchOutput(options.out, record, {})) out(`wrote ${path}`);
  }
}
