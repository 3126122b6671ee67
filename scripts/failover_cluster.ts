/**
 * What `deno task bench failover` knows of a cluster under test (Redis Sentinel's, kvstore's on
 * etcd), and the small bounded helpers both halves use to talk to their nodes.
 *
 * @module
 */
import type { RespValue } from "../src/protocol/resp.ts";
import { parseInfo, RespConn } from "../tests/helpers/cluster.ts";

const decoder = new TextDecoder();
/** Longest wait for one step of a round (a failover, a rejoin) before the round is given up. */
const STEP_TIMEOUT_MS = 60_000;

/** One node of a cluster under test, by its port; killed and restarted by PID. */
export interface Member {
  readonly name: string;
  readonly port: number;
  /** SIGKILL by PID; resolves once it exited. */
  kill(): Promise<void>;
  /** Starts it again on its port (and data directory); resolves once it listens. */
  restart(): Promise<void>;
}

/** A cluster with automatic failover, as the writers and the rounds see it. */
export interface FailoverCluster {
  readonly label: string;
  readonly members: readonly Member[];
  /** The master's port as this system's clients learn it, or undefined when none is known. */
  master(): Promise<number | undefined>;
  /** Every node up, one master, every replica streaming from it. */
  whole(): Promise<boolean>;
  close(): Promise<void>;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 20 ms (its errors count as not yet) until true, at most `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = STEP_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch {
      // not yet (a node restarting)
    }
    await sleep(20);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A RESP reply as text (an error as `CODE message`). */
export function text(value: RespValue): string {
  if (value instanceof Uint8Array) return decoder.decode(value);
  if (typeof value === "object" && value !== null && "code" in value) {
    return `${value.code} ${value.message}`;
  }
  return String(value);
}

/** One command on a new connection, bounded by `timeoutMs`. */
export async function ask(port: number, parts: string[], timeoutMs = 1000): Promise<RespValue> {
  const conn = await withTimeout(RespConn.open(port), timeoutMs, "connect");
  try {
    return await withTimeout(conn.send(parts), timeoutMs, parts[0]);
  } finally {
    conn.close();
  }
}

/** `INFO section` of the node at `port`, as a map. */
export async function info(port: number, section: string): Promise<Map<string, string>> {
  return parseInfo(text(await ask(port, ["INFO", section])));
}

/** `promise`, or a rejection after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
