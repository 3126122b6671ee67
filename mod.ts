/**
 * kvstore: a persistent key-value store with master-replica replication, for Deno.
 *
 * This module is the client library. It uses only relative and `node:` imports, so it can be
 * imported straight from a URL with no import map.
 *
 * @module
 */
export { VERSION } from "./src/version.ts";
