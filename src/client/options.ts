/**
 * What the client's calls take (keys, values, read and write options, a write concern) and the
 * client's and sessions' options, with their checks: a bad option fails where it is given, with
 * the value and the rule it broke.
 *
 * @module
 */
import type { ClusterBounds } from "./cluster.ts";
import { CLIENT_DEFAULTS } from "./defaults.ts";
import type { NodeConnectionOptions } from "./node_connection.ts";
import { READ_PREFERENCES, type ReadPreference } from "./topology.ts";

/**
 * A key: a string (sent as UTF-8) or raw bytes.
 *
 * @example
 * ```ts
 * import type { KVKey } from "../../mod.ts";
 * const keys: KVKey[] = ["user:1", new Uint8Array([0x75, 0x00])];
 * ```
 */
export type KVKey = string | Uint8Array;

/**
 * A value: a string (sent as UTF-8) or raw bytes.
 *
 * @example
 * ```ts
 * import type { KVValue } from "../../mod.ts";
 * const values: KVValue[] = ["hello", new Uint8Array([0, 1, 2])];
 * ```
 */
export type KVValue = string | Uint8Array;

/**
 * How many replicas must have a write before it is acknowledged: a number, or `"majority"` (of
 * the nodes with the master: 1 replica of 2, 2 of 3 or 4), within `timeoutMs`. Whatever the
 * master's replication mode; a write that does not reach them in time fails with
 * {@link KVWriteConcernError} and stays applied on the master.
 *
 * @example
 * ```ts
 * import type { WriteConcern } from "../../mod.ts";
 * const durable: WriteConcern = { replicas: "majority", timeoutMs: 2000 };
 * ```
 */
export interface WriteConcern {
  /** Replicas that must have the write (0: none, the master's own rule only). */
  replicas: number | "majority";
  /** Longest wait for them, in ms (at least 1). */
  timeoutMs: number;
}

/**
 * Per-call read options (they override the client's or the session's).
 *
 * @example
 * ```ts
 * import type { KVClient, KVReadOptions } from "../../mod.ts";
 * const fromReplica: KVReadOptions = { readPreference: "replica", maxStalenessMs: 1000 };
 * async function profile(client: KVClient): Promise<string | undefined> {
 *   return await client.read("profile:1", fromReplica);
 * }
 * ```
 */
export interface KVReadOptions {
  /** Where the read goes (with `nodes`); default the client's, else `primary`. */
  readPreference?: ReadPreference;
  /** Replicas estimated to lag more than this many ms are not read from. */
  maxStalenessMs?: number;
}

/**
 * Per-call write options (they override the client's or the session's).
 *
 * @example
 * ```ts
 * import type { KVClient, KVWriteOptions } from "../../mod.ts";
 * const onTwo: KVWriteOptions = { writeConcern: { replicas: 2, timeoutMs: 1000 } };
 * async function save(client: KVClient): Promise<void> {
 *   await client.put("order:7", "paid", onTwo);
 *   await client.put("session:9", "token", { expireInMs: 30 * 60_000 }); // gone in 30 minutes
 * }
 * ```
 */
export interface KVWriteOptions {
  /** The write's own write concern; default the client's, else none (the master's rule). */
  writeConcern?: WriteConcern;
  /**
   * `put` only: the key expires this many ms after the server applies the write (a whole number
   * of at least 1). The time to live is stored with the value: a restart, a failover and the
   * replicas keep it, and no node serves the key once it passed. Without it the key never
   * expires (and a put removes any time to live the key had).
   */
  expireInMs?: number;
}

/**
 * The words of a `put` of `key` = `value` with `options`: `PUT`, or `PUTEX` with a time to live.
 *
 * @throws {RangeError} an `expireInMs` that is not a whole number of at least 1
 */
export function putWords(
  key: string | Uint8Array,
  value: string | Uint8Array,
  options: KVWriteOptions | undefined,
): (string | Uint8Array)[] {
  const ttl = options?.expireInMs;
  if (ttl === undefined) return ["PUT", key, value];
  if (!Number.isSafeInteger(ttl) || ttl < 1) {
    throw new RangeError(`expireInMs ${ttl} must be a whole number of ms of at least 1`);
  }
  return ["PUTEX", key, String(ttl), value];
}

/**
 * Options of a {@link KVClient}: one node (`host`, `port`) or a cluster (`nodes`), and bounds.
 *
 * @example
 * ```ts
 * import type { KVClientOptions } from "../../mod.ts";
 * const one: KVClientOptions = { host: "127.0.0.1", port: 5556, timeoutMs: 2000 };
 * const cluster: KVClientOptions = {
 *   nodes: ["10.0.0.1:5555", "10.0.0.2:5555"],
 *   readPreference: "replicaPreferred",
 *   maxStalenessMs: 5000,
 * };
 * ```
 */
