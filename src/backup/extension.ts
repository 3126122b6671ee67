/**
 * Online backups served by the node: `BACKUP BEGIN` takes a consistent snapshot of every pair at
 * the current LSN (`store.snapshot()`: durable before it answers; writes go on meanwhile and are
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
 * pair was sent (the snapshot is then released); `END` → `OK`.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import type { Reply } from "../protocol/mod.ts";
import { CommandError, type ServerExtension } from "../server/hooks.ts";
import type { StoreSnapshot } from "../storage/mod.ts";

const log = getLog("backup");
const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface Backup {
  id: string;
  snapshot: StoreSnapshot;
  iterator: AsyncIterator<[Uint8Array, Uint8Array]>;
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
  return (node) => {
    const config: Config = node.config;
    const backups = new Map<string, Backup>();

    const release = (backup: Backup, why: string) => {
      if (!backups.delete(backup.id)) return;
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
    };

    const touch = (backup: Backup) => {
      clearTimeout(backup.timer);
      backup.timer = setTimeout(
        () =>
          release(
            backup,
            `abandoned (no request for BACKUP_IDLE_TIMEOUT_SECONDS ${config.BACKUP_IDLE_TIMEOUT_SECONDS} s)`,
          ),
        config.BACKUP_IDLE_TIMEOUT_SECONDS * 1000,
      );
      Deno.unrefTimer(backup.timer);
    };

    const find = (idBytes: Uint8Array): Backup => {
      const id = decoder.decode(idBytes);
      const backup = backups.get(id);
      if (backup === undefined) {
        throw new CommandError(
          `no backup ${
            JSON.stringify(id)
          } (finished, abandoned after BACKUP_IDLE_TIMEOUT_SECONDS ` +
            `${config.BACKUP_IDLE_TIMEOUT_SECONDS} s, or never begun)`,
        );
      }
      return backup;
    };

    const begin = async (peer: string): Promise<Reply> => {
      if (backups.size >= config.MAX_BACKUPS) {
        log.warn("refused a backup for {peer}: MAX_BACKUPS is {limit}", {
          event: "limit",
          setting: "MAX_BACKUPS",
          limit: config.MAX_BACKUPS,
          peer,
        });
        throw new CommandError(
          `${backups.size} backups are running and MAX_BACKUPS is ${config.MAX_BACKUPS}; ` +
            `try again when one finished`,
        );
      }
      const snapshot = await node.store.snapshot();
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
      backups.set(backup.id, backup);
      touch(backup);
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
          { type: "integer", value: node.store.lastEpoch },
        ],
      };
    };

    const nextChunk = async (backup: Backup): Promise<Reply> => {
      const items: Reply[] = [];
      let bytes = 0;
      // Bounded: stops at SNAPSHOT_CHUNK_BYTES or when the snapshot has no more pairs.
      while (bytes < config.SNAPSHOT_CHUNK_BYTES) {
        const step = await backup.iterator.next();
        if (step.done) break;
        const [key, value] = step.value;
        items.push({ type: "value", value: key }, { type: "value", value });
        bytes += pairBytes(key, value);
      }
      backup.sentKeys += items.length / 2;
      backup.sentBytes += bytes;
      if (items.length === 0) release(backup, "finished");
      else touch(backup);
      return { type: "array", items };
    };

    return {
      commands: {
        BACKUP: {
          minArgs: 1,
          maxArgs: 2,
          handler: (args, out, ctx) => {
            const sub = decoder.decode(args[0]).toUpperCase();
            if (sub === "BEGIN" && args.length === 1) return begin(ctx.connection.peer);
            if (sub === "NEXT" && args.length === 2) {
              const backup = find(args[1]);
              touch(backup);
              const reply = backup.busy.then(() => nextChunk(backup));
              backup.busy = reply.catch(() => undefined);
              return reply;
            }
            if (sub === "END" && args.length === 2) {
              release(find(args[1]), "ended by its client");
              out.ok();
              return;
            }
            throw new CommandError("usage: BACKUP BEGIN | BACKUP NEXT <id> | BACKUP END <id>");
          },
        },
      },
      info: {
        backup: () => [
          ["backups_running", backups.size],
          ["max_backups", config.MAX_BACKUPS],
        ],
      },
      close: () => {
        for (const backup of [...backups.values()]) release(backup, "stopped by shutdown");
        return Promise.resolve();
      },
    };
  };
}
