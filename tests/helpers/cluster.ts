/**
 * Cluster tests run real kvstore processes (`cli.ts serve`) on 127.0.0.1: this helper starts
 * them on port 0 (or a given port, for a restart), reads the JSON `listening` line, keeps every
 * log line for assertions, talks RESP or the text protocol to them, and kills them by PID.
 *
 * @module
 */
import {
  INCOMPLETE,
  RespCommandWriter,
  RespReplyParser,
  type RespValue,
} from "../../src/protocol/resp.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const HOST = "127.0.0.1";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** One log line of a node (its JSON object). */
export type LogLine = Record<string, unknown> & {
  message?: string;
  properties?: Record<string, unknown>;
};

/** A running `kvstore serve` child process. */
export class KvNode {
  readonly logs: LogLine[] = [];
  readonly #child: Deno.ChildProcess;
  #exited = false;
  readonly status: Promise<Deno.CommandStatus>;
  port = 0;

  private constructor(readonly name: string, readonly dataDir: string, readonly args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLI,
        "serve",
        "--host",
        HOST,
        "--data-dir",
        dataDir,
        "--log-format",
        "json",
        ...args,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  /**
   * Starts a node; `args` are `serve` flags (add `--port N` to reuse a port, else port 0).
   * Resolves once it listens.
   */
  static async start(name: string, dataDir: string, args: string[] = []): Promise<KvNode> {
    const withPort = args.includes("--port") ? args : ["--port", "0", ...args];
    const node = new KvNode(name, dataDir, withPort);
    liveNodes.add(node);
    node.port = await node.#readLogs();
    return node;
  }

  /** PID of the process. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves with the port once the listening line is read; keeps reading logs after. */
  #readLogs(): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name} did not listen within 30 s:\n${this.logText()}`)),
        30_000,
      );
      (async () => {
        let pending = "";
        let listening = false;
        for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
          pending += chunk;
          let newline;
          while ((newline = pending.indexOf("\n")) !== -1) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            let record: LogLine;
            try {
              record = JSON.parse(line);
            } catch {
              record = { message: line };
            }
            this.logs.push(record);
            if (!listening && record.properties?.event === "listening") {
              listening = true;
              clearTimeout(timer);
              resolve(Number(record.properties.port));
            }
          }
        }
        clearTimeout(timer);
        if (!listening) {
          reject(new Error(`${this.name} exited before listening:\n${this.logText()}`));
        }
      })();
    });
  }

  /** Every log message so far, one per line. */
  logText(): string {
    return this.logs.map((l) => `${l.level ?? ""} ${l.message ?? JSON.stringify(l)}`).join("\n");
  }

  /** Log lines whose message matches `pattern`. */
  logsMatching(pattern: RegExp): LogLine[] {
    return this.logs.filter((l) => pattern.test(String(l.message ?? "")));
  }

  /** Sends `signal` and waits for the exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // already gone
      }
    }
    const status = await this.status;
    liveNodes.delete(this);
    return status;
  }

  /** SIGKILL. */
  kill(): Promise<Deno.CommandStatus> {
    return this.stop("SIGKILL");
  }

  /** A new RESP connection to this node. */
  connect(): Promise<RespConn> {
    return RespConn.open(this.port);
  }

  /** `INFO <section>` as a map of its `key:value` lines. */
  async info(section = "replication"): Promise<Map<string, string>> {
    const conn = await this.connect();
    try {
      return parseInfo(asText(await conn.send(["INFO", section])));
    } finally {
      conn.close();
    }
  }
}

const liveNodes = new Set<KvNode>();

/** Kills every node still running (use in `finally`). */
export async function killAll(): Promise<void> {
  await Promise.all([...liveNodes].map((n) => n.kill()));
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

/** Waits until `check` is true, polling every 20 ms, at most `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}` + (lastError ? `: ${lastError}` : ""),
  );
}

/** Every pair of a node (`READRANGE` over the whole key space, in byte order). */
export async function dump(node: KvNode): Promise<string[]> {
  const conn = await node.connect();
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
