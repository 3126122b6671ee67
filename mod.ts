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
 * `KVClient` keeps one RESP connection per client and pipelines concurrent calls on it; it takes
 * the server's token (`token`) and speaks TLS (`tls: { caCerts }`); errors are typed
 * (`KVConnectionError`, `KVServerError`, `KVReadOnlyError`, `KVAuthError`, `KVTimeoutError`).
 *
 * @module
 */
export {
  KVClient,
  type KVClientOptions,
  type KVClientTlsOptions,
  type KVKey,
  type KVValue,
} from "./src/client/client.ts";
export {
  KVAuthError,
  KVConnectionError,
  KVError,
  KVReadOnlyError,
  KVServerError,
  KVTimeoutError,
} from "./src/client/errors.ts";
export { type CommandArgument, RespErrorReply, type RespValue } from "./src/protocol/resp.ts";
export { VERSION } from "./src/version.ts";
