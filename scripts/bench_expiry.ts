/**
 * `deno task bench expiry [--keys N] [--ttl-ms MS] [--keys-per-turn K]`: what expiry costs.
 *
 * 1. Index memory per key with a TTL: a `KeyIndex` of N keys without expiry times, one of N keys
 *    without them whose values are cached, and one of N keys with them, measured in this process
 *    (`Deno.memoryUsage()` heap + external, after a GC when `--v8-flags=--expose-gc` is given; the
 *    key strings are made first and not counted). A TTL or a cached value widens the slots from
 *    16 to 32 bytes, so a TTL costs 16 bytes a key in an index that never cached, 0 in one that
 *    has.
 * 2. A million keys expiring at once: a kvstore process (`--fsync everysec`) is filled with N keys
 *    (`SET k v PX ttl`, all expiring within the same few ms), then a probe connection sends `GET`
 *    back to back while the master's active expiry deletes them, and prints the longest and the
 *    p99 wait of a request, and how long until `DBSIZE` is 0.
 *
 * Figures are noisy on a shared machine: take /work/bench.lock while running.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KeyIndex } from "../src/storage/key_index.ts";
import { startServerProcess } from "../tests/helpers/server_process.ts";
import { writeAll } from "../src/write_all.ts";
import { Histogram } from "./histogram.ts";

const encoder = new TextEncoder();

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function usedBytes(): number {
  gc();
  gc();
  const usage = Deno.memoryUsage();
  return usage.heapUsed + usage.external;
}

/**
 * How the keys of {@link indexBytesPerKey} are indexed: no expiry and nothing cached (narrow
 * slots), no expiry but values cached (a server that has served reads: wide slots), or with
 * expiry times (wide slots).
 */
type IndexCase = "plain" | "cached" | "ttl";

/**
 * Bytes per key of an index of `names.length` keys in `indexCase` (the key strings are made
 * beforehand: they are the same either way and not counted; nor are the cache's slabs, bounded
 * by VALUE_CACHE_BYTES).
 */
function indexBytesPerKey(names: readonly string[], indexCase: IndexCase): number {
  const segment = { id: 1 };
  const before = usedBytes();
  const index = new KeyIndex<typeof segment>();
  index.reserve(names.length);
  for (let i = 0; i < names.length; i++) {
    const slot = index.insert(names[i], segment, i * 100, 100, indexCase === "ttl" ? 1e13 + i : 0);
    if (indexCase === "cached") index.setCachedAt(slot, i * 128);
  }
  const after = usedBytes();
  if (index.size !== names.length) throw new Error("index lost keys");
  return (after - before) / names.length;
}

function command(words: string[]): Uint8Array {
  let text = `*${words.length}\r\n`;
  for (const word of words) text += `$${encoder.encode(word).length}\r\n${word}\r\n`;
  return encoder.encode(text);
}

/** Reads until `count` replies (one line each: +OK, :n, $-1 or a short bulk) arrived. */
async function readLines(conn: Deno.Conn, count: number, buffer: Uint8Array): Promise<void> {
  let lines = 0;
  while (lines < count) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("server closed the connection");
    for (let i = 0; i < n; i++) if (buffer[i] === 0x0a) lines++;
  }
}

async function fill(port: number, keys: number, expiresAtMs: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buffer = new Uint8Array(1 << 16);
  const batch = 2000;
  for (let first = 0; first < keys; first += batch) {
    const parts: Uint8Array[] = [];
    const last = Math.min(keys, first + batch);
    for (let i = first; i < last; i++) {
      parts.push(command(["SET", `e:${i}`, "v".repeat(32), "PXAT", String(expiresAtMs)]));
    }
    const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    await writeAll(conn, bytes);
    await readLines(conn, last - first, buffer);
  }
  conn.close();
}

async function dbsize(conn: Deno.Conn, buffer: Uint8Array): Promise<number> {
  await writeAll(conn, command(["DBSIZE"]));
  const n = await conn.read(buffer);
  return Number(new TextDecoder().decode(buffer.subarray(1, (n ?? 3) - 2)));
}

/**
 * GETs of the filled keys on `conn`, back to back, until `done()`: the wait of each goes into a
 * histogram; returns how long it ran and the figures as text.
 */
