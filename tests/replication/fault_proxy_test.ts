import assert from "node:assert/strict";
import { FaultProxy } from "../helpers/fault_proxy.ts";

/** An echo server on 127.0.0.1, port 0. */
function startEcho(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buffer = new Uint8Array(1024);
        try {
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            await conn.write(buffer.subarray(0, n));
          }
        } catch {
          // closed
        }
        conns.delete(conn);
        try {
          conn.close();
        } catch {
          // closed
        }
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const c of conns) c.close();
    },
  };
}

/** Reads once, or returns "timeout" after `ms`. */
async function readWithin(conn: Deno.Conn, ms: number): Promise<string | null | "timeout"> {
  const buffer = new Uint8Array(1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  const read = conn.read(buffer).then(
    (n) => n === null ? null : new TextDecoder().decode(buffer.subarray(0, n)),
    () => null,
  );
  const result = await Promise.race([read, timeout]);
  clearTimeout(timer);
  if (result === "timeout") {
    conn.close();
    await read;
  }
  return result;
}

Deno.test("fault proxy: passes, blackholes without resetting, and resets", async () => {
  const echo = startEcho();
  const proxy = FaultProxy.start(echo.port);
  const encoder = new TextEncoder();
  try {
    const a = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await a.write(encoder.encode("hello"));
    assert.equal(await readWithin(a, 2000), "hello");

    proxy.setMode("blackhole");
    await a.write(encoder.encode("lost"));
    assert.equal(await readWithin(a, 300), "timeout", "silence, not a reset or EOF");
    const b = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await b.write(encoder.encode("also lost"));
    assert.equal(await readWithin(b, 300), "timeout", "new connections are accepted, then silent");
    assert.ok(proxy.stats.droppedBytes >= "lostalso lost".length);

    proxy.setMode("pass");
    const c = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await c.write(encoder.encode("healed"));
    assert.equal(await readWithin(c, 2000), "healed");

    proxy.setMode("reset");
    assert.equal(await readWithin(c, 2000), null, "open connections are closed");
    const d = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    assert.equal(await readWithin(d, 2000), null, "new connections are closed on accept");
  } finally {
    await proxy.close();
    echo.close();
  }
});
