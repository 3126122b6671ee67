/**
 * `KVClient`: the client of a kvstore node, or of a whole cluster.
 *
 * - `new KVClient({ host, port })` talks to one node over one pipelined connection, as it always
 *   did.
 * - `new KVClient({ nodes: ["h1:5555", "h2:5555"] })` finds the master and the replicas from
 *   whichever node answers (`TOPOLOGY`), keeps that view fresh (every `topologyRefreshMs` and
 *   after errors), sends writes to the master and follows it through a failover by itself, and
 *   sends reads where `readPreference` says. Sessions (`client.session()`) read their own
 *   writes wherever their reads go.
 *
 * Uses only relative and `node:` imports, so it can be imported by URL.
 *
 * @module
 */
import type { CommandArgument, RespValue } from "../protocol/resp.ts";
import { ClusterRouter } from "./cluster.ts";
import { CLIENT_DEFAULTS } from "./defaults.ts";
import { KVError } from "./errors.ts";
import { NodeConnection, type NodeConnectionOptions } from "./node_connection.ts";
import { type KVTopology, READ_PREFERENCES, type ReadPreference } from "./topology.ts";

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
 * }
 * ```
 */
export interface KVWriteOptions {
  /** The write's own write concern; default the client's, else none (the master's rule). */
  writeConcern?: WriteConcern;
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

/** A call as the client routes it. */
interface Call {
  kind: "read" | "write";
  parts: CommandArgument[];
  /** A write that means the same applied twice (retried after an unknown outcome). */
  idempotent?: boolean;
  read?: KVReadOptions;
  write?: KVWriteOptions;
  session?: SessionState;
  /** Sent as given (`send`): no `WITH` options. */
  raw?: boolean;
}

/** What a session tracks: the highest LSN it wrote or read. */
interface SessionState {
  lastLsn: number;
}

const decoder = new TextDecoder();

/** Routes a call through a client (set by {@link KVClient}'s static block). */
let routeOf: (client: KVClient, call: Call) => Promise<RespValue>;

/** Commands that only read, routed as reads by {@link KVClient.send}. */
const READ_COMMANDS: ReadonlySet<string> = new Set([
  "READ",
  "GET",
  "MGET",
  "EXISTS",
  "READRANGE",
  "DBSIZE",
  "PING",
  "ECHO",
  "INFO",
  "TOPOLOGY",
  "ROLE",
  "CONFIG",
  "COMMAND",
]);

/** Writes that mean the same applied twice, retried by {@link KVClient.send}. */
const IDEMPOTENT_WRITES: ReadonlySet<string> = new Set([
  "PUT",
  "DELETE",
  "DEL",
  "BATCHPUT",
  "MSET",
]);

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

function checkCount(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} ${value} must be a whole number of at least ${min}`);
  }
  return value;
}

