/**
 * Helpers shared by the storage tests: byte/string conversion and the segment files of a data
 * directory. Importing it keeps the store's log quiet (errors only).
 *
 * @module
 */
import { configureSync, type LogRecord } from "@logtape/logtape";
import { configureLogging } from "../../src/log.ts";
import { parseSegmentFileName } from "../../src/storage/file_names.ts";
import { KVStore, type StoreOptions } from "../../src/storage/mod.ts";
import assert from "node:assert/strict";
import { withTempDir } from "./temp_dir.ts";

export { withTempDir };

configureLogging({ level: "error", format: "text" });

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** UTF-8 text of bytes (undefined stays undefined). */
export function text(bytes: Uint8Array | undefined): string | undefined {
  return bytes === undefined ? undefined : decoder.decode(bytes);
}

/** UTF-8 bytes of a string. */
export function bytes(value: string): Uint8Array {
  return encoder.encode(value);
}

/** The segment files of a data directory, ascending. */
export function segmentFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)]
    .map((entry) => entry.name)
    .filter((name) => parseSegmentFileName(name) !== undefined)
    .sort()
    .map((name) => `${dir}/${name}`);
}

/**
 * Runs `body` with a store opened with `options` in a fresh temporary directory; the store is
 * closed before the directory goes, whatever `body` did.
 */
export function withStore(
  options: Partial<StoreOptions>,
  body: (store: KVStore, dir: string) => void | Promise<void>,
  prefix?: string,
): Promise<void> {
  return withTempDir(async (dir) => {
    const store = await KVStore.open(dir, options);
    try {
      await body(store, dir);
    } finally {
      await store.close();
    }
  }, prefix);
}

/**
 * Runs `body` with the store's log (`kvstore·storage`, info and up) captured; returns the
 * properties of each record, in order. The usual quiet logging is back afterwards.
 */
export async function storageLogLines(
  body: () => void | Promise<void>,
): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  configureSync({
    reset: true,
    sinks: { memory: (record: LogRecord) => lines.push(record.properties) },
    loggers: [
      { category: ["kvstore", "storage"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  try {
    await body();
  } finally {
    configureLogging({ level: "error", format: "text" });
  }
  return lines;
}

/**
 * Until `running` settles, a step a turn: overwrites, deletes and adds keys (`key0` up to
 * `keys`, `new<step>`), reads one back against `model` (which follows every write), then runs
 * `eachStep`. Returns the steps taken (at most 100,000).
 */
export async function writeWhileRunning(
  store: KVStore,
  model: Map<string, string>,
  keys: number,
  running: Promise<unknown>,
  eachStep?: (step: number) => Promise<void>,
): Promise<number> {
  let done = false;
  running.then(() => done = true, () => done = true);
  const put = (key: string, value: string) => {
    store.writePut(key, value);
    model.set(key, value);
  };
  let steps = 0;
  // Bounded by `running` settling (and by the step count, should it not).
  while (!done && steps < 100_000) {
    steps++;
    // Overwrite, delete, and add new keys (which reuse the slots deletes freed).
    put(`key${(steps * 7) % keys}`, `during-${steps}`);
    if (steps % 3 === 0) {
      const victim = `key${(steps * 11) % keys}`;
      store.writeDelete(victim);
      model.delete(victim);
    }
    if (steps % 5 === 0) put(`new${steps}`, `n${steps}`);
    const probe = `key${(steps * 13) % keys}`;
    assert.equal(text(store.read(probe)), model.get(probe), `read of ${probe} while running`);
    await eachStep?.(steps);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return steps;
}
