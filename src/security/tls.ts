/**
 * TLS for the client port: with `TLS_CERT` and `TLS_KEY` set, the server listens with
 * `Deno.listenTls`, so clients, and masters replicating to this node, must connect over TLS.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { AuthConfigError } from "./auth.ts";

/** Opens the server's listener (the `listen` option of `startServer`). */
export type Listen = (options: { hostname: string; port: number }) => Deno.Listener;

async function readPem(setting: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new AuthConfigError(`${setting}: cannot read ${path}: ${String(error)}`);
  }
}

/**
 * The TLS listener the settings ask for, or `undefined` when `TLS_CERT` is not set (plain TCP).
 * Reads both PEM files now, so a missing file fails the start with its path.
 *
 * @example
 * ```ts
 * import { loadConfig } from "../config.ts";
 * import { tlsListen } from "./tls.ts";
 * const { config } = loadConfig({ env: {} });
 * console.log(await tlsListen(config)); // undefined: no TLS_CERT
 * ```
 */
export async function tlsListen(config: Config): Promise<Listen | undefined> {
  if (config.TLS_CERT === "") return undefined;
  const cert = await readPem("TLS_CERT", config.TLS_CERT);
  const key = await readPem("TLS_KEY", config.TLS_KEY);
  return (options) => Deno.listenTls({ ...options, cert, key });
}
