/**
 * What the status page shows, as data: the node (role, epoch, LSNs, keys), its cluster (every
 * replica of a master with its state and lag; the master as a replica sees it), and a bounded
 * history of samples taken every `STATUS_SAMPLE_INTERVAL_MS` (requests and writes per second,
 * fsync latency, lag per replica) for the charts. `GET /status.json` serves it; its fields are
 * documented in docs/operations.md.
 *
 * The cluster part is read from the node's own `INFO replication`, the same text operators and
 * tools read, so the page never disagrees with `kvstore info`.
 *
 * @module
 */
import { BUILT_IN_COMMANDS } from "../server/commands.ts";
import type { ServerNode } from "../server/hooks.ts";
import { VERSION } from "../version.ts";

/** A replica as its master sees it. */
export interface ReplicaStatus {
  address: string;
  /** `streaming`, `catching_up`, `full_sync` or `down`. */
  state: string;
  healthy: boolean;
  ackedLsn: number;
  lagRecords: number;
  lagMs: number;
  queuedRecords: number;
  fullSyncs: number;
  lastError?: string;
}

/** The master as a replica sees it. */
export interface MasterStatus {
  /** The master's address as the replica knows it. */
  address: string;
  /** `up` while its stream is connected and applied, else `down`. */
  linkStatus: string;
  /** Seconds since the master was last heard, or undefined before the first contact. */
  lastContactSeconds?: number;
  lastAppliedLsn: number;
  /** Records and ms behind the master, when the master told it. */
  lagRecords?: number;
  lagMs?: number;
  fullSyncInProgress: boolean;
}

/** One sample of the history. */
export interface StatusSample {
  /** Unix time in seconds. */
  timeSeconds: number;
  /** Requests answered per second since the previous sample. */
  opsPerSecond: number;
  /** Client writes (PUT, DELETE, BATCHPUT and their Redis names) per second. */
  writesPerSecond: number;
  /** Mean and longest fsync since the previous sample, in ms (null: none happened). */
  fsyncMeanMs: number | null;
  fsyncMaxMs: number | null;
  /** Master: records and ms each replica lags, by address. Replica: its master's, under "master". */
  lagRecords: Record<string, number>;
  lagMs: Record<string, number>;
}

/** The charts' data: parallel arrays, oldest first. */
export interface StatusHistory {
  intervalMs: number;
  /** Unix seconds of each sample. */
  t: number[];
  opsPerSecond: number[];
  writesPerSecond: number[];
  fsyncMeanMs: (number | null)[];
  fsyncMaxMs: (number | null)[];
  /** By series name (a replica's address, or "master"); null where the series had no value. */
  lagRecords: Record<string, (number | null)[]>;
  lagMs: Record<string, (number | null)[]>;
}

/** What `GET /status.json` answers. */
export interface StatusReport {
  node: {
    role: "master" | "replica";
    address: string;
    version: string;
    pid: number;
    runId: string;
    uptimeSeconds: number;
    epoch: number;
    lastLsn: number;
    durableLsn: number;
    keys: number;
    fsync: string;
    healthy: boolean;
    failure?: string;
  };
  /** A master's replicas (empty on a replica). */
  replicas: ReplicaStatus[];
  /** A replica's master (absent on a master). */
  master?: MasterStatus;
  history: StatusHistory;
}

