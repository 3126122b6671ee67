/**
 * Writing a whole byte array to a writer that may take only part of it per call (a socket, a
 * file, stdout): the one loop that does it, for async and sync writers.
 *
 * Uses no imports, so the URL-importable client may use it.
 *
 * @module
 */

/** Anything with Deno's async `write` (a `Deno.Conn`, a `Deno.FsFile`, `Deno.stdout`). */
export interface AsyncWriter {
  write(bytes: Uint8Array): Promise<number>;
}

/** Anything with Deno's `writeSync` (a `Deno.FsFile`, `Deno.stdout`, `Deno.stderr`). */
export interface SyncWriter {
  writeSync(bytes: Uint8Array): number;
}

/**
 * Writes every byte of `bytes` to `writer`, calling `write` again with the rest until all of it
 * is written. Rejects with the writer's error.
 *
 * @example
 * ```ts
 * import { writeAll } from "./write_all.ts";
 * const file = await Deno.makeTempFile();
 * const writer = await Deno.open(file, { write: true });
 * await writeAll(writer, new TextEncoder().encode("hello"));
 * writer.close();
 * console.log(await Deno.readTextFile(file)); // hello
 * await Deno.remove(file);
 * ```
 */
export async function writeAll(writer: AsyncWriter, bytes: Uint8Array): Promise<void> {
  let written = 0;
  // Bounded: each write writes at least one byte or throws.
  while (written < bytes.length) written += await writer.write(bytes.subarray(written));
}

/**
 * Writes every byte of `bytes` to `writer` with `writeSync`, calling it again with the rest until
 * all of it is written. Throws the writer's error.
 *
 * @example
 * ```ts
 * import { writeAllSync } from "./write_all.ts";
 * const file = Deno.makeTempFileSync();
 * const writer = Deno.openSync(file, { write: true });
 * writeAllSync(writer, new TextEncoder().encode("hello"));
 * writer.close();
 * console.log(Deno.readTextFileSync(file)); // hello
 * Deno.removeSync(file);
 * ```
 */
export function writeAllSync(writer: SyncWriter, bytes: Uint8Array): void {
  let written = 0;
  // Bounded: each writeSync writes at least one byte or throws.
  while (written < bytes.length) written += writer.writeSync(bytes.subarray(written));
}
