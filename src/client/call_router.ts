/**
 * How a call of a {@link KVClient} or a session goes out: the `WITH` words it needs (a session's
 * LSN and minimum LSN, a write concern), then to the one node or through the cluster's router
 * (which retries it, `cluster.ts`), and the session's LSN taken back off the reply.
 *
 * @module
 */
import type { CommandArgument, RespValue } from "../protocol/resp.ts";
import type { ClusterRouter } from "./cluster.ts";
import { unexpected } from "./commands.ts";
import type { NodeConnection } from "./node_connection.ts";
import type { KVReadOptions, KVWriteOptions, WriteConcern } from "./options.ts";
import type { ReadPreference } from "./topology.ts";
import type { KVClient } from "./kv_client.ts";

/** A call as the client routes it. */
export interface Call {
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
export interface SessionState {
  lastLsn: number;
}

/** Commands that only read, routed as reads by `KVClient.send`. */
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

/** Writes that mean the same applied twice, retried by `KVClient.send`. */
const IDEMPOTENT_WRITES: ReadonlySet<string> = new Set([
  "PUT",
  "DELETE",
  "DEL",
  "BATCHPUT",
  "MSET",
]);

const decoder = new TextDecoder();

/** The client's defaults for calls that do not say. */
export interface CallDefaults {
  readPreference: ReadPreference;
  maxStalenessMs: number | undefined;
  writeConcern: WriteConcern | undefined;
}

/** Routes the calls of one client and of its sessions. */
export class CallRouter {
  readonly #direct: NodeConnection | undefined;
  readonly #cluster: ClusterRouter | undefined;
  readonly #defaults: CallDefaults;

  /** Calls go to `direct` (one node) when given, else through `cluster`. */
  constructor(
    target: { direct: NodeConnection } | { cluster: ClusterRouter },
    defaults: CallDefaults,
  ) {
    this.#direct = "direct" in target ? target.direct : undefined;
    this.#cluster = "cluster" in target ? target.cluster : undefined;
    this.#defaults = defaults;
  }

  /** `KVClient.send`: a raw command, routed as a read when it only reads. */
  send(parts: readonly CommandArgument[]): Promise<RespValue> {
    if (this.#direct !== undefined) return this.#direct.send(parts);
    if (parts.length === 0) return Promise.reject(new RangeError("a command needs a name"));
    const first = parts[0];
    const name = (typeof first === "string" ? first : decoder.decode(first)).toUpperCase();
    if (READ_COMMANDS.has(name)) {
      return this.call({
        kind: "read",
        parts: [...parts],
        read: { readPreference: "primary" },
        raw: true,
      });
    }
    const idempotent = IDEMPOTENT_WRITES.has(name) || (name === "SET" && parts.length === 3);
    return this.call({ kind: "write", parts: [...parts], idempotent, raw: true });
  }

  /**
   * Routes one call: adds the `WITH` options it needs (a session's LSN and minimum LSN, a write
   * concern), sends it to the node or through the cluster, and takes the LSN back off the reply.
   */
  call(call: Call): Promise<RespValue> {
    const session = call.session;
    const concern = call.kind === "write" && call.raw !== true
      ? (call.write?.writeConcern ?? this.#defaults.writeConcern)
      : undefined;
    const parts = withWords(call, concern);
    // Not an async function: a plain call costs no frame and no extra promise here.
    let reply: Promise<RespValue>;
    if (this.#direct !== undefined) {
      reply = this.#direct.send(parts);
    } else if (call.kind === "write") {
      reply = (this.#cluster as ClusterRouter).write(parts, call.idempotent === true);
    } else {
      reply = (this.#cluster as ClusterRouter).read(
        parts,
        call.read?.readPreference ?? this.#defaults.readPreference,
        call.read?.maxStalenessMs ?? this.#defaults.maxStalenessMs,
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

/** The call's words with the `WITH` options it needs in front (the same array when none). */
function withWords(call: Call, concern: WriteConcern | undefined): CommandArgument[] {
  const session = call.session;
  const withConcern = concern !== undefined && concern.replicas !== 0;
  if (session === undefined && !withConcern) return call.parts;
  const words: CommandArgument[] = ["WITH"];
  if (session !== undefined) {
    words.push("LSN");
    if (call.kind === "read" && session.lastLsn > 0) {
      words.push("MINLSN", String(session.lastLsn));
    }
  }
  if (withConcern) {
    words.push("CONCERN", String(concern.replicas), String(concern.timeoutMs));
  }
  return [...words, ...call.parts];
}

/** The router of each client, for its sessions (`new KVSession(client)` takes the client). */
const routers = new WeakMap<KVClient, CallRouter>();

/** Makes `router` the one that routes the calls of `client`'s sessions. */
export function bindRouter(client: KVClient, router: CallRouter): void {
  routers.set(client, router);
}

/** The router of `client` (made by its constructor). */
export function routerOf(client: KVClient): CallRouter {
  const router = routers.get(client);
  if (router === undefined) throw new TypeError("a session needs a KVClient");
  return router;
}
