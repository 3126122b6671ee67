/**
 * Online backups served by the node: `BACKUP BEGIN` takes a consistent snapshot of every pair at
 * the current LSN (`store.replicationLog.snapshot()`: durable before it answers; writes go on meanwhile and are
 * not in it), `BACKUP NEXT <id>` returns its next chunk of pairs, `BACKUP END <id>` releases it.
 * The client (`kvstore backup --to DIR`) writes the pairs into a new data directory, so the copy
 * lands where the operator runs the command, not on the server's disk.
 *
 * Bounds: at most `MAX_BACKUPS` at once (each pins log segments against compaction), chunks of
 * at most `SNAPSHOT_CHUNK_BYTES` (a single larger pair is a chunk of its own), and a backup whose
 * client asks for nothing for `BACKUP_IDLE_TIMEOUT_SECONDS` is released.
 *
 * Replies (RESP; the command is meant for the client, text framing gets the same items joined):
 * `BEGIN` → `[id, lsn, keys, epoch]`; `NEXT` → a flat array `k1 v1 k2 v2 ...`, empty once every
 * pair was sent (the snapshot is then released); `NEXT <id> TTL` → `k1 v1 t1 k2 v2 t2 ...` with
 * each key's expiry time (integer ms since the Unix epoch, 0: none), so a restored copy keeps
 * every TTL; `END` → `OK`.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import type { Reply } from "../protocol/mod.ts";
import { CommandError, type ServerExtension, type ServerHooks } from "../server/hooks.ts";
import type { KVStore, SnapshotEntry, StoreSnapshot } from "../storage/mod.ts";

const log = getLog("backup");
const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface Backup {
  id: string;
  snapshot: StoreSnapshot;
  iterator: AsyncIterator<SnapshotEntry>;
  peer: string;
  sentKeys: number;
  sentBytes: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The NEXT being answered: the following one waits for it. */
  busy: Promise<unknown>;
}

/** Bytes a pair takes in a chunk (its RESP framing is small next to it). */
function pairBytes(key: Uint8Array, value: Uint8Array): number {
  return key.length + value.length + 32;
}

/** The backup extension of a node. */
export function backupExtension(): ServerExtension {
  return (node) => new Backups(node.store, node.config).hooks();
}

/** The node's running backups: `BACKUP BEGIN`, `NEXT` and `END`, their bounds and their log. */
class Backups {
  readonly #store: KVStore;
  readonly #config: Config;
  readonly #running = new Map<string, Backup>();

  constructor(store: KVStore, config: Config) {
    this.#store = store;
    this.#config = config;
  }

  /** The `BACKUP` command, its INFO fields, and the release of every backup at shutdown. */
  hooks(): ServerHooks {
    return {
      commands: {
        BACKUP: {
          minArgs: 1,
          maxArgs: 3,
          handler: (args, out, ctx) => {
            const sub = decoder.decode(args[0]).toUpperCase();
            if (sub === "BEGIN" && args.length === 1) return this.#begin(ctx.connection.peer);
            if (sub === "NEXT" && args.length === 2) return this.#next(this.#find(args[1]), false);
            if (
              sub === "NEXT" && args.length === 3 && decoder.decode(args[2]).toUpperCase() === "TTL"
            ) {
              return this.#next(this.#find(args[1]), true);
            }
            if (sub === "END" && args.length === 2) {
              this.#release(this.#find(args[1]), "ended by its client");
              out.ok();
              return;
            }
            throw new CommandError(
              "usage: BACKUP BEGIN | BACKUP NEXT <id> [TTL] | BACKUP END <id>",
            );
          },
        },
      },
      info: {
        backup: () => [
          ["backups_running", this.#running.size],
          ["max_backups", this.#config.MAX_BACKUPS],
        ],
      },
      close: () => {
        for (const backup of [...this.#running.values()]) {
          this.#release(backup, "stopped by shutdown");
        }
        return Promise.resolve();
      },
    };
  }

  #release(backup: Backup, why: string): void {
    if (!this.#running.delete(backup.id)) return;
    clearTimeout(backup.timer);
    backup.snapshot.release();
    log.info("backup {id} for {peer} {why}: {keys} keys, {bytes} bytes sent, LSN {lsn}", {
      event: "backup_end",
      id: backup.id,
      peer: backup.peer,
      why,
      keys: backup.sentKeys,
      bytes: backup.sentBytes,
      lsn: backup.snapshot.lsn,
    });
  }

  /** Restarts the backup's idle timer: it is released after BACKUP_IDLE_TIMEOUT_SECONDS. */
  #touch(backup: Backup): void {
    const idleSeconds = this.#config.BACKUP_IDLE_TIMEOUT_SECONDS;
    clearTimeout(backup.timer);
    backup.timer = setTimeout(
      () =>
        this.#release(
          backup,
          `abandoned (no request for BACKUP_IDLE_TIMEOUT_SECONDS ${idleSeconds} s)`,
        ),
      idleSeconds * 1000,
    );
    Deno.unrefTimer(backup.timer);
  }

  #find(idBytes: Uint8Array): Backup {
    const id = decoder.decode(idBytes);
    const backup = this.#running.get(id);
    if (backup === undefined) {
      throw new CommandError(
        `no backup ${JSON.stringify(id)} (finished, abandoned after BACKUP_IDLE_TIMEOUT_SECONDS ` +
          `${this.#config.BACKUP_IDLE_TIMEOUT_SECONDS} s, or never begun)`,
      );
    }
    return backup;
  }

