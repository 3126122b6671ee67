/**
 * `deno task bench store [--keys N] [--seconds S] [--memory-only]`: storage engine figures.
 * Prints put ops/s (sequential and 64 concurrent writers) for each fsync policy, random-read
 * ops/s, restart time, RSS and disk bytes per key with N keys of 100-byte values (default
 * 1,000,000).
 *
 * The restart and memory figures come from fresh child processes that only open a store. Memory
 * is measured honestly against a baseline: RSS of a child that opened N keys minus RSS of a child
 * that opened an empty store, both after three full GCs (`--expose-gc`) 50 ms apart, divided by N.
 * V8's young generation is sized by allocation activity, not by keys (a recovery grows it to
 * ~40 MB, which the open then gives back: `heap_release.ts`; a busy server grows it to what its
 * load calls for), so its size is printed too, and the per-key figure is also given without it.
 * Last, the same keys each with a TTL: their index slots are wide (32 bytes instead of 16; see
 * `key_index.ts`).
 *
 * As a cross-check of that release, the memory figures are also taken *settled*, as V8's memory
 * reducer leaves an idle process some 20-30 s later (a young generation under 1 MiB, the old
 * generation's free pages given back): three more children (empty, plain keys, keys with a TTL)
 * open their store at the same time and wait, idle, until their young generation is at most
 * {@link SETTLED_YOUNG_BYTES} (polled every {@link SETTLE_POLL_MS}, at most {@link SETTLE_MAX_MS}).
 * `--memory-only` skips the put and read rates and the restart of keys written in random order.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KVStore } from "../src/storage/mod.ts";
import { youngGenerationBytes } from "../src/storage/heap_release.ts";
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
  /** With `--settle`: how long the child waited idle, and its memory then. */
  settled?: { waitedMs: number; rssBytes: number; youngGenerationBytes: number };
}

/** A young generation this small counts as shrunk by V8's memory reducer. */
const SETTLED_YOUNG_BYTES = 1.5 * 1024 * 1024;
/** How often a settling child looks at its young generation. */
const SETTLE_POLL_MS = 500;
/** Longest a settling child waits for the memory reducer before it reports as it is. */
const SETTLE_MAX_MS = 90_000;

/** Waits, idle, until the young generation has shrunk (or {@link SETTLE_MAX_MS}); reports. */
async function settleIdle(): Promise<NonNullable<OpenFigures["settled"]>> {
  const started = performance.now();
  while (
    youngGenerationBytes() > SETTLED_YOUNG_BYTES && performance.now() - started < SETTLE_MAX_MS
  ) {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
  }
  return {
    waitedMs: performance.now() - started,
    rssBytes: Deno.memoryUsage().rss,
    youngGenerationBytes: youngGenerationBytes(),
  };
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
async function childOpen(dir: string, idleUntilSettled: boolean): Promise<void> {
  await settle();
  const started = performance.now();
  const store = await KVStore.open(dir, { fsync: "no", autoCompact: false });
  const openMs = performance.now() - started;
  await settle();
  const memory = Deno.memoryUsage();
  const stats = store.stats();
  const figures: OpenFigures = {
    openMs,
    keys: stats.keys,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external,
    youngGenerationBytes: youngGenerationBytes(),
    diskBytes: stats.diskBytes,
  };
  if (idleUntilSettled) figures.settled = await settleIdle();
  console.log(JSON.stringify(figures));
  await store.close();
}

/** Opens `dir` in a fresh child process and returns what it reports. */
async function openInChild(dir: string, idleUntilSettled = false): Promise<OpenFigures> {
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
      ...(idleUntilSettled ? ["--settle"] : []),
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
      settle: { type: "boolean", default: false },
      "memory-only": { type: "boolean", default: false },
    },
  });
  if (values["child-open"] !== undefined) {
    return await childOpen(values["child-open"], values.settle);
  }
  const memoryOnly = values["memory-only"];
  const keys = Number(values.keys);
  const seconds = Number(values.seconds);
  const root = await Deno.makeTempDir({ prefix: "kvstore-bench-store-" });
  const value = randomValue();
  console.log(`# deno task bench store --keys ${keys} --seconds ${seconds}`);
  console.log(`# ${VALUE_BYTES}-byte values, random keys over a ${format(KEYSPACE)}-key space`);
  console.log("| figure | value |\n|---|---|");
  try {
    for (const fsync of memoryOnly ? [] : ["always", "everysec", "no"] as FsyncPolicy[]) {
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

    if (!memoryOnly) {
      const probes = Array.from(
        { length: 1_000_000 },
        () => keyOf(Math.floor(Math.random() * keys)),
      );
      const started = performance.now();
      let found = 0;
      for (const key of probes) if (store.read(key) !== undefined) found++;
      const readRate = probes.length / ((performance.now() - started) / 1000);
      console.log(`| random read (${format(found)} hits) | ${format(readRate)} ops/s |`);
    }
    await store.close();

    const empty = await openInChild(`${root}/empty`);
    const figures = await openInChild(dir);
    console.log(`| restart with ${format(figures.keys)} keys | ${figures.openMs.toFixed(0)} ms |`);
    if (!memoryOnly) {
      const random = await load(`${root}/random`, keys, shuffled(keys), value);
      await random.store.close();
      const randomOpen = await openInChild(`${root}/random`);
      console.log(
        `| restart with ${format(randomOpen.keys)} keys written in random order | ` +
          `${randomOpen.openMs.toFixed(0)} ms |`,
      );
    }
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
    // The same three stores opened again at once, each then idle until V8 shrinks its heap.
    const [emptyIdle, plainIdle, ttlIdle] = (await Promise.all(
      [`${root}/empty`, dir, `${root}/ttl`].map((path) => openInChild(path, true)),
    )).map((opened) => {
      if (opened.settled === undefined) throw new Error("a settling child reported no figures");
      return opened.settled;
    });
    const waited = Math.max(emptyIdle.waitedMs, plainIdle.waitedMs, ttlIdle.waitedMs) / 1000;
    console.log(
      `| RSS: empty store / keys / keys with a TTL, settled (idle up to ${waited.toFixed(0)} s; ` +
        `young generation) | ${mib(emptyIdle.rssBytes)} (${
          mib(emptyIdle.youngGenerationBytes)
        }) / ` +
        `${mib(plainIdle.rssBytes)} (${mib(plainIdle.youngGenerationBytes)}) / ` +
        `${mib(ttlIdle.rssBytes)} (${mib(ttlIdle.youngGenerationBytes)}) |`,
    );
    const plainSettled = plainIdle.rssBytes - emptyIdle.rssBytes;
    const ttlSettled = ttlIdle.rssBytes - emptyIdle.rssBytes;
    console.log(
      `| RSS per key, settled, minus an empty store's | ${perKey(plainSettled)}: ` +
        `${perKey(plainSettled - keyBytes * figures.keys)} beyond the key bytes |`,
    );
    console.log(
      `| RSS per key with a TTL, settled, minus an empty store's | ${perKey(ttlSettled)}: ` +
        `${perKey(ttlSettled - keyBytes * figures.keys)} beyond the key bytes |`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
