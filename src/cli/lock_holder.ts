/**
 * Which node holds a data directory: a running node keeps an exclusive lock on `<dir>/LOCK`, and
 * `kvstore serve` writes `<dir>/RUNNING.json` (its PID and address, as PostgreSQL's
 * `postmaster.pid`) once it listens, and removes it when it stops. The file is believed only
 * while the lock is held, so one left by a crash misleads nobody. Without it (a node started in
 * a program), Linux's `/proc/locks` still names the holder's PID when it can be read (Deno reads
 * `/proc` only with every permission).
 *
 * @module
 */
import { LOCK_FILE_NAME } from "../storage/file_names.ts";

/** The file a running `kvstore serve` keeps in its data directory. */
export const RUNNING_FILE = "RUNNING.json";

/** What `RUNNING.json` holds. */
export interface RunningNode {
  pid: number;
  /** `host:port` it serves clients on. */
  address?: string;
  /** ISO time it started. */
  startedAt?: string;
  /** Its command line, when known. */
  commandLine?: string;
}

/** Writes `RUNNING.json` for this process, serving on `address`. */
export async function writeRunningFile(dataDir: string, address: string): Promise<void> {
  const running: RunningNode = {
    pid: Deno.pid,
    address,
    startedAt: new Date().toISOString(),
  };
  await Deno.writeTextFile(`${dataDir}/${RUNNING_FILE}`, JSON.stringify(running) + "\n", {
    mode: 0o600,
  });
}

/** Removes `RUNNING.json` (at a graceful stop); a missing file is fine. */
export async function removeRunningFile(dataDir: string): Promise<void> {
  await Deno.remove(`${dataDir}/${RUNNING_FILE}`).catch(() => {});
}

/**
 * True when a process holds `<dir>/LOCK`. Read-only: the lock file is opened for reading (never
 * created) and a shared lock is tried and released at once, which changes no byte or time.
 */
export function isLocked(dir: string): boolean {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(`${dir}/${LOCK_FILE_NAME}`, { read: true });
  } catch {
    return false;
  }
  try {
    if (!file.tryLockSync(false)) return true;
    file.unlockSync();
    return false;
  } finally {
    file.close();
  }
}

/** The node holding `<dir>`'s lock, undefined when none does; `{}` when it cannot be told. */
export async function lockHolder(dir: string): Promise<Partial<RunningNode> | undefined> {
  if (!isLocked(dir)) return undefined;
  try {
    const running = JSON.parse(await Deno.readTextFile(`${dir}/${RUNNING_FILE}`));
    if (typeof running?.pid === "number") return running as RunningNode;
  } catch {
    // Not a `kvstore serve` node, or an older one: ask the kernel.
  }
  return await procLockHolder(dir) ?? {};
}

/** The PID and command line of the `flock` holder of `<dir>/LOCK`, from Linux's /proc. */
async function procLockHolder(dir: string): Promise<RunningNode | undefined> {
  if (Deno.build.os !== "linux") return undefined;
  try {
    const inode = (await Deno.stat(`${dir}/${LOCK_FILE_NAME}`)).ino;
    for (const line of (await Deno.readTextFile("/proc/locks")).split("\n")) {
      // "1: FLOCK  ADVISORY  WRITE 14226 fe:00:2147822 0 EOF"
      const fields = line.trim().split(/\s+/);
      if (fields[1] !== "FLOCK" || fields.length < 6) continue;
      if (Number(fields[5].split(":")[2]) !== inode) continue;
      const pid = Number(fields[4]);
      const commandLine = await Deno.readTextFile(`/proc/${pid}/cmdline`)
        .then((text) => text.split("\0").filter((word) => word !== "").join(" "), () => "");
      return { pid, commandLine };
    }
  } catch {
    // No /proc, or no permission to read it.
  }
  return undefined;
}

/** "a running node (pid 123, serving 127.0.0.1:5556, since ...)", for messages. */
export function describeHolder(holder: Partial<RunningNode> | undefined): string {
  if (holder?.pid === undefined) return "a running node";
  const facts = [`pid ${holder.pid}`];
  if (holder.address !== undefined) facts.push(`serving ${holder.address}`);
  if (holder.startedAt !== undefined) facts.push(`since ${holder.startedAt}`);
  if (holder.commandLine) facts.push(holder.commandLine);
  return `a running node (${facts.join(", ")})`;
}
