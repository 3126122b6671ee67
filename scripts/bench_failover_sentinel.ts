/**
 * The Redis Sentinel half of `deno task bench failover`: a master and two replicas
 * (`redis-server`, no persistence) watched by three sentinels (`redis-server --sentinel`, quorum 2,
 * `down-after-milliseconds` = the TTL, `failover-timeout` 5 s), all on free loopback ports in one
 * directory, each killed by PID. The writers ask a sentinel where the master is
 * (`SENTINEL get-master-addr-by-name`), as a Sentinel-aware client does.
 *
 * @module
 */
import type { RespValue } from "../src/protocol/resp.ts";
import { freePort } from "../tests/helpers/cluster.ts";
import { ask, type FailoverCluster, info, type Member, text, waitFor } from "./failover_cluster.ts";

const HOST = "127.0.0.1";
/** The name the sentinels monitor the master under. */
const NAME = "bench";
/**
 * Sentinel's `failover-timeout` (default 3 minutes): a sentinel waits twice this before it fails
 * the same master over again, and every third kill hits a master killed before.
 */
const FAILOVER_TIMEOUT_MS = 5000;

/** A `redis-server` (or sentinel) child process on a fixed port, started again on it. */
class RedisProcess implements Member {
  #child: Deno.ChildProcess | undefined;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly args: () => string[],
    readonly running: Set<RedisProcess>,
  ) {}

  async start(): Promise<void> {
    this.#child = new Deno.Command("redis-server", {
      args: this.args(),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.running.add(this);
    await waitFor(
      `${this.name} answering PING`,
      async () => text(await ask(this.port, ["PING"])) === "PONG",
      10_000,
    );
  }

  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    this.running.delete(this);
    if (child === undefined) return;
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
  }

  restart(): Promise<void> {
    return this.start();
  }
}

/**
 * The three data nodes: the first a master, the others its replicas at their first start; a node
 * started again (a killed master) starts empty and alone, as after a crash, and the sentinels make
 * it a replica of the new master.
 */
async function startServers(dir: string, running: Set<RedisProcess>): Promise<RedisProcess[]> {
  const ports = [freePort(), freePort(), freePort()];
  const started = new Set<number>();
  const servers = ports.map((port, i) =>
    new RedisProcess(`redis${i + 1}`, port, () => [
      ...["--port", String(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
      ...["--dir", dir, "--dbfilename", `dump${i}.rdb`],
      ...(i > 0 && !started.has(i) ? ["--replicaof", HOST, String(ports[0])] : []),
    ], running)
  );
  for (const [i, server] of servers.entries()) {
    await server.start();
    started.add(i);
  }
  return servers;
}

async function startSentinels(
  dir: string,
  masterPort: number,
  ttlSeconds: number,
  running: Set<RedisProcess>,
): Promise<RedisProcess[]> {
  const sentinels: RedisProcess[] = [];
  for (let i = 0; i < 3; i++) {
    const port = freePort();
    const conf = `${dir}/sentinel${i}.conf`;
    await Deno.writeTextFile(
      conf,
      [
        `port ${port}`,
        `bind ${HOST}`,
        `dir ${dir}`,
        `sentinel monitor ${NAME} ${HOST} ${masterPort} 2`,
        `sentinel down-after-milliseconds ${NAME} ${ttlSeconds * 1000}`,
        `sentinel failover-timeout ${NAME} ${FAILOVER_TIMEOUT_MS}`,
        `sentinel parallel-syncs ${NAME} 2`,
        "",
      ].join("\n"),
    );
    const sentinel = new RedisProcess(
      `sentinel${i + 1}`,
      port,
      () => [conf, "--sentinel"],
      running,
    );
    await sentinel.start();
    sentinels.push(sentinel);
  }
  return sentinels;
}

/** The fields of a `SENTINEL replicas` entry (a flat array of names and values). */
function fields(entry: RespValue): Map<string, string> {
  const flat = Array.isArray(entry) ? entry.map(text) : [];
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
  return map;
}

/** Every sentinel sees two replicas, neither down, each with its link to the master up. */
async function sentinelsSeeTwoReplicas(sentinels: readonly RedisProcess[]): Promise<boolean> {
  for (const sentinel of sentinels) {
    const reply = await ask(sentinel.port, ["SENTINEL", "replicas", NAME]);
    if (!Array.isArray(reply)) return false;
    const healthy = reply.map(fields).filter((f) =>
      f.get("flags") === "slave" && f.get("master-link-status") === "ok"
    );
    if (healthy.length !== 2) return false;
  }
  return true;
}

/** Redis Sentinel over a master and two replicas, `down-after-milliseconds` = `ttlSeconds`. */
export async function sentinelFailoverCluster(
  dir: string,
  ttlSeconds: number,
): Promise<FailoverCluster> {
  const running = new Set<RedisProcess>();
  const close = async () => {
    await Promise.all([...running].map((p) => p.kill()));
  };
  let servers: RedisProcess[];
  let sentinels: RedisProcess[];
  try {
    servers = await startServers(dir, running);
    sentinels = await startSentinels(dir, servers[0].port, ttlSeconds, running);
  } catch (error) {
    await close();
    throw error;
  }
  const master = async () => {
    for (const sentinel of sentinels) {
      try {
        const reply = await ask(sentinel.port, ["SENTINEL", "get-master-addr-by-name", NAME], 500);
        return Array.isArray(reply) && reply.length === 2 ? Number(text(reply[1])) : undefined;
      } catch {
        // the next sentinel
      }
    }
    return undefined;
  };
  return {
    label: "Redis Sentinel",
    members: servers,
    master,
    whole: async () => {
      const port = await master();
      if (port === undefined) return false;
      const fields = await info(port, "replication");
      if (fields.get("role") !== "master" || fields.get("connected_slaves") !== "2") return false;
      if (!await sentinelsSeeTwoReplicas(sentinels)) return false;
      for (const server of servers) {
        if (server.port === port) continue;
        const replica = await info(server.port, "replication");
        if (replica.get("master_link_status") !== "up") return false;
        if (replica.get("master_sync_in_progress") !== "0") return false;
      }
      return true;
    },
    close,
  };
}
