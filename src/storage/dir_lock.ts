/**
 * The data directory's lock: one process at a time opens a store in a directory. The LOCK file
 * (created if needed, 0600) is locked exclusively for as long as the store is open; another
 * process that tries fails at once with {@link StoreLockedError} (`kvstore` then names the
 * process that holds it, see `cli/lock_holder.ts`).
 *
 * @module
 */
import { DATA_FILE_MODE } from "./durable_file.ts";
import { StoreLockedError } from "./errors.ts";
import { LOCK_FILE_NAME } from "./file_names.ts";

/** Locks `dir` for this process (its LOCK file, created if needed). */
export function lockDirectory(dir: string): Deno.FsFile {
  const lockFile = Deno.openSync(`${dir}/${LOCK_FILE_NAME}`, {
    read: true,
    write: true,
    create: true,
    mode: DATA_FILE_MODE,
  });
  if (!lockFile.tryLockSync(true)) {
    lockFile.close();
    throw new StoreLockedError(dir);
  }
  return lockFile;
}

/** Releases the lock taken by {@link lockDirectory}. */
export function unlockDirectory(lockFile: Deno.FsFile): void {
  lockFile.unlockSync();
  lockFile.close();
}