function checkReadOptions(options: KVReadOptions | undefined, where: string): void {
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

function checkWriteConcern(concern: WriteConcern | undefined, where: string): void {
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

function unexpected(command: string, reply: RespValue): KVError {
  const shown = reply instanceof Uint8Array ? decoder.decode(reply.subarray(0, 100)) : reply;
  return new KVError(`unexpected reply to ${command}: ${JSON.stringify(shown)}`);
}

function expectOk(reply: RespValue): void {
  if (reply !== "OK") throw unexpected("the command", reply);
}

/** A `READ` reply as the value's bytes, or undefined when the key is missing. */
function valueOf(reply: RespValue): Uint8Array | undefined {
  if (reply === null) return undefined;
  if (reply instanceof Uint8Array) return reply;
  throw unexpected("READ", reply);
}

function decodeValue(value: Uint8Array | undefined): string | undefined {
  return value === undefined ? undefined : decoder.decode(value);
}

function decodePairs(pairs: [Uint8Array, Uint8Array][]): [string, string][] {
  return pairs.map(([key, value]) => [decoder.decode(key), decoder.decode(value)]);
}

/** A `DELETE` reply: whether the key existed. */
function existed(reply: RespValue): boolean {
  if (reply === 1 || reply === 0) return reply === 1;
  throw unexpected("DELETE", reply);
}

function toPairs(reply: RespValue): [Uint8Array, Uint8Array][] {
  if (!Array.isArray(reply) || reply.length % 2 !== 0) throw unexpected("READRANGE", reply);
  const pairs: [Uint8Array, Uint8Array][] = [];
  for (let i = 0; i < reply.length; i += 2) {
    const key = reply[i];
    const value = reply[i + 1];
    if (!(key instanceof Uint8Array) || !(value instanceof Uint8Array)) {
      throw unexpected("READRANGE", reply);
    }
    pairs.push([key, value]);
  }
  return pairs;
}

function batchParts(
  pairs: Iterable<readonly [KVKey, KVValue]> | Readonly<Record<string, KVValue>>,
): CommandArgument[] {
  const parts: CommandArgument[] = ["BATCHPUT"];
  const entries = Symbol.iterator in pairs
    ? pairs as Iterable<readonly [KVKey, KVValue]>
    : Object.entries(pairs);
  for (const [key, value] of entries) parts.push(key, value);
  return parts;
}

/**
 * A client of one kvstore node (`host`, `port`) or of a cluster (`nodes`).
 *
 * Values come back as strings from {@link read} and {@link readRange} (decoded as UTF-8, bytes
 * that are not UTF-8 become U+FFFD) and as bytes from {@link readBytes} and
 * {@link readRangeBytes}, which return exactly what was stored.
 *
 * With `nodes`, writes go to the master the client found (and find the new one after a failover:
 * a `put`, `delete` or `batchPut` whose outcome was unknown is sent again there, since applying it
 * twice means the same; other commands fail with {@link KVOutcomeUnknownError}), reads go where
 * `readPreference` says (`primary` by default), and every call gives up within `maxRetries` and
 * `retryTimeoutMs` with {@link KVUnavailableError}.
 *
 * The constructor does not connect: the first call does (use {@link KVClient.connect} to connect
 * at once). The examples of the methods are functions that take a client, so they can be read
 * (and type-checked) without a server.
 *
 * @example
 * ```ts
 * import { KVClient } from "../../mod.ts";
 * const client = new KVClient({ host: "127.0.0.1", port: 5555, timeoutMs: 2000 });
 * async function greet(): Promise<string | undefined> {
 *   await client.put("greeting", "hello");
 *   return await client.read("greeting"); // "hello"
 * }
 * await client.close();
 * ```
 */
export class KVClient implements AsyncDisposable {
  readonly #direct: NodeConnection | undefined;
  readonly #cluster: ClusterRouter | undefined;
  readonly #seeds: readonly string[];
  readonly #readPreference: ReadPreference;
  readonly #maxStalenessMs: number | undefined;
  readonly #writeConcern: WriteConcern | undefined;

  static {
    // Sessions route their calls through their client's #call.
    routeOf = (client, call) => client.#call(call);
  }

  /**
   * A client of the node at `options.host:options.port`, or of the cluster `options.nodes`; it
   * connects on the first call.
   */
  constructor(options: KVClientOptions = {}) {
    checkReadOptions(options, "");
    checkWriteConcern(options.writeConcern, "");
    this.#readPreference = options.readPreference ?? "primary";
    this.#maxStalenessMs = options.maxStalenessMs;
    this.#writeConcern = options.writeConcern;
    const { nodes, ...connection } = options;
    if (nodes === undefined) {
      this.#direct = new NodeConnection(connection);
      this.#seeds = [this.#direct.address];
      return;
    }
    if (options.host !== undefined || options.port !== undefined) {
      throw new RangeError("give nodes or host/port, not both");
    }
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
    // Checked here once, so that a bad option fails the constructor, not a later call.
    new NodeConnection({ ...connection, host: "127.0.0.1", port: 1 });
    this.#seeds = seeds;
    this.#cluster = new ClusterRouter(seeds, connection, bounds);
  }

  /**
   * Creates a client and checks that it reaches a node (with `nodes`: the master), so a wrong
   * address fails here rather than at the first call.
   *
   * @example
   * ```ts
   * import { KVClient } from "../../mod.ts";
   * async function open(port: number): Promise<KVClient> {
   *   return await KVClient.connect({ host: "127.0.0.1", port, timeoutMs: 2000 });
   * }
   * ```
   */
  static async connect(options: KVClientOptions = {}): Promise<KVClient> {
    const client = new KVClient(options);
    try {
      await client.ping();
    } catch (error) {
      await client.close();
      throw error;
    }
    return client;
  }

  /**
   * The node's `host:port`; with `nodes`, the master's as the client knows it (the first seed
   * before it knows).
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * function where(client: KVClient): string {
   *   return `writes go to ${client.address}`;
   * }
   * ```
   */
  get address(): string {
    return this.#direct?.address ?? this.#cluster?.state.master.address ?? this.#seeds[0];
  }

  /**
   * Stores `value` under `key` (the spec's PUT). Resolves once the server acknowledged it, which
   * under its default `--fsync always` means the write is on disk (and with a write concern, on
   * that many replicas).
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function saveUser(client: KVClient): Promise<void> {
   *   await client.put("user:1", JSON.stringify({ name: "Ada" }));
   * }
   * ```
   */
  async put(key: KVKey, value: KVValue, options?: KVWriteOptions): Promise<void> {
    expectOk(
      await this.#call({
        kind: "write",
        parts: ["PUT", key, value],
        idempotent: true,
        write: options,
      }),
    );
  }

  /**
   * The value of `key` as a string, or `undefined` when it does not exist.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function userName(client: KVClient): Promise<string> {
   *   const value = await client.read("user:1");
   *   return value === undefined ? "(nobody)" : JSON.parse(value).name;
   * }
   * ```
   */
  async read(key: KVKey, options?: KVReadOptions): Promise<string | undefined> {
    return decodeValue(await this.readBytes(key, options));
  }

  /**
   * The value of `key` as the exact bytes stored, or `undefined` when it does not exist.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function roundTrip(client: KVClient): Promise<Uint8Array | undefined> {
   *   await client.put("blob", new Uint8Array([0, 255]));
   *   return await client.readBytes("blob"); // Uint8Array(2) [ 0, 255 ]
   * }
   * ```
   */
  async readBytes(key: KVKey, options?: KVReadOptions): Promise<Uint8Array | undefined> {
    return await this.#readBytes(key, options, undefined);
  }

  /**
   * Every pair with `start <= key <= end` (byte order), as strings. The server refuses a range
   * of more than its MAX_RANGE_KEYS keys.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function listUsers(client: KVClient): Promise<void> {
   *   for (const [key, value] of await client.readRange("user:", "user:~")) console.log(key, value);
   * }
   * ```
   */
  async readRange(start: KVKey, end: KVKey, options?: KVReadOptions): Promise<[string, string][]> {
    const pairs = await this.readRangeBytes(start, end, options);
    return decodePairs(pairs);
  }

  /**
   * Every pair with `start <= key <= end` (byte order), as bytes.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function countRange(client: KVClient): Promise<number> {
   *   return (await client.readRangeBytes("a", "b")).length;
   * }
   * ```
   */
  async readRangeBytes(
    start: KVKey,
    end: KVKey,
    options?: KVReadOptions,
  ): Promise<[Uint8Array, Uint8Array][]> {
    return toPairs(
      await this.#call({ kind: "read", parts: ["READRANGE", start, end], read: options }),
    );
  }

  /**
   * Stores every pair atomically: after a crash all of them are there or none (the spec's
   * BATCHPUT). Takes `[key, value]` pairs or an object.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function seed(client: KVClient): Promise<void> {
   *   await client.batchPut([["a", "1"], ["b", "2"]]);
   *   await client.batchPut({ c: "3", d: "4" });
   * }
   * ```
   */
  async batchPut(
    pairs: Iterable<readonly [KVKey, KVValue]> | Readonly<Record<string, KVValue>>,
    options?: KVWriteOptions,
  ): Promise<void> {
    const parts = batchParts(pairs);
    if (parts.length === 1) return;
    expectOk(await this.#call({ kind: "write", parts, idempotent: true, write: options }));
  }

  /**
   * Deletes `key`; resolves to whether it existed. (With `nodes`, a delete sent again after a
   * failover may find the key already gone by its own first attempt and answer false.)
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function forget(client: KVClient): Promise<boolean> {
   *   return await client.delete("user:1"); // false when there was no such key
   * }
   * ```
   */
  async delete(key: KVKey, options?: KVWriteOptions): Promise<boolean> {
    const reply = await this.#call({
      kind: "write",
      parts: ["DELETE", key],
      idempotent: true,
      write: options,
    });
    return existed(reply);
  }

  /**
   * The server's `INFO` text (`key:value` lines under `# Section` headers): all sections, or one
   * of `server`, `clients`, `stats`, `storage`, `replication`. With `nodes`: the master's.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function role(client: KVClient): Promise<string | undefined> {
   *   const info = await client.info("replication"); // "# Replication\r\nrole:master\r\n..."
   *   return /^role:(\w+)/m.exec(info)?.[1];
   * }
   * ```
   */
  async info(section?: string): Promise<string> {
    const reply = await this.send(section === undefined ? ["INFO"] : ["INFO", section]);
    if (reply instanceof Uint8Array) return decoder.decode(reply);
    throw unexpected("INFO", reply);
  }

  /**
   * Checks that the server (with `nodes`: the master) answers; resolves to the round-trip time
   * in milliseconds.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function isUp(client: KVClient): Promise<boolean> {
   *   return await client.ping().then(() => true, () => false);
   * }
   * ```
   */
  async ping(): Promise<number> {
    const started = performance.now();
    const reply = await this.send(["PING"]);
    if (reply !== "PONG") throw unexpected("PING", reply);
    return performance.now() - started;
  }

  /**
   * Sends any command as a RESP array and resolves to its raw reply (a simple string as
   * `string`, a bulk string as `Uint8Array`, an integer as `number`, a null as `null`, arrays as
   * arrays). An error reply rejects with {@link KVServerError}. With `nodes` it goes to the
   * master; it is retried after a failover only when it reads or applying it twice means the
   * same (`PUT`, `DELETE`, `DEL`, `BATCHPUT`, `MSET`, `SET k v`).
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function keyCount(client: KVClient): Promise<number> {
   *   return await client.send(["DBSIZE"]) as number;
   * }
   * ```
   */
  send(parts: readonly CommandArgument[]): Promise<RespValue> {
    if (this.#direct !== undefined) return this.#direct.send(parts);
    if (parts.length === 0) return Promise.reject(new RangeError("a command needs a name"));
    const first = parts[0];
    const name = (typeof first === "string" ? first : decoder.decode(first)).toUpperCase();
    if (READ_COMMANDS.has(name)) {
      return this.#call({
        kind: "read",
        parts: [...parts],
        read: { readPreference: "primary" },
        raw: true,
      });
    }
    const idempotent = IDEMPOTENT_WRITES.has(name) || (name === "SET" && parts.length === 3);
    return this.#call({ kind: "write", parts: [...parts], idempotent, raw: true });
  }

  /**
   * A session: calls made through it read their own writes, and never read older data than they
   * already saw, wherever their reads go (a replica serves a session's read only once it has
   * applied the session's last LSN, waiting up to its MIN_LSN_WAIT_MS; then the read is retried,
   * elsewhere or later). `options` are the session's defaults. Sessions cost nothing on the
   * server; make one per logical flow (a request, a user).
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function rename(client: KVClient): Promise<string | undefined> {
   *   const session = client.session({ readPreference: "replica" });
   *   await session.put("user:1:name", "Ada");
   *   return await session.read("user:1:name"); // "Ada", even from a replica
   * }
   * ```
   */
  session(options: KVSessionOptions = {}): KVSession {
    checkReadOptions(options, "session ");
    checkWriteConcern(options.writeConcern, "session ");
    return new KVSession(this, options);
  }

  /**
   * What the client knows of the cluster now: the master it writes to and every node it tracks
   * (with `host`/`port`: that one node, as the master, without asking it).
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * function replicas(client: KVClient): string[] {
   *   return client.topology().nodes.filter((n) => n.role === "replica").map((n) => n.address);
   * }
   * ```
   */
  topology(): KVTopology {
    if (this.#cluster !== undefined) return this.#cluster.state.snapshot();
    const address = this.address;
    return {
      master: address,
      masterEpoch: 0,
      masterReachable: true,
      refreshedAtMs: 0,
      nodes: [{
        address,
        role: "unknown",
        epoch: 0,
        lsn: 0,
        reachable: true,
        rttMs: undefined,
        stalenessMs: undefined,
        lastError: "",
      }],
    };
  }

  /**
   * Asks every node for its topology now (with `nodes`) and resolves to the new view.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function master(client: KVClient): Promise<string | undefined> {
   *   return (await client.refreshTopology()).master;
   * }
   * ```
   */
  async refreshTopology(): Promise<KVTopology> {
    await this.#cluster?.refresh();
    return this.topology();
  }

  /**
   * Waits for the calls in flight, then closes every connection. Later calls reject with
   * {@link KVConnectionError}.
   *
   * @example
   * ```ts
   * import { KVClient } from "../../mod.ts";
   * const client = new KVClient({ port: 5555 });
   * await client.close(); // nothing was in flight: returns at once
   * ```
   */
  async close(): Promise<void> {
    await this.#direct?.close();
    await this.#cluster?.close();
  }

  /**
   * Same as {@link close}, for `await using`.
   *
   * @example
   * ```ts
   * import { KVClient } from "../../mod.ts";
   * {
   *   await using client = new KVClient({ port: 5555 });
   * } // closed here
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** `readBytes` for the client and its sessions. */
  async #readBytes(
    key: KVKey,
    options: KVReadOptions | undefined,
    session: SessionState | undefined,
  ): Promise<Uint8Array | undefined> {
    const reply = await this.#call({ kind: "read", parts: ["READ", key], read: options, session });
    return valueOf(reply);
  }

  /**
   * Routes one call: adds the `WITH` options it needs (a session's LSN and minimum LSN, a write
   * concern), sends it to the node or through the cluster, and takes the LSN back off the reply.
   */
  #call(call: Call): Promise<RespValue> {
    const session = call.session;
    const concern = call.kind === "write" && call.raw !== true
      ? (call.write?.writeConcern ?? this.#writeConcern)
      : undefined;
    let parts = call.parts;
    if (session !== undefined || (concern !== undefined && concern.replicas !== 0)) {
      const words: CommandArgument[] = ["WITH"];
      if (session !== undefined) {
        words.push("LSN");
        if (call.kind === "read" && session.lastLsn > 0) {
          words.push("MINLSN", String(session.lastLsn));
        }
      }
      if (concern !== undefined && concern.replicas !== 0) {
        words.push("CONCERN", String(concern.replicas), String(concern.timeoutMs));
      }
      parts = [...words, ...parts];
    }
    // Not an async function: a plain call costs no frame and no extra promise here.
    let reply: Promise<RespValue>;
    if (this.#direct !== undefined) {
      reply = this.#direct.send(parts);
    } else if (call.kind === "write") {
      reply = (this.#cluster as ClusterRouter).write(parts, call.idempotent === true);
    } else {
      reply = (this.#cluster as ClusterRouter).read(
        parts,
        call.read?.readPreference ?? this.#readPreference,
        call.read?.maxStalenessMs ?? this.#maxStalenessMs,
      );
    }
    if (session === undefined) return reply;
    return reply.then((value) => {
      if (!Array.isArray(value) || value.length !== 2 || typeof value[1] !== "number") {
        throw unexpected("a session call", value);
      }
      if (value[1] > session.lastLsn) session.lastLsn = value[1];
      return value[0];
    });
  }
}