/** The `key:value` fields of `INFO <section>` of `node`. */
export function infoFields(node: ServerNode, section: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of node.info(section, "\n").split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

function numberOr(text: string | undefined, fallback: number): number {
  const value = Number(text);
  return text === undefined || text === "" || !Number.isFinite(value) ? fallback : value;
}

/** The replicas listed in a master's `INFO replication` fields (`replicaN:address=...,...`). */
export function replicasOf(fields: Map<string, string>): ReplicaStatus[] {
  const replicas: ReplicaStatus[] = [];
  // Bounded by the fields: replica indexes are consecutive from 0.
  for (let i = 0; fields.has(`replica${i}`); i++) {
    const parts = new Map<string, string>();
    for (const part of (fields.get(`replica${i}`) ?? "").split(",")) {
      const eq = part.indexOf("=");
      if (eq > 0) parts.set(part.slice(0, eq), part.slice(eq + 1));
    }
    const replica: ReplicaStatus = {
      address: parts.get("address") ?? `replica${i}`,
      state: parts.get("state") ?? "unknown",
      healthy: parts.get("healthy") === "yes",
      ackedLsn: numberOr(parts.get("acked_lsn"), 0),
      lagRecords: numberOr(parts.get("lag_records"), 0),
      lagMs: numberOr(parts.get("lag_ms"), 0),
      queuedRecords: numberOr(parts.get("queued_records"), 0),
      fullSyncs: numberOr(parts.get("full_syncs"), 0),
    };
    const lastError = fields.get(`replica${i}_last_error`);
    if (lastError !== undefined) replica.lastError = lastError;
    replicas.push(replica);
  }
  return replicas;
}

/** The master as a replica's `INFO replication` fields describe it. */
export function masterOf(fields: Map<string, string>): MasterStatus {
  const master: MasterStatus = {
    address: fields.get("master_address") ?? "",
    linkStatus: fields.get("master_link_status") ?? "down",
    lastAppliedLsn: numberOr(fields.get("last_applied_lsn"), 0),
    fullSyncInProgress: fields.get("full_sync_in_progress") === "1",
  };
  const lastContact = numberOr(fields.get("master_last_io_seconds_ago"), -1);
  if (lastContact >= 0) master.lastContactSeconds = lastContact;
  const lagRecords = numberOr(fields.get("master_lag_records"), -1);
  if (lagRecords >= 0) master.lagRecords = lagRecords;
  const lagMs = numberOr(fields.get("master_lag_ms"), -1);
  if (lagMs >= 0) master.lagMs = lagMs;
  return master;
}

/** Command names that are client writes (PUT, SET, DEL, ...), for the writes-per-second series. */
const WRITE_COMMANDS: ReadonlySet<string> = new Set(
  [...BUILT_IN_COMMANDS].filter(([, spec]) => spec.write).map(([name]) => name),
);

/**
 * Takes the samples the charts draw, keeping the last `capacity` of them. Feed it every batch of
 * answered commands ({@link countAnswered}) and every fsync ({@link observeFsync}); call
 * {@link sample} once per interval.
 */
export class StatusRecorder {
  readonly #capacity: number;
  readonly #intervalMs: number;
  readonly #history: StatusHistory;
  #lastCommands: number | undefined;
  #lastSampleMs = 0;
  #writes = 0;
  #fsyncCount = 0;
  #fsyncSumSeconds = 0;
  #fsyncMaxSeconds = 0;

  constructor(capacity: number, intervalMs: number) {
    this.#capacity = capacity;
    this.#intervalMs = intervalMs;
    this.#history = {
      intervalMs,
      t: [],
      opsPerSecond: [],
      writesPerSecond: [],
      fsyncMeanMs: [],
      fsyncMaxMs: [],
      lagRecords: {},
      lagMs: {},
    };
  }

  /** Counts the client writes among the commands of one answered batch. */
  countAnswered(names: readonly string[]): void {
    for (const name of names) if (WRITE_COMMANDS.has(name)) this.#writes++;
  }

  /** One fsync took `seconds`. */
  observeFsync(seconds: number): void {
    this.#fsyncCount++;
    this.#fsyncSumSeconds += seconds;
    if (seconds > this.#fsyncMaxSeconds) this.#fsyncMaxSeconds = seconds;
  }

  /** Takes a sample of `node` now. */
  sample(node: ServerNode, nowMs = Date.now()): StatusSample {
    const commands = node.stats.totalCommands;
    const elapsedSeconds = this.#lastCommands === undefined
      ? this.#intervalMs / 1000
      : Math.max((nowMs - this.#lastSampleMs) / 1000, 0.001);
    const sample: StatusSample = {
      timeSeconds: nowMs / 1000,
      opsPerSecond: this.#lastCommands === undefined
        ? 0
        : (commands - this.#lastCommands) / elapsedSeconds,
      writesPerSecond: this.#writes / elapsedSeconds,
      fsyncMeanMs: this.#fsyncCount === 0
        ? null
        : (this.#fsyncSumSeconds / this.#fsyncCount) * 1000,
      fsyncMaxMs: this.#fsyncCount === 0 ? null : this.#fsyncMaxSeconds * 1000,
      lagRecords: {},
      lagMs: {},
    };
    const fields = infoFields(node, "replication");
    if (node.replica) {
      const master = masterOf(fields);
      if (master.lagRecords !== undefined) sample.lagRecords.master = master.lagRecords;
      if (master.lagMs !== undefined) sample.lagMs.master = master.lagMs;
      else if (master.lastContactSeconds !== undefined) {
        sample.lagMs.master = master.lastContactSeconds * 1000;
      }
    } else {
      for (const replica of replicasOf(fields)) {
        sample.lagRecords[replica.address] = replica.lagRecords;
        sample.lagMs[replica.address] = replica.lagMs;
      }
    }
    this.#lastCommands = commands;
    this.#lastSampleMs = nowMs;
    this.#writes = 0;
    this.#fsyncCount = 0;
    this.#fsyncSumSeconds = 0;
    this.#fsyncMaxSeconds = 0;
    this.#push(sample);
    return sample;
  }

  #push(sample: StatusSample): void {
    const h = this.#history;
    const length = h.t.length;
    h.t.push(Math.round(sample.timeSeconds * 1000) / 1000);
    h.opsPerSecond.push(Math.round(sample.opsPerSecond * 10) / 10);
    h.writesPerSecond.push(Math.round(sample.writesPerSecond * 10) / 10);
    h.fsyncMeanMs.push(roundMs(sample.fsyncMeanMs));
    h.fsyncMaxMs.push(roundMs(sample.fsyncMaxMs));
    for (const [series, values] of [[h.lagRecords, sample.lagRecords], [h.lagMs, sample.lagMs]]) {
      for (const name of Object.keys(values)) {
        series[name] ??= new Array(length).fill(null);
      }
      for (const [name, column] of Object.entries(series)) column.push(values[name] ?? null);
    }
    if (h.t.length > this.#capacity) {
      const drop = h.t.length - this.#capacity;
      for (const column of [h.t, h.opsPerSecond, h.writesPerSecond, h.fsyncMeanMs, h.fsyncMaxMs]) {
        column.splice(0, drop);
      }
      for (const series of [h.lagRecords, h.lagMs]) {
        for (const [name, column] of Object.entries(series)) {
          column.splice(0, drop);
          // A replica removed long enough ago has aged out of the window.
          if (column.every((value) => value === null)) delete series[name];
        }
      }
    }
  }

  /** The history so far (the recorder's own arrays: serialize, do not change them). */
  get history(): StatusHistory {
    return this.#history;
  }
}

function roundMs(value: number | null): number | null {
  return value === null ? null : Math.round(value * 1000) / 1000;
}

/** The whole report of `node` for `GET /status.json`. */
export function statusReport(node: ServerNode, recorder: StatusRecorder): StatusReport {
  const stats = node.store.stats();
  const healthy = !node.store.closed && stats.failure === undefined;
  const report: StatusReport = {
    node: {
      role: node.replica ? "replica" : "master",
      address: node.host.includes(":")
        ? `[${node.host}]:${node.port}`
        : `${node.host}:${node.port}`,
      version: VERSION,
      pid: Deno.pid,
      runId: node.runId,
      uptimeSeconds: Math.floor((Date.now() - node.startedAtMs) / 1000),
      epoch: stats.epoch,
      lastLsn: stats.lastLsn,
      durableLsn: stats.durableLsn,
      keys: stats.keys,
      fsync: node.config.FSYNC,
      healthy,
    },
    replicas: [],
    history: recorder.history,
  };
  if (stats.failure !== undefined) report.node.failure = stats.failure;
  const fields = infoFields(node, "replication");
  if (node.replica) report.master = masterOf(fields);
  else report.replicas = replicasOf(fields);
  return report;
}
