/**
 * kvstore: a persistent key-value store with master-replica replication, for Deno.
 *
 * This module is the client library. It uses only relative and `node:` imports, so it can be
 * imported straight from a URL with no import map:
 *
 * ```ts
 * import { KVClient } from "./mod.ts"; // or "https://<where kvstore is served>/mod.ts"
 * const client = new KVClient({ host: "127.0.0.1", port: 5555 });
 * await client.close();
 * ```
 *
 * `KVClient` talks to one node (`host`, `port`) over one pipelined RESP connection, or to a
 * cluster (`nodes`): it finds the master, follows failovers, sends reads where `readPreference`
 * says (`primary`, `primaryPreferred`, `replica`, `replicaPreferred`, `nearest`, with
 * `maxStalenessMs`), applies a `writeConcern`, and gives sessions that read their own writes
 * (`client.session()`). It takes the server's token (`token`) and speaks TLS
 * (`tls: { caCerts }`); errors are typed (`KVConnectionError`, `KVServerError`, `KVReadOnlyError`,
 * `KVAuthError`, `KVTimeoutError`, `KVWriteConcernError`, `KVOutcomeUnknownError`,
 * `KVUnavailableError`).
 *
 * ```ts
 * import { KVClient } from "./mod.ts";
 * const cluster = new KVClient({
 *   nodes: ["127.0.0.1:5555", "127.0.0.1:5556"],
 *   readPreference: "replicaPreferred",
 *   writeConcern: { replicas: "majority", timeoutMs: 2000 },
 * });
 * await cluster.close();
 * ```
 *
 * @module
 */
export { KVClient } from "./src/client/kv_client.ts";
export { KVSession } from "./src/client/kv_session.ts";
export type {
  KVClientOptions,
  KVKey,
  KVReadOptions,
  KVSessionOptions,
  KVValue,
  KVWriteOptions,
  WriteConcern,
} from "./src/client/options.ts";
export type { KVClientTlsOptions } from "./src/client/node_connection.ts";
export type { KVNodeInfo, KVTopology, ReadPreference } from "./src/client/topology.ts";
export { CLIENT_DEFAULTS } from "./src/client/defaults.ts";
export {
  KVAuthError,
  KVConnectionError,
  KVError,
  KVOutcomeUnknownError,
  KVReadOnlyError,
  KVServerError,
  KVTimeoutError,
  KVUnavailableError,
  KVWriteConcernError,
} from "./src/client/errors.ts";
export { type CommandArgument, RespErrorReply, type RespValue } from "./src/protocol/resp.ts";
export { VERSION } from "./src/version.ts";
