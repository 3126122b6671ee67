/**
 * TLS for the client port: with `TLS_CERT` and `TLS_KEY` set, the server listens with
 * `Deno.listenTls`, so clients, and masters replicating to this node, must connect over TLS; with
 * `REPLICATION_TLS_CA` set, a master connects to its replicas over TLS trusting that CA.
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

/**
 * How a master connects to its replicas when `REPLICATION_TLS_CA` is set: TLS trusting that CA
 * (the replica's certificate must name the host given in `--replicas`), with TCP no-delay set
 * before the handshake, which completes before the connection is used. `undefined` (plain TCP)
 * when it is not set.
 */
export async function replicationConnect(
  config: Config,
): Promise<((host: string, port: number) => Promise<Deno.Conn>) | undefined> {
  if (config.REPLICATION_TLS_CA === "") return undefined;
  const ca = await readPem("REPLICATION_TLS_CA", config.REPLICATION_TLS_CA);
  return async (host, port) => {
    const tcp = await Deno.connect({ hostname: host, port });
    tcp.setNoDelay(true);
    const tls = await Deno.startTls(tcp, { hostname: host, caCerts: [ca] });
    try {
      await tls.handshake();
    } catch (error) {
      tls.close();
      throw new Error(
        `TLS handshake with replica ${host}:${port} failed: ${String(error)} (is ` +
          `REPLICATION_TLS_CA the CA that signed its TLS_CERT, and does the certificate name ` +
          `${host}?)`,
      );
    }
    return tls;
  };
}
