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
 * This file is the API; what its calls take is in `options.ts`, how they go out in
 * `call_router.ts`, what they send and how replies read in `commands.ts`, sessions in
 * `kv_session.ts`.
 *
 * Uses only relative and `node:` imports, so it can be imported by URL.
 *
 * @module
 */
import type { CommandArgument, RespValue } from "../protocol/resp.ts";
import { bindRouter, CallRouter } from "./call_router.ts";
import { ClusterRouter } from "./cluster.ts";
import {
  batchParts,
  decodePairs,
  decodeValue,
  existed,
  expectOk,
  toPairs,
  unexpected,
  valueOf,
} from "./commands.ts";
import { KVSession } from "./kv_session.ts";
import { NodeConnection } from "./node_connection.ts";
import {
  checkReadOptions,
  checkWriteConcern,
  clusterOptions,
  type KVClientOptions,
  type KVKey,
  type KVReadOptions,
  type KVSessionOptions,
  type KVValue,
  type KVWriteOptions,
  putWords,
} from "./options.ts";
import type { KVTopology } from "./topology.ts";

const decoder = new TextDecoder();

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
  readonly #router: CallRouter;

  /**
   * A client of the node at `options.host:options.port`, or of the cluster `options.nodes`; it
   * connects on the first call.
   */
  constructor(options: KVClientOptions = {}) {
    checkReadOptions(options, "");
    checkWriteConcern(options.writeConcern, "");
    const defaults = {
      readPreference: options.readPreference ?? "primary",
      maxStalenessMs: options.maxStalenessMs,
      writeConcern: options.writeConcern,
    };
    const { nodes, ...connection } = options;
    if (nodes === undefined) {
      this.#direct = new NodeConnection(connection);
      this.#seeds = [this.#direct.address];
      this.#router = new CallRouter({ direct: this.#direct }, defaults);
      bindRouter(this, this.#router);
      return;
    }
    if (options.host !== undefined || options.port !== undefined) {
      throw new RangeError("give nodes or host/port, not both");
    }
    const { seeds, bounds } = clusterOptions(nodes, options);
    // Checked here once, so that a bad option fails the constructor, not a later call.
    new NodeConnection({ ...connection, host: "127.0.0.1", port: 1 });
    this.#seeds = seeds;
    this.#cluster = new ClusterRouter(seeds, connection, bounds);
    this.#router = new CallRouter({ cluster: this.#cluster }, defaults);
    bindRouter(this, this.#router);
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
   * that many replicas). With `expireInMs` the key expires that many ms after the write (the
   * server's `PUTEX`): restarts, failovers and replicas keep the time, and no node serves the key
   * after it.
   *
   * @example
   * ```ts
   * import type { KVClient } from "../../mod.ts";
   * async function saveUser(client: KVClient): Promise<void> {
   *   await client.put("user:1", JSON.stringify({ name: "Ada" }));
   *   await client.put("login:1", "token-abc", { expireInMs: 15 * 60_000 }); // 15 minutes
   * }
   * ```
   */
  async put(key: KVKey, value: KVValue, options?: KVWriteOptions): Promise<void> {
    expectOk(
      await this.#router.call({
        kind: "write",
        parts: putWords(key, value, options),
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
    return valueOf(
      await this.#router.call({ kind: "read", parts: ["READ", key], read: options }),
    );
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
      await this.#router.call({ kind: "read", parts: ["READRANGE", start, end], read: options }),
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
    expectOk(await this.#router.call({ kind: "write", parts, idempotent: true, write: options }));
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
    const reply = await this.#router.call({
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
    return this.#router.send(parts);
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
}