/**
 * A causally consistent session of a {@link KVClient} (made by {@link KVClient.session}): it
 * remembers the highest LSN it wrote or read, and its reads are served only by a node that has
 * applied it, so it reads its own writes and never goes back in time, whichever node serves
 * each read (MongoDB's causal consistency). Its options are defaults for its calls; each call
 * may override them.
 *
 * @example
 * ```ts
 * import type { KVClient } from "../../mod.ts";
 * async function checkout(client: KVClient): Promise<string | undefined> {
 *   const session = client.session({ readPreference: "replicaPreferred" });
 *   await session.put("cart:9", "3 items");
 *   return await session.read("cart:9"); // "3 items"
 * }
 * ```
 */
export class KVSession {
  readonly #client: KVClient;
  readonly #options: KVSessionOptions;
  readonly #state: SessionState = { lastLsn: 0 };

  /** A session of `client` (the same as `client.session(options)`). */
  constructor(client: KVClient, options: KVSessionOptions = {}) {
    checkReadOptions(options, "session ");
    checkWriteConcern(options.writeConcern, "session ");
    this.#client = client;
    this.#options = options;
  }

  #call(call: Call): Promise<RespValue> {
    return routeOf(this.#client, call);
  }

  /**
   * The highest LSN this session wrote or read (0 before its first call): its reads see at
   * least this much of the log.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * function position(session: KVSession): number {
   *   return session.lastLsn;
   * }
   * ```
   */
  get lastLsn(): number {
    return this.#state.lastLsn;
  }

