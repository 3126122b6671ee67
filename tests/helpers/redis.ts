/**
 * A real `redis-server` for reply-for-reply comparisons: started on a free 127.0.0.1 port with no
 * persistence, in a temporary directory, and killed by its PID.
 *
 * @module
 */
import { RespErrorReply } from "../../src/protocol/resp.ts";
import { freePort, RespConn } from "./cluster.ts";

export { hasCommand } from "./has_command.ts";

/** A running redis-server. */
export interface RedisServer extends AsyncDisposable {
  readonly port: number;
  readonly pid: number;
  /** A new RESP connection to it. */
  connect(): Promise<RespConn>;
  /** Kills it (SIGKILL) and removes its directory. */
  stop(): Promise<void>;
}

/** Starts `redis-server` (`extraArgs`, e.g. `["--replicaof", "127.0.0.1", "6379"]`). */
export async function startRedis(extraArgs: string[] = []): Promise<RedisServer> {
  const dir = await Deno.makeTempDir({ prefix: "kvstore-redis-" });
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      ...extraArgs,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited already.
    }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const conn = await RespConn.open(port);
      const pong = await conn.send(["PING"]);
      conn.close();
      // With --requirepass the answer is NOAUTH: it answers all the same.
      if (pong === "PONG" || pong instanceof RespErrorReply) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server did not answer on port ${port} within 10 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    port,
    pid: child.pid,
    connect: () => RespConn.open(port),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
