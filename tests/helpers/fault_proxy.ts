/**
 * A small TCP proxy on 127.0.0.1 (a free port) for partition tests, controlled from the test:
 *
 * - `pass`: bytes flow both ways.
 * - `blackhole`: connections stay open (and new ones are accepted) but every byte, both ways, is
 *   read and discarded: the peers see silence, never a reset. This is a network partition as a
 *   sender sees it; only a timeout can tell.
 * - `reset`: every open connection is closed at once and new ones are closed on accept.
 *
 * And a latency: with `setDelay(ms)` every chunk is forwarded `ms` later than it arrived (both
 * ways, order kept, throughput unchanged): a slow link or a far node. And a bandwidth: with
 * `setRateLimit(bytesPerSecond)` each direction of each connection forwards at most that many
 * bytes a second (a 10 MB/s WAN link, for benchmarks of replication over it).
 *
 * @module
 */

/** What the proxy does with traffic. */
export type FaultMode = "pass" | "blackhole" | "reset";

/** Counters of a {@link FaultProxy}. */
export interface FaultProxyStats {
  accepted: number;
  open: number;
  passedBytes: number;
  droppedBytes: number;
}

interface Pair {
  client: Deno.Conn;
  upstream: Deno.Conn | undefined;
}

/** A running proxy in front of `127.0.0.1:<upstreamPort>`. */
export class FaultProxy {
  readonly port: number;
  #mode: FaultMode = "pass";
  #delayMs = 0;
  #bytesPerSecond = Infinity;
  readonly #listener: Deno.Listener;
  readonly #pairs = new Set<Pair>();
  readonly #stats: FaultProxyStats = { accepted: 0, open: 0, passedBytes: 0, droppedBytes: 0 };
  readonly #accepting: Promise<void>;

  private constructor(listener: Deno.Listener, readonly upstreamPort: number) {
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#acceptLoop();
  }

  /** Starts a proxy on 127.0.0.1 port 0 forwarding to 127.0.0.1:`upstreamPort`. */
  static start(upstreamPort: number): FaultProxy {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new FaultProxy(listener, upstreamPort);
  }

  /** Current mode. */
  get mode(): FaultMode {
    return this.#mode;
  }

  /** Counters since start. */
  get stats(): FaultProxyStats {
    return { ...this.#stats, open: this.#pairs.size };
  }

  /** Switches mode; `reset` closes every open connection now. */
  setMode(mode: FaultMode): void {
    this.#mode = mode;
    if (mode === "reset") { for (const pair of [...this.#pairs]) this.#closePair(pair); }
  }

  /** Forwards every chunk `delayMs` after it arrived, both ways (0: at once). */
  setDelay(delayMs: number): void {
    this.#delayMs = delayMs;
  }

  /** Forwards at most `bytesPerSecond` per direction of each connection (Infinity: no limit). */
  setRateLimit(bytesPerSecond: number): void {
    this.#bytesPerSecond = bytesPerSecond > 0 ? bytesPerSecond : Infinity;
  }

  /** Stops accepting and closes every connection. */
  async close(): Promise<void> {
    this.#listener.close();
    for (const pair of [...this.#pairs]) this.#closePair(pair);
    await this.#accepting;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      this.#stats.accepted++;
      if (this.#mode === "reset") {
        client.close();
        continue;
      }
      const pair: Pair = { client, upstream: undefined };
      this.#pairs.add(pair);
      this.#serve(pair);
    }
  }

  async #serve(pair: Pair): Promise<void> {
    try {
      pair.upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.upstreamPort });
    } catch {
      this.#closePair(pair);
      return;
    }
    if (!this.#pairs.has(pair)) {
      pair.upstream.close();
      return;
    }
    const upstream = pair.upstream;
    await Promise.all([
      this.#pump(pair, pair.client, upstream),
      this.#pump(pair, upstream, pair.client),
    ]);
  }

  async #pump(pair: Pair, from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    // Delayed chunks, oldest first, and the loop that forwards them when due.
    const delayed: { bytes: Uint8Array; dueMs: number }[] = [];
    let wake: (() => void) | undefined;
    let reading = true;
    // The rate limit: when the link is free again (each chunk holds it for its bytes' time).
    let linkFreeAtMs = 0;
    const throttle = async (bytes: number) => {
      if (this.#bytesPerSecond === Infinity) return;
      const nowMs = performance.now();
      const startMs = Math.max(nowMs, linkFreeAtMs);
      linkFreeAtMs = startMs + (bytes * 1000) / this.#bytesPerSecond;
      if (linkFreeAtMs - nowMs > 1) {
        await new Promise((resolve) => setTimeout(resolve, linkFreeAtMs - nowMs));
      }
    };
    const forwarder = (async () => {
      for (;;) {
        const next = delayed[0];
        if (next === undefined) {
          if (!reading) return;
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        const waitMs = next.dueMs - performance.now();
        if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
        delayed.shift();
        let written = 0;
        while (written < next.bytes.length) written += await to.write(next.bytes.subarray(written));
        this.#stats.passedBytes += next.bytes.length;
      }
    })().catch(() => this.#closePair(pair));
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (this.#mode !== "pass") {
          this.#stats.droppedBytes += n;
          continue;
        }
        if (this.#delayMs > 0 || delayed.length > 0) {
          delayed.push({ bytes: buffer.slice(0, n), dueMs: performance.now() + this.#delayMs });
          wake?.();
          wake = undefined;
          continue;
        }
        await throttle(n);
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
        this.#stats.passedBytes += n;
      }
    } catch {
      // A closed or reset side ends both directions.
    }
    reading = false;
    wake?.();
    await forwarder;
    this.#closePair(pair);
  }

  #closePair(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    for (const conn of [pair.client, pair.upstream]) {
      try {
        conn?.close();
      } catch {
        // already closed
      }
    }
  }
}
