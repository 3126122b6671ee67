/**
 * Gives back the heap a recovery grew. Replaying a large log allocates fast, so V8 grows its young
 * generation to its largest size (~48 MiB for a million keys with TTLs) and leaves the old
 * generation with free pages; an idle process keeps both until V8's memory reducer runs, some
 * 20-30 s later. Until then a restarted node held ~76 B a key more RSS than its keys need (a
 * million keys with TTLs: 166 B a key beyond the key bytes instead of 90; docs/benchmarks.md).
 *
 * So once an open has recovered, when the young generation is past {@link RELEASE_YOUNG_BYTES},
 * one memory-reducing full collection (V8's "last resort" flavour, which, like the memory
 * reducer's, shrinks the young generation and gives free pages back) does it at once. It takes
 * ~90 ms for a million keys, whose recovery took ~1.2 s (`deno task bench store --memory-only`),
 * and it is logged with what it gave back. A busy server grows the young generation again to what its load calls for;
 * that is V8's working space, not the keys'.
 *
 * The collection is reached through `node:v8`'s flag `--expose-gc`, which only puts `gc` into
 * contexts created after it (here one `node:vm` context); the process's global object does not
 * change. Where the runtime refuses, nothing is released and nothing fails.
 *
 * @module
 */
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { getLog } from "../log.ts";

const log = getLog("storage");

/** A young generation past this after a recovery is given back (an idle one is under 1 MiB). */
export const RELEASE_YOUNG_BYTES = 8 * 1024 * 1024;

/** V8's `gc` as `--expose-gc` makes it: a full collection, or the kind `options` ask for. */
export type Collect = (
  options?: { type?: "major" | "minor"; execution?: "sync"; flavor?: "regular" | "last-resort" },
) => void;

/** The collector once found (null: the runtime has none to give). */
let collector: Collect | null | undefined;

/**
 * V8's collector, reached without a flag on the command line (null where the runtime refuses):
 * `--expose-gc` set now puts `gc` into contexts created after it, here one `node:vm` context.
 */
export function v8Collector(): Collect | null {
  if (collector !== undefined) return collector;
  try {
    setFlagsFromString("--expose-gc");
    const found: unknown = runInNewContext("gc");
    collector = typeof found === "function" ? found as Collect : null;
  } catch {
    collector = null;
  }
  return collector;
}

/** Bytes of V8's young generation in use by the process now (its physical size). */
export function youngGenerationBytes(): number {
  const newSpace = getHeapSpaceStatistics().find((space) => space.space_name === "new_space");
  return newSpace?.physical_space_size ?? 0;
}

/** What {@link releaseRecoveryHeap} gave back. */
export interface HeapRelease {
  /** RSS before minus RSS after (may be negative when other threads allocated meanwhile). */
  freedBytes: number;
  youngBytesBefore: number;
  youngBytesAfter: number;
  elapsedMs: number;
}

/**
 * After the recovery of `dir`: when the young generation is past `thresholdBytes`, runs one
 * memory-reducing full collection and logs what it gave back; returns that, or undefined when it
 * did nothing (a small young generation, or a runtime without the collector).
 */
export function releaseRecoveryHeap(
  dir: string,
  thresholdBytes = RELEASE_YOUNG_BYTES,
): HeapRelease | undefined {
  const youngBytesBefore = youngGenerationBytes();
  if (youngBytesBefore <= thresholdBytes) return undefined;
  const collect = v8Collector();
  if (collect === null) return undefined;
  const rssBefore = Deno.memoryUsage().rss;
  const started = performance.now();
  collect({ type: "major", execution: "sync", flavor: "last-resort" });
  const release: HeapRelease = {
    freedBytes: rssBefore - Deno.memoryUsage().rss,
    youngBytesBefore,
    youngBytesAfter: youngGenerationBytes(),
    elapsedMs: performance.now() - started,
  };
  log.info(
    "opened {dir}: gave back {freedMiB} MiB of heap the recovery grew (young generation " +
      "{youngBeforeMiB} → {youngAfterMiB} MiB) in {elapsedMs} ms",
    {
      dir,
      freedMiB: (release.freedBytes / 2 ** 20).toFixed(1),
      youngBeforeMiB: (youngBytesBefore / 2 ** 20).toFixed(1),
      youngAfterMiB: (release.youngBytesAfter / 2 ** 20).toFixed(1),
      elapsedMs: Math.round(release.elapsedMs),
    },
  );
  return release;
}