  async #begin(peer: string): Promise<Reply> {
    const limit = this.#config.MAX_BACKUPS;
    if (this.#running.size >= limit) {
      log.warn("refused a backup for {peer}: MAX_BACKUPS is {limit}", {
        event: "limit",
        setting: "MAX_BACKUPS",
        limit,
        peer,
      });
      throw new CommandError(
        `${this.#running.size} backups are running and MAX_BACKUPS is ${limit}; ` +
          `try again when one finished`,
      );
    }
    const snapshot = await this.#store.replicationLog.snapshot();
    const backup: Backup = {
      id: crypto.randomUUID(),
      snapshot,
      iterator: snapshot.entries[Symbol.asyncIterator](),
      peer,
      sentKeys: 0,
      sentBytes: 0,
      timer: undefined,
      busy: Promise.resolve(),
    };
    this.#running.set(backup.id, backup);
    this.#touch(backup);
    log.info("backup {id} for {peer} begins: {keys} keys at LSN {lsn}", {
      event: "backup_begin",
      id: backup.id,
      peer,
      keys: snapshot.keys,
      lsn: snapshot.lsn,
    });
    return {
      type: "array",
      items: [
        { type: "value", value: encoder.encode(backup.id) },
        { type: "integer", value: snapshot.lsn },
        { type: "integer", value: snapshot.keys },
        { type: "integer", value: this.#store.replicationLog.lastEpoch },
      ],
    };
  }

  /**
   * `BACKUP NEXT`: the next chunk, once the NEXT before it was answered; `withTtl` (`NEXT <id>
   * TTL`): each pair followed by its expiry time.
   */
  #next(backup: Backup, withTtl: boolean): Promise<Reply> {
    this.#touch(backup);
    const reply = backup.busy.then(() => this.#nextChunk(backup, withTtl));
    backup.busy = reply.catch(() => undefined);
    return reply;
  }

  async #nextChunk(backup: Backup, withTtl: boolean): Promise<Reply> {
    const items: Reply[] = [];
    let bytes = 0;
    let pairs = 0;
    // Bounded: stops at SNAPSHOT_CHUNK_BYTES or when the snapshot has no more pairs.
    while (bytes < this.#config.SNAPSHOT_CHUNK_BYTES) {
      const step = await backup.iterator.next();
      if (step.done) break;
      const [key, value, expiresAtMs] = step.value;
      items.push({ type: "value", value: key }, { type: "value", value });
      if (withTtl) items.push({ type: "integer", value: expiresAtMs });
      bytes += pairBytes(key, value);
      pairs++;
    }
    backup.sentKeys += pairs;
    backup.sentBytes += bytes;
    if (items.length === 0) this.#release(backup, "finished");
    else this.#touch(backup);
    return { type: "array", items };
  }
}
