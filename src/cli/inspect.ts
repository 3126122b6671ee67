/**
 * `kvstore inspect --data-dir D`: what a data directory holds, read without changing a byte.
 *
 * Opening a store to look inside it would write: it takes the directory's lock, truncates a torn
 * tail, zero-fills the active segment, writes hint files and may compact. This reads the segment
 * files with read-only descriptors through the same scanner recovery uses, and replays their
 * records in log order to count the live keys. It takes no lock, so it also works beside a running
 * node (whose figures may then move while it reads) and on a backup.
 *
 * @module
 */
import { closeSync, openSync } from "node:fs";
import { CorruptionError } from "../storage/errors.ts";
import { forEachKey, Op, recordEpoch, recordOp } from "../storage/record.ts";
import {
  hintPathOf,
  LOCK_FILE_NAME,
  parseSegmentFileName,
  parseSegmentOrHintFileName,
  segmentFileName,
} from "../storage/file_names.ts";
import { readAtSync } from "../storage/read_at.ts";
import { decodeSegmentHeader, SEGMENT_HEADER_BYTES, SegmentFlag } from "../storage/segment.ts";
import { scanSegment } from "../storage/segment_scan.ts";
import { describeHolder, lockHolder, RUNNING_FILE, type RunningNode } from "./lock_holder.ts";

/** What one segment file holds. */
export interface SegmentReport {
  file: string;
  sizeBytes: number;
  /** The highest id is the active segment (the one appended to); the others are sealed. */
  active: boolean;
  /** Written by compaction (`compacted`) or a full sync (`full_sync`), or as appended (`log`). */
  kind: "log" | "compacted" | "full_sync";
  records: number;
  /** LSN range of its records (0 when it holds none). */
  firstLsn: number;
  lastLsn: number;
  /** A hint file (the index summary recovery reads) sits beside it. */
  hint: boolean;
  /**
   * `ok`; `preallocated` (the active segment's zero-filled space after its records, normal);
   * `torn_tail` (a write a crash cut: the node truncates it at its next start, as nothing there
   * was acknowledged); `corrupt` (damage with intact records after it: the node refuses to start,
   * see `kvstore repair`).
   */
  health: "ok" | "preallocated" | "torn_tail" | "corrupt";
  /** Where the damage or zero fill starts, and why, when health is not `ok`. */
  damageOffset?: number;
  damageBytes?: number;
  damage?: string;
}

/** What {@link inspectDataDir} found. */
export interface InspectReport {
  dataDir: string;
  /** The node holding the directory's lock (what it says of itself), or undefined. */
  runningNode?: Partial<RunningNode>;
  segments: SegmentReport[];
  /** LSN range of the whole log (0 when empty). */
  firstLsn: number;
  lastLsn: number;
  /** Highest epoch of a record in the log. */
  logEpoch: number;
  /** `NODE_STATE.json` (replication's fenced epoch and promotion mark), when present. */
  nodeState?: unknown;
  liveKeys: number;
  liveValueBytes: number;
  liveKeyBytes: number;
  /** Files that are neither segments, hints, the lock nor the node state. */
  otherFiles: string[];
  /** True when no segment is corrupt (a torn tail is repaired by the next start). */
  healthy: boolean;
  /** With `keys`: the live keys in byte order, as their bytes. */
  keys?: Uint8Array[];
}

/** Options of {@link inspectDataDir}. */
export interface InspectOptions {
  /** Also return the live keys. */
  keys?: boolean;
}

/** Latin-1 text of bytes: a one-to-one map key for arbitrary key bytes. */
function byteString(bytes: Uint8Array, start: number, length: number): string {
  let text = "";
  for (let i = 0; i < length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(start + i, start + Math.min(length, i + 0x8000)));
  }
  return text;
}

/**
 * Reads `dataDir` without writing to it: segments with their LSN ranges and health, the epoch,
 * live keys and their bytes.
 */