export interface KVClientOptions extends NodeConnectionOptions {
  /**
   * Seed nodes of a cluster (`host:port`, IPv6 as `[::1]:5555`): the client asks them who the
   * master and the replicas are, tracks the others it learns of, and follows failovers. Give
   * either `nodes` or `host`/`port`.
   */
  nodes?: readonly string[];
  /** Where reads go by default (with `nodes`): `primary` unless set. */
  readPreference?: ReadPreference;
  /** Default staleness bound of replica reads, in ms (none unless set). */
  maxStalenessMs?: number;
  /** Default write concern of writes (none unless set). */
  writeConcern?: WriteConcern;
  /** How often every node is asked for its topology, in ms (0: only on errors). Default 5000. */
  topologyRefreshMs?: number;
  /** Longest wait for one node's topology answer, in ms. Default 2000. */
  topologyTimeoutMs?: number;
  /** Most nodes tracked (seeds and discovered). Default 64. */
  maxNodes?: number;
  /** Most retries of one call. Default 30. */
  maxRetries?: number;
  /** Most time one call spends retrying, in ms. Default 30000. */
  retryTimeoutMs?: number;
  /** Wait before the first retry, in ms; it doubles per retry. Default 50. */
  retryBackoffMs?: number;
  /** Longest wait between retries, in ms. Default 1000. */
  maxRetryBackoffMs?: number;
  /** Latency window of `nearest` and the replica choices, in ms. Default 15. */
  localThresholdMs?: number;
}

/**
 * Options of {@link KVClient.session}: defaults for the session's calls.
 *
 * @example
 * ```ts
 * import type { KVSessionOptions } from "../../mod.ts";
 * const options: KVSessionOptions = { readPreference: "replica" };
 * ```
 */
export interface KVSessionOptions extends KVReadOptions, KVWriteOptions {}

const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[^:\s[\]]+):(\d{1,5})$/;

/** Checks one `nodes` entry. */
function checkAddress(text: string): string {
  const match = ADDRESS.exec(text.trim());
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || !(port >= 1 && port <= 65535)) {
    throw new RangeError(`nodes entry "${text}" is not host:port (for example 10.0.0.1:5555)`);
  }
  return text.trim();
}

/** Checks a count option: a whole number of at least `min`. */
function checkCount(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} ${value} must be a whole number of at least ${min}`);
  }
  return value;
}

/** Checks read options; `where` prefixes the option names in the error (`"session "`). */
export function checkReadOptions(options: KVReadOptions | undefined, where: string): void {
  if (options === undefined) return;
  const preference = options.readPreference;
  if (preference !== undefined && !READ_PREFERENCES.includes(preference)) {
    throw new RangeError(
      `${where}readPreference "${preference}" is not one of ${READ_PREFERENCES.join(", ")}`,
    );
  }
  const staleness = options.maxStalenessMs;
  if (staleness !== undefined && !(Number.isFinite(staleness) && staleness >= 0)) {
    throw new RangeError(`${where}maxStalenessMs ${staleness} must be 0 or more`);
  }
}

/** Checks a write concern; `where` prefixes the option names in the error. */
export function checkWriteConcern(concern: WriteConcern | undefined, where: string): void {
  if (concern === undefined) return;
  const { replicas, timeoutMs } = concern;
  if (replicas !== "majority" && !(Number.isInteger(replicas) && replicas >= 0)) {
    throw new RangeError(
      `${where}writeConcern.replicas ${replicas} is not "majority" or 0 or more`,
    );
  }
  if (!(Number.isInteger(timeoutMs) && timeoutMs >= 1)) {
    throw new RangeError(`${where}writeConcern.timeoutMs ${timeoutMs} must be at least 1`);
  }
}

/**
 * The seeds and bounds of a cluster client (`nodes`), each option checked and defaulted from
 * {@link CLIENT_DEFAULTS}.
 */
export function clusterOptions(
  nodes: readonly string[],
  options: KVClientOptions,
): { seeds: string[]; bounds: ClusterBounds } {
  if (nodes.length === 0) throw new RangeError("nodes is empty: give at least one host:port");
  const seeds = [...new Set(nodes.map(checkAddress))];
  const bound = (name: keyof typeof CLIENT_DEFAULTS & keyof KVClientOptions): number =>
    (options[name] as number | undefined) ?? CLIENT_DEFAULTS[name];
  const bounds = {
    topologyRefreshMs: checkCount("topologyRefreshMs", bound("topologyRefreshMs"), 0),
    topologyTimeoutMs: checkCount("topologyTimeoutMs", bound("topologyTimeoutMs"), 1),
    maxTopologyReplyBytes: CLIENT_DEFAULTS.maxTopologyReplyBytes,
    maxNodes: checkCount("maxNodes", bound("maxNodes"), 1),
    maxRetries: checkCount("maxRetries", bound("maxRetries"), 0),
    retryTimeoutMs: checkCount("retryTimeoutMs", bound("retryTimeoutMs"), 0),
    retryBackoffMs: checkCount("retryBackoffMs", bound("retryBackoffMs"), 0),
    maxRetryBackoffMs: checkCount("maxRetryBackoffMs", bound("maxRetryBackoffMs"), 0),
    localThresholdMs: checkCount("localThresholdMs", bound("localThresholdMs"), 0),
    suspectMs: CLIENT_DEFAULTS.suspectMs,
  };
  if (seeds.length > bounds.maxNodes) {
    throw new RangeError(`${seeds.length} nodes given, more than maxNodes ${bounds.maxNodes}`);
  }
  return { seeds, bounds };
}
