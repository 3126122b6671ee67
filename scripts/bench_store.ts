/**
 * `deno task bench store [--keys N] [--seconds S]`: storage engine figures. Prints put ops/s
 * (sequential and 64 concurrent writers) for each fsync policy, random-read ops/s, restart time,
 * RSS and disk bytes per key with N keys of 100-byte values (default 1,000,000).
 *
 * The restart and memory figures come from a fresh child process that only opens the store.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KVStore } from "../src/storage/mod.ts";
import type { FsyncPolicy } from "../src/config.ts";

const VALUE_BYTES = 100;
const KEYSPACE = 100_000;

function keyOf(i: number): string {
  return `key:${String(i).padStart(10, "0")}`;
}

function randomValue(): Uint8Array {
  const value = new Uint8Array(VALUE_BYTES);
  crypto.getRandomValues(value);
  return value;
}

async function timedPuts(
  store: KVStore,
  writers: number,
  seconds: number,
  value: Uint8Array,
): Promise<number> {
  let ops = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, async () => {
    // Bounded by the deadline.
    while (performance.now() < deadline) {
      for (let i = 0; i < 64; i++) {
        await store.put(keyOf(Math.floor(Math.random() * KEYSPACE)), value);
        ops++;
      }
    }
  }));
  return ops / ((performance.now() - started) / 1000);
}

function format(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Child mode: open the store, report open time and memory, close. */
async function childOpen(dir: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = Deno.memoryUsage();
  const started = performance.now();
  const store = await KVStore.open(dir, { fsync: "no", autoCompact: false });
  const openMs = performance.now() - started;
  gc?.();
  const after = Deno.memoryUsage();
  const stats = store.stats();
  console.log(JSON.stringify({
    openMs,
    keys: stats.keys,
    rssBytes: after.rss - before.rss,
    heapBytes: after.heapUsed - before.heapUsed,
    diskBytes: stats.diskBytes,
  }));
  await store.close();
}

/** Runs the store benchmark. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      keys: { type: "string", default: "1000000" },
      seconds: { type: "string", default: "3" },
      "child-open": { type: "string" },
    },
  });
  if (values["child-open"] !== undefined) return await childOpen(values["child-open"]);
  const keys = Number(values.keys);
  const seconds = Number(values.seconds);
  const root = await Deno.makeTempDir({ prefix: "kvstore-bench-store-" });
  const value = randomValue();
  console.log(`# deno task bench store --keys ${keys} --seconds ${seconds}`);
  console.log(`# ${VALUE_BYTES}-byte values, random keys over a ${format(KEYSPACE)}-key space`);
  console.log("| figure | value |\n|---|---|");
  try {
    for (const fsync of ["always", "everysec", "no"] as FsyncPolicy[]) {
      for (const writers of [1, 64]) {
        const dir = `${root}/${fsync}-${writers}`;
        const store = await KVStore.open(dir, { fsync });
        const rate = await timedPuts(store, writers, seconds, value);
        await store.close();
        await Deno.remove(dir, { recursive: true });
        console.log(`| put, fsync=${fsync}, ${writers} writer(s) | ${format(rate)} ops/s |`);
      }
    }

    const dir = `${root}/load`;
    let store = await KVStore.open(dir, { fsync: "no", autoCompact: false });
    let started = performance.now();
    for (let i = 0; i < keys; i++) {
      store.writePut(keyOf(i), value);
      if (i % 10_000 === 9_999) await store.whenDurable(store.lastLsn);
    }
    await store.whenDurable(store.lastLsn);
    const loadSeconds = (performance.now() - started) / 1000;
    console.log(
      `| load ${format(keys)} new keys (fsync=no) | ${format(keys / loadSeconds)} ops/s |`,
    );

    const probes = Array.from({ length: 1_000_000 }, () => keyOf(Math.floor(Math.random() * keys)));
    started = performance.now();
    let found = 0;
    for (const key of probes) if (store.read(key) !== undefined) found++;
    const readRate = probes.length / ((performance.now() - started) / 1000);
    console.log(`| random read (${format(found)} hits) | ${format(readRate)} ops/s |`);
    await store.close();

    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
        "--child-open",
        dir,
      ],
      stderr: "inherit",
    }).output();
    const lines = new TextDecoder().decode(child.stdout).trim().split("\n");
    const figures = JSON.parse(lines[lines.length - 1]);
    const keyStringBytes = 16 + keyOf(0).length;
    console.log(`| restart with ${format(figures.keys)} keys | ${figures.openMs.toFixed(0)} ms |`);
    console.log(
      `| RSS per key (minus the ${keyStringBytes}-byte key string) | ` +
        `${(figures.rssBytes / figures.keys).toFixed(1)} B ` +
        `(${(figures.rssBytes / figures.keys - keyStringBytes).toFixed(1)} B) |`,
    );
    console.log(`| JS heap per key | ${(figures.heapBytes / figures.keys).toFixed(1)} B |`);
    console.log(`| disk per key | ${(figures.diskBytes / figures.keys).toFixed(1)} B |`);

    store = await KVStore.open(dir, { fsync: "no" });
    await store.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
