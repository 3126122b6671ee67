/**
 * Small files replaced atomically and durably: the new contents are written to a temporary file,
 * synced, renamed over the old one, and the directory is synced, so after a crash at any instant
 * the file holds either its old or its new contents, never a mix.
 *
 * @module
 */

/** Syncs a directory, making the renames and creations inside it durable. */
export function fsyncDir(dir: string): void {
  const handle = Deno.openSync(dir, { read: true });
  try {
    handle.syncSync();
  } finally {
    handle.close();
  }
}

/**
 * Replaces `dir/name` with `bytes` atomically and durably.
 *
 * @example
 * ```ts
 * import { writeFileDurably } from "./durable_file.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileDurably(dir, "state.json", new TextEncoder().encode("{}"));
 * console.log(await Deno.readTextFile(`${dir}/state.json`)); // {}
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileDurably(
  dir: string,
  name: string,
  bytes: Uint8Array,
): Promise<void> {
  const path = `${dir}/${name}`;
  const tmp = `${path}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.syncData();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  fsyncDir(dir);
}
