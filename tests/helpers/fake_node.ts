/**
 * A fake node on 127.0.0.1 for attacks on clients: it parses RESP requests and answers each as
 * the test says (raw bytes, silence, or a closed connection), so a test can play a node that
 * lies about its role, answers something huge, or speaks garbage.
 *
 * @module
 */
import { RequestParser } from "../../src/protocol/mod.ts";

/** What the fake answers to one request: bytes to send, nothing, or a closed connection. */
export type FakeAnswer = Uint8Array | string | "silence" | "close";

/** A running fake node. */
export interface FakeNode extends AsyncDisposable {
  readonly port: number;
  /** `host:port`. */
  readonly address: string;
  /** Requests received, as upper-case command names. */
  readonly received: string[];
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A RESP bulk string of `text`. */
export function bulk(text: string): string {
  return `$${encoder.encode(text).length}\r\n${text}\r\n`;
}

/** Starts a fake node that answers each request with `answer(words)`. */
export function startFakeNode(answer: (words: string[]) => FakeAnswer): FakeNode {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const received: string[] = [];
  const connections = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    connections.add(conn);
    const parser = new RequestParser({ maxRequestBytes: 1 << 20 });
    let buffer = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(chunk);
        if (n === null) break;
        const joined = new Uint8Array(buffer.length + n);
        joined.set(buffer);
        joined.set(chunk.subarray(0, n), buffer.length);
        let offset = 0;
        for (;;) {
          const request = parser.next(joined, offset);
          offset = parser.offset;
          if (request === undefined) break;
          if (request.kind !== "request") continue;
          const words = [
            decoder.decode(request.name),
            ...request.args.map((a) => decoder.decode(a)),
          ];
          received.push(words[0].toUpperCase());
          const reply = answer(words);
          if (reply === "close") {
            conn.close();
            return;
          }
          if (reply === "silence") continue;
          const bytes = typeof reply === "string" ? encoder.encode(reply) : reply;
          let written = 0;
          while (written < bytes.length) written += await conn.write(bytes.subarray(written));
        }
        buffer = joined.slice(offset);
      }
    } catch {
      // Closed by the peer or by close().
    } finally {
      connections.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };
  const accepting = (async () => {
    for (;;) {
      try {
        serve(await listener.accept());
      } catch {
        return;
      }
    }
  })();
  const close = async () => {
    try {
      listener.close();
    } catch {
      // Closed already.
    }
    for (const conn of connections) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await accepting;
  };
  return {
    port,
    address: `127.0.0.1:${port}`,
    received,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A TOPOLOGY document (see src/replication/topology.ts) with `overrides` on top. */
export function topologyJson(overrides: {
  address: string;
  role: "master" | "replica";
  epoch: number;
  lsn?: number;
  master?: { address: string; epoch: number; link_status?: "up" | "down" } | null;
  replicas?: { address: string; lsn?: number; lag_ms?: number }[];
}): string {
  const master = overrides.master === undefined
    ? (overrides.role === "master" ? { address: overrides.address, epoch: overrides.epoch } : null)
    : overrides.master;
  return JSON.stringify({
    version: 1,
    node: {
      address: overrides.address,
      run_id: crypto.randomUUID(),
      role: overrides.role,
      epoch: overrides.epoch,
      lsn: overrides.lsn ?? 1000,
      deposed: false,
      replication_mode: "async",
    },
    master: master === null ? null : {
      address: master.address,
      epoch: master.epoch,
      lsn: overrides.lsn ?? 1000,
      link_status: master.link_status ?? "up",
      last_io_ms: 0,
      full_sync_in_progress: false,
      lag_records: 0,
      lag_ms: 0,
    },
    replicas: (overrides.replicas ?? []).map((r) => ({
      address: r.address,
      state: "streaming",
      healthy: true,
      lsn: r.lsn ?? 1000,
      lag_records: 0,
      lag_ms: r.lag_ms ?? 0,
    })),
    coordinator: null,
  });
}