export async function inspectDataDir(
  dataDir: string,
  options: InspectOptions = {},
): Promise<InspectReport> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dataDir)) names.push(entry.name);
  names.sort();
  const segmentIds = names.map(parseSegmentFileName).filter((id) => id !== undefined);
  const activeId = segmentIds.length === 0 ? -1 : Math.max(...segmentIds);
  // BACKUP.json: what `kvstore backup` copied (a backup's own record).
  const known = new Set([LOCK_FILE_NAME, "NODE_STATE.json", "BACKUP.json", RUNNING_FILE]);
  const report: InspectReport = {
    dataDir,
    segments: [],
    firstLsn: 0,
    lastLsn: 0,
    logEpoch: 0,
    liveKeys: 0,
    liveValueBytes: 0,
    liveKeyBytes: 0,
    otherFiles: [],
    healthy: true,
  };
  const holder = await lockHolder(dataDir);
  if (holder !== undefined) report.runningNode = holder;
  if (names.includes("NODE_STATE.json")) {
    try {
      report.nodeState = JSON.parse(await Deno.readTextFile(`${dataDir}/NODE_STATE.json`));
    } catch (error) {
      report.nodeState = `unreadable: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  // Live keys: latin-1 key text → value length (replayed in log order, last write wins).
  const live = new Map<string, number>();
  for (const name of names) {
    const id = parseSegmentFileName(name);
    if (id === undefined) {
      const hintOf = parseSegmentOrHintFileName(name); // a hint: a segment's was parsed above
      if (!known.has(name) && (hintOf === undefined || !names.includes(segmentFileName(hintOf)))) {
        report.otherFiles.push(name);
      }
      continue;
    }
    const segment = inspectSegment(dataDir, name, id === activeId, live);
    segment.report.hint = names.includes(hintPathOf(name));
    report.segments.push(segment.report);
    report.logEpoch = Math.max(report.logEpoch, segment.maxEpoch);
    if (segment.report.records > 0) {
      if (report.firstLsn === 0) report.firstLsn = segment.report.firstLsn;
      report.lastLsn = Math.max(report.lastLsn, segment.report.lastLsn);
    }
    if (segment.report.health === "corrupt") report.healthy = false;
  }
  for (const [key, valueBytes] of live) {
    report.liveKeys++;
    report.liveValueBytes += valueBytes;
    report.liveKeyBytes += key.length;
  }
  if (options.keys) {
    report.keys = [...live.keys()].sort().map((key) =>
      Uint8Array.from(key, (char) => char.charCodeAt(0))
    );
  }
  return report;
}

function inspectSegment(
  dataDir: string,
  name: string,
  active: boolean,
  live: Map<string, number>,
): { report: SegmentReport; maxEpoch: number } {
  const path = `${dataDir}/${name}`;
  const fd = openSync(path, "r");
  const report: SegmentReport = {
    file: name,
    sizeBytes: 0,
    active,
    kind: "log",
    records: 0,
    firstLsn: 0,
    lastLsn: 0,
    hint: false,
    health: "ok",
  };
  let maxEpoch = 0;
  try {
    const size = Deno.statSync(path).size;
    report.sizeBytes = size;
    const headerBytes = new Uint8Array(SEGMENT_HEADER_BYTES);
    readAtSync(fd, 0, headerBytes);
    let header;
    try {
      header = decodeSegmentHeader(headerBytes, path);
    } catch (error) {
      if (!(error instanceof CorruptionError)) throw error;
      return { report: { ...report, ...damaged(error, size) }, maxEpoch };
    }
    if (header.flags & SegmentFlag.FULL_SYNC) report.kind = "full_sync";
    else if (header.flags & SegmentFlag.COMPACTED) report.kind = "compacted";
    const visit = (buf: Uint8Array, view: DataView, at: number) => {
      maxEpoch = Math.max(maxEpoch, recordEpoch(view, at));
      if (recordOp(buf, at) === Op.FLUSH) live.clear();
      forEachKey(buf, view, at, (keyStart, keyLength, valueStart, valueLength) => {
        const key = byteString(buf, keyStart, keyLength);
        if (valueStart < 0) live.delete(key);
        else live.set(key, valueLength);
      });
    };
    try {
      const scan = scanSegment(fd, path, size, SEGMENT_HEADER_BYTES, visit);
      report.records = scan.records;
      report.firstLsn = scan.firstLsn;
      report.lastLsn = scan.lastLsn;
      if (scan.damage !== "none") {
        report.damageOffset = scan.validEnd;
        report.damageBytes = scan.tailBytes;
        report.damage = scan.reason;
        report.health = scan.damage === "zeros" && active ? "preallocated" : active
          ? "torn_tail"
          // A sealed segment was fsynced whole before the next one began: damage is corruption.
          : "corrupt";
      }
    } catch (error) {
      if (!(error instanceof CorruptionError)) throw error;
      Object.assign(report, damaged(error, size));
    }
  } finally {
    closeSync(fd);
  }
  return { report, maxEpoch };
}

function damaged(error: CorruptionError, size: number): Partial<SegmentReport> {
  return {
    health: "corrupt",
    damageOffset: error.offset,
    damageBytes: size - error.offset,
    damage: error.reason,
  };
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** The report as text for people. */
export function formatInspectReport(report: InspectReport): string {
  const lines = [`data directory ${report.dataDir} (read only: nothing in it was changed)`];
  if (report.runningNode !== undefined) {
    lines.push(
      `  in use by ${describeHolder(report.runningNode)}: its figures may change while read`,
    );
  }
  const totalBytes = report.segments.reduce((sum, s) => sum + s.sizeBytes, 0);
  lines.push(`segments: ${report.segments.length} (${formatBytes(totalBytes)})`);
  for (const s of report.segments) {
    const records = s.records === 0
      ? "no records"
      : `LSN ${s.firstLsn}..${s.lastLsn}, ${s.records} records`;
    const health = s.health === "ok"
      ? "ok"
      : s.health === "preallocated"
      ? `ok (${formatBytes(s.damageBytes ?? 0)} zero-filled ahead)`
      : s.health === "torn_tail"
      ? `torn tail: ${s.damageBytes} bytes at offset ${s.damageOffset} (${s.damage}); the ` +
        `node truncates it at its next start`
      : `CORRUPT at offset ${s.damageOffset}: ${s.damage} (kvstore repair says what it would cut)`;
    lines.push(
      `  ${s.file}  ${formatBytes(s.sizeBytes).padStart(10)}  ${s.active ? "active" : "sealed"}` +
        `${s.kind === "log" ? "" : ` (${s.kind.replace("_", " ")})`}  ${records}, ` +
        `hint ${s.hint ? "yes" : "no"}: ${health}`,
    );
  }
  lines.push(
    report.lastLsn === 0 ? "LSN range: empty" : `LSN range: ${report.firstLsn}..${report.lastLsn}`,
  );
  const state = report.nodeState as
    | { highestEpochSeen?: number; promotedEpoch?: number }
    | undefined;
  let epoch = `epoch: ${report.logEpoch} (highest in the log)`;
  if (typeof state === "object" && state !== null) {
    epoch += `; NODE_STATE.json: highest epoch seen ${state.highestEpochSeen ?? 0}` +
      (state.promotedEpoch === undefined
        ? ""
        : `, promoted to master of epoch ${state.promotedEpoch}`);
  } else if (state !== undefined) {
    epoch += `; NODE_STATE.json ${state}`;
  }
  lines.push(epoch);
  lines.push(
    `keys: ${report.liveKeys} live (${formatBytes(report.liveKeyBytes)} of keys, ` +
      `${formatBytes(report.liveValueBytes)} of values)`,
  );
  if (report.otherFiles.length > 0) lines.push(`other files: ${report.otherFiles.join(", ")}`);
  lines.push(`health: ${report.healthy ? "ok" : "CORRUPT (the node will refuse to start)"}`);
  return lines.join("\n") + "\n";
}
