/**
 * The client side of `kvstore backup --to DIR`: asks a node for a consistent snapshot
 * (`BACKUP BEGIN`), streams its pairs (`BACKUP NEXT`) into a new data directory through the
 * storage engine's full-sync writer, and commits it atomically. The directory then holds exactly
 * the node's data at the snapshot's LSN: `kvstore serve --data-dir DIR` serves it (restore), and
 * a node started there with `--replica` catches up from that LSN or takes a full sync.
 *
 * A file `BACKUP.json` beside the log records where and when the copy was taken (the server
 * ignores it). If anything fails, what was written is removed: a directory is either a complete
 * backup or absent.
 *
 * @module
 */
import type { KVClient } from "../client/kv_client.ts";
import { KVServerError } from "../client/errors.ts";
import type { RespValue } from "../protocol/resp.ts";
import { DATA_DIR_MODE, DATA_FILE_MODE, type FullSync, KVStore } from "../storage/mod.ts";
import { VERSION } from "../version.ts";
import { BackupError } from "./errors.ts";

/** Name of the file describing a backup, in its directory. */
export const BACKUP_MANIFEST = "BACKUP.json";

/** How far a backup got. */
export interface BackupProgress {
  /** Pairs written so far. */
  keys: number;
  /** Pairs in the snapshot. */
  totalKeys: number;
  /** Key and value bytes written so far. */
  bytes: number;
}

/** What a finished backup holds. */
export interface BackupResult {
  /** The snapshot's LSN: every write up to it is in the copy, none after it. */
  lsn: number;
  /** The source's epoch when the snapshot was taken. */
  epoch: number;
  /** Pairs copied. */
  keys: number;
  /** Key and value bytes copied. */
  bytes: number;
  elapsedMs: number;
}

const decoder = new TextDecoder();

function expectArray(reply: RespValue, what: string): RespValue[] {
  if (!Array.isArray(reply)) {
    throw new BackupError(`the server answered ${what} with ${JSON.stringify(String(reply))}`);
  }
  return reply;
}

/** True when `dir` is missing (created here) or an empty directory; throws otherwise. */
async function prepareDirectory(dir: string): Promise<boolean> {
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new BackupError(`--to ${dir} exists and is not a directory`);
    for await (const _entry of Deno.readDir(dir)) {
      throw new BackupError(
        `--to ${dir} is not empty: a backup goes into a new or empty directory`,
      );
    }
    return false;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(dir, { recursive: true, mode: DATA_DIR_MODE });
    return true;
  }
}

async function removeContents(dir: string, created: boolean): Promise<void> {
  if (created) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    return;
  }
  for await (const entry of Deno.readDir(dir)) {
    await Deno.remove(`${dir}/${entry.name}`, { recursive: true }).catch(() => {});
  }
}

/**
 * Copies the data of the node `client` talks to into `dir` (new, or an empty directory).
 *
 * @example
 * ```ts
 * import { KVClient } from "../client/kv_client.ts";
 * import { backupTo } from "./backup_to.ts";
 * async function nightly(port: number, dir: string): Promise<number> {
 *   await using client = new KVClient({ port });
 *   return (await backupTo(client, dir)).lsn;
 * }
 * ```
 */
export async function backupTo(
  client: KVClient,
  dir: string,
  options: { onProgress?: (progress: BackupProgress) => void } = {},
): Promise<BackupResult> {
  const startedMs = performance.now();
  const created = await prepareDirectory(dir);
  let store: KVStore | undefined;
  let sync: FullSync | undefined;
  let id: Uint8Array | undefined;
  let finished = false;
  try {
    const begun = await beginBackup(client);
    id = begun.id;
    const { lsn, epoch, totalKeys } = begun;
    store = await KVStore.open(dir, { fsync: "always", autoCompact: false });
    sync = await store.replicationLog.beginFullSync(lsn, epoch);
    const { keys, bytes } = await copyChunks(client, id, sync, totalKeys, options.onProgress);
    id = undefined; // the server released the snapshot with its last, empty chunk
    if (keys !== totalKeys) {
      throw new BackupError(
        `the snapshot announced ${totalKeys} keys but ${keys} arrived; the copy is discarded`,
      );
    }
    await sync.finish();
    sync = undefined;
    await writeManifest(dir, { source: client.address, lsn, epoch, keys, bytes });
    await store.close();
    store = undefined;
    finished = true;
    return { lsn, epoch, keys, bytes, elapsedMs: performance.now() - startedMs };
  } finally {
    if (!finished) {
      await sync?.abort();
      await store?.close();
      if (id !== undefined) {
        await client.send(["BACKUP", "END", decoder.decode(id)]).catch(() => {});
      }
      await removeContents(dir, created);
    }
  }
}

