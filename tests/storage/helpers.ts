/**
 * Helpers shared by the storage tests: temporary directories and byte/string conversion.
 *
 * @module
 */
import { configureLogging } from "../../src/log.ts";
import { parseSegmentFileName } from "../../src/storage/file_names.ts";

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

/** Runs `body` with a fresh temporary directory, removed afterwards. */
export async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kvstore-storage-test-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The segment files of a data directory, ascending. */
export function segmentFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)]
    .map((entry) => entry.name)
    .filter((name) => parseSegmentFileName(name) !== undefined)
    .sort()
    .map((name) => `${dir}/${name}`);
}