  /**
   * Makes this session's reads see at least `lsn` (another session's {@link lastLsn}, say, to
   * hand causality from one flow to another). A lower LSN changes nothing.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function handOver(client: KVClient): Promise<string | undefined> {
   *   const writer = client.session();
   *   await writer.put("job:1", "done");
   *   const reader = client.session({ readPreference: "replica" });
   *   reader.advanceLsn(writer.lastLsn);
   *   return await reader.read("job:1"); // "done"
   * }
   * ```
   */
  advanceLsn(lsn: number): void {
    if (!Number.isSafeInteger(lsn) || lsn < 0) throw new RangeError(`LSN ${lsn} is not valid`);
    if (lsn > this.#state.lastLsn) this.#state.lastLsn = lsn;
  }

  #read(options: KVReadOptions | undefined): KVReadOptions {
    checkReadOptions(options, "");
    return { ...this.#options, ...options };
  }

  #write(options: KVWriteOptions | undefined): KVWriteOptions {
    checkWriteConcern(options?.writeConcern, "");
    return { writeConcern: options?.writeConcern ?? this.#options.writeConcern };
  }

  /**
   * {@link KVClient.put} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function save(session: KVSession): Promise<void> {
   *   await session.put("k", "v");
   * }
   * ```
   */
  async put(key: KVKey, value: KVValue, options?: KVWriteOptions): Promise<void> {
    expectOk(
      await this.#call({
        kind: "write",
        parts: ["PUT", key, value],
        idempotent: true,
        write: this.#write(options),
        session: this.#state,
      }),
    );
  }

  /**
   * {@link KVClient.read} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function load(session: KVSession): Promise<string | undefined> {
   *   return await session.read("k");
   * }
   * ```
   */
  async read(key: KVKey, options?: KVReadOptions): Promise<string | undefined> {
    return decodeValue(await this.readBytes(key, options));
  }

  /**
   * {@link KVClient.readBytes} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function load(session: KVSession): Promise<Uint8Array | undefined> {
   *   return await session.readBytes("k");
   * }
   * ```
   */
  async readBytes(key: KVKey, options?: KVReadOptions): Promise<Uint8Array | undefined> {
    const reply = await this.#call({
      kind: "read",
      parts: ["READ", key],
      read: this.#read(options),
      session: this.#state,
    });
    return valueOf(reply);
  }

  /**
   * {@link KVClient.readRange} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function list(session: KVSession): Promise<[string, string][]> {
   *   return await session.readRange("a", "z");
   * }
   * ```
   */
  async readRange(start: KVKey, end: KVKey, options?: KVReadOptions): Promise<[string, string][]> {
    const pairs = await this.readRangeBytes(start, end, options);
    return decodePairs(pairs);
  }

  /**
   * {@link KVClient.readRangeBytes} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function count(session: KVSession): Promise<number> {
   *   return (await session.readRangeBytes("a", "z")).length;
   * }
   * ```
   */
  async readRangeBytes(
    start: KVKey,
    end: KVKey,
    options?: KVReadOptions,
  ): Promise<[Uint8Array, Uint8Array][]> {
    return toPairs(
      await this.#call({
        kind: "read",
        parts: ["READRANGE", start, end],
        read: this.#read(options),
        session: this.#state,
      }),
    );
  }

  /**
   * {@link KVClient.batchPut} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function seed(session: KVSession): Promise<void> {
   *   await session.batchPut({ a: "1", b: "2" });
   * }
   * ```
   */
  async batchPut(
    pairs: Iterable<readonly [KVKey, KVValue]> | Readonly<Record<string, KVValue>>,
    options?: KVWriteOptions,
  ): Promise<void> {
    const parts = batchParts(pairs);
    if (parts.length === 1) return;
    expectOk(
      await this.#call({
        kind: "write",
        parts,
        idempotent: true,
        write: this.#write(options),
        session: this.#state,
      }),
    );
  }

  /**
   * {@link KVClient.delete} in this session.
   *
   * @example
   * ```ts
   * import type { KVSession } from "../../mod.ts";
   * async function forget(session: KVSession): Promise<boolean> {
   *   return await session.delete("k");
   * }
   * ```
   */
  async delete(key: KVKey, options?: KVWriteOptions): Promise<boolean> {
    const reply = await this.#call({
      kind: "write",
      parts: ["DELETE", key],
      idempotent: true,
      write: this.#write(options),
      session: this.#state,
    });
    return existed(reply);
  }
}
