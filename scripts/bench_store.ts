/**
 * `deno task bench store [--keys N] [--seconds S]`: storage engine figures. Prints put ops/s
 * (sequential and 64 concurrent writers) for each fsync policy, random-read ops/s, restart time,
 * RSS and disk bytes per key with N keys of 100-byte values (default 1,000,000).
 *
 * The restart and memory figures come from fresh child processes that only open a store. Memory
 * is measured honestly against a baseline: RSS of a child that opened N keys minus RSS of a child
 * that opened an empty store, both after three full GCs (`--expose-gc`) 50 ms apart, divided by N.
 * V8's young generation is sized by allocation activity, not by keys (an idle restarted store
 * keeps what recovery grew it to, ~40 MB here; a busy server grows it to its maximum anyway), so
 * its size is printed too, and the per-key figure is also given without it. Last, the same keys
 * each with a TTL: their index slots are wide (32 bytes instead of 16; see `key_index.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getHeapSpaceStatistics } from "node:v8";
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

/** What a child that opened a store reports. */
interface OpenFigures {
  openMs: number;
  keys: number;
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  youngGenerationBytes: number;
  diskBytes: number;
}

/** Three full collections 50 ms apart, so freed memory is swept and counters are settled. */
async function settle(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Child mode: open the store, report open time and settled memory, close. */
async function childOpen(dir: string): Promise<void> {
  await settle();
  const started = performance.now();
  const store = await KVStore.open(dir, { fsync: "no", autoCompact: false });
  const openMs = performance.now() - started;
  await settle();
  const memory = Deno.memoryUsage();
  const newSpace = getHeapSpaceStatistics().find((space) => space.space_name === "new_space");
  const stats = store.stats();
  const figures: OpenFigures = {
    openMs,
    keys: stats.keys,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external,
    youngGenerationBytes: newSpace?.physical_space_size ?? 0,
    diskBytes: stats.diskBytes,
  };
  console.log(JSON.stringify(figures));
  await store.close();
}

/** Opens `dir` in a fresh child process and returns what it reports. */
async function openInChild(dir: string): Promise<OpenFigures> {
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
  if (!child.success) throw new Error(`child that opened ${dir} failed: ${child.code}`);
  const lines = new TextDecoder().decode(child.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** Writes `keys` keys (in `order`) with fsync=no, each expiring at `expiresAtMs` (0: never). */
async function load(
  dir: string,
  keys: number,
  order: number[] | undefined,
  value: Uint8Array,
  expiresAtMs = 0,
) {
  const store = await KVStore.open(dir, { fsync: "no", autoCompact: false });
  const started = performance.now();
  for (let i = 0; i < keys; i++) {
    store.writePut(keyOf(order === undefined ? i : order[i]), value, expiresAtMs);
    if (i % 10_000 === 9_999) await store.whenDurable(store.lastLsn);
  }
  await store.whenDurable(store.lastLsn);
  const seconds = (performance.now() - started) / 1000;
  return { store, seconds };
}

function shuffled(n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

const DAY_MS = 24 * 60 * 60 * 1000;

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
    const loaded = await load(dir, keys, undefined, value);
    const store = loaded.store;
    console.log(
      `| load ${format(keys)} new keys (fsync=no) | ${format(keys / loaded.seconds)} ops/s |`,
    );

    const probes = Array.from({ length: 1_000_000 }, () => keyOf(Math.floor(Math.random() * keys)));
    const started = performance.now();
    let found = 0;
    for (const key of probes) if (store.read(key) !== undefined) found++;
    const readRate = probes.length / ((performance.now() - started) / 1000);
    console.log(`| random read (${format(found)} hits) | ${format(readRate)} ops/s |`);
    await store.close();

    const empty = await openInChild(`${root}/empty`);
    const figures = await openInChild(dir);
    console.log(`| restart with ${format(figures.keys)} keys | ${figures.openMs.toFixed(0)} ms |`);
    const random = await load(`${root}/random`, keys, shuffled(keys), value);
    await random.store.close();
    const randomOpen = await openInChild(`${root}/random`);
    console.log(
      `| restart with ${format(randomOpen.keys)} keys written in random order | ` +
        `${randomOpen.openMs.toFixed(0)} ms |`,
    );
    const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    const perKey = (bytes: number) => `${(bytes / figures.keys).toFixed(1)} B`;
    const keyBytes = keyOf(0).length;
    const keyStringBytes = 16 + keyBytes;
    const rss = figures.rssBytes - empty.rssBytes;
    const young = figures.youngGenerationBytes - empty.youngGenerationBytes;
    console.log(
      `| RSS: empty store / ${format(figures.keys)} keys (young generation) | ` +
        `${mib(empty.rssBytes)} (${mib(empty.youngGenerationBytes)}) / ` +
        `${mib(figures.rssBytes)} (${mib(figures.youngGenerationBytes)}) |`,
    );
    console.log(
      `| RSS per key, minus an empty store's | ${perKey(rss)}: ${
        perKey(rss - keyBytes * figures.keys)
      }` +
        ` beyond the ${keyBytes} key bytes, ${perKey(rss - keyStringBytes * figures.keys)} beyond` +
        ` the ${keyStringBytes}-byte key string |`,
    );
    console.log(
      `| the same without the young generation's growth | ${perKey(rss - young)}: ` +
        `${perKey(rss - young - keyBytes * figures.keys)} beyond the key bytes |`,
    );
    console.log(
      `| JS heap in use + typed arrays per key | ` +
        `${perKey(figures.heapUsedBytes - empty.heapUsedBytes)} + ` +
        `${perKey(figures.externalBytes - empty.externalBytes)} |`,
    );
    console.log(`| disk per key | ${perKey(figures.diskBytes)} |`);
    // The same keys, each with a TTL (a day): the index's slots are wide (32 bytes, not 16).
    const expiring = await load(`${root}/ttl`, keys, undefined, value, Date.now() + DAY_MS);
    await expiring.store.close();
    const ttlOpen = await openInChild(`${root}/ttl`);
    const ttlRss = ttlOpen.rssBytes - empty.rssBytes;
    console.log(
      `| RSS per key with a TTL, minus an empty store's | ${perKey(ttlRss)}: ${
        perKey(ttlRss - keyBytes * ttlOpen.keys)
      } beyond the ${keyBytes} key bytes; typed arrays ${
        perKey(ttlOpen.externalBytes - figures.externalBytes)
      } more than without, young generation ${mib(ttlOpen.youngGenerationBytes)} |`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
