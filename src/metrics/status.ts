/**
 * What the status page shows, as data: the node (role, epoch, LSNs, keys), its cluster (every
 * replica of a master with its state and lag; the master as a replica sees it), and a bounded
 * history of samples taken every `STATUS_SAMPLE_INTERVAL_MS` (requests and writes per second,
 * fsync latency, lag per replica) for the charts. `GET /status.json` serves it; its fields are
 * documented in docs/operations.md.
 *
 * The cluster part is what replication reports as data (`ServerNode.replication()`), the same
 * facts its `INFO replication` prints, so the page never disagrees with `kvstore info`.
 *
 * @module
 */
import { BUILT_IN_COMMANDS } from "../server/commands.ts";
import type { MasterLinkStatus, ReplicaLinkStatus, ServerNode } from "../server/hooks.ts";
import { VERSION } from "../version.ts";

/** A replica as its master sees it. */
export type ReplicaStatus = ReplicaLinkStatus;

/** The master as a replica sees it. */
export type MasterStatus = MasterLinkStatus;

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
    const { master, replicas } = node.replication();
    if (master?.lagRecords !== undefined) sample.lagRecords.master = master.lagRecords;
    if (master?.lagMs !== undefined) sample.lagMs.master = master.lagMs;
    else if (master?.lastContactSeconds !== undefined) {
      sample.lagMs.master = master.lastContactSeconds * 1000;
    }
    for (const replica of replicas) {
      sample.lagRecords[replica.address] = replica.lagRecords;
      sample.lagMs[replica.address] = replica.lagMs;
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
  const { master, replicas } = node.replication();
  if (master !== undefined) report.master = { ...master };
  report.replicas = replicas.map((r) => ({ ...r }));
  return report;
}