async function probe(
  conn: Deno.Conn,
  keys: number,
  done: () => Promise<boolean>,
): Promise<{ seconds: number; text: string }> {
  const buffer = new Uint8Array(1 << 16);
  const histogram = new Histogram();
  let longestMs = 0;
  let requests = 0;
  const started = performance.now();
  // Bounded: the caller's condition, or 10 minutes.
  while (!(await done()) && performance.now() - started < 600_000) {
    for (let i = 0; i < 200; i++) {
      const sent = performance.now();
      await writeAll(conn, command(["GET", `e:${requests % keys}`]));
      await readLines(conn, 1, buffer);
      const waited = performance.now() - sent;
      histogram.record(waited * 1000);
      longestMs = Math.max(longestMs, waited);
      requests++;
    }
  }
  const p = (q: number) => (histogram.percentileUs(q) / 1000).toFixed(3);
  return {
    seconds: (performance.now() - started) / 1000,
    text: `${requests} GETs, p50 ${p(50)} ms, p99 ${p(99)} ms, longest ${longestMs.toFixed(1)} ms`,
  };
}

/**
 * Prints the index's memory per key without expiry times, with values cached, and with expiry
 * times: what a TTL costs an index that never cached a value, and one that has.
 */
function reportIndexMemory(keys: number): void {
  const names = Array.from({ length: keys }, (_, i) => `key:${String(i).padStart(12, "0")}`);
  // Three times each, alternating; the medians (the first builds also warm up code and tables).
  const runs: Record<IndexCase, number[]> = { plain: [], cached: [], ttl: [] };
  for (let round = 0; round < 3; round++) {
    for (const indexCase of ["plain", "cached", "ttl"] as const) {
      runs[indexCase].push(indexBytesPerKey(names, indexCase));
    }
  }
  const median = (figures: number[]) => figures.sort((x, y) => x - y)[1];
  const plain = median(runs.plain);
  const cached = median(runs.cached);
  const withTtl = median(runs.ttl);
  const plus = (bytes: number) => `${bytes >= 0 ? "+" : ""}${bytes.toFixed(1)} B`;
  console.log(
    `index memory per key (key strings not counted, median of 3): ${plain.toFixed(1)} B ` +
      `without TTL, ${cached.toFixed(1)} B without TTL once values are cached, ` +
      `${withTtl.toFixed(1)} B with TTL: a TTL costs ${plus(withTtl - plain)} per key in an ` +
      `index that never cached a value, ${plus(withTtl - cached)} in one that has`,
  );
}

/** Runs the benchmark (`args`: the command line after `expiry`). */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      keys: { type: "string", default: "1000000" },
      "ttl-ms": { type: "string", default: "60000" },
      "keys-per-turn": { type: "string", default: "500" },
    },
  });
  const keys = Number(values.keys);
  const perTurn = values["keys-per-turn"] as string;
  console.log(`# deno task bench expiry --keys ${keys} --keys-per-turn ${perTurn}`);
  if (typeof (globalThis as { gc?: unknown }).gc === "function") {
    reportIndexMemory(keys);
  } else {
    console.log(
      "index memory per key: run `deno run -A --v8-flags=--expose-gc scripts/bench_expiry.ts` " +
        "(without a GC between builds the figure is noise)",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "kvstore-bench-expiry-" });
  const server = await startServerProcess({
    dataDir: `${dir}/data`,
    args: ["--fsync", "everysec", "--expiry-keys-per-turn", perTurn],
  });
  try {
    const expiresAtMs = Date.now() + Number(values["ttl-ms"]);
    const filledFrom = performance.now();
    await fill(server.port, keys, expiresAtMs);
    console.log(`filled ${keys} keys in ${((performance.now() - filledFrom) / 1000).toFixed(1)} s`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const buffer = new Uint8Array(1 << 16);
    if (Date.now() >= expiresAtMs) console.log("warning: the keys expired before the fill ended");
    const baseline = await probe(conn, keys, () => Promise.resolve(Date.now() >= expiresAtMs));
    console.log(`before they expire (${baseline.seconds.toFixed(1)} s): ${baseline.text}`);
    const during = await probe(conn, keys, async () => (await dbsize(conn, buffer)) === 0);
    conn.close();
    console.log(
      `${keys} keys expiring at once: reclaimed in ${during.seconds.toFixed(1)} s; meanwhile ` +
        during.text,
    );
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
