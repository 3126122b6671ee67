/**
 * Small files replaced atomically and durably: the new contents are written to a temporary file,
 * synced, renamed over the old one, and the directory is synced, so after a crash at any instant
 * the file holds either its old or its new contents, never a mix.
 *
 * @module
 */
import { writeAll, writeAllSync } from "../write_all.ts";
import { temporaryPathOf } from "./file_names.ts";

/**
 * Mode of every file kvstore creates in a data directory (segments, hints, LOCK, NODE_STATE, a
 * backup's files): readable by its owner only, whatever the umask. The data is the users'.
 */
export const DATA_FILE_MODE = 0o600;
/** Mode of a data directory kvstore creates (PostgreSQL's and systemd's `StateDirectoryMode`). */
export const DATA_DIR_MODE = 0o700;

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
  const tmp = temporaryPathOf(path);
  await writeSyncedFile(tmp, bytes);
  await Deno.rename(tmp, path);
  fsyncDir(dir);
}

/**
 * {@link writeFileDurably}, blocking: for small files written on rare events, when what follows
 * must see the file already durable in the same turn (NODE_STATE.json).
 *
 * @example
 * ```ts
 * import { writeFileDurablySync } from "./durable_file.ts";
 * const dir = Deno.makeTempDirSync();
 * writeFileDurablySync(dir, "state.json", new TextEncoder().encode("{}"));
 * console.log(Deno.readTextFileSync(`${dir}/state.json`)); // {}
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function writeFileDurablySync(dir: string, name: string, bytes: Uint8Array): void {
  const path = `${dir}/${name}`;
  const tmp = temporaryPathOf(path);
  const file = Deno.openSync(tmp, {
    write: true,
    create: true,
    truncate: true,
    mode: DATA_FILE_MODE,
  });
  try {
    writeAllSync(file, bytes);
    file.syncDataSync();
  } finally {
    file.close();
  }
  Deno.renameSync(tmp, path);
  fsyncDir(dir);
}

/** Writes `bytes` as the whole of the file at `path` and syncs its data (no rename). */
export async function writeSyncedFile(path: string, bytes: Uint8Array): Promise<void> {
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
    mode: DATA_FILE_MODE,
  });
  try {
    await writeAll(file, bytes);
    await file.syncData();
  } finally {
    file.close();
  }
}
