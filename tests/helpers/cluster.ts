/**
 * Cluster tests run real kvstore processes (`cli.ts serve`, through `server_process.ts`) on
 * 127.0.0.1: nodes with data directories that survive restarts, INFO as a map, a pipelined RESP
 * connection, the text protocol, complete dumps, and "every replica caught up".
 *
 * @module
 */
import {
  INCOMPLETE,
  RespCommandWriter,
  RespReplyParser,
  type RespValue,
} from "../../src/protocol/resp.ts";
import {
  type LogLine,
  type ServerExit,
  type ServerProcess,
  startServerProcess,
} from "./server_process.ts";

import { waitUntil } from "./wait.ts";

export { waitUntil };

const HOST = "127.0.0.1";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A running `kvstore serve` child process (see `server_process.ts`) with cluster conveniences. */
export class KvNode {
  readonly #process: ServerProcess;

  private constructor(readonly name: string, process: ServerProcess) {
    this.#process = process;
  }

  /**
   * Starts a node in `dataDir` (kept afterwards); `args` are `serve` flags (add `--port N` to
   * reuse a port, else port 0). `denoArgs` go to `deno run` (benchmarks: `--cpu-prof`).
   * Resolves once it listens.
   */
  static async start(
    name: string,
    dataDir: string,
    args: string[] = [],
    denoArgs: string[] = [],
  ): Promise<KvNode> {
    const process = await startServerProcess({ args, dataDir, denoArgs, startTimeoutMs: 30_000 });
    const node = new KvNode(name, process);
    liveNodes.add(node);
    startedNodes.push(node);
    return node;
  }

  get port(): number {
    return this.#process.port;
  }

  get pid(): number {
    return this.#process.pid;
  }

  /** Every log line so far. */
  get logs(): LogLine[] {
    return this.#process.logs;
  }

  /** Every log message so far, one per line. */
  logText(): string {
    return this.logs.map((l) => `${l.level} ${l.message}`).join("\n");
  }

  /** Log lines whose message matches `pattern`. */
  logsMatching(pattern: RegExp): LogLine[] {
    return this.logs.filter((l) => pattern.test(l.message));
  }

  /** Graceful stop (SIGTERM) or `kill()`. */
  async stop(): Promise<ServerExit> {
    liveNodes.delete(this);
    return await this.#process.stop();
  }

  /** SIGKILL. */
  async kill(): Promise<ServerExit> {
    liveNodes.delete(this);
    return await this.#process.kill("SIGKILL");
  }

  /** A new RESP connection to this node. */
  connect(): Promise<RespConn> {
    return RespConn.open(this.port);
  }

  /** Sends one command on a new connection (after `AUTH token` when given); the reply as text. */
  async send(parts: string[], token?: string): Promise<string> {
    const conn = await this.connect();
    try {
      if (token !== undefined) {
        const auth = asText(await conn.send(["AUTH", token]));
        if (auth !== "OK") throw new Error(`AUTH refused by ${this.name}: ${auth}`);
      }
      return asText(await conn.send(parts));
    } finally {
      conn.close();
    }
  }

  /** Requests this node answered so far (`INFO stats`), to tell which node served a call. */
  async commandsProcessed(): Promise<number> {
    return Number((await this.info("stats")).get("total_commands_processed"));
  }

  /** `INFO <section>` as a map of its `key:value` lines. */
  async info(section = "replication"): Promise<Map<string, string>> {
    return parseInfo(await this.send(["INFO", section]));
  }
}

/** Test options for cluster tests: real processes' pipes and timers outlive a test's own ops. */
export const CLUSTER_TEST = { sanitizeOps: false, sanitizeResources: false } as const;

/** Serve flags that make a master notice a lost replica in well under a second. */
export const FAST_FAILURE_FLAGS: readonly string[] = [
  "--replication-timeout",
  "0.5",
  "--replication-health-check-interval",
  "0.3",
  "--replication-retry-backoff-ms",
  "20",
];

/** A master with replicas, as {@link startCluster} starts them. */
export interface TestCluster {
  master: KvNode;
  replicas: KvNode[];
}

/**
 * Starts `replicas` replicas (`r1`, `r2`, ... in `dir/r1`, ...) and then their master (`dir/m`,
 * `--replicas` listing them), each with its extra flags, and waits until every replica streams.
 */
export async function startCluster(
  dir: string,
  replicas: number,
  options: { replicaArgs?: readonly string[]; masterArgs?: readonly string[] } = {},
): Promise<TestCluster> {
  const started: KvNode[] = [];
  for (let i = 1; i <= replicas; i++) {
    started.push(
      await KvNode.start(`r${i}`, `${dir}/r${i}`, ["--replica", ...(options.replicaArgs ?? [])]),
    );
  }
  const master = await KvNode.start("master", `${dir}/m`, [
    "--replicas",
    started.map((r) => `${HOST}:${r.port}`).join(","),
    ...(options.masterArgs ?? []),
  ]);
  await waitUntil("replicas streaming", () => replicasCaughtUp(master), 60_000);
  return { master, replicas: started };
}

/** A port free right now on 127.0.0.1 (for a node that must be told a peer's port first). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Runs `fn` with a fresh temporary directory; afterwards kills every node still running and
 * removes the directory. On failure it prints the last log lines of every node first.
 */