/** `BACKUP BEGIN`: the snapshot's id, LSN, key count and epoch. */
async function beginBackup(
  client: KVClient,
): Promise<{ id: Uint8Array; lsn: number; totalKeys: number; epoch: number }> {
  const begin = expectArray(await client.send(["BACKUP", "BEGIN"]), "BACKUP BEGIN");
  const [id, lsn, totalKeys, epoch] = begin;
  if (
    !(id instanceof Uint8Array) || typeof lsn !== "number" ||
    typeof totalKeys !== "number" || typeof epoch !== "number"
  ) {
    throw new BackupError(`BACKUP BEGIN answered ${JSON.stringify(begin.map(String))}`);
  }
  return { id, lsn, totalKeys, epoch };
}

/**
 * `BACKUP NEXT <id> TTL` (each pair with its expiry time), or `BACKUP NEXT <id>` when not
 * `withTtl` or when the server, from before TTLs, refuses the word.
 */
async function nextChunk(
  client: KVClient,
  id: Uint8Array,
  withTtl: boolean,
): Promise<{ items: RespValue[]; withTtl: boolean }> {
  if (withTtl) {
    try {
      const reply = await client.send(["BACKUP", "NEXT", id, "TTL"]);
      return { items: expectArray(reply, "BACKUP NEXT"), withTtl: true };
    } catch (error) {
      if (!(error instanceof KVServerError)) throw error;
    }
  }
  const reply = await client.send(["BACKUP", "NEXT", id]);
  return { items: expectArray(reply, "BACKUP NEXT"), withTtl: false };
}

/** `BACKUP NEXT` until the empty chunk (which releases the snapshot), each pair into `sync`. */
async function copyChunks(
  client: KVClient,
  id: Uint8Array,
  sync: FullSync,
  totalKeys: number,
  onProgress: ((progress: BackupProgress) => void) | undefined,
): Promise<{ keys: number; bytes: number }> {
  let keys = 0;
  let bytes = 0;
  // Expiry times come with the pairs (NEXT ... TTL); a server from before them answers NEXT
  // without TTL only, and its backup has none.
  let withTtl = true;
  // Bounded by the snapshot's pairs: each chunk but the last holds at least one.
  for (;;) {
    const chunk = await nextChunk(client, id, withTtl);
    withTtl = chunk.withTtl;
    const items = chunk.items;
    if (items.length === 0) break;
    const stride = withTtl ? 3 : 2;
    for (let i = 0; i + stride - 1 < items.length; i += stride) {
      const key = items[i];
      const value = items[i + 1];
      const expiresAtMs = withTtl ? items[i + 2] : 0;
      if (
        !(key instanceof Uint8Array) || !(value instanceof Uint8Array) ||
        typeof expiresAtMs !== "number"
      ) {
        throw new BackupError("BACKUP NEXT answered something that is not key/value pairs");
      }
      sync.put(key, value, expiresAtMs);
      keys++;
      bytes += key.length + value.length;
    }
    onProgress?.({ keys, totalKeys, bytes });
  }
  return { keys, bytes };
}

/** Writes the backup's manifest (where it came from, its LSN, epoch and size). */
async function writeManifest(
  dir: string,
  taken: { source: string; lsn: number; epoch: number; keys: number; bytes: number },
): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/${BACKUP_MANIFEST}`,
    JSON.stringify(
      {
        ...taken,
        takenAt: new Date().toISOString(),
        kvstoreVersion: VERSION,
      },
      null,
      2,
    ) + "\n",
    { mode: DATA_FILE_MODE },
  );
}