export async function withClusterDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } catch (error) {
    console.error(`cluster logs at the failure:\n${clusterLogTail()}`);
    throw error;
  } finally {
    await killAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const liveNodes = new Set<KvNode>();

/** Nodes started since the last {@link killAll}, running or not (for failure reports). */
const startedNodes: KvNode[] = [];

/** The last log lines of every node started since the last {@link killAll}. */
export function clusterLogTail(linesPerNode = 40): string {
  return startedNodes.map((n) =>
    `--- ${n.name} (port ${n.port}) ---\n` +
    n.logs.slice(-linesPerNode).map((l) => `${l.level} ${l.message}`).join("\n")
  ).join("\n");
}

/** Kills every node still running (use in `finally`). */
export async function killAll(): Promise<void> {
  await Promise.all([...liveNodes].map((n) => n.kill()));
  startedNodes.length = 0;
}

/** Parses INFO text into a map. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** A reply as text (bulk strings decoded). */
export function asText(value: RespValue): string {
  if (value instanceof Uint8Array) return decoder.decode(value);
  if (value === null) return "(nil)";
  if (Array.isArray(value)) return value.map(asText).join(",");
  if (typeof value === "object") return `ERR ${value.code} ${value.message}`;
  return String(value);
}

/** One pipelined RESP connection. */
export class RespConn {
  readonly #conn: Deno.Conn;
  readonly #writer = new RespCommandWriter();
  readonly #parser = new RespReplyParser();
  readonly #waiting: { resolve(v: RespValue): void; reject(e: Error): void }[] = [];
  #buffer = new Uint8Array(64 * 1024);
  #end = 0;
  #closed = false;
  /** The read loop ended (the peer closed, or a reset): nothing sent now would be answered. */
  #ended = false;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#readLoop();
  }

  static async open(port: number): Promise<RespConn> {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.setNoDelay(true);
    return new RespConn(conn);
  }

  /** Sends one command; resolves with its reply (rejects if the connection closes first). */
  send(parts: (string | Uint8Array)[]): Promise<RespValue> {
    // A request written after the peer's close would wait for ever (say, to a killed master).
    if (this.#ended) return Promise.reject(new Error("connection closed"));
    this.#writer.length = 0;
    this.#writer.command(parts);
    const bytes = this.#writer.bytes.slice();
    const reply = new Promise<RespValue>((resolve, reject) =>
      this.#waiting.push({ resolve, reject })
    );
    (async () => {
      let written = 0;
      while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
    })().catch(() => this.#failAll());
    return reply;
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.#end === this.#buffer.length) {
          const bigger = new Uint8Array(this.#buffer.length * 2);
          bigger.set(this.#buffer);
          this.#buffer = bigger;
        }
        const n = await this.#conn.read(this.#buffer.subarray(this.#end));
        if (n === null) break;
        this.#end += n;
        const data = this.#buffer.subarray(0, this.#end);
        let start = 0;
        for (;;) {
          const value = this.#parser.next(data, start);
          start = this.#parser.offset;
          if (value === INCOMPLETE) break;
          this.#waiting.shift()?.resolve(value);
        }
        this.#buffer.copyWithin(0, start, this.#end);
        this.#end -= start;
      }
    } catch {
      // closed or reset
    }
    this.#ended = true;
    this.#failAll();
  }

  #failAll(): void {
    for (const w of this.#waiting.splice(0)) w.reject(new Error("connection closed"));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}

/** Sends text-protocol lines and returns the reply lines (one per request). */
export async function textRequest(port: number, lines: string[]): Promise<string[]> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    await conn.write(encoder.encode(lines.map((l) => `${l}\n`).join("")));
    const replies: string[] = [];
    let pending = "";
    const buffer = new Uint8Array(64 * 1024);
    while (replies.length < lines.length) {
      const n = await conn.read(buffer);
      if (n === null) break;
      pending += decoder.decode(buffer.subarray(0, n));
      let newline;
      while ((newline = pending.indexOf("\n")) !== -1) {
        replies.push(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    }
    return replies;
  } finally {
    conn.close();
  }
}

/** One command on a new connection to 127.0.0.1:`port`; its reply as text. */
export async function callAt(port: number, ...words: string[]): Promise<string> {
  const conn = await RespConn.open(port);
  try {
    return asText(await conn.send(words));
  } finally {
    conn.close();
  }
}

/** Every pair of a node (`READRANGE` over the whole key space, in byte order), as `key=value`. */
export async function dump(node: KvNode): Promise<string[]> {
  return await dumpAt(node.port);
}

/** {@link dump} of the node listening on 127.0.0.1:`port`. */
export async function dumpAt(port: number): Promise<string[]> {
  const conn = await RespConn.open(port);
  try {
    const reply = await conn.send([
      "READRANGE",
      new Uint8Array([0]),
      new Uint8Array(8).fill(0xff),
    ]);
    if (reply === null) return [];
    if (!Array.isArray(reply)) throw new Error(`READRANGE answered ${asText(reply)}`);
    const out: string[] = [];
    for (let i = 0; i < reply.length; i += 2) {
      out.push(`${asText(reply[i])}=${asText(reply[i + 1])}`);
    }
    return out;
  } finally {
    conn.close();
  }
}

/** Per-replica fields of a master's INFO replication (`replica0:k=v,...`). */
export function replicaFields(info: Map<string, string>, index: number): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of (info.get(`replica${index}`) ?? "").split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return fields;
}

/** True when every replica of `master` acknowledged its LSN and streams. */
export async function replicasCaughtUp(master: KvNode): Promise<boolean> {
  const info = await master.info();
  const total = Number(info.get("total_replicas") ?? 0);
  const masterLsn = info.get("master_lsn");
  for (let i = 0; i < total; i++) {
    const r = replicaFields(info, i);
    if (r.get("acked_lsn") !== masterLsn || r.get("state") !== "streaming") return false;
  }
  return total > 0;
}
